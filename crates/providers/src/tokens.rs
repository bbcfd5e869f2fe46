//! Token counting with the `o200k_base` encoding (GPT-4o and later).
//!
//! The counts are tiktoken's (`encode_ordinary`), token for token: the text is
//! split with o200k's pre-tokenizer pattern and every piece is encoded by
//! byte-pair encoding. The encoder is the backtracking one of GitHub's `bpe`
//! crate: it walks the piece left to right taking the longest token that
//! BPE would keep next to the previous one, and steps back when it meets a
//! dead end, which makes it linear in practice on any input, where
//! tiktoken's merge loop is quadratic in the length of a piece (1 MB of
//! random letters is one piece). A piece longer than 65 KiB is encoded in
//! chunks that are joined where their encodings meet, which bounds the
//! encoder's memory by the chunk and, from 256 KiB, can spread the chunks
//! over threads (see `Counter::count_long` and [`set_threads`]). Its tables
//! are built from tiktoken-rs's vocabulary when the crate is compiled
//! (`build.rs`, which documents the layout) and read in place from the
//! binary: nothing is decoded or
//! allocated when the counter starts, and only the pages a text touches
//! become resident (about 16 MB in all, against about 50 MB of heap for
//! tiktoken-rs's encoder).

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::LazyLock;

use regex_automata::meta::Regex;
use regex_automata::{Anchored, Input};
use zerocopy::little_endian::U32;
use zerocopy::FromBytes;

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
/// ordinary text. Time is linear in the text's length in practice (about
/// 45 ns of CPU per byte of random letters on the benchmark machine, the
/// worst case of tiktoken's own encoder; a piece of 256 KiB or more is
/// encoded on several threads, see [`set_threads`]) and memory is a bit per
/// byte and four bytes per token of a piece, or of a 64 KiB chunk of a
/// longer one.
pub fn count(text: &str) -> u32 {
    if text.is_empty() {
        return 0;
    }
    let split = Split {
        threads: threads(),
        ..Split::default()
    };
    let n = match &*COUNTER {
        Ok(counter) => counter.count(text, split).0,
        // Unreachable in the server, which refuses to start when `warm`
        // fails: an estimate rather than a panic for other users.
        Err(_) => text.len().div_ceil(4),
    };
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Most threads one [`count`] uses, from now on in this process: `1` for
/// only the caller's, `0` (the default) for one per CPU up to four. The
/// server sets 1 and lends more through its CPU gate ([`with_threads`]).
pub fn set_threads(threads: usize) {
    THREADS.store(threads, Ordering::Relaxed);
}

/// Runs `f` with the counts it makes on this thread using at most
/// `threads` threads (at least one), whatever [`set_threads`] says.
pub fn with_threads<T>(threads: usize, f: impl FnOnce() -> T) -> T {
    /// Puts the scope before back, even if `f` panics.
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            SCOPED.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(SCOPED.with(|s| s.replace(threads.max(1))));
    f()
}

static THREADS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// The innermost [`with_threads`] on this thread, or 0.
    static SCOPED: Cell<usize> = const { Cell::new(0) };
}

/// Most threads a count made now on this thread would use (after
/// [`with_threads`] and [`set_threads`]).
pub fn threads() -> usize {
    match (SCOPED.with(Cell::get), THREADS.load(Ordering::Relaxed)) {
        (0, 0) => Split::default().threads,
        (0, n) | (n, _) => n,
    }
}

/// Builds the pre-tokenizer now (a few milliseconds), so that the first
/// request that counts tokens does not pay for it. The server calls this
/// before it opens its port, and does not start when it fails.
pub fn warm() -> Result<(), String> {
    COUNTER.as_ref().map(|_| ()).map_err(Clone::clone)
}

