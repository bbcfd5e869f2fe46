//! Strictness at the edge (contract section 12) on every route and both
//! backends: body media type and encoding, trailing bytes, NUL characters
//! in paths, queries and bodies, two credentials in one request, and the
//! integer items of `detail[].loc`.

use super::common::*;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::Method;
use actix_web::test;
use serde_json::{json, Value};
use skein_persistence::Backend;
use std::future::Future;
use std::time::Duration;

skein_persistence::on_both_backends_async!(
    a_body_must_be_declared_json_unless_it_is_empty,
    bytes_after_the_json_value_are_invalid_json,
    a_compressed_body_is_refused,
    a_nul_in_any_path_query_or_body_is_refused_on_every_route_and_writes_nothing,
    two_different_credentials_are_ambiguous,
    loc_items_are_strings_or_integers_in_answers_and_in_the_spec,
    a_large_body_parsed_off_the_worker_is_checked_as_a_small_one,
);

/// Every await of these tests runs under this limit.
async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("timed out")
}

/// A request with the owner's key, `content_type` if any, and `body` as is.
fn raw(
    method: Method,
    uri: &str,
    key: &str,
    content_type: Option<&str>,
    body: &str,
) -> test::TestRequest {
    let mut req = test::TestRequest::default()
        .method(method)
        .uri(uri)
        .insert_header(("X-API-Key", key));
    if let Some(t) = content_type {
        req = req.insert_header(("Content-Type", t));
    }
    if !body.is_empty() {
        req = req.set_payload(body.to_string());
    }
    req
}

async fn call<S, B>(app: &S, req: test::TestRequest) -> Resp
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    within(raw_send(app, req)).await
}

/// The caller's threads (deleted ones too) as the list shows them.
async fn thread_ids<S, B>(app: &S, key: &str) -> Vec<Value>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let r = within(send(
        app,
        Method::GET,
        "/v1/threads?include_deleted=true&limit=100",
        Some(key),
        None,
    ))
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].clone())
        .collect()
}

