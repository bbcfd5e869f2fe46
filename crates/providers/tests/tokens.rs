//! Skein's o200k counter gives tiktoken's counts, on real text and on the
//! inputs that stress a byte-pair encoder.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use skein_providers::tokens;

fn tiktoken(text: &str) -> usize {
    tiktoken_rs::o200k_base_singleton()
        .encode_ordinary(text)
        .len()
}

fn random_text(seed: u64, len: usize, alphabet: &[&str]) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())])
        .collect()
}

fn chars(s: &str) -> Vec<&str> {
    s.char_indices()
        .map(|(i, c)| &s[i..i + c.len_utf8()])
        .collect()
}

/// The whole text, and windows of it that start and end anywhere (a window
/// cuts words, numbers and runs of spaces).
fn assert_same_counts(name: &str, text: &str) {
    assert_eq!(
        tokens::count(text) as usize,
        tiktoken(text),
        "{name}: whole text"
    );
    let mut rng = StdRng::seed_from_u64(text.len() as u64);
    for _ in 0..40 {
        let mut start = rng.random_range(0..text.len());
        let mut end = (start + rng.random_range(1..2_000)).min(text.len());
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        while !text.is_char_boundary(end) {
            end += 1;
        }
        let window = &text[start..end];
        assert_eq!(
            tokens::count(window) as usize,
            tiktoken(window),
            "{name}: {:?}",
            window.chars().take(80).collect::<String>()
        );
    }
}

#[test]
fn counts_match_tiktoken_on_the_projects_own_text() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    for file in [
        "README.md",
        "docs/architecture.md",
        "docs/api.md",
        "crates/providers/src/openai.rs",
        "openapi/openapi.json",
    ] {
        let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
        assert_same_counts(file, &text);
    }
}

#[test]
fn counts_match_tiktoken_in_many_scripts() {
    let text =
        "Les élèves naïfs arrivèrent à l'école. Ça va? Ünïcödé façade, Straße, İstanbul ı.\n\
        日本語のテキストを数えます。東京は晴れ。中文文本：你好，世界！我们明天见。\n\
        Русский текст: съешь же ещё этих мягких французских булок.\n\
        النص العربي: مرحبا بالعالم. עברית: שלום עולם. हिन्दी: नमस्ते दुनिया।\n\
        한국어: 안녕하세요 세계. ไทย: สวัสดีชาวโลก Ελληνικά: Γειά σου Κόσμε.\n\
        Emoji 👩‍👩‍👧‍👦 🇫🇷 🙂🙂🙂 ✨ e\u{301} a\u{300}\u{301}\u{302} ﬁ ½ ² ① Ⅻ\n\
        Code: fn main() { let x = vec![1, 2, 3]; println!(\"{x:?}\"); } // 12345678901234567890\n\
        I'm sure they'll say we've DON'T it's O'Neil's THEY'RE rock'n'roll 's 'S\n\
        \t\ttabs  and   spaces \r\n\r\n\n   \n trailing   ";
    assert_same_counts("scripts", text);
    for c in chars(text) {
        assert_eq!(tokens::count(c) as usize, tiktoken(c), "{c:?}");
    }
}

#[test]
fn counts_match_tiktoken_on_adversarial_text() {
    let letters: Vec<&str> = chars("abcdefghijklmnopqrstuvwxyz");
    let mixed: Vec<&str> = chars("ABCDEFGHIJKLMNOPQRSTUVWXYZabc");
    let digits: Vec<&str> = chars("0123456789");
    let punctuation: Vec<&str> = chars("!@#$%^&*()_+-=[]{};':\",./<>?\\|`~ \n");
    let spaces = [
        " ", "  ", "\n", "\t", "\r\n", "a", " b", "   \n ", "\u{a0}", "\u{3000}",
    ];
    let unicode: Vec<&str> = chars("éñüßÅﬁİı日本語中文😀🙂👍🏽العربيةрусскийक्षि\u{301}\u{200d}");
    let cases = [
        ("random letters", random_text(1, 30_000, &letters)),
        ("random upper case", random_text(2, 20_000, &mixed)),
        ("digits", random_text(3, 20_000, &digits)),
        ("punctuation", random_text(4, 20_000, &punctuation)),
        ("whitespace", random_text(5, 20_000, &spaces)),
        ("unicode", random_text(6, 10_000, &unicode)),
        (
            "repeats",
            format!(
                "{} {} {}{}{}x",
                "a".repeat(20_000),
                "ab".repeat(5_000),
                "🙂".repeat(2_000),
                "\n".repeat(500),
                " ".repeat(3_000)
            ),
        ),
        (
            "markup",
            "<|endoftext|><|im_start|>user<|fim_prefix|>".repeat(200),
        ),
    ];
    for (name, text) in &cases {
        assert_same_counts(name, text);
    }
}

/// A long piece is encoded in chunks that are joined where their encodings
/// meet: with chunks of a few hundred bytes, every kind of text crosses many
/// seams, and the counts stay tiktoken's, on one thread or several.
#[test]
fn counts_in_chunks_match_tiktoken_across_the_seams() {
    let letters: Vec<&str> = chars("abcdefghijklmnopqrstuvwxyz");
    let unicode: Vec<&str> = chars("éñüßÅﬁİı日本語中文😀🙂👍🏽العربيةрусскийक्षि\u{301}\u{200d}");
    let punctuation: Vec<&str> = chars("!@#$%^&*()_+-=[]{};:\",./<>?\\|`~");
    let cases = [
        ("random letters", random_text(11, 40_000, &letters)),
        ("unicode", random_text(12, 8_000, &unicode)),
        ("punctuation", random_text(13, 20_000, &punctuation)),
        ("two letters", random_text(14, 20_000, &chars("ab"))),
    ];
    for (name, text) in &cases {
        let expected = tiktoken(text);
        for (chunk, overlap) in [(200, 64), (1_000, 100), (4_096, 1_024)] {
            for threads in [1, 3] {
                assert_eq!(
                    tokens::count_in_chunks(text, chunk, overlap, threads),
                    Some((expected as u32, true)),
                    "{name}: chunks of {chunk} bytes, {threads} threads"
                );
            }
        }
    }
}

/// Periodic text can keep two chunks' encodings out of step, so that they
/// never meet (one letter repeated is encoded in runs of eight, which chunks
/// of an odd length cut out of phase): the piece is then encoded whole, and
/// counted right.
#[test]
fn a_piece_whose_chunks_do_not_meet_is_counted_whole() {
    for text in ["a".repeat(20_001), "z".repeat(30_000)] {
        assert_eq!(
            tokens::count_in_chunks(&text, 1_001, 100, 2),
            Some((tiktoken(&text) as u32, false)),
            "{}",
            text.len()
        );
    }
}

/// A megabyte of random letters, one piece counted on every CPU, gives the
/// count of the same piece encoded whole on one thread.
#[test]
fn a_megabyte_piece_counted_on_several_threads_gives_the_whole_encodings_count() {
    let letters: Vec<&str> = chars("abcdefghijklmnopqrstuvwxyz");
    let text = random_text(15, 1_000_000, &letters);
    assert_eq!(
        Some((tokens::count(&text), true)),
        tokens::count_in_chunks(&text, text.len() + 1, 1, 1)
    );
}
