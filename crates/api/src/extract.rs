//! Extractors that answer bad input in the contract's envelope: JSON bodies
//! (400 `INVALID_JSON`, 413, 422 with `loc`) and query strings (422).
//!
//! The headers of a body (`Content-Type`, `Content-Encoding`) are checked
//! before any extractor, by [`crate::edge::middleware`].

use crate::error::{ApiError, FieldError};
use crate::state::AppState;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::Value;
use std::future::{ready, Ready};
use validator::{Validate, ValidationErrors};

/// A JSON body of type `T`. An empty body counts as `{}`. Bytes after the
/// JSON value (other than whitespace) are 400 `INVALID_JSON`; a NUL in any
/// string, key or value, is 422 at its location.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

fn loc_of(section: &str, path: &serde_path_to_error::Path) -> Vec<Value> {
    let mut loc = vec![Value::String(section.to_string())];
    for seg in path.iter() {
        use serde_path_to_error::Segment;
        match seg {
            Segment::Seq { index } => loc.push(Value::from(*index)),
            Segment::Map { key } => loc.push(Value::String(key.clone())),
            Segment::Enum { variant } => loc.push(Value::String(variant.clone())),
            Segment::Unknown => {}
        }
    }
    loc
}

/// Parses JSON bytes into `T`, classifying failures: not JSON, or bytes
/// after the value: 400 `INVALID_JSON`; a NUL in a string, or a value of
/// the wrong type: 422 with its `loc`.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    reject_nul(text)?;
    let de = &mut serde_json::Deserializer::from_slice(text);
    match serde_path_to_error::deserialize::<_, T>(&mut *de) {
        Ok(v) => {
            de.end().map_err(|e| ApiError::InvalidJson(e.to_string()))?;
            Ok(v)
        }
        Err(e) => {
            let inner = e.inner();
            if !inner.is_data() {
                return Err(ApiError::InvalidJson(inner.to_string()));
            }
            // A broken document is 400 even where a type error comes first.
            serde_json::from_slice::<IgnoredAny>(text)
                .map_err(|syntax| ApiError::InvalidJson(syntax.to_string()))?;
            Err(ApiError::Validation(vec![FieldError {
                loc: loc_of("body", e.path()),
                msg: inner.to_string(),
                kind: "type_error".into(),
            }]))
        }
    }
}

/// 422 for a NUL (U+0000) in any string of the document, key or value,
/// at its location (`["body", "metadata", "k"]`, array indices as
/// integers). The text is only parsed again when it contains the escape
/// `\u0000` at all (a raw NUL byte is not valid JSON anyway).
fn reject_nul(text: &[u8]) -> Result<(), ApiError> {
    const ESCAPE: &[u8] = b"\\u0000";
    if memchr::memmem::find(text, ESCAPE).is_none() {
        return Ok(());
    }
    // Not valid JSON: the typed parse says why.
    let Ok(value) = serde_json::from_slice::<Value>(text) else {
        return Ok(());
    };
    let mut loc = vec![Value::String("body".into())];
    if nul_location(&value, &mut loc) {
        return Err(ApiError::Validation(vec![FieldError {
            loc,
            msg: crate::edge::NUL_MESSAGE.into(),
            kind: "value_error".into(),
        }]));
    }
    Ok(())
}

/// Whether `value` holds a NUL; if so, `loc` is extended to where.
fn nul_location(value: &Value, loc: &mut Vec<Value>) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().enumerate().any(|(i, item)| {
            loc.push(Value::from(i));
            let found = nul_location(item, loc);
            if !found {
                loc.pop();
            }
            found
        }),
        Value::Object(map) => map.iter().any(|(key, item)| {
            loc.push(Value::String(key.clone()));
            let found = key.contains('\0') || nul_location(item, loc);
            if !found {
                loc.pop();
            }
            found
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Bodies longer than this are parsed on the blocking pool (behind the same
/// CPU gate as token counting), so that parsing a large body never holds up
/// the other requests of an actix worker.
pub const INLINE_BODY_BYTES: usize = 64 * 1024;

impl<T: DeserializeOwned + Send + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<AppState>>()
            .map(|s| s.max_body_bytes)
            .unwrap_or(crate::state::DEFAULT_MAX_BODY_BYTES);
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if declared.is_some_and(|n| n > limit) {
                return Err(ApiError::PayloadTooLarge(limit));
            }
            let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| ApiError::InvalidJson(e.to_string()))?;
                if body.len() + chunk.len() > limit {
                    return Err(ApiError::PayloadTooLarge(limit));
                }
                body.extend_from_slice(&chunk);
            }
            if body.len() <= INLINE_BODY_BYTES {
                return parse_json(&body).map(JsonBody);
            }
            let body = body.freeze();
            skein_engine::cpu::run(move || parse_json::<T>(&body))
                .await
                .map_err(ApiError::from)?
                .map(JsonBody)
        })
    }
}

/// A query string of type `T`, validated with `validator`.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

/// Turns `validator` errors into the 422 `detail` list.
pub fn validation_errors(section: &str, errors: &ValidationErrors) -> ApiError {
    let mut out = Vec::new();
    for (field, errs) in errors.field_errors() {
        for e in errs {
            let msg = e
                .message
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_else(|| format!("invalid value ({})", e.code));
            out.push(FieldError::new(&[section, field.as_ref()], msg));
        }
    }
    ApiError::Validation(out)
}

impl<T: DeserializeOwned + Validate> FromRequest for QueryParams<T> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        if let Err(nul) = crate::edge::nul_in_query(req.query_string()) {
            return ready(Err(nul));
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(
            req.query_string().as_bytes(),
        ));
        let result = serde_path_to_error::deserialize::<_, T>(de)
            .map_err(|e| {
                ApiError::Validation(vec![FieldError {
                    loc: loc_of("query", e.path()),
                    msg: e.inner().to_string(),
                    kind: "type_error".into(),
                }])
            })
            .and_then(|v| {
                v.validate()
                    .map_err(|e| validation_errors("query", &e))
                    .map(|()| QueryParams(v))
            });
        ready(result)
    }
}