/// A table of little-endian `u32` words read in place.
#[derive(Clone, Copy)]
struct Words(&'static [U32]);

impl Words {
    fn take(data: &mut &'static [U32], words: usize) -> Result<Self, String> {
        let (head, rest) = data
            .split_at_checked(words)
            .ok_or("the token tables are truncated")?;
        *data = rest;
        Ok(Self(head))
    }

    #[inline(always)]
    fn get(self, i: usize) -> u32 {
        self.0.get(i).map_or(NONE, |w| w.get())
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
        let words = <[U32]>::ref_from_bytes(TABLES)
            .map_err(|_| "the token tables are not whole words".to_string())?;
        let header = Words(words);
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
        let mut rest = words.get(4..).unwrap_or_default();
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

    /// Tokens in `text`, and whether every long piece's chunks met.
    fn count(&self, text: &str, split: Split) -> (usize, bool) {
        let mut scratch = Scratch::default();
        self.pieces(text)
            .map(|piece| self.count_piece(piece, split, &mut scratch))
            .fold((0, true), |(n, met), (m, all)| (n + m, met && all))
    }

    /// The pre-tokenizer's pieces of `text`.
    fn pieces<'t>(&'t self, text: &'t str) -> impl Iterator<Item = &'t [u8]> + 't {
        let mut at = 0;
        std::iter::from_fn(move || {
            if at >= text.len() {
                return None;
            }
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
            let piece = &text.as_bytes()[at..end];
            at = end;
            Some(piece)
        })
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

    /// Tokens in one piece of the pre-tokenizer: a long piece in chunks
    /// ([`Counter::count_long`]), others (and a long one whose chunks do
    /// not meet) whole. Whether the chunks met, where there were any.
    fn count_piece(&self, piece: &[u8], split: Split, scratch: &mut Scratch) -> (usize, bool) {
        if piece.len() > split.chunk + split.overlap {
            let threads = if piece.len() >= split.parallel_from {
                split.threads
            } else {
                1
            };
            if let Some(n) = self.count_long(piece, split.chunk, split.overlap, threads) {
                return (n, true);
            }
            self.encode(piece, scratch);
            return (scratch.tokens.len(), false);
        }
        self.encode(piece, scratch);
        (scratch.tokens.len(), true)
    }

    /// Encodes `piece` into `scratch.tokens` (packed), with `bpe`'s
    /// backtracking encoder.
    fn encode(&self, piece: &[u8], scratch: &mut Scratch) {
        let Scratch { tokens, dead } = scratch;
        tokens.clear();
        let mut next = self.longest(piece);
        if next == NONE {
            return;
        }
        if len(next) == piece.len() {
            tokens.push(next);
            return;
        }
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
                        return;
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
                    // walk never steps back past the start. Were it reached,
                    // one token per byte.
                    None => {
                        tokens.clear();
                        tokens.extend(piece.iter().map(|&b| self.longest(&[b])));
                        return;
                    }
                }
                break;
            }
        }
    }

    /// Tokens in a long piece, encoded in chunks of `chunk` bytes on up to
    /// `threads` threads, with memory bounded by the chunk's length, not the
    /// piece's.
    ///
    /// Chunk `i` encodes the bytes from `i * chunk` to `overlap` bytes past
    /// the next chunk's start (`overlap` is less than `chunk`). Two
    /// encodings of overlapping text soon agree: both have a token boundary
    /// at some position `q` in the overlap, and where BPE keeps the one's
    /// token ending at `q` next to the other's token starting there, the
    /// first encoding up to `q` followed by the second from `q` is a
    /// sequence whose every pair of neighbours BPE keeps, which is the
    /// text's encoding (the property `bpe`'s backtracking encoder rests on).
    /// `None` when two chunks do not agree within the overlap (periodic text
    /// such as one letter repeated can keep two encodings out of step): the
    /// caller then encodes the piece whole.
    fn count_long(
        &self,
        piece: &[u8],
        chunk: usize,
        overlap: usize,
        threads: usize,
    ) -> Option<usize> {
        let chunks = piece.len().div_ceil(chunk);
        let per_thread = chunks.div_ceil(threads.max(1));
        let seams = |first: usize| {
            let mut scratch = Scratch::default();
            (first..(first + per_thread).min(chunks))
                .map(|i| self.seam(piece, i, chunk, overlap, &mut scratch))
                .collect::<Vec<_>>()
        };
        let seams: Vec<Seam> = if per_thread >= chunks {
            seams(0)
        } else {
            std::thread::scope(|scope| {
                let seams = &seams;
                let spawned: Vec<_> = (per_thread..chunks)
                    .step_by(per_thread)
                    .map(|first| {
                        std::thread::Builder::new()
                            .name("skein-tokens".into())
                            .spawn_scoped(scope, move || seams(first))
                            .map_err(|_| first)
                    })
                    .collect();
                let mut all = seams(0);
                for thread in spawned {
                    // A thread that could not start, or panicked (a bug):
                    // its chunks are encoded here.
                    match thread {
                        Ok(handle) => match handle.join() {
                            Ok(part) => all.extend(part),
                            Err(_) => return Vec::new(),
                        },
                        Err(first) => all.extend(seams(first)),
                    }
                }
                all
            })
        };
        if seams.len() != chunks {
            return None;
        }
        let mut n = 0;
        let mut from = 0;
        for pair in seams.windows(2) {
            let (left, right) = (&pair[0], &pair[1]);
            let (through, before) = self.meet(&left.tail, &right.head)?;
            // The seams are in order (each meets in its chunk's first
            // `overlap` bytes, before the next one's): never short.
            n += through.checked_sub(from)?;
            from = before;
        }
        Some(n + seams.last()?.tokens.checked_sub(from)?)
    }

    /// Chunk `i` of `piece` encoded, and where its tokens start near its
    /// start and end near the next chunk's start.
    fn seam(
        &self,
        piece: &[u8],
        i: usize,
        chunk: usize,
        overlap: usize,
        scratch: &mut Scratch,
    ) -> Seam {
        let start = i * chunk;
        let next = start + chunk;
        let end = (next + overlap).min(piece.len());
        self.encode(piece.get(start..end).unwrap_or_default(), scratch);
        let mut seam = Seam {
            tokens: scratch.tokens.len(),
            ..Seam::default()
        };
        let mut at = start;
        for (k, &token) in scratch.tokens.iter().enumerate() {
            if at < start + overlap {
                seam.head.push((at, token & ID, k));
            }
            at += len(token);
            if at >= next && at < end {
                seam.tail.push((at, token & ID, k + 1));
            }
        }
        seam
    }

    /// The first position where `tail` (the left chunk's token ends) and
    /// `head` (the right chunk's token starts) meet with a pair BPE keeps:
    /// the left chunk's tokens up to it and the right chunk's before it.
    fn meet(
        &self,
        tail: &[(usize, u32, usize)],
        head: &[(usize, u32, usize)],
    ) -> Option<(usize, usize)> {
        let (mut a, mut b) = (tail.iter().peekable(), head.iter().peekable());
        while let (Some(&&(p, left, through)), Some(&&(q, right, before))) = (a.peek(), b.peek()) {
            if p < q {
                a.next();
            } else if q < p {
                b.next();
            } else {
                if self.valid_pair(left, right) {
                    return Some((through, before));
                }
                a.next();
                b.next();
            }
        }
        None
    }
}

