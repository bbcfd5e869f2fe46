//! Service endpoints (health, readiness, metrics, the OpenAPI document and
//! its viewer) and what an unknown route answers.

use super::common::*;
use serde_json::Value;
use skein_persistence::Backend;

skein_persistence::on_both_backends_async!(
    service_endpoints_and_unknown_routes,
    cors_is_off_by_default_and_answers_the_configured_origins,
);

async fn cors_is_off_by_default_and_answers_the_configured_origins(backend: Backend) {
    use actix_web::http::Method;
    let allowed = "https://app.example.com";
    let plain = TestApp::spawn(backend).await;
    let r = plain
        .get("/v1/threads")
        .key(&plain.keys.a1)
        .header("Origin", allowed)
        .send()
        .await;
    assert_eq!(r.status, 200);
    assert!(
        !r.headers.contains_key("access-control-allow-origin"),
        "off by default"
    );
    drop(plain);
    let app = TestApp::with(backend, |s: &mut skein_api::AppState| {
        s.cors_origins = vec![allowed.to_string()];
    })
    .await;
    // A browser's preflight for a write with an API key header.
    let pre = app
        .request(Method::OPTIONS, "/v1/threads")
        .header("Origin", allowed)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "x-api-key, content-type, idempotency-key",
        )
        .send()
        .await;
    assert_eq!(pre.status, 200, "{}", pre.body);
    assert_eq!(
        pre.headers.get("access-control-allow-origin").unwrap(),
        allowed
    );
    let r = app
        .get("/v1/threads")
        .key(&app.keys.a1)
        .header("Origin", allowed)
        .send()
        .await;
    assert_eq!(
        r.headers.get("access-control-allow-origin").unwrap(),
        allowed
    );
    let exposed = r
        .headers
        .get("access-control-expose-headers")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        exposed.contains("x-request-id") && exposed.contains("etag"),
        "{exposed}"
    );
    // Another origin gets no permission.
    let r = app
        .get("/v1/threads")
        .key(&app.keys.a1)
        .header("Origin", "https://evil.example.com")
        .send()
        .await;
    assert!(!r.headers.contains_key("access-control-allow-origin"));
}

async fn service_endpoints_and_unknown_routes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let h = app.get("/healthz").send().await;
    assert_eq!((h.status, h.body["status"].as_str()), (200, Some("ok")));
    let r = app.get("/readyz").send().await;
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("ready")));
    assert!(r.headers.contains_key("x-request-id"));
    app.list_threads(&k.a1, "").await;
    let m = app.get("/metrics").send().await;
    let text = String::from_utf8(m.raw).unwrap();
    assert!(
        text.contains(
            "skein_http_requests_total{method=\"GET\",route=\"/v1/threads\",status=\"200\"}"
        ),
        "{text}"
    );
    assert!(text.contains(&format!("backend=\"{}\"", backend.name())));
    let nf = app.get("/v2/nothing").key(&k.a1).send().await;
    assert_error(&nf, 404, "NOT_FOUND");
    // An incoming request id is echoed so callers can correlate.
    let r = app
        .get("/v1/threads/none")
        .key(&k.a1)
        .header("X-Request-Id", "client-42")
        .send()
        .await;
    assert_eq!(r.body["error"]["trace_id"], "client-42");
    assert_eq!(r.headers.get("x-request-id").unwrap(), "client-42");
}

#[actix_web::test]
async fn openapi_document_is_committed_served_and_complete() {
    let generated = skein_api::openapi();
    let generated_json: Value = serde_json::to_value(&generated).unwrap();
    let committed_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi/openapi.json");
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(committed_path).expect("openapi/openapi.json is committed"),
    )
    .unwrap();
    assert!(
        committed == generated_json,
        "openapi/openapi.json is stale: run `make openapi` and commit it"
    );
    let app = TestApp::spawn(Backend::Sqlite).await;
    let served = app.get("/openapi.json").send().await;
    assert_eq!(served.body, committed);
    let docs = app.get("/docs/").send().await;
    assert_eq!(docs.status, 200);
    assert!(String::from_utf8_lossy(&docs.raw).contains("swagger"));
    let expected = [
        ("post", "/v1/threads", "create_thread"),
        ("get", "/v1/threads", "list_threads"),
        ("delete", "/v1/threads", "delete_all_threads"),
        ("get", "/v1/threads/{thread_id}", "get_thread"),
        ("patch", "/v1/threads/{thread_id}", "update_thread"),
        ("delete", "/v1/threads/{thread_id}", "delete_thread"),
        ("post", "/v1/threads/{thread_id}/pin", "pin_thread"),
        ("post", "/v1/threads/{thread_id}/unpin", "unpin_thread"),
        ("get", "/healthz", "get_health"),
        ("get", "/readyz", "get_readiness"),
        ("get", "/metrics", "get_metrics"),
        ("get", "/v1/threads/{thread_id}/messages", "list_messages"),
        ("post", "/v1/threads/{thread_id}/messages", "create_message"),
        (
            "patch",
            "/v1/threads/{thread_id}/messages/{message_id}",
            "update_message",
        ),
        (
            "delete",
            "/v1/threads/{thread_id}/messages/{message_id}",
            "delete_message",
        ),
    ];
    for (method, path, op) in expected {
        let operation = &committed["paths"][path][method];
        assert_eq!(operation["operationId"], op, "{method} {path}");
        assert!(operation["tags"].as_array().is_some_and(|t| !t.is_empty()));
        assert!(operation["description"].is_string() || operation["summary"].is_string());
    }
    // The stream's frames are documented as a schema of the event-stream answer.
    let frame = &committed["paths"]["/v1/model/response"]["post"]["responses"]["200"]["content"]
        ["text/event-stream"];
    assert!(frame["schema"]["$ref"]
        .as_str()
        .is_some_and(|r| r.ends_with("ResponseStreamEvent")));
    assert!(
        committed["components"]["schemas"]["ResponseStreamEvent"]["properties"]["sequence_number"]
            .is_object()
    );
    // Every /v1 operation documents its 401.
    for (path, item) in committed["paths"].as_object().unwrap() {
        if path.starts_with("/v1") {
            for (method, op) in item.as_object().unwrap() {
                assert!(
                    op["responses"].get("401").is_some(),
                    "{method} {path} lacks 401"
                );
            }
        }
    }
}
