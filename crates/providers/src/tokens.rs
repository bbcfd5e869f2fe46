//! Token counting with the `o200k_base` encoding (GPT-4o and later).
//!
//! The counts are tiktoken's (`encode_ordinary`), token for token: the text is
//! split with o200k's pre-tokenizer pattern and every piece is encoded by
//! byte-pair encoding. The encoder is the backtracking one of GitHub's `bpe`
//! crate: it walks the piece left to right taking the longest token that
//! BPE would keep next to the previous one, and steps back when it meets a
//! dead end, which makes it linear in practice on any input, where
//! tiktoken's merge loop is quadratic in the length of a piece (1 MB of
//! random letters is one piece). Its tables are built from tiktoken-rs's
//! vocabulary when the crate is compiled (`build.rs`, which documents the
//! layout) and read in place from the binary: nothing is decoded or
//! allocated when the counter starts, and only the pages a text touches
//! become resident (about 16 MB in all, against about 50 MB of heap for
//! tiktoken-rs's encoder).

use std::sync::LazyLock;

use regex_automata::meta::Regex;
use regex_automata::{Anchored, Input};

const NONE: u32 = u32::MAX;
/// A packed token is `id | len << ID_BITS` (see `build.rs`).
const ID_BITS: u32 = 18;
const ID: u32 = (1 << ID_BITS) - 1;

static TABLES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/o200k.bin"));

/// o200k's pre-tokenizer. Its `\s+(?!\S)` needs a look-ahead, which
/// `regex-automata` does not have: as in `bpe-openai`, the look-ahead is the
/// second pattern, `\s+\s`, whose match gives back its last character.
const PATTERNS: [&str; 3] = [
    concat!(
        r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
        r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
        r"|\p{N}{1,3}",
        r"| ?[^\s\p{L}\p{N}]+[\r\n/]*",
        r"|\s*[\r\n]+",
        r"|\s+$",
    ),
    r"\s+\s",
    r"\s+",
];
const LOOKAHEAD_PATTERN: usize = 1;

static COUNTER: LazyLock<Result<Counter, String>> = LazyLock::new(Counter::load);

