//! Full-text search of messages (contract 11.1): the one normalization of
//! text that the index and the query share, the query's words and "quoted
//! phrases", and the snippet shown with a hit.
//!
//! Text is matched without regard to case and accents (Unicode
//! decomposition, combining marks dropped, lowercase), and in scripts
//! written without spaces (Han, Hiragana, Katakana, Hangul) every
//! character is a word of its own, so that a run of them is found as a
//! phrase wherever it stands.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Longest query text, in characters.
pub const MAX_QUERY_CHARS: usize = 256;
/// Most words (and phrase words) in one query.
pub const MAX_QUERY_WORDS: usize = 32;

/// Whether `c` belongs to a script written without spaces between words.
pub fn is_unspaced(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{30FF}'      // Hiragana, Katakana
        | '\u{3400}'..='\u{4DBF}'    // CJK extension A
        | '\u{4E00}'..='\u{9FFF}'    // CJK unified ideographs
        | '\u{AC00}'..='\u{D7AF}'    // Hangul syllables
        | '\u{F900}'..='\u{FAFF}'    // CJK compatibility ideographs
        | '\u{20000}'..='\u{2FFFF}') // CJK extensions B-F
}

/// The text as the search index holds it: decomposed, without combining
/// marks, lowercase, and every character of an unspaced script set apart
/// by spaces.
///
/// Runs of ASCII are only lowercased (ASCII decomposes to itself and holds
/// no marks), and an ASCII character is a starter, which decomposition never
/// reorders across, so each run of other characters is decomposed on its own
/// with the same result as the whole text: a megabyte of English takes a
/// millisecond instead of the 25-30 ms of the character-by-character path (a
/// message's text is normalized by the index's trigger while SQLite's write
/// lock is held).
pub fn search_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut rest = text;
    while !rest.is_empty() {
        let ascii = rest
            .bytes()
            .position(|b| !b.is_ascii())
            .unwrap_or(rest.len());
        let (run, tail) = rest.split_at(ascii);
        let start = out.len();
        out.push_str(run);
        if let Some(pushed) = out.get_mut(start..) {
            pushed.make_ascii_lowercase();
        }
        let other = tail.find(|c: char| c.is_ascii()).unwrap_or(tail.len());
        let (run, tail) = tail.split_at(other);
        push_normalized(&mut out, run);
        rest = tail;
    }
    out
}

/// [`search_text`] of `text`, character by character, appended to `out`.
fn push_normalized(out: &mut String, text: &str) {
    for c in text.nfd().filter(|c| !is_combining_mark(*c)) {
        for l in c.to_lowercase() {
            if is_unspaced(l) {
                out.push(' ');
                out.push(l);
                out.push(' ');
            } else {
                out.push(l);
            }
        }
    }
}

/// The words of normalized text: runs of letters and digits.
fn words(normalized: &str) -> impl Iterator<Item = &str> {
    normalized
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// A parsed search: every phrase must occur (a word is a phrase of one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    /// Phrases of normalized words, each non-empty.
    pub phrases: Vec<Vec<String>>,
}

/// Why a search text cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchQueryError {
    /// Empty, or nothing but punctuation.
    #[error("q must hold at least one word")]
    Empty,
    /// Longer than [`MAX_QUERY_CHARS`].
    #[error("q must be at most {MAX_QUERY_CHARS} characters")]
    TooLong,
    /// More than [`MAX_QUERY_WORDS`] words.
    #[error("q must hold at most {MAX_QUERY_WORDS} words")]
    TooManyWords,
}

impl SearchQuery {
    /// Reads `q`: phrases in double quotes (an unclosed quote runs to the
    /// end), and outside them each piece between spaces, whose words (split
    /// at punctuation: `e-mail`, `v1.2`; every character of a run of an
    /// unspaced script) must stand together.
    pub fn parse(q: &str) -> Result<Self, SearchQueryError> {
        if q.chars().count() > MAX_QUERY_CHARS {
            return Err(SearchQueryError::TooLong);
        }
        let mut phrases = Vec::new();
        for (n, part) in q.split('"').enumerate() {
            if n % 2 == 1 {
                let normalized = search_text(part);
                let phrase: Vec<String> = words(&normalized).map(str::to_string).collect();
                if !phrase.is_empty() {
                    phrases.push(phrase);
                }
                continue;
            }
            // Outside quotes: each piece between spaces is a phrase of its
            // words (`e-mail`, `v1.2`, a run of an unspaced script).
            for piece in part.split_whitespace() {
                let normalized = search_text(piece);
                let phrase: Vec<String> = words(&normalized).map(str::to_string).collect();
                if !phrase.is_empty() {
                    phrases.push(phrase);
                }
            }
        }
        if phrases.is_empty() {
            return Err(SearchQueryError::Empty);
        }
        if phrases.iter().map(Vec::len).sum::<usize>() > MAX_QUERY_WORDS {
            return Err(SearchQueryError::TooManyWords);
        }
        Ok(Self { phrases })
    }

