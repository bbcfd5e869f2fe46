//! The isolation matrix: two organizations x two users x (key, token) x
//! every endpoint of the OpenAPI document. Every access to another user's or
//! organization's object answers 404 and changes nothing; lists never show
//! foreign objects. A route the matrix does not know fails the test, so a
//! new endpoint cannot escape it.

use super::common::*;
use actix_web::http::Method;
use serde_json::{json, Value};
use skein_domain::{clock, OrganizationId, UserId};
use skein_persistence::{keys, tenancy, Backend};

skein_persistence::on_both_backends_async!(
    no_endpoint_reaches_another_users_or_organizations_objects,
    every_endpoint_refuses_an_unknown_or_revoked_key_and_a_removed_member,
);

/// How an actor authenticates.
#[derive(Clone)]
enum Cred {
    Key(String),
    Token(String),
}

async fn call(app: &TestApp, cred: &Cred, method: Method, uri: &str, body: Option<Value>) -> Resp {
    let req = app.request(method, uri).json(body);
    match cred {
        Cred::Key(k) => req.key(k),
        Cred::Token(t) => req.bearer(t),
    }
    .send()
    .await
}

async fn no_endpoint_reaches_another_users_or_organizations_objects(backend: Backend) {
    let app = TestApp::with(backend, enable_tokens).await;
    let k = &app.keys;
    {
        // usr_3 belongs to org_b only.
        let mut conn = app.store.conn().unwrap();
        let (org_b, usr_3) = (
            OrganizationId::parse(ORG_B).unwrap(),
            UserId::parse("usr_3").unwrap(),
        );
        tenancy::ensure_user(&mut conn, &usr_3, "User 3", clock::now()).unwrap();
        tenancy::ensure_membership(&mut conn, &org_b, &usr_3, clock::now()).unwrap();
    }
    // The owner: usr_1 in org_a, through its key.
    let owner = Cred::Key(k.a1.clone());
    let t = call(
        &app,
        &owner,
        Method::POST,
        "/v1/model/response",
        Some(json!({"thread": "owned", "inputs": [{"role": "user", "content": "secret"}]})),
    )
    .await;
    assert_eq!(t.status, 200, "{}", t.body);
    let msgs = call(
        &app,
        &owner,
        Method::GET,
        "/v1/threads/owned/messages",
        None,
    )
    .await;
    let message_id = msgs.body["data"][0]["id"].as_str().unwrap().to_string();
    let asst = call(
        &app,
        &owner,
        Method::POST,
        "/v1/assistants",
        Some(json!({"name": "Owned"})),
    )
    .await;
    let assistant_id = asst.body["id"].as_str().unwrap().to_string();
    let chained = call(
        &app,
        &owner,
        Method::POST,
        "/v1/model/response",
        Some(json!({"inputs": [{"role": "user", "content": "chain me"}]})),
    )
    .await;
    let response_id = chained.body["id"].as_str().unwrap().to_string();

    let before = snapshot(&app, &owner, &assistant_id).await;
    // The owner finds its message: the foreigners below must not.
    let mine = call(
        &app,
        &owner,
        Method::GET,
        "/v1/search/messages?q=secret",
        None,
    )
    .await;
    assert_eq!(
        mine.body["data"].as_array().map(Vec::len),
        Some(2),
        "{}",
        mine.body
    );

    // The owner's export holds the thread: the foreigners' below must not.
    let exported = call(&app, &owner, Method::GET, "/v1/threads/export", None).await;
    assert_eq!(exported.status, 200);
    assert!(String::from_utf8_lossy(&exported.raw).contains("\"id\":\"owned\""));
    let foreigners = [
        (
            "other user, same organization, key",
            Cred::Key(k.a2.clone()),
        ),
        (
            "other user, same organization, token",
            Cred::Token(token_for("usr_2", 600)),
        ),
        (
            "same user, other organization, key",
            Cred::Key(k.b1.clone()),
        ),
        (
            "other organization, token",
            Cred::Token(token_for("usr_3", 600)),
        ),
    ];
    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../openapi/openapi.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            let uri = path
                .replace("{thread_id}", "owned")
                .replace("{conversation_id}", "owned")
                .replace("{message_id}", &message_id)
                .replace("{item_id}", &message_id)
                .replace("{assistant_id}", &assistant_id)
                .replace("{response_id}", &response_id)
                .replace("{model}", "default");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            for (who, cred) in &foreigners {
                let ctx = format!("{method} {path} by {who}");
                match (method.as_str(), path.as_str()) {
                    // Objects named in the path: 404, whatever the body.
                    ("get" | "patch" | "delete", "/v1/threads/{thread_id}")
                    | ("post", "/v1/threads/{thread_id}/pin")
                    | ("post", "/v1/threads/{thread_id}/unpin")
                    | ("post", "/v1/threads/{thread_id}/fork")
                    | ("post", "/v1/threads/{thread_id}/read")
                    | ("post", "/v1/threads/{thread_id}/generateName")
                    | ("get" | "post", "/v1/threads/{thread_id}/messages")
                    | ("patch" | "delete", "/v1/threads/{thread_id}/messages/{message_id}")
                    | ("post", "/v1/model/response/{thread_id}/cancel")
                    | ("get", "/v1/model/response/{thread_id}/stream")
                    | ("get" | "patch", "/v1/threads/{thread_id}/user-state")
                    | ("get" | "put" | "delete", "/v1/assistants/{assistant_id}")
                    | ("get" | "post" | "delete", "/v1/conversations/{conversation_id}")
                    | ("get" | "post", "/v1/conversations/{conversation_id}/items")
                    | ("get" | "delete", "/v1/conversations/{conversation_id}/items/{item_id}")
                    | ("get" | "delete", "/v1/responses/{response_id}")
                    | ("get", "/v1/responses/{response_id}/input_items") => {
                        let body = json!({"title": "stolen", "metadata": {"x": 1}, "name": "stolen",
                                          "role": "user", "content": "stolen", "state": "archived",
                                          "items": [{"role": "user", "content": "stolen"}]});
                        let r = call(&app, cred, m.clone(), &uri, Some(body)).await;
                        assert_eq!(r.status, 404, "{ctx}: {}", r.body);
                        assert!(
                            r.code().to_ascii_uppercase().ends_with("_NOT_FOUND"),
                            "{ctx}: {}",
                            r.body
                        );
                    }
                    ("get", "/v1/conversations") => {
                        let r =
                            call(&app, cred, m.clone(), "/v1/conversations?limit=100", None).await;
                        assert_eq!(r.status, 200, "{ctx}: {}", r.body);
                        let ids: Vec<_> = r.body["data"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|c| c["id"].clone())
                            .collect();
                        assert!(!ids.contains(&json!("owned")), "{ctx}: {ids:?}");
                    }
                    // Search finds nothing of the owner's, in its thread or
                    // anywhere (a token of two organizations names the owner's).
                    ("get", "/v1/search/messages") => {
                        for q in ["q=secret", "q=secret&thread_id=owned"] {
                            let uri = format!("{path}?{q}");
                            let r = call(&app, cred, m.clone(), &uri, None).await;
                            assert_eq!(r.status, 200, "{ctx}: {}", r.body);
                            assert_eq!(r.body["data"], json!([]), "{ctx}");
                        }
                        let uri = format!("{path}?q=secret&organization_id={ORG_A}");
                        let r = call(&app, cred, m.clone(), &uri, None).await;
                        if who.contains("same organization") {
                            assert_eq!(r.body["data"], json!([]), "{ctx}: {}", r.body);
                        } else {
                            assert_eq!(r.status, 403, "{ctx}: {}", r.body);
                        }
                    }
                    // A new conversation is the caller's own.
                    ("post", "/v1/conversations") => {
                        let r = call(&app, cred, m.clone(), path, Some(json!({}))).await;
                        assert_eq!(r.status, 200, "{ctx}: {}", r.body);
                    }
                    // Lists never show foreign objects.
                    ("get", "/v1/threads") => {
                        let r = call(
                            &app,
                            cred,
                            m.clone(),
                            "/v1/threads?include_deleted=true&limit=100",
                            None,
                        )
                        .await;
                        let ids: Vec<_> = r.body["data"]
                            .as_array()
                            .map(|d| d.iter().map(|t| t["id"].clone()).collect())
                            .unwrap_or_default();
                        assert!(!ids.contains(&json!("owned")), "{ctx}: {ids:?}");
                    }
                    // The export never holds the owner's thread or a word
                    // of it, deleted threads included.
                    ("get", "/v1/threads/export") => {
                        for q in ["", "?include_deleted=true&order=asc"] {
                            let r = call(&app, cred, m.clone(), &format!("{path}{q}"), None).await;
                            assert_eq!(r.status, 200, "{ctx}: {}", r.body);
                            let text = String::from_utf8(r.raw.clone()).unwrap();
                            assert!(!text.contains("secret"), "{ctx}: {text}");
                            for line in text.lines() {
                                let line: Value = serde_json::from_str(line).unwrap();
                                assert_ne!(line["thread"]["id"], "owned", "{ctx}");
                                let owner = (
                                    &line["thread"]["organization_id"],
                                    &line["thread"]["user_id"],
                                );
                                assert_ne!(owner, (&json!(ORG_A), &json!("usr_1")), "{ctx}");
                            }
                        }
                    }
                    // The owner's thread is unread and changed: neither
                    // list shows it to anyone else.
                    ("get", "/v1/threads/unread") => {
                        let r = call(&app, cred, m.clone(), path, None).await;
                        assert_eq!(r.status, 200, "{ctx}: {}", r.body);
                        let ids = r.body["unread_thread_ids"].as_array().unwrap();
                        assert!(!ids.contains(&json!("owned")), "{ctx}: {ids:?}");
                    }
                    ("get", "/v1/threads/changes") => {
                        let uri = "/v1/threads/changes?since=2000-01-01T00:00:00Z";
                        let r = call(&app, cred, m.clone(), uri, None).await;
                        assert_eq!(r.status, 200, "{ctx}: {}", r.body);
                        let ids: Vec<_> = r.body["data"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|t| t["id"].clone())
                            .collect();
                        assert!(!ids.contains(&json!("owned")), "{ctx}: {ids:?}");
                    }
                    ("get", "/v1/assistants") => {
                        let r = call(&app, cred, m.clone(), "/v1/assistants?limit=100", None).await;
                        let ids: Vec<_> = r.body["data"]
                            .as_array()
                            .map(|d| d.iter().map(|a| a["id"].clone()).collect())
                            .unwrap_or_default();
                        assert!(!ids.contains(&json!(assistant_id)), "{ctx}: {ids:?}");
                    }
                    // Deleting "all" deletes only the caller's own threads.
                    ("delete", "/v1/threads") => {
                        let r = call(&app, cred, m.clone(), "/v1/threads", None).await;
                        assert_eq!(r.status, 200, "{ctx}: {}", r.body);
                    }
                    // Creating names the owner's organization: refused unless a member.
                    ("post", "/v1/threads") | ("post", "/v1/assistants") => {
                        let r = call(
                            &app,
                            cred,
                            m.clone(),
                            path,
                            Some(json!({"organization_id": ORG_A, "name": "x"})),
                        )
                        .await;
                        match who.contains("same organization") {
                            true => {
                                assert_eq!(r.status, 201, "{ctx}: {}", r.body);
                                assert_ne!(
                                    r.body["user_id"].as_str().or(r.body["created_by"].as_str()),
                                    Some("usr_1"),
                                    "{ctx}"
                                );
                            }
                            false => assert_eq!(r.status, 403, "{ctx}: {}", r.body),
                        }
                    }
                    // A response naming the owner's thread or response: not found
                    // in the owner's organization; elsewhere it is the caller's own.
                    ("post", "/v1/model/response" | "/v1/model/response/preview") => {
                        let r = call(&app, cred, m.clone(), path, Some(json!({"previous_response_id": response_id, "inputs": [{"role": "user", "content": "x"}]}))).await;
                        assert_eq!(
                            (r.status, r.code()),
                            (404, "RESPONSE_NOT_FOUND"),
                            "{ctx}: {}",
                            r.body
                        );
                        let r = call(&app, cred, m.clone(), path, Some(json!({"thread": "owned", "organization_id": ORG_A, "inputs": [{"role": "user", "content": "x"}]}))).await;
                        if who.contains("same organization") {
                            assert_eq!(
                                (r.status, r.code()),
                                (404, "THREAD_NOT_FOUND"),
                                "{ctx}: {}",
                                r.body
                            );
                        } else {
                            assert_eq!(r.status, 403, "{ctx}: {}", r.body);
                        }
                    }
                    // OpenAI's front door: the owner's response and conversation
                    // are not found from anywhere else.
                    ("post", "/v1/responses" | "/v1/responses/input_tokens") => {
                        let r = call(
                            &app,
                            cred,
                            m.clone(),
                            path,
                            Some(json!({"previous_response_id": response_id, "input": "x"})),
                        )
                        .await;
                        assert_eq!(
                            (r.status, r.code()),
                            (404, "response_not_found"),
                            "{ctx}: {}",
                            r.body
                        );
                        let r = call(
                            &app,
                            cred,
                            m.clone(),
                            path,
                            Some(json!({"conversation": "owned", "input": "x"})),
                        )
                        .await;
                        assert_eq!(
                            (r.status, r.code()),
                            (404, "conversation_not_found"),
                            "{ctx}: {}",
                            r.body
                        );
                    }
                    // No per-user objects behind these.
                    ("get", "/v1/model/response/output-modes")
                    | ("get", "/v1/model/response/reasoning-levels")
                    | ("get", "/healthz" | "/readyz" | "/metrics")
                    | ("get", "/v1/models" | "/v1/models/{model}") => {}
                    _ => panic!("{method} {path} is not in the isolation matrix: classify it"),
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 4 * 24, "only {checked} checks");
    assert_eq!(
        snapshot(&app, &owner, &assistant_id).await,
        before,
        "nothing of the owner's changed"
    );
}

/// The owner's thread, messages and assistant as the owner sees them.
async fn snapshot(app: &TestApp, owner: &Cred, assistant_id: &str) -> (Value, Value, Value) {
    let thread = call(app, owner, Method::GET, "/v1/threads/owned", None)
        .await
        .body;
    let messages = call(app, owner, Method::GET, "/v1/threads/owned/messages", None)
        .await
        .body;
    let assistant = call(
        app,
        owner,
        Method::GET,
        &format!("/v1/assistants/{assistant_id}"),
        None,
    )
    .await
    .body;
    assert_eq!(thread["id"], "owned");
    (thread, messages, assistant)
}

/// Authentication happens in each request's own trip to the database, so
/// every route must run one: a key that is unknown, revoked, or whose owner
/// left the organization gets 401 on every authenticated endpoint, with a
/// request that would otherwise succeed, and nothing changes.
async fn every_endpoint_refuses_an_unknown_or_revoked_key_and_a_removed_member(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let owner = Cred::Key(k.a1.clone());
    let t = call(
        &app,
        &owner,
        Method::POST,
        "/v1/model/response",
        Some(json!({"thread": "owned", "inputs": [{"role": "user", "content": "secret"}]})),
    )
    .await;
    assert_eq!(t.status, 200, "{}", t.body);
    let msgs = call(
        &app,
        &owner,
        Method::GET,
        "/v1/threads/owned/messages",
        None,
    )
    .await;
    let message_id = msgs.body["data"][0]["id"].as_str().unwrap().to_string();
    let asst = call(
        &app,
        &owner,
        Method::POST,
        "/v1/assistants",
        Some(json!({"name": "Owned"})),
    )
    .await;
    let assistant_id = asst.body["id"].as_str().unwrap().to_string();
    let before = snapshot(&app, &owner, &assistant_id).await;
    let (revoked, departed) = {
        let mut conn = app.store.conn().unwrap();
        let (org_a, usr_1, usr_2) = (
            OrganizationId::parse(ORG_A).unwrap(),
            UserId::parse("usr_1").unwrap(),
            UserId::parse("usr_2").unwrap(),
        );
        let revoked = keys::create(&mut conn, &org_a, &usr_1, None, clock::now()).unwrap();
        keys::revoke(&mut conn, revoked.id.as_str(), clock::now()).unwrap();
        // usr_2's key stays valid, but usr_2 leaves org_a.
        assert!(tenancy::remove_membership(&mut conn, &org_a, &usr_2).unwrap());
        (revoked.secret, k.a2.clone())
    };
    let unknown = format!("sk_{}", "A".repeat(40));
    // Valid for every route (unknown fields are ignored).
    let body = json!({"title": "t", "name": "n", "role": "user", "content": "c",
                      "inputs": [{"role": "user", "content": "c"}], "thread": "owned",
                      "items": [{"role": "user", "content": "c"}], "input": "c"});
    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../openapi/openapi.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if operation["security"].is_null() {
                continue;
            }
            let uri = path
                .replace("{thread_id}", "owned")
                .replace("{conversation_id}", "owned")
                .replace("{message_id}", &message_id)
                .replace("{item_id}", &message_id)
                .replace("{assistant_id}", &assistant_id)
                .replace("{model}", "default");
            // Search needs its one required parameter to be valid.
            let uri = if path == "/v1/search/messages" {
                format!("{uri}?q=secret")
            } else {
                uri
            };
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let with_body = matches!(method.as_str(), "post" | "put" | "patch");
            for key in [&unknown, &revoked, &departed] {
                let r = call(
                    &app,
                    &Cred::Key(key.clone()),
                    m.clone(),
                    &uri,
                    with_body.then(|| body.clone()),
                )
                .await;
                assert_error_on(path, &r, 401, "INVALID_API_KEY");
                checked += 1;
            }
        }
    }
    assert!(checked >= 3 * 20, "only {checked} checks");
    assert_eq!(
        snapshot(&app, &owner, &assistant_id).await,
        before,
        "nothing changed"
    );
}
