//! Strictness at the edge (contract section 12), for every route before any
//! handler runs: a NUL (U+0000) in the path or the query string, a body that
//! is not declared `application/json`, a compressed body.
//!
//! What is in a JSON body (its syntax, trailing bytes, NULs in its strings)
//! is [`crate::extract::JsonBody`]'s business; the credentials are
//! [`crate::auth`]'s.

use crate::error::{ApiError, FieldError};
use crate::state::AppState;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use futures_util::StreamExt;

/// How a NUL is written in a URL: percent-decoding makes a NUL of this and
/// of nothing else.
const ENCODED_NUL: &str = "%00";

/// The `msg` of a NUL found in a value.
pub const NUL_MESSAGE: &str = "must not contain a NUL character (U+0000)";

/// Middleware: answers 404 for a NUL in the path, 422 for a NUL in the
/// query, 415 for a compressed body or a body that is not declared JSON
/// (see [`undeclared_body`]). Runs on every route, also on those that
/// read no body.
pub async fn middleware(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let refused = nul_in_path(&req)
        .or_else(|| nul_in_query(req.query_string()).err())
        .or_else(|| content_encoding(req.headers()).err());
    if let Some(error) = refused {
        return Ok(req.error_response(error));
    }
    if !declares_json(req.headers()) {
        let limit = req
            .app_data::<web::Data<AppState>>()
            .map(|s| s.max_body_bytes)
            .unwrap_or(crate::state::DEFAULT_MAX_BODY_BYTES);
        if let Err(error) = undeclared_body(&mut req, limit).await {
            return Ok(req.error_response(error));
        }
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// A NUL in a path segment: the 404 of the resource that segment names
/// (`THREAD_NOT_FOUND` for a `{thread_id}`, ...), `NOT_FOUND` elsewhere.
/// No id can contain a NUL, so nothing needs to be looked up.
fn nul_in_path(req: &ServiceRequest) -> Option<ApiError> {
    let path = req.path();
    if !path.contains(ENCODED_NUL) {
        return None;
    }
    let not_found = || ApiError::RouteNotFound(format!("{} {path}", req.method()));
    let Some(pattern) = req.match_pattern() else {
        return Some(not_found());
    };
    let named = pattern
        .split('/')
        .zip(path.split('/'))
        .find(|(_, segment)| segment.contains(ENCODED_NUL));
    Some(match named {
        Some(("{thread_id}" | "{conversation_id}", id)) => ApiError::ThreadNotFound(id.to_string()),
        Some(("{message_id}" | "{item_id}", id)) => ApiError::MessageNotFound(id.to_string()),
        Some(("{model}", id)) => ApiError::ModelNotFound(id.to_string()),
        Some(("{response_id}", id)) => ApiError::ResponseNotFound(id.to_string()),
        Some(("{assistant_id}", id)) => ApiError::AssistantNotFound(id.to_string()),
        _ => not_found(),
    })
}

/// A NUL in a query key or value: 422 at `["query", <key>]`.
pub fn nul_in_query(query: &str) -> Result<(), ApiError> {
    if !query.contains(ENCODED_NUL) {
        return Ok(());
    }
    match form_urlencoded::parse(query.as_bytes())
        .find(|(key, value)| key.contains('\0') || value.contains('\0'))
    {
        Some((key, _)) => Err(ApiError::Validation(vec![FieldError::new(
            &["query", &key],
            NUL_MESSAGE,
        )])),
        None => Ok(()),
    }
}

/// Only `identity` (or no `Content-Encoding` at all): a compressed body
/// would otherwise be read as if it were plain JSON.
fn content_encoding(headers: &HeaderMap) -> Result<(), ApiError> {
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let text = value.to_str().unwrap_or("?");
        for coding in text.split(',').map(str::trim) {
            if !coding.is_empty() && !coding.eq_ignore_ascii_case("identity") {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "Content-Encoding '{coding}' is not supported: send the body uncompressed"
                )));
            }
        }
    }
    Ok(())
}

/// `Content-Type: application/json`, any case, with an optional `charset`
/// that must be UTF-8 (other parameters are ignored).
pub fn declares_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = value.split(';').map(str::trim);
    let essence_is_json = parts
        .next()
        .is_some_and(|essence| essence.eq_ignore_ascii_case("application/json"));
    essence_is_json
        && parts.all(|param| match param.split_once('=') {
            Some((name, charset)) if name.trim().eq_ignore_ascii_case("charset") => {
                let charset = charset.trim().trim_matches('"');
                charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("utf8")
            }
            _ => true,
        })
}

/// For a request not declared JSON: its body may only be empty (0 bytes
/// or whitespace, the contract's bodiless request), and then the request
/// goes on with an empty body. Any other body is 415, at the first byte
/// that is not whitespace.
async fn undeclared_body(req: &mut ServiceRequest, limit: usize) -> Result<(), ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let mut payload = req.take_payload();
    let mut seen = 0usize;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::InvalidJson(e.to_string()))?;
        if !chunk.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::UnsupportedMediaType(match &declared {
                Some(declared) => {
                    format!("Content-Type '{declared}' is not supported: send application/json")
                }
                None => "the body has no Content-Type: send Content-Type: application/json".into(),
            }));
        }
        seen += chunk.len();
        if seen > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::headers;

    #[test]
    fn json_is_recognised_with_any_case_and_an_optional_utf8_charset() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=UTF-8",
            "application/json; charset=\"utf-8\"",
            "application/json; foo=bar",
        ] {
            assert!(declares_json(&headers(&[("content-type", ok)])), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/jsonx",
            "application/x-www-form-urlencoded",
            "application/json; charset=latin1",
            "",
        ] {
            assert!(!declares_json(&headers(&[("content-type", bad)])), "{bad}");
        }
        assert!(!declares_json(&headers(&[])));
    }

    #[test]
    fn only_the_identity_encoding_passes() {
        assert!(content_encoding(&headers(&[])).is_ok());
        assert!(content_encoding(&headers(&[("content-encoding", "identity")])).is_ok());
        assert!(content_encoding(&headers(&[("content-encoding", "Identity, identity")])).is_ok());
        for bad in ["gzip", "identity, br", "deflate"] {
            let err = content_encoding(&headers(&[("content-encoding", bad)])).unwrap_err();
            assert_eq!(err.code(), "UNSUPPORTED_MEDIA_TYPE", "{bad}");
        }
        let two = headers(&[
            ("content-encoding", "identity"),
            ("content-encoding", "gzip"),
        ]);
        assert!(content_encoding(&two).is_err());
    }

    #[test]
    fn a_nul_in_the_query_names_its_key() {
        assert!(nul_in_query("after=a%2500b&limit=5").is_ok());
        let err = nul_in_query("limit=5&after=a%00b").unwrap_err();
        match err {
            ApiError::Validation(fields) => {
                assert_eq!(fields[0].loc, vec!["query", "after"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(nul_in_query("k%00=1").is_err());
    }
}