async fn a_body_must_be_declared_json_unless_it_is_empty(backend: Backend) {
    let (_db, _store, app, k) = within(async { setup!(backend) }).await;
    let thread = within(create_thread(&app, &k.a1, json!({"title": "kept"}))).await;
    let id = thread["id"].as_str().unwrap().to_string();
    let pin = format!("/v1/threads/{id}/pin");
    let patch = format!("/v1/threads/{id}");
    let body = r#"{"title": "x"}"#;

    // Not declared JSON: refused, on routes with a body and without.
    for (method, uri) in [
        (Method::POST, "/v1/threads"),
        (Method::PATCH, patch.as_str()),
        (Method::POST, pin.as_str()),
        (Method::POST, "/v1/model/response"),
    ] {
        for content_type in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("application/json; charset=latin1"),
            Some("application/jsonx"),
            None,
        ] {
            let r = call(&app, raw(method.clone(), uri, &k.a1, content_type, body)).await;
            assert_error_on(uri, &r, 415, "UNSUPPORTED_MEDIA_TYPE");
        }
    }
    // Without a Content-Type, any body is refused, JSON or not.
    let r = call(&app, raw(Method::PATCH, &patch, &k.a1, None, "not json")).await;
    assert_error(&r, 415, "UNSUPPORTED_MEDIA_TYPE");
    let r = call(
        &app,
        raw(Method::POST, &pin, &k.a1, Some("text/plain"), "x"),
    )
    .await;
    assert_error(&r, 415, "UNSUPPORTED_MEDIA_TYPE");
    assert_eq!(
        thread_ids(&app, &k.a1).await.len(),
        1,
        "nothing was created"
    );
    let r = call(&app, raw(Method::GET, &patch, &k.a1, None, "")).await;
    assert_eq!(r.body["title"], "kept", "nothing was changed");
    assert_eq!(r.body["is_pinned"], false, "nothing was pinned");

    // JSON in any case, with or without a UTF-8 charset.
    for content_type in [
        "application/json",
        "Application/JSON; charset=UTF-8",
        "application/json;charset=\"utf-8\"",
    ] {
        let r = call(
            &app,
            raw(Method::POST, "/v1/threads", &k.a1, Some(content_type), body),
        )
        .await;
        assert_eq!(r.status, 201, "{content_type}: {}", r.body);
    }
    // An empty body needs no Content-Type (a bodiless POST), whatever the
    // route; nor does whitespace.
    for empty in ["", " \r\n\t "] {
        let r = call(&app, raw(Method::POST, "/v1/threads", &k.a1, None, empty)).await;
        assert_eq!(r.status, 201, "{empty:?}: {}", r.body);
        assert_eq!(r.body["metadata"], json!({}));
        let r = call(&app, raw(Method::PATCH, &patch, &k.a1, None, empty)).await;
        assert_eq!(r.status, 200, "{empty:?}: {}", r.body);
    }
    let r = call(&app, raw(Method::POST, &pin, &k.a1, None, "")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call(
        &app,
        raw(Method::POST, &pin, &k.a1, Some("text/plain"), "  "),
    )
    .await;
    assert_eq!(r.status, 200, "a blank body is no body: {}", r.body);
    let r = call(
        &app,
        raw(Method::GET, "/v1/threads", &k.a1, Some("text/plain"), ""),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(thread_ids(&app, &k.a1).await.len(), 6);
}

async fn bytes_after_the_json_value_are_invalid_json(backend: Backend) {
    let (_db, _store, app, k) = within(async { setup!(backend) }).await;
    let thread = within(create_thread(&app, &k.a1, json!({"title": "kept"}))).await;
    let id = thread["id"].as_str().unwrap().to_string();
    let json = Some("application/json");
    for (method, uri) in [
        (Method::POST, "/v1/threads".to_string()),
        (Method::PATCH, format!("/v1/threads/{id}")),
        (Method::POST, format!("/v1/threads/{id}/messages")),
        (Method::POST, "/v1/model/response".to_string()),
        (Method::POST, "/v1/assistants".to_string()),
    ] {
        for body in [
            r#"{"title": "a", "role": "user", "content": "c", "name": "n"} x"#,
            "{}{}",
            "{} {}",
            r#"{"title": "a"}]"#,
            r#"{"title": "a"} null"#,
            // A type error before broken syntax: the syntax wins.
            r#"{"title": 5, "inputs": 5} x"#,
        ] {
            let r = call(&app, raw(method.clone(), &uri, &k.a1, json, body)).await;
            assert_error_on(&uri, &r, 400, "INVALID_JSON");
            let said = if is_openai(&uri) {
                &r.body["error"]["message"]
            } else {
                &r.body["error"]["system_message"]
            };
            assert!(
                said.as_str().unwrap().contains("trailing"),
                "{method} {uri} {body}: {}",
                r.body
            );
        }
    }
    assert_eq!(thread_ids(&app, &k.a1).await, vec![json!(id)]);
    let r = call(
        &app,
        raw(Method::GET, &format!("/v1/threads/{id}"), &k.a1, None, ""),
    )
    .await;
    assert_eq!(
        (r.body["title"].clone(), r.body["message_count"].clone()),
        (json!("kept"), json!(0))
    );
    // Whitespace after the value is fine.
    let r = call(
        &app,
        raw(
            Method::POST,
            "/v1/threads",
            &k.a1,
            json,
            "{\"title\": \"a\"} \r\n\t ",
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

/// Bodies above 64 KiB are parsed on the blocking pool: the same answers.
async fn a_large_body_parsed_off_the_worker_is_checked_as_a_small_one(backend: Backend) {
    let (_db, _store, app, k) = within(async { setup!(backend) }).await;
    let thread = within(create_thread(&app, &k.a1, json!({"title": "big"}))).await;
    let id = thread["id"].as_str().unwrap().to_string();
    let uri = format!("/v1/threads/{id}/messages");
    let big = "lorem ipsum ".repeat(20_000);
    let post = |body: String| {
        let (app, uri, key) = (&app, uri.clone(), k.a1.clone());
        async move {
            call(
                app,
                raw(Method::POST, &uri, &key, Some("application/json"), &body),
            )
            .await
        }
    };
    let body = json!({"role": "user", "content": big}).to_string();
    assert!(body.len() > 64 * 1024);
    let r = post(format!("{body} x")).await;
    assert_error_on(&uri, &r, 400, "INVALID_JSON");
    let r = post(json!({"role": 5, "content": big}).to_string()).await;
    assert_error_on(&uri, &r, 422, "VALIDATION_ERROR");
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "role"]));
    let r = post(json!({"role": "user", "content": big, "metadata": {"k": "a\u{0}"}}).to_string())
        .await;
    assert_error_on(&uri, &r, 422, "VALIDATION_ERROR");
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "metadata", "k"]));
    let r = post(body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["content"].as_str().map(str::len), Some(big.len()));
    let r = call(
        &app,
        raw(Method::GET, &format!("/v1/threads/{id}"), &k.a1, None, ""),
    )
    .await;
    assert_eq!(
        r.body["message_count"],
        json!(1),
        "only the good body was kept"
    );
}

