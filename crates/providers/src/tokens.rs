//! Token counting with the `o200k_base` encoding (GPT-4o and later).

/// Token count of `text` with the `o200k_base` encoding.
///
/// The encoder is built once per process (tiktoken-rs singleton, about 0.3 s on first use).
/// Special-token markup such as `<|endoftext|>` in the text is counted as ordinary text.
pub fn count(text: &str) -> u32 {
    if text.is_empty() {
        return 0;
    }
    let tokens = tiktoken_rs::o200k_base_singleton()
        .encode_ordinary(text)
        .len();
    u32::try_from(tokens).unwrap_or(u32::MAX)
}

/// Builds the encoder now (about 0.2-0.3 s), so that the first request that
/// counts tokens does not pay for it. The server calls this before it opens
/// its port.
pub fn warm() {
    let _ = count("warm");
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn special_token_markup_in_user_text_is_counted_as_text() {
        assert!(count("<|endoftext|>") > 1);
    }
}
