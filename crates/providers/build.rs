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
//! - header: token count `n`, `trie_bits`, `pair_bits`;
//! - `next_prefix[n]`: the longest token that is a proper prefix of token `t`
//!   (packed, see below), or `NONE`;
//! - `split[2n]`: the two tokens BPE merged into `t` (`t, t` for a token no
//!   merge makes);
//! - `trie[2 << trie_bits]`: a hashed trie of every prefix of every token,
//!   slots `[key, best]`, `key = parent * 256 + byte` where a node's id is its
//!   slot + 1 (the root is 0), `best` the longest token that is a prefix of
//!   the node's bytes (packed);
//! - `pairs[3 << pair_bits]`: `(left, right) -> merged` for every merge,
//!   slots `[left, right, merged]`;
//! - `first[2 * (256 + 65536)]`: the trie's nodes of one and two bytes,
//!   indexed directly, `[node, best]`.
//!
//! A packed token is `id | len << 18`, so that the encoder learns a match's
//! length without another lookup. Both hash tables probe linearly from
//! `(key * 0x9E37_79B9_7F4A_7C15) >> (64 - bits)`.

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

    // Every prefix of every token, shortest first, so that a parent's slot
    // is known before its children are placed.
    let mut prefixes: Vec<&[u8]> = tokens
        .iter()
        .flat_map(|t| (1..=t.len()).map(move |len| &t[..len]))
        .collect();
    prefixes.sort_unstable_by(|a, b| a.len().cmp(&b.len()).then(a.cmp(b)));
    prefixes.dedup();
    let trie_bits = (prefixes.len() * 2).next_power_of_two().trailing_zeros();
    let trie_mask = (1usize << trie_bits) - 1;
    let mut trie = vec![(NONE, NONE); 1 << trie_bits];
    let mut node_of: HashMap<&[u8], (u32, u32)> = HashMap::with_capacity(prefixes.len());
    let mut first = vec![(NONE, NONE); 256 + 65536];
    for p in &prefixes {
        let (parent, parent_best) = match p.len() {
            1 => (0, NONE),
            len => node_of[&p[..len - 1]],
        };
        let best = by_bytes.get(p).map_or(parent_best, |&t| pack(t));
        let key = parent * 256 + u32::from(p[p.len() - 1]);
        let mut s = slot(u64::from(key), trie_bits);
        while trie[s].0 != NONE {
            s = (s + 1) & trie_mask;
        }
        trie[s] = (key, best);
        let node = s as u32 + 1;
        node_of.insert(p, (node, best));
        match **p {
            [a] => first[usize::from(a)] = (node, best),
            [a, b] => first[256 + usize::from(a) * 256 + usize::from(b)] = (node, best),
            _ => {}
        }
    }

    let pair_bits = (pairs.len() * 2).next_power_of_two().trailing_zeros();
    let pair_mask = (1usize << pair_bits) - 1;
    let mut pair_table = vec![(NONE, NONE, NONE); 1 << pair_bits];
    let mut merges: Vec<_> = pairs.iter().collect();
    merges.sort_unstable();
    for (&(left, right), &merged) in merges {
        let mut s = slot((u64::from(left) << 32) | u64::from(right), pair_bits);
        while pair_table[s].0 != NONE {
            s = (s + 1) & pair_mask;
        }
        pair_table[s] = (left, right, merged);
    }

    let mut words: Vec<u32> = vec![n as u32, trie_bits, pair_bits];
    words.extend(next_prefix.iter().map(|&t| pack(t)));
    words.extend(split.iter().flat_map(|&(a, b)| [a, b]));
    words.extend(trie.iter().flat_map(|&(k, b)| [k, b]));
    words.extend(pair_table.iter().flat_map(|&(a, b, c)| [a, b, c]));
    words.extend(first.iter().flat_map(|&(k, b)| [k, b]));
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let out = std::path::Path::new(&std::env::var("OUT_DIR")?).join("o200k.bin");
    std::fs::write(out, bytes)?;
    Ok(())
}
