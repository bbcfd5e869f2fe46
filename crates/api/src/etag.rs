//! Entity tags of threads and messages, and the conditional requests that
//! use them (contract 11.4): `ETag` on what a thread or message route
//! answers, `If-None-Match` on `GET` (304 while the client's copy is
//! current), `If-Match` on `PATCH` and `DELETE` (412 `PRECONDITION_FAILED`
//! when the object changed since that copy was read, checked inside the
//! write's own transaction, so nothing changes).
//!
//! A tag is the SHA-256 of the object's JSON answer (its first 16 bytes,
//! hex, quoted): the same on every replica, and it changes whenever
//! anything the answer shows changes.

use actix_web::http::header::{ContentType, HeaderValue, ETAG};
use actix_web::HttpResponse;
use serde::Serialize;
use sha2::{Digest, Sha256};
use skein_domain::DomainError;

/// The strong entity tag of an answer.
pub fn of<T: Serialize>(value: &T) -> String {
    tag_of(&serde_json::to_vec(value).unwrap_or_default())
}

/// The strong entity tag of an answer's JSON bytes.
fn tag_of(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", hex::encode(&digest[..16]))
}

/// Whether a list of tags (`If-Match` / `If-None-Match`) names `tag`: `*`
/// names any; `weak` comparison (for `If-None-Match`) also takes `W/"..."`.
fn names(list: &str, tag: &str, weak: bool) -> bool {
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == tag || (weak && t.strip_prefix("W/").is_some_and(|t| t == tag)))
}

/// The conditions of a request.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    if_match: Option<String>,
    if_none_match: Option<String>,
}

impl Conditions {
    /// `If-Match`: `Ok` when absent or when it names the current version
    /// `current` (the object's answer), else `PreconditionFailed`.
    pub fn check<T: Serialize>(&self, what: &'static str, current: &T) -> Result<(), DomainError> {
        match &self.if_match {
            Some(list) if !names(list, &of(current), false) => {
                Err(DomainError::PreconditionFailed(what))
            }
            _ => Ok(()),
        }
    }

    /// Whether the client holds this version already (`If-None-Match`).
    pub fn not_modified(&self, tag: &str) -> bool {
        self.if_none_match
            .as_deref()
            .is_some_and(|list| names(list, tag, true))
    }

    /// A `GET` answer of `value`: 304 with its tag when the client holds
    /// it, else `ok` with the JSON and its tag.
    pub fn answer<T: Serialize>(&self, value: &T) -> HttpResponse {
        let Ok(body) = serde_json::to_vec(value) else {
            return HttpResponse::Ok().json(value);
        };
        let tag = tag_of(&body);
        if self.not_modified(&tag) {
            return HttpResponse::NotModified()
                .insert_header((ETAG, tag))
                .finish();
        }
        tagged(HttpResponse::Ok(), body, &tag)
    }
}

/// `builder`'s answer of `value` as JSON with its `ETag`. The JSON is
/// written once, for the tag and the body (a message of a megabyte costs a
/// worker one serialization, not two).
pub fn json<T: Serialize>(mut builder: actix_web::HttpResponseBuilder, value: &T) -> HttpResponse {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let tag = tag_of(&body);
            tagged(builder, body, &tag)
        }
        // Unreachable for Skein's answers; actix-web's own error answer.
        Err(_) => builder.json(value),
    }
}

/// [`json`] for an answer that may carry a lot of text (`text_bytes`): above
/// [`crate::extract::INLINE_BODY_BYTES`] the JSON and its tag are written on
/// the blocking pool, behind the CPU gate that token counting and large
/// bodies' parsing use, so that a megabyte of message does not hold up the
/// other requests of its actix worker (a thread read that shared a worker
/// with clients posting 1 MB messages waited for their answers' JSON).
pub async fn json_large<T: Serialize + Send + 'static>(
    builder: actix_web::HttpResponseBuilder,
    value: T,
    text_bytes: usize,
) -> Result<HttpResponse, crate::error::ApiError> {
    if text_bytes <= crate::extract::INLINE_BODY_BYTES {
        return Ok(json(builder, &value));
    }
    let rendered = skein_engine::cpu::run(move || match serde_json::to_vec(&value) {
        Ok(body) => {
            let tag = tag_of(&body);
            Ok((body, tag))
        }
        Err(_) => Err(value),
    })
    .await?;
    Ok(match rendered {
        Ok((body, tag)) => tagged(builder, body, &tag),
        Err(value) => json(builder, &value),
    })
}

fn tagged(mut builder: actix_web::HttpResponseBuilder, body: Vec<u8>, tag: &str) -> HttpResponse {
    if let Ok(v) = HeaderValue::from_str(tag) {
        builder.insert_header((ETAG, v));
    }
    builder.content_type(ContentType::json()).body(body)
}

impl actix_web::FromRequest for Conditions {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        std::future::ready(Ok(Self {
            if_match: header("if-match"),
            if_none_match: header("if-none-match"),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_name_tags_strongly_or_weakly() {
        let tag = of(&serde_json::json!({"id": "t"}));
        assert!(names(&tag, &tag, false));
        assert!(names(&format!("\"x\", {tag}"), &tag, false));
        assert!(names("*", &tag, false));
        assert!(!names(&format!("W/{tag}"), &tag, false));
        assert!(names(&format!("W/{tag}"), &tag, true));
        assert!(!names("\"other\"", &tag, true));
        assert_ne!(tag, of(&serde_json::json!({"id": "u"})));
    }
}
