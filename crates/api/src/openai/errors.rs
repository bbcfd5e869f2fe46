//! OpenAI's error envelope on the OpenAI paths: `{"error": {"message",
//! "type", "param", "code"}}`, with the statuses OpenAI's own server uses
//! (a request that fails validation is 400, not 422), so that the `openai`
//! SDKs raise their usual exception classes. Every error of these paths,
//! whoever made it (extractors, handlers, the checks at the edge, the 404
//! fallback), is answered in the Skein envelope first and rewritten here.

use actix_web::body::{to_bytes, BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use serde_json::{json, Value};

/// The longest error body rewritten (Skein's envelopes are far smaller).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Middleware: on the paths of [`super::PREFIXES`], error answers get
/// OpenAI's envelope.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let openai = is_openai_path(req.path());
    let res = next.call(req).await?.map_into_boxed_body();
    if !openai || !(res.status().is_client_error() || res.status().is_server_error()) {
        return Ok(res);
    }
    let (req, res) = res.into_parts();
    let (mut head, body) = res.into_parts();
    let bytes = match body.size() {
        actix_web::body::BodySize::Sized(n) if n <= MAX_ERROR_BODY as u64 => {
            to_bytes(body).await.unwrap_or_default()
        }
        _ => Default::default(),
    };
    let skein: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let (status, envelope) = translate(head.status(), &skein);
    *head.status_mut() = status;
    let headers = head.headers_mut();
    headers.remove(CONTENT_LENGTH);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let res = head.set_body(BoxBody::new(envelope.to_string()));
    Ok(ServiceResponse::new(req, res))
}

/// Whether `path` is on the OpenAI dialect (one of [`super::PREFIXES`]).
pub fn is_openai_path(path: &str) -> bool {
    super::PREFIXES
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

/// Skein's error answer (`status`, envelope) as OpenAI's.
pub fn translate(status: StatusCode, skein: &Value) -> (StatusCode, Value) {
    let error = &skein["error"];
    let code = error["code"].as_str().unwrap_or_default();
    let detail = skein["detail"].as_array().and_then(|d| d.first());
    let mut message = error["message"]
        .as_str()
        .unwrap_or("The request failed")
        .to_string();
    let param = detail.and_then(|d| param_of(&d["loc"]));
    if let Some(msg) = detail.and_then(|d| d["msg"].as_str()) {
        message = match &param {
            Some(p) => format!("Invalid '{p}': {msg}"),
            None => format!("{message}: {msg}"),
        };
    }
    let status = match (status, code) {
        // OpenAI answers a request it cannot accept with 400, and an
        // unknown model with 404.
        (StatusCode::UNPROCESSABLE_ENTITY, _) => StatusCode::BAD_REQUEST,
        (_, "MODEL_NOT_FOUND") => StatusCode::NOT_FOUND,
        (other, _) => other,
    };
    let (kind, code) = match (status.as_u16(), code) {
        (401, _) => ("invalid_request_error", "invalid_api_key".to_string()),
        (429, _) => ("requests", "rate_limit_exceeded".to_string()),
        (500..=599, _) => ("server_error", "server_error".to_string()),
        (_, "THREAD_NOT_FOUND") => ("invalid_request_error", "conversation_not_found".into()),
        (_, "MESSAGE_NOT_FOUND") => ("invalid_request_error", "item_not_found".into()),
        (_, other) => ("invalid_request_error", other.to_ascii_lowercase()),
    };
    let message = match code.as_str() {
        "conversation_not_found" => message.replace("Thread", "Conversation"),
        "item_not_found" => message.replace("Message", "Item"),
        _ => message,
    };
    (
        status,
        json!({"error": {"message": message, "type": kind, "param": param, "code": code}}),
    )
}

/// A Skein error location (`["body", "items", 0, "role"]`) as OpenAI names
/// a parameter (`items[0].role`).
pub fn param_of(loc: &Value) -> Option<String> {
    let parts = loc.as_array()?;
    let mut out = String::new();
    for part in parts.iter().skip(1) {
        match part {
            Value::Number(n) => out.push_str(&format!("[{n}]")),
            Value::String(s) if s.chars().all(|c| c.is_ascii_digit()) && !s.is_empty() => {
                out.push_str(&format!("[{s}]"))
            }
            Value::String(s) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(s);
            }
            _ => {}
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_becomes_a_400_naming_the_parameter() {
        let skein = json!({"success": false, "error": {"code": "VALIDATION_ERROR", "message": "Request validation failed"},
                           "detail": [{"loc": ["body", "items", "0", "role"], "msg": "role must be 'user' or 'assistant'"}]});
        let (status, body) = translate(StatusCode::UNPROCESSABLE_ENTITY, &skein);
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            json!({"error": {"message": "Invalid 'items[0].role': role must be 'user' or 'assistant'",
                             "type": "invalid_request_error", "param": "items[0].role",
                             "code": "validation_error"}})
        );
    }

    #[test]
    fn statuses_and_codes_follow_openai() {
        let not_found =
            json!({"error": {"code": "THREAD_NOT_FOUND", "message": "Thread not found: conv_x"}});
        let (status, body) = translate(StatusCode::NOT_FOUND, &not_found);
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "conversation_not_found");
        assert_eq!(body["error"]["message"], "Conversation not found: conv_x");
        let (status, body) = translate(
            StatusCode::UNAUTHORIZED,
            &json!({"error": {"code": "UNAUTHORIZED", "message": "no"}}),
        );
        assert_eq!(
            (status, &body["error"]["code"]),
            (StatusCode::UNAUTHORIZED, &json!("invalid_api_key"))
        );
        let (_, body) = translate(
            StatusCode::BAD_GATEWAY,
            &json!({"error": {"code": "UPSTREAM_ERROR", "message": "x"}}),
        );
        assert_eq!(body["error"]["type"], "server_error");
    }
}

/// OpenAI's error envelope, as the OpenAI paths answer every error.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"error": {"message": "Conversation not found", "type": "invalid_request_error",
                                     "param": null, "code": "conversation_not_found"}}))]
pub struct OpenAiError {
    /// The error.
    pub error: OpenAiErrorBody,
}

/// The body of [`OpenAiError`].
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct OpenAiErrorBody {
    /// For people.
    pub message: String,
    /// `invalid_request_error`, `server_error`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The parameter at fault, when there is one (`items[0].role`).
    pub param: Option<String>,
    /// OpenAI's code where one exists, else Skein's code in lower case.
    pub code: Option<String>,
}