/// Token count of `text` with the `o200k_base` encoding.
///
/// Special-token markup such as `<|endoftext|>` in the text is counted as
/// ordinary text. Time is linear in the text's length in practice (47-75
/// ns per byte of random letters on the benchmark machine, the worst case of
/// tiktoken's own encoder) and memory is a bit per byte and four bytes per
/// token of the longest piece.
pub fn count(text: &str) -> u32 {
    if text.is_empty() {
        return 0;
    }
    let n = match &*COUNTER {
        Ok(counter) => counter.count(text),
        // Unreachable in the server, which refuses to start when `warm`
        // fails: an estimate rather than a panic for other users.
        Err(_) => text.len().div_ceil(4),
    };
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Builds the pre-tokenizer now (a few milliseconds), so that the first
/// request that counts tokens does not pay for it. The server calls this
/// before it opens its port, and does not start when it fails.
pub fn warm() -> Result<(), String> {
    COUNTER.as_ref().map(|_| ()).map_err(Clone::clone)
}

/// A table of little-endian `u32` words read in place.
#[derive(Clone, Copy)]
struct Words(&'static [u8]);

impl Words {
    fn take(data: &mut &'static [u8], words: usize) -> Result<Self, String> {
        let (head, rest) = data
            .split_at_checked(words * 4)
            .ok_or("the token tables are truncated")?;
        *data = rest;
        Ok(Self(head))
    }

    #[inline(always)]
    fn get(self, i: usize) -> u32 {
        match self.0.get(i * 4..i * 4 + 4) {
            Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
            _ => NONE,
        }
    }
}

struct Counter {
    /// Per token: `[left half, right half, longest shorter prefix token
    /// (packed), merge table]`.
    records: Words,
    /// The trie's child tables, slots `[byte, best, table]`.
    trie: Words,
    /// The merge tables, slots `[right, merged]`.
    merges: Words,
    /// The trie's nodes of one and two bytes, `[table, best]`.
    first: Words,
    /// Two bits per merge `(left, right)` (see [`Counter::merged`]).
    filter: Words,
    filter_bits: u32,
    pre: Regex,
}

#[inline(always)]
fn slot(key: u64, bits: u32) -> usize {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
}

/// A table's first slot and mask (`table` is `offset << 5 | bits`).
#[inline(always)]
fn table(word: u32) -> (usize, usize) {
    ((word >> 5) as usize, (1usize << (word & 31)) - 1)
}

#[inline(always)]
fn len(packed: u32) -> usize {
    (packed >> ID_BITS) as usize
}

/// The tokens of one piece so far (packed) and the positions known to lead
/// nowhere (one bit per byte), kept between pieces of a text.
#[derive(Default)]
struct Scratch {
    tokens: Vec<u32>,
    dead: Vec<u64>,
}

impl Counter {
    fn load() -> Result<Self, String> {
        let header = Words(TABLES);
        let (n, trie, merges, filter_bits) = (
            header.get(0) as usize,
            header.get(1) as usize,
            header.get(2) as usize,
            header.get(3),
        );
        if n == 0
            || n > ID as usize
            || trie >= 1 << 27
            || merges >= 1 << 27
            || !(1..32).contains(&filter_bits)
        {
            return Err("the token tables have a bad header".into());
        }
        let mut rest = &TABLES[16..];
        let records = Words::take(&mut rest, 4 * n)?;
        let trie = Words::take(&mut rest, 3 * trie)?;
        let merges = Words::take(&mut rest, 2 * merges)?;
        let first = Words::take(&mut rest, 2 * (256 + 65536))?;
        let filter = Words::take(&mut rest, 1 << filter_bits)?;
        let pre = Regex::new_many(&PATTERNS).map_err(|e| e.to_string())?;
        Ok(Self {
            records,
            trie,
            merges,
            first,
            filter,
            filter_bits,
            pre,
        })
    }

    fn count(&self, text: &str) -> usize {
        let mut scratch = Scratch::default();
        let mut n = 0;
        let mut at = 0;
        while at < text.len() {
            let found = self
                .pre
                .find(Input::new(&text[at..]).anchored(Anchored::Yes));
            let end = found.map_or(at, |m| {
                let end = at + m.end();
                if m.pattern().as_usize() == LOOKAHEAD_PATTERN {
                    end - text[at..end].chars().next_back().map_or(0, char::len_utf8)
                } else {
                    end
                }
            });
            // The patterns match every non-empty text (`\s+` and the
            // punctuation class cover what the letter classes leave); were
            // nothing matched, the rest would count as one piece.
            let end = if end > at { end } else { text.len() };
            n += self.count_piece(&text.as_bytes()[at..end], &mut scratch);
            at = end;
        }
        n
    }

    /// The longest token that is a prefix of `text` (packed).
    #[inline]
    fn longest(&self, text: &[u8]) -> u32 {
        let (mut children, mut best, rest) = match text {
            [a, b, rest @ ..] => {
                let i = 256 + usize::from(*a) * 256 + usize::from(*b);
                let best = self.first.get(2 * i + 1);
                if best == NONE {
                    return self.first.get(2 * usize::from(*a) + 1);
                }
                (self.first.get(2 * i), best, rest)
            }
            [a] => return self.first.get(2 * usize::from(*a) + 1),
            [] => return NONE,
        };
        'walk: for &byte in rest {
            if children == NONE {
                break;
            }
            let (offset, mask) = table(children);
            let mut s = usize::from(byte) & mask;
            // A table always has an empty slot, which ends the probe.
            loop {
                let at = 3 * (offset + s);
                match self.trie.get(at) {
                    k if k == u32::from(byte) => {
                        (best, children) = (self.trie.get(at + 1), self.trie.get(at + 2));
                        continue 'walk;
                    }
                    NONE => break 'walk,
                    _ => s = (s + 1) & mask,
                }
            }
        }
        best
    }

    /// The token BPE merges `left` and `right` into, or `NONE`.
    #[inline(always)]
    fn merged(&self, left: u32, right: u32) -> u32 {
        let h = (u64::from(left) << 32 | u64::from(right)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mask = 1 << ((h >> 32) & 31) | 1 << ((h >> 37) & 31);
        if self.filter.get((h >> (64 - self.filter_bits)) as usize) & mask != mask {
            return NONE;
        }
        let merges = self.records.get(4 * left as usize + 3);
        if merges == NONE {
            return NONE;
        }
        let (offset, mask) = table(merges);
        let mut s = slot(u64::from(right), merges & 31);
        loop {
            let at = 2 * (offset + s);
            match self.merges.get(at) {
                NONE => return NONE,
                r if r == right => return self.merges.get(at + 1),
                _ => s = (s + 1) & mask,
            }
        }
    }

    /// Whether BPE keeps `t1` next to `t2` ([`crate::pair::keeps`]).
    fn valid_pair(&self, t1: u32, t2: u32) -> bool {
        crate::pair::keeps(
            |a, b| Some(self.merged(a, b)).filter(|&m| m != NONE),
            |t| {
                let i = 4 * t as usize;
                (self.records.get(i), self.records.get(i + 1))
            },
            t1,
            t2,
        )
    }

    /// Tokens in one piece of the pre-tokenizer (`bpe`'s backtracking encoder).
    fn count_piece(&self, piece: &[u8], scratch: &mut Scratch) -> usize {
        let mut next = self.longest(piece);
        if next == NONE {
            return 0;
        }
        if len(next) == piece.len() {
            return 1;
        }
        let Scratch { tokens, dead } = scratch;
        tokens.clear();
        dead.clear();
        dead.resize(piece.len() / 64 + 1, 0);
        let mut pos = 0;
        loop {
            let last = tokens.last().copied();
            let mut token = next;
            loop {
                let end = pos + len(token);
                let alive = dead
                    .get(end / 64)
                    .is_some_and(|w| w & (1 << (end % 64)) == 0);
                if alive && last.is_none_or(|l| self.valid_pair(l & ID, token & ID)) {
                    tokens.push(token);
                    pos = end;
                    if pos >= piece.len() {
                        return tokens.len();
                    }
                    next = self.longest(&piece[pos..]);
                    break;
                }
                let shorter = self.records.get(4 * (token & ID) as usize + 2);
                if shorter != NONE {
                    token = shorter;
                    continue;
                }
                // No token from here leads to the end: step back.
                if let Some(w) = dead.get_mut(pos / 64) {
                    *w |= 1 << (pos % 64);
                }
                tokens.pop();
                match last {
                    Some(l) => {
                        pos -= len(l);
                        next = l;
                    }
                    // Unreachable: a single byte is always a token, so the
                    // walk never steps back past the start.
                    None => return piece.len(),
                }
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn special_token_markup_in_user_text_is_counted_as_text() {
        assert!(count("<|endoftext|>") > 1);
    }
}
