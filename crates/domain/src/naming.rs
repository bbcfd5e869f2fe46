//! Thread titles made from a conversation: 2 to 5 words, at most 50
//! characters.

/// Most words in a generated title.
pub const MAX_TITLE_WORDS: usize = 5;
/// Fewest words in a generated title.
pub const MIN_TITLE_WORDS: usize = 2;
/// Most characters in a generated title.
pub const MAX_GENERATED_TITLE_CHARS: usize = 50;

fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

fn assemble(mut words: Vec<String>) -> Option<String> {
    words.truncate(MAX_TITLE_WORDS);
    let mut title = String::new();
    for w in words {
        let candidate = if title.is_empty() {
            w.clone()
        } else {
            format!("{title} {w}")
        };
        if candidate.chars().count() > MAX_GENERATED_TITLE_CHARS {
            break;
        }
        title = candidate;
    }
    if title.is_empty() {
        return None;
    }
    let mut chars = title.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
}

/// The deterministic title of a conversation whose first user message is
/// `text`: its first words (padded with "conversation" to two words).
pub fn title_from_text(text: &str) -> Option<String> {
    let mut w = words(text);
    if w.is_empty() {
        return None;
    }
    if w.len() < MIN_TITLE_WORDS {
        w.push("conversation".into());
    }
    assemble(w)
}

/// Cleans a model's suggested title: first line, no quotes or trailing
/// punctuation, 2-5 words, at most 50 characters.
pub fn clean_model_title(answer: &str) -> Option<String> {
    let line = answer.lines().find(|l| !l.trim().is_empty())?;
    let line = line
        .trim()
        .trim_start_matches("Title:")
        .trim_start_matches("title:");
    title_from_text(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_is_the_first_five_words_capitalized() {
        assert_eq!(
            title_from_text("how do I reset my password on the website?").as_deref(),
            Some("How do I reset my")
        );
    }

    #[test]
    fn a_one_word_message_gets_a_second_word() {
        assert_eq!(
            title_from_text("hello!").as_deref(),
            Some("Hello conversation")
        );
    }

    #[test]
    fn titles_stay_within_50_characters_at_a_word_boundary() {
        let t = title_from_text(
            "supercalifragilistic expialidocious antidisestablishmentarianism words here",
        )
        .unwrap();
        assert!(t.chars().count() <= 50, "{t}");
        assert_eq!(t, "Supercalifragilistic expialidocious");
    }

    #[test]
    fn punctuation_only_gives_no_title() {
        assert_eq!(title_from_text("?! ..."), None);
    }

    #[test]
    fn model_answers_are_cleaned() {
        assert_eq!(
            clean_model_title("\n\"Password Reset Help\"\nmore").as_deref(),
            Some("Password Reset Help")
        );
        assert_eq!(
            clean_model_title("Title: Billing question about invoices in March 2024").as_deref(),
            Some("Billing question about invoices in")
        );
    }
}