async fn a_compressed_body_is_refused(backend: Backend) {
    let (_db, _store, app, k) = within(async { setup!(backend) }).await;
    let thread = within(create_thread(&app, &k.a1, json!({}))).await;
    let pin = format!("/v1/threads/{}/pin", thread["id"].as_str().unwrap());
    for (method, uri, body) in [
        (Method::POST, "/v1/threads", r#"{"title": "x"}"#),
        (Method::POST, "/v1/threads", ""),
        (Method::POST, pin.as_str(), ""),
        (Method::GET, "/v1/threads", ""),
    ] {
        for encoding in ["gzip", "deflate", "br", "identity, gzip"] {
            let req = raw(method.clone(), uri, &k.a1, Some("application/json"), body)
                .insert_header(("Content-Encoding", encoding));
            let r = call(&app, req).await;
            assert_error_on(uri, &r, 415, "UNSUPPORTED_MEDIA_TYPE");
        }
    }
    assert_eq!(
        thread_ids(&app, &k.a1).await.len(),
        1,
        "nothing was created"
    );
    let req = raw(
        Method::POST,
        "/v1/threads",
        &k.a1,
        Some("application/json"),
        r#"{"title": "x"}"#,
    )
    .insert_header(("Content-Encoding", "identity"));
    assert_eq!(call(&app, req).await.status, 201);
}

/// A valid body for each operation that takes one, and where a NUL is put
/// into it: `(body with a NUL, its loc)`.
fn nul_bodies(method: &str, path: &str) -> Vec<(Value, Value)> {
    let nul_key = json!({"metadata": {"k\u{0}": "v"}, "name": "n", "role": "user", "content": "c",
                         "inputs": [{"role": "user", "content": "c"}]});
    let mut cases = match (method, path) {
        ("post", "/v1/threads") => vec![
            (json!({"title": "a\u{0}b"}), json!(["body", "title"])),
            (
                json!({"title": "t", "metadata": {"k": "\u{0}"}}),
                json!(["body", "metadata", "k"]),
            ),
        ],
        ("post", "/v1/threads/{thread_id}/fork") => vec![
            (json!({"title": "a\u{0}b"}), json!(["body", "title"])),
            (
                json!({"message_id": "msg_\u{0}"}),
                json!(["body", "message_id"]),
            ),
        ],
        ("patch", "/v1/threads/{thread_id}") => vec![(
            json!({"metadata": {"k": "v\u{0}"}}),
            json!(["body", "metadata", "k"]),
        )],
        ("post", "/v1/threads/{thread_id}/messages") => vec![
            (
                json!({"role": "user", "content": "x\u{0}"}),
                json!(["body", "content"]),
            ),
            (
                json!({"role": "user", "content": [{"type": "text", "text": "\u{0}"}]}),
                json!(["body", "content", 0, "text"]),
            ),
        ],
        ("patch", "/v1/threads/{thread_id}/messages/{message_id}") => {
            vec![(json!({"content": "x\u{0}"}), json!(["body", "content"]))]
        }
        ("post", "/v1/threads/{thread_id}/generateName") => vec![(
            json!({"messages": [{"role": "user", "content": "\u{0}"}]}),
            json!(["body", "messages", 0, "content"]),
        )],
        ("post", "/v1/model/response" | "/v1/model/response/preview") => vec![
            (
                json!({"inputs": [{"role": "user", "content": "hi"}, {"role": "user", "content": "\u{0}"}]}),
                json!(["body", "inputs", 1, "content"]),
            ),
            (
                json!({"model": "m\u{0}", "inputs": [{"role": "user", "content": "hi"}]}),
                json!(["body", "model"]),
            ),
            (
                json!({"thread": "t\u{0}", "inputs": [{"role": "user", "content": "hi"}]}),
                json!(["body", "thread"]),
            ),
        ],
        ("patch", "/v1/threads/{thread_id}/user-state") => vec![
            (
                json!({"model_override": "m\u{0}"}),
                json!(["body", "model_override"]),
            ),
            (
                json!({"disabled_tools": ["ok", "t\u{0}"]}),
                json!(["body", "disabled_tools", 1]),
            ),
            (
                json!({"tool_conflict_choices": {"k": "\u{0}"}}),
                json!(["body", "tool_conflict_choices", "k"]),
            ),
        ],
        ("post", "/v1/assistants") | ("put", "/v1/assistants/{assistant_id}") => vec![
            (json!({"name": "n\u{0}"}), json!(["body", "name"])),
            (
                json!({"name": "n", "instructions": "\u{0}"}),
                json!(["body", "instructions"]),
            ),
        ],
        ("post", "/v1/conversations") => vec![
            (
                json!({"items": [{"role": "user", "content": "a\u{0}"}]}),
                json!(["body", "items", 0, "content"]),
            ),
            (
                json!({"metadata": {"k": "\u{0}"}}),
                json!(["body", "metadata", "k"]),
            ),
        ],
        ("post", "/v1/conversations/{conversation_id}") => vec![(
            json!({"metadata": {"k": "v\u{0}"}}),
            json!(["body", "metadata", "k"]),
        )],
        ("post", "/v1/conversations/{conversation_id}/items") => vec![(
            json!({"items": [{"role": "user", "content": "ok"}, {"role": "user", "content": "x\u{0}"}]}),
            json!(["body", "items", 1, "content"]),
        )],
        ("post", "/v1/responses" | "/v1/responses/input_tokens") => vec![
            (json!({"input": "hi\u{0}"}), json!(["body", "input"])),
            (
                json!({"input": [{"role": "user", "content": "ok"}, {"role": "user", "content": "\u{0}"}]}),
                json!(["body", "input", 1, "content"]),
            ),
            (
                json!({"input": "hi", "model": "m\u{0}"}),
                json!(["body", "model"]),
            ),
        ],
        _ => panic!("{method} {path} takes a body: give it NUL cases"),
    };
    cases.push((nul_key, json!(["body", "metadata", "k\u{0}"])));
    // Every string at once, and an unknown field.
    cases.push((
        json!({"zzz_unknown": "\u{0}", "title": "a\u{0}b", "content": "x\u{0}", "model": "m\u{0}",
               "name": "n\u{0}", "metadata": {"k": "\u{0}"},
               "inputs": [{"role": "user", "content": "\u{0}"}]}),
        Value::Null,
    ));
    cases
}

/// The committed OpenAPI document.
fn committed_spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The 404 code of a path parameter.
fn not_found_code(param: &str) -> &'static str {
    match param {
        "thread_id" => "THREAD_NOT_FOUND",
        "message_id" => "MESSAGE_NOT_FOUND",
        "assistant_id" => "ASSISTANT_NOT_FOUND",
        "conversation_id" => "THREAD_NOT_FOUND",
        "item_id" => "MESSAGE_NOT_FOUND",
        "model" => "MODEL_NOT_FOUND",
        "response_id" => "RESPONSE_NOT_FOUND",
        other => panic!("path parameter {other}: which resource does it name?"),
    }
}

