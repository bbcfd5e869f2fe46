//! Builds the token counter's tables (`o200k.bin` in `OUT_DIR`) from the
//! `o200k_base` vocabulary that `tiktoken-rs` carries.
//!
//! The tables are what `src/tokens.rs` reads in place (they are compiled into
//! the binary, so loading them costs nothing and their pages are clean,
//! shared and only resident once touched). The counter is the backtracking
//! byte-pair encoder of GitHub's `bpe` crate (linear in practice on any
//! input, the same tokens as tiktoken's greedy merge), over flat tables
//! instead of its Aho-Corasick automata: a quarter of the memory.
//!
//! Layout: little-endian `u32` words (the tokens' bytes are not needed).
//! - header: token count `n`, trie slots, merge slots, `FILTER_BITS`;
//! - `records[4n]`, one per token `t`: the two tokens BPE merged into `t`
//!   (`t, t` for a token no merge makes), the longest token that is a proper
//!   prefix of `t` (packed, see below) or `NONE`, and `t`'s merge table (as
//!   the left half) or `NONE`;
//! - `trie[3 * slots]`: the trie of every prefix of every token, one small
//!   table per node of its children, slots `[byte, best, table]`: `best` is
//!   the longest token that is a prefix of the child's bytes (packed),
//!   `table` the child's own table or `NONE`; probed from `byte & mask`;
//! - `merges[2 * slots]`: one table per left token, slots `[right, merged]`,
//!   probed from `(right * 0x9E37_79B9_7F4A_7C15) >> (64 - bits)`;
//! - `first[2 * (256 + 65536)]`: the trie's nodes of one and two bytes,
//!   indexed directly, `[table, best]`;
//! - `filter[1 << FILTER_BITS]`: two bits per merge (see `filter_bits`).
//!
//! A table is the word `offset << 5 | bits`: `1 << bits` slots from `offset`,
//! at least one of them empty (`NONE`), which ends a probe. Tables follow the
//! order of their owners (trie nodes shortest first, tokens by rank), so the
//! tables a text walks most, those of short prefixes and frequent tokens,
//! share pages and cache lines: counting a megabyte of random letters makes
//! 7 MB of the 16 MB of tables resident (16 MB of 17 with the layout before,
//! one hash table for the whole trie and one for all merges), and the filter
//! answers most questions about merges from 256 KiB.
//!
//! A packed token is `id | len << 18`, so that the encoder learns a match's
//! length without another lookup.

use std::collections::HashMap;
use std::error::Error;

const NONE: u32 = u32::MAX;
const ID_BITS: u32 = 18;

type Merges = HashMap<(u32, u32), u32>;

/// `bpe`'s pair test, shared with the counter.
#[path = "src/pair.rs"]
mod pair;

/// Would BPE, given `t1` then `t2`, keep that pair ([`pair::keeps`])?
fn is_valid_pair(pairs: &Merges, split: &[(u32, u32)], t1: u32, t2: u32) -> bool {
    pair::keeps(
        |a, b| pairs.get(&(a, b)).copied(),
        |t| {
            split
                .get(t as usize)
                .copied()
                .unwrap_or((u32::MAX, u32::MAX))
        },
        t1,
        t2,
    )
}

fn slot(key: u64, bits: u32) -> usize {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
}

/// The merge filter's size: `1 << FILTER_BITS` words of 32 bits.
const FILTER_BITS: u32 = 16;