/// Where one chunk of a long piece can be joined to its neighbours
/// ([`Counter::count_long`]): `(position, token, tokens before it)` for each
/// token starting in the chunk's first `overlap` bytes, `(position, token,
/// tokens up to it)` for each token ending in the next chunk's first
/// `overlap` bytes, and the chunk's token count.
#[derive(Default)]
struct Seam {
    head: Vec<(usize, u32, usize)>,
    tail: Vec<(usize, u32, usize)>,
    tokens: usize,
}

/// Pieces longer than this (and [`OVERLAP`]) are encoded in chunks of this
/// many bytes.
const CHUNK: usize = 1 << 16;
/// How far a chunk's encoding runs into the next chunk, to meet it.
const OVERLAP: usize = 1 << 10;
/// A piece this long is counted on several threads (see [`set_threads`]).
pub const PARALLEL_FROM: usize = 1 << 18;

/// How long pieces are counted ([`Counter::count_long`]).
#[derive(Clone, Copy)]
struct Split {
    chunk: usize,
    overlap: usize,
    /// Threads for a piece of at least `parallel_from` bytes.
    threads: usize,
    parallel_from: usize,
}

impl Default for Split {
    /// Chunks of [`CHUNK`] bytes, on one thread per CPU up to four.
    fn default() -> Self {
        static CPUS: LazyLock<usize> =
            LazyLock::new(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(4)));
        Self {
            chunk: CHUNK,
            overlap: OVERLAP,
            threads: *CPUS,
            parallel_from: PARALLEL_FROM,
        }
    }
}

/// [`count`] with pieces longer than `chunk + overlap` bytes split into
/// chunks of `chunk` bytes, on `threads` threads however long, and whether
/// every such piece's chunks met (a piece whose chunks did not is encoded
/// whole, as `count` does): for tests of the seams, on texts short enough
/// for a reference encoder. `None` for an `overlap` that is not less than
/// `chunk`, or zero.
#[doc(hidden)]
pub fn count_in_chunks(
    text: &str,
    chunk: usize,
    overlap: usize,
    threads: usize,
) -> Option<(u32, bool)> {
    let counter = COUNTER.as_ref().ok()?;
    if overlap == 0 || overlap >= chunk {
        return None;
    }
    let split = Split {
        chunk,
        overlap,
        threads,
        parallel_from: 0,
    };
    let (n, met) = counter.count(text, split);
    Some((u32::try_from(n).ok()?, met))
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn special_token_markup_in_user_text_is_counted_as_text() {
        assert!(count("<|endoftext|>") > 1);
    }
}
