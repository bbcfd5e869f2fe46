//! Text content as clients send it: a string, a list of typed blocks, or
//! `texts: [{"text"}]`.

use crate::error::{ApiError, FieldError};
use serde::Deserialize;
use utoipa::ToSchema;

/// One content block. Text blocks (`text`, `input_text`, `output_text`)
/// carry the text; other block types are not stored.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct ContentBlock {
    /// `text`, `input_text` or `output_text`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// The text.
    #[serde(default)]
    pub text: Option<String>,
}

/// `content`: a string or a list of blocks.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ContentInput {
    /// Plain text.
    Text(String),
    /// Typed blocks; their texts are joined with newlines.
    Blocks(Vec<ContentBlock>),
}

/// One element of `texts`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct TextPart {
    /// The text.
    pub text: String,
}

const TEXT_BLOCKS: [&str; 3] = ["text", "input_text", "output_text"];

/// The text of `content` or `texts` (content wins), parts joined with "\n".
/// `None` when neither carries any text.
pub fn text_of(content: Option<&ContentInput>, texts: Option<&[TextPart]>) -> Option<String> {
    let parts: Vec<&str> = match (content, texts) {
        (Some(ContentInput::Text(t)), _) => vec![t.as_str()],
        (Some(ContentInput::Blocks(blocks)), _) => blocks
            .iter()
            .filter(|b| b.kind.as_deref().is_none_or(|k| TEXT_BLOCKS.contains(&k)))
            .filter_map(|b| b.text.as_deref())
            .collect(),
        (None, Some(texts)) => texts.iter().map(|t| t.text.as_str()).collect(),
        (None, None) => Vec::new(),
    };
    let joined = parts.join("\n");
    (!joined.is_empty()).then_some(joined)
}

/// Like [`text_of`], but a missing text is a 422 at `loc`.
pub fn require_text(
    content: Option<&ContentInput>,
    texts: Option<&[TextPart]>,
    loc: &[&str],
) -> Result<String, ApiError> {
    text_of(content, texts).ok_or_else(|| {
        ApiError::Validation(vec![FieldError::new(
            loc,
            "text content is required (content as a string or text blocks, or texts)",
        )])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: serde_json::Value) -> ContentInput {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn strings_blocks_and_texts_all_give_the_text() {
        assert_eq!(
            text_of(Some(&parse("hi".into())), None).as_deref(),
            Some("hi")
        );
        let blocks = parse(serde_json::json!([
            {"type": "input_text", "text": "a"},
            {"type": "image", "url": "x"},
            {"type": "output_text", "text": "b"}
        ]));
        assert_eq!(text_of(Some(&blocks), None).as_deref(), Some("a\nb"));
        let texts = [TextPart { text: "x".into() }, TextPart { text: "y".into() }];
        assert_eq!(text_of(None, Some(&texts)).as_deref(), Some("x\ny"));
        assert_eq!(text_of(Some(&parse("".into())), None), None);
        assert_eq!(text_of(None, None), None);
    }
}