/// What the owner has: threads, the thread's messages, assistants.
async fn snapshot<S, B>(app: &S, key: &str, thread: &str) -> (Vec<Value>, Value, Value, Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let get = |uri: String| async move {
        let r = within(send(app, Method::GET, &uri, Some(key), None)).await;
        assert_eq!(r.status, 200, "{uri}: {}", r.body);
        r.body
    };
    (
        thread_ids(app, key).await,
        get(format!("/v1/threads/{thread}")).await,
        get(format!("/v1/threads/{thread}/messages?limit=100")).await,
        get("/v1/assistants?limit=100".into()).await,
    )
}

async fn a_nul_in_any_path_query_or_body_is_refused_on_every_route_and_writes_nothing(
    backend: Backend,
) {
    let (_db, _store, app, k) = within(async { setup!(backend) }).await;
    let thread = within(create_thread(
        &app,
        &k.a1,
        json!({"title": "kept", "metadata": {"k": "v"}}),
    ))
    .await;
    let thread_id = thread["id"].as_str().unwrap().to_string();
    let message = within(send(
        &app,
        Method::POST,
        &format!("/v1/threads/{thread_id}/messages"),
        Some(&k.a1),
        Some(json!({"role": "user", "content": "kept"})),
    ))
    .await;
    assert_eq!(message.status, 201, "{}", message.body);
    let message_id = message.body["id"].as_str().unwrap().to_string();
    let assistant = within(send(
        &app,
        Method::POST,
        "/v1/assistants",
        Some(&k.a1),
        Some(json!({"name": "kept"})),
    ))
    .await;
    let assistant_id = assistant.body["id"].as_str().unwrap().to_string();
    let stored = within(send(
        &app,
        Method::POST,
        "/v1/responses",
        Some(&k.a1),
        Some(json!({"input": "kept"})),
    ))
    .await;
    assert_eq!(stored.status, 200, "{}", stored.body);
    let response_id = stored.body["id"].as_str().unwrap().to_string();
    let ids = [
        ("thread_id", thread_id.as_str()),
        ("message_id", message_id.as_str()),
        ("assistant_id", assistant_id.as_str()),
        ("conversation_id", thread_id.as_str()),
        ("item_id", message_id.as_str()),
        ("model", "default"),
        ("response_id", response_id.as_str()),
    ];
    let before = snapshot(&app, &k.a1, &thread_id).await;

    let spec = committed_spec();
    let json_type = Some("application/json");
    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let fill = |nul_in: Option<&str>| {
                ids.iter().fold(path.clone(), |uri, (param, id)| {
                    let value = if nul_in == Some(*param) { "a%00b" } else { id };
                    uri.replace(&format!("{{{param}}}"), value)
                })
            };
            let uri = fill(None);
            let has_body = op.get("requestBody").is_some();
            let bodies = if has_body {
                nul_bodies(method, path)
            } else {
                Vec::new()
            };
            // A valid body, so that only the NUL is wrong.
            let valid_body = bodies
                .first()
                .map(|(b, _)| b.to_string().replace("\\u0000", ""))
                .unwrap_or_default();
            let params: Vec<&Value> = op["parameters"]
                .as_array()
                .map(|p| p.iter().collect())
                .unwrap_or_default();

            // A NUL in an id in the path: that resource is not found.
            for p in params.iter().filter(|p| p["in"] == "path") {
                let name = p["name"].as_str().unwrap();
                let r = call(
                    &app,
                    raw(m.clone(), &fill(Some(name)), &k.a1, json_type, &valid_body),
                )
                .await;
                let ctx = format!("{method} {path} with a NUL in {name}");
                assert!(r.status < 500, "{ctx}: {}", r.body);
                assert_error_on(path, &r, 404, not_found_code(name));
                checked += 1;
            }
            // A NUL in any query value (or key), documented or not.
            let mut query_names: Vec<&str> = params
                .iter()
                .filter(|p| p["in"] == "query")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            query_names.push("undocumented");
            for name in query_names {
                for (query, loc) in [
                    (format!("{name}=a%00b"), json!(["query", name])),
                    (
                        format!("{name}%00=1"),
                        json!(["query", format!("{name}\u{0}")]),
                    ),
                ] {
                    let r = call(
                        &app,
                        raw(
                            m.clone(),
                            &format!("{uri}?{query}"),
                            &k.a1,
                            json_type,
                            &valid_body,
                        ),
                    )
                    .await;
                    let ctx = format!("{method} {path}?{query}");
                    assert!(r.status < 500, "{ctx}: {}", r.body);
                    assert_error_on(path, &r, 422, "VALIDATION_ERROR");
                    let (got, want) = error_location(path, &r, &loc);
                    assert_eq!(got, want, "{ctx}: {}", r.body);
                    checked += 1;
                }
            }
            // A NUL in a string of the body, value or key.
            for (body, loc) in &bodies {
                let text = body.to_string();
                assert!(text.contains("\\u0000"), "{text}");
                let r = call(&app, raw(m.clone(), &uri, &k.a1, json_type, &text)).await;
                let ctx = format!("{method} {path} with {text}");
                assert!(r.status < 500, "{ctx}: {}", r.body);
                assert_error_on(path, &r, 422, "VALIDATION_ERROR");
                if is_openai(path) {
                    if !loc.is_null() {
                        let (got, want) = error_location(path, &r, loc);
                        assert_eq!(got, want, "{ctx}: {}", r.body);
                    }
                } else {
                    let got = &r.body["detail"][0]["loc"];
                    if loc.is_null() {
                        assert_eq!(got[0], "body", "{ctx}: {}", r.body);
                    } else {
                        assert_eq!(got, loc, "{ctx}: {}", r.body);
                    }
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 100, "only {checked} checks");

    // A NUL outside any id, and an escaped backslash that is no NUL.
    let r = call(&app, raw(Method::GET, "/v1/thr%00eads", &k.a1, None, "")).await;
    assert_error(&r, 404, "NOT_FOUND");
    let r = call(
        &app,
        raw(
            Method::POST,
            "/v1/threads",
            &k.a1,
            json_type,
            r#"{"title": "back\\u0000slash"}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["title"], "back\\u0000slash");
    let created = r.body["id"].clone();

    let mut after = snapshot(&app, &k.a1, &thread_id).await;
    after.0.retain(|id| *id != created);
    assert_eq!(after, before, "nothing was written");
}

async fn two_different_credentials_are_ambiguous(backend: Backend) {
    let (_db, _store, app, k) = within(async { setup_with!(backend, enable_tokens) }).await;
    let token = token_for("usr_1", 600);
    let bearer = |v: &str| format!("Bearer {v}");
    let cases: Vec<Vec<(&str, String)>> = vec![
        vec![("X-API-Key", k.a1.clone()), ("api-key", k.b1.clone())],
        vec![("X-API-Key", k.a1.clone()), ("X-API-Key", k.b1.clone())],
        vec![("api-key", k.b1.clone()), ("Authorization", bearer(&k.a1))],
        vec![
            ("X-API-Key", k.a1.clone()),
            ("Authorization", bearer(&token)),
        ],
        // A second key of the same organization, and a bad one: still two.
        vec![("X-API-Key", k.a1.clone()), ("api-key", k.a2.clone())],
        vec![("X-API-Key", k.a1.clone()), ("api-key", "sk_bogus".into())],
    ];
    for headers in &cases {
        for (method, uri, body) in [
            (Method::GET, "/v1/threads", None),
            (
                Method::POST,
                "/v1/threads",
                Some(json!({"title": "two keys"})),
            ),
            (
                Method::POST,
                "/v1/model/response",
                Some(json!({"inputs": [{"role": "user", "content": "hi"}]})),
            ),
        ] {
            let mut req = test::TestRequest::default().method(method).uri(uri);
            for (name, value) in headers {
                req = req.append_header((*name, value.as_str()));
            }
            if let Some(b) = body {
                req = req.set_json(b);
            }
            let r = call(&app, req).await;
            assert_error(&r, 400, "AMBIGUOUS_CREDENTIALS");
        }
    }
    assert!(thread_ids(&app, &k.a1).await.is_empty());
    assert!(thread_ids(&app, &k.b1).await.is_empty());

    // The same key in every header is one credential.
    let req = test::TestRequest::post()
        .uri("/v1/threads")
        .insert_header(("X-API-Key", k.b1.as_str()))
        .insert_header(("api-key", k.b1.as_str()))
        .insert_header(("Authorization", bearer(&k.b1)))
        .set_json(json!({"title": "one key"}));
    let r = call(&app, req).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["organization_id"], ORG_B);
    // A token alone still works.
    let r = within(send_bearer(&app, Method::GET, "/v1/threads", &token, None)).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

async fn loc_items_are_strings_or_integers_in_answers_and_in_the_spec(backend: Backend) {
    let (_db, _store, app, k) = within(async { setup!(backend) }).await;
    let r = within(send(
        &app,
        Method::POST,
        "/v1/model/response",
        Some(&k.a1),
        Some(json!({"inputs": [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}]})),
    ))
    .await;
    assert_error(&r, 422, "VALIDATION_ERROR");
    assert_eq!(
        r.body["detail"][0]["loc"],
        json!(["body", "inputs", 1, "role"])
    );
    assert!(r.body["detail"][0]["loc"][2].is_u64());

    // The committed spec (the same as the generated one) says so.
    let spec = committed_spec();
    let generated = serde_json::to_value(skein_api::openapi()).unwrap();
    for spec in [&spec, &generated] {
        let schemas = &spec["components"]["schemas"];
        let mut items = &schemas["FieldError"]["properties"]["loc"]["items"];
        if let Some(target) = items["$ref"].as_str() {
            items = &schemas[target.trim_start_matches("#/components/schemas/")];
        }
        let mut types: Vec<&str> = items["oneOf"]
            .as_array()
            .unwrap_or_else(|| panic!("loc items are not a oneOf: {items}"))
            .iter()
            .map(|s| s["type"].as_str().unwrap())
            .collect();
        types.sort_unstable();
        assert_eq!(types, ["integer", "string"]);
    }
}
