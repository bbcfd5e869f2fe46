//! Rebuild when a migration changes: they are embedded in the binary.
//!
//! Also digests the PostgreSQL migrations (their paths and contents) into
//! `SKEIN_PG_MIGRATIONS_DIGEST`: the test support names its migrated
//! template database after it, so that any change to the migrations, even
//! an edit of an unreleased one, gets a fresh template.

use std::path::{Path, PathBuf};

fn main() -> std::io::Result<()> {
    println!("cargo:rerun-if-changed=../../migrations");
    let root = Path::new("../../migrations/postgres");
    let mut files = Vec::new();
    collect(root, &mut files)?;
    files.sort();
    // FNV-1a: stable across toolchains, unlike std's DefaultHasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for file in &files {
        let relative = file.strip_prefix(root).unwrap_or(file);
        feed(relative.to_string_lossy().as_bytes());
        feed(&[0]);
        feed(&std::fs::read(file)?);
        feed(&[0]);
    }
    println!("cargo:rustc-env=SKEIN_PG_MIGRATIONS_DIGEST={hash:016x}");
    Ok(())
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}