    /// The query in SQLite FTS5's syntax: each phrase quoted, all required.
    pub fn fts5(&self) -> String {
        self.phrases
            .iter()
            .map(|p| format!("\"{}\"", p.join(" ")))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The query in PostgreSQL's `to_tsquery` syntax: words quoted, the
    /// words of a phrase adjacent (`<->`), all phrases required (`&`).
    pub fn tsquery(&self) -> String {
        self.phrases
            .iter()
            .map(|p| {
                let words: Vec<String> = p.iter().map(|w| format!("'{w}'")).collect();
                format!("({})", words.join(" <-> "))
            })
            .collect::<Vec<_>>()
            .join(" & ")
    }

    /// Every word of the query.
    fn all_words(&self) -> impl Iterator<Item = &str> {
        self.phrases.iter().flatten().map(String::as_str)
    }
}

/// Words of context shown before the first hit.
const SNIPPET_BEFORE: usize = 8;
/// Words shown in all.
const SNIPPET_WORDS: usize = 24;
/// Longest snippet, in characters.
const SNIPPET_CHARS: usize = 240;

/// An excerpt of `content` around the first word the query names, with
/// each such word in `**`, and `…` where the excerpt cuts the text.
pub fn snippet(content: &str, query: &SearchQuery) -> String {
    let wanted: std::collections::HashSet<&str> = query.all_words().collect();
    let pieces: Vec<&str> = content.split_whitespace().collect();
    let hit = |piece: &str| {
        let normalized = search_text(piece);
        let found = words(&normalized).any(|w| wanted.contains(w));
        found
    };
    let first = pieces.iter().position(|p| hit(p)).unwrap_or(0);
    let start = first.saturating_sub(SNIPPET_BEFORE);
    let end = (start + SNIPPET_WORDS).min(pieces.len());
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    for (n, piece) in pieces[start..end].iter().enumerate() {
        if n > 0 {
            out.push(' ');
        }
        if hit(piece) {
            out.push_str("**");
            out.push_str(piece);
            out.push_str("**");
        } else {
            out.push_str(piece);
        }
    }
    if out.chars().count() > SNIPPET_CHARS {
        out = out.chars().take(SNIPPET_CHARS).collect();
        out.push('…');
    } else if end < pieces.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_accents_do_not_matter_and_unspaced_characters_stand_apart() {
        assert_eq!(search_text("Crème BRÛLÉE"), "creme brulee");
        assert_eq!(search_text("東京タワー"), " 東  京  タ  ワ  ー ");
        assert_eq!(search_text("İstanbul"), "istanbul");
    }

    /// The normalization of the whole text at once, as it was before the
    /// ASCII runs were taken apart.
    fn reference(text: &str) -> String {
        let mut out = String::new();
        push_normalized(&mut out, text);
        out
    }

    #[test]
    fn ascii_runs_normalize_as_the_whole_text_does() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        // Marks after ASCII letters and after other marks (decomposition
        // reorders runs of marks), precomposed letters, unspaced scripts,
        // the dotted capital I, the final-sigma case.
        let pieces = [
            "a",
            "Z",
            " ",
            "'",
            "\u{301}",
            "\u{327}",
            "\u{316}",
            "é",
            "Å",
            "ǅ",
            "ﬁ",
            "東",
            "ー",
            "İ",
            "Σ",
            "ς",
            "\n",
            "한",
            "\u{1E0A}\u{323}",
            "9",
        ];
        let mut rng = StdRng::seed_from_u64(9);
        for _ in 0..2_000 {
            let text: String = (0..rng.random_range(0..24))
                .map(|_| pieces[rng.random_range(0..pieces.len())])
                .collect();
            assert_eq!(search_text(&text), reference(&text), "{text:?}");
        }
        assert_eq!(search_text("Crème BRÛLÉE"), reference("Crème BRÛLÉE"));
    }

    #[test]
    fn words_phrases_and_unspaced_runs() {
        let q = SearchQuery::parse("Crème \"brûlée recipe\" 東京").unwrap();
        assert_eq!(
            q.phrases,
            vec![
                vec!["creme".to_string()],
                vec!["brulee".into(), "recipe".into()],
                vec!["東".into(), "京".into()],
            ]
        );
        assert_eq!(q.fts5(), "\"creme\" \"brulee recipe\" \"東 京\"");
        assert_eq!(
            q.tsquery(),
            "('creme') & ('brulee' <-> 'recipe') & ('東' <-> '京')"
        );
        assert_eq!(
            SearchQuery::parse(" ?! \"\" "),
            Err(SearchQueryError::Empty)
        );
        assert_eq!(
            SearchQuery::parse(&"a".repeat(257)),
            Err(SearchQueryError::TooLong)
        );
        let many = (0..33)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(
            SearchQuery::parse(&many),
            Err(SearchQueryError::TooManyWords)
        );
        // Punctuation joins the words of a piece into a phrase.
        let q = SearchQuery::parse("e-mail v1.2").unwrap();
        assert_eq!(q.fts5(), "\"e mail\" \"v1 2\"");
        // Quotes and other syntax characters are never passed through.
        let q = SearchQuery::parse("a' OR b\\ \"c").unwrap();
        assert_eq!(q.fts5(), "\"a\" \"or\" \"b\" \"c\"");
    }

    #[test]
    fn snippets_mark_the_hits_around_the_first() {
        let q = SearchQuery::parse("brulee").unwrap();
        let text = (1..=40)
            .map(|i| {
                if i == 20 {
                    "Brûlée!".to_string()
                } else {
                    format!("w{i}")
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        let s = snippet(&text, &q);
        assert!(s.starts_with("…w12 "), "{s}");
        assert!(s.contains("**Brûlée!**"), "{s}");
        assert!(s.ends_with('…'), "{s}");
        assert_eq!(snippet("no hit here", &q), "no hit here");
    }
}