/// The filter's word and bits for the pair `(left, right)` (as in
/// `src/tokens.rs`).
fn filter_bits(left: u32, right: u32) -> (usize, u32) {
    let h = ((u64::from(left) << 32) | u64::from(right)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (
        (h >> (64 - FILTER_BITS)) as usize,
        1 << ((h >> 32) & 31) | 1 << ((h >> 37) & 31),
    )
}

/// Appends a table of `1 << bits` empty slots; its word (`offset << 5 | bits`).
fn place<T: Copy>(slots: &mut Vec<T>, bits: u32, empty: T) -> Result<u32, Box<dyn Error>> {
    let offset = u32::try_from(slots.len())?;
    if offset >= 1 << 27 {
        return Err("the token tables outgrew their offsets".into());
    }
    slots.extend(std::iter::repeat_n(empty, 1 << bits));
    Ok(offset << 5 | bits)
}

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo::rerun-if-changed=build.rs");
    let bpe = tiktoken_rs::o200k_base()?;
    // The ordinary tokens are ranks 0.. up to the first rank that is not one
    // (the special tokens sit above them).
    let mut tokens: Vec<Vec<u8>> = Vec::new();
    let specials: Vec<u32> = bpe
        .special_tokens()
        .iter()
        .filter_map(|s| bpe.encode_with_special_tokens(s).first().copied())
        .collect();
    for rank in 0u32.. {
        if specials.contains(&rank) {
            break;
        }
        match bpe.decode_bytes(&[rank]) {
            Ok(bytes) => tokens.push(bytes),
            Err(_) => break,
        }
    }
    let n = tokens.len();
    if n >= 1 << ID_BITS || tokens.iter().any(|t| t.is_empty() || t.len() >= 1 << 14) {
        return Err("the vocabulary does not fit the packed layout".into());
    }
    let by_bytes: HashMap<&[u8], u32> = tokens
        .iter()
        .enumerate()
        .map(|(id, t)| (t.as_slice(), id as u32))
        .collect();
    if by_bytes.len() != n || (0..=255u8).any(|b| !by_bytes.contains_key(&[b][..])) {
        return Err("expected distinct tokens and every single byte a token".into());
    }
    let next_prefix: Vec<u32> = tokens
        .iter()
        .map(|t| {
            (1..t.len())
                .rev()
                .find_map(|len| by_bytes.get(&t[..len]).copied())
                .unwrap_or(NONE)
        })
        .collect();

    // Reverse-engineer the merges (`bpe`'s `from_dictionary`): a token's
    // split is its longest prefix token whose rest is a token, both older,
    // that BPE would leave side by side.
    let mut split: Vec<(u32, u32)> = Vec::with_capacity(n);
    let mut pairs = Merges::new();
    for (id, token) in tokens.iter().enumerate() {
        let id = id as u32;
        let mut left = next_prefix[id as usize];
        while left != NONE {
            let rest = &token[tokens[left as usize].len()..];
            if let Some(&right) = by_bytes.get(rest) {
                if left < id && right < id && is_valid_pair(&pairs, &split, left, right) {
                    pairs.insert((left, right), id);
                    split.push((left, right));
                    break;
                }
            }
            left = next_prefix[left as usize];
        }
        if left == NONE {
            split.push((id, id));
        }
    }

    let pack = |t: u32| {
        if t == NONE {
            NONE
        } else {
            t | ((tokens[t as usize].len() as u32) << ID_BITS)
        }
    };

    // The trie's nodes are the prefixes of the tokens, shortest first (so
    // every parent comes before its children and the nodes of short
    // prefixes, the ones every text walks, sit together at the front).
    let mut prefixes: Vec<&[u8]> = tokens
        .iter()
        .flat_map(|t| (1..=t.len()).map(move |len| &t[..len]))
        .collect();
    prefixes.sort_unstable_by(|a, b| a.len().cmp(&b.len()).then(a.cmp(b)));
    prefixes.dedup();
    let index: HashMap<&[u8], usize> = prefixes.iter().enumerate().map(|(i, p)| (*p, i)).collect();
    let mut children: Vec<Vec<(u8, usize)>> = vec![Vec::new(); prefixes.len()];
    let mut best = vec![NONE; prefixes.len()];
    for (i, p) in prefixes.iter().enumerate() {
        best[i] = match by_bytes.get(p) {
            Some(&t) => pack(t),
            None if p.len() > 1 => best[index[&p[..p.len() - 1]]],
            None => NONE,
        };
        if p.len() > 1 {
            children[index[&p[..p.len() - 1]]].push((p[p.len() - 1], i));
        }
    }
    // Each node's children get a small table of their own, `[byte, best,
    // table]` slots probed from `byte & mask`; the tables follow the nodes'
    // order.
    let mut trie: Vec<[u32; 3]> = Vec::new();
    let mut table = vec![NONE; prefixes.len()];
    for (i, kids) in children.iter().enumerate() {
        if !kids.is_empty() {
            let bits = (kids.len() + 1).next_power_of_two().trailing_zeros();
            table[i] = place(&mut trie, bits, [NONE; 3])?;
        }
    }
    for (i, kids) in children.iter().enumerate() {
        for &(byte, child) in kids {
            let (offset, bits) = (table[i] >> 5, table[i] & 31);
            let mask = (1usize << bits) - 1;
            let mut s = usize::from(byte) & mask;
            while trie[offset as usize + s][0] != NONE {
                s = (s + 1) & mask;
            }
            trie[offset as usize + s] = [u32::from(byte), best[child], table[child]];
        }
    }
    let mut first = vec![[NONE; 2]; 256 + 65536];
    for (i, p) in prefixes.iter().enumerate() {
        match **p {
            [a] => first[usize::from(a)] = [table[i], best[i]],
            [a, b] => first[256 + usize::from(a) * 256 + usize::from(b)] = [table[i], best[i]],
            _ => {}
        }
    }

    // Each token's merges as the left half: a table of `[right, merged]`
    // slots probed from a hash of `right`.
    let mut by_left: Vec<Vec<(u32, u32)>> = vec![Vec::new(); n];
    for (&(left, right), &merged) in &pairs {
        by_left[left as usize].push((right, merged));
    }
    let mut merges: Vec<[u32; 2]> = Vec::new();
    let mut records: Vec<[u32; 4]> = Vec::with_capacity(n);
    for (t, rights) in by_left.iter_mut().enumerate() {
        rights.sort_unstable();
        let mut table = NONE;
        if !rights.is_empty() {
            let bits = (rights.len() + 1)
                .next_power_of_two()
                .trailing_zeros()
                .max(1);
            table = place(&mut merges, bits, [NONE; 2])?;
            let offset = (table >> 5) as usize;
            let mask = (1usize << bits) - 1;
            for &(right, merged) in rights.iter() {
                let mut s = slot(u64::from(right), bits);
                while merges[offset + s][0] != NONE {
                    s = (s + 1) & mask;
                }
                merges[offset + s] = [right, merged];
            }
        }
        let (a, b) = split[t];
        records.push([a, b, pack(next_prefix[t]), table]);
    }

    // A filter of the merges that fits a core's cache: most pairs the
    // counter asks about merge into nothing, and the filter says so without
    // touching the merge tables.
    let mut filter = vec![0u32; 1 << FILTER_BITS];
    for &(left, right) in pairs.keys() {
        let (word, mask) = filter_bits(left, right);
        filter[word] |= mask;
    }

    let mut words: Vec<u32> = vec![
        n as u32,
        trie.len() as u32,
        merges.len() as u32,
        FILTER_BITS,
    ];
    words.extend(records.iter().flatten());
    words.extend(trie.iter().flatten());
    words.extend(merges.iter().flatten());
    words.extend(first.iter().flatten());
    words.extend(filter);
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let out = std::path::Path::new(&std::env::var("OUT_DIR")?).join("o200k.bin");
    std::fs::write(out, bytes)?;
    Ok(())
}
