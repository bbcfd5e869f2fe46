//! The Threads API through the real app builder, on SQLite and PostgreSQL,
//! each test with its own fresh database.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{header::HeaderMap, Method};
use actix_web::{test, web};
use serde_json::{json, Value};
use skein_api::{build_app, AppState, Metrics};
use skein_domain::{clock, Limits, OrganizationId, UserId};
use skein_persistence::rows::AssistantRow;
use skein_persistence::testing::TestDb;
use skein_persistence::{keys, tenancy, threads, Backend, Scope};

skein_persistence::on_both_backends_async!(
    create_returns_201_and_the_whole_thread,
    create_accepts_an_empty_body_and_camel_case,
    create_validates_title_and_metadata_at_the_edges,
    malformed_and_oversized_bodies_get_the_envelope,
    authentication_errors,
    all_three_key_headers_work_and_a_revoked_key_stops_at_once,
    organization_and_visibility_rules,
    assistant_binding_rules,
    threads_are_invisible_to_other_users_and_organizations,
    listing_walks_pages_without_duplicates_or_skips,
    list_query_validation_filters_and_total,
    patch_merges_metadata_and_handles_nulls,
    patch_state_transitions,
    a_rejected_patch_changes_nothing,
    delete_is_soft_and_answers_204,
    delete_all_deletes_only_the_callers_threads,
    pin_and_unpin_with_the_limit,
    service_endpoints_and_unknown_routes,
    messages_append_list_update_delete_keep_the_thread_exact,
    message_writes_obey_the_lifecycle_and_the_cap,
    messages_are_invisible_to_others_and_validated,
);

struct Keys {
    /// usr_1 in org_a.
    a1: String,
    /// usr_2 in org_a.
    a2: String,
    /// usr_1 in org_b.
    b1: String,
}

const ORG_A: &str = "org_a";
const ORG_B: &str = "org_b";

fn seed(store: &skein_persistence::Store) -> Keys {
    let mut conn = store.conn().unwrap();
    let now = clock::now();
    let mut key = |org: &str, user: &str| {
        let org = OrganizationId::parse(org).unwrap();
        let user = UserId::parse(user).unwrap();
        tenancy::ensure_organization(&mut conn, &org, "Org", now).unwrap();
        tenancy::ensure_user(&mut conn, &user, "User", now).unwrap();
        tenancy::ensure_membership(&mut conn, &org, &user, now).unwrap();
        keys::create(&mut conn, &org, &user, None, now)
            .unwrap()
            .secret
    };
    Keys {
        a1: key(ORG_A, "usr_1"),
        a2: key(ORG_A, "usr_2"),
        b1: key(ORG_B, "usr_1"),
    }
}

struct Resp {
    status: u16,
    headers: HeaderMap,
    body: Value,
    raw: Vec<u8>,
}

impl Resp {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

async fn send<S, B>(
    app: &S,
    method: Method,
    uri: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> Resp
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut req = test::TestRequest::default().method(method).uri(uri);
    if let Some(k) = key {
        req = req.insert_header(("X-API-Key", k));
    }
    if let Some(b) = body {
        req = req.set_json(b);
    }
    raw_send(app, req).await
}

async fn raw_send<S, B>(app: &S, req: test::TestRequest) -> Resp
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let res = test::call_service(app, req.to_request()).await;
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let raw = test::read_body(res).await.to_vec();
    let body = if raw.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&raw).unwrap_or(Value::Null)
    };
    Resp {
        status,
        headers,
        body,
        raw,
    }
}

macro_rules! setup {
    ($backend:expr) => {
        setup!(
            $backend,
            Limits::default(),
            skein_api::state::DEFAULT_MAX_BODY_BYTES
        )
    };
    ($backend:expr, $limits:expr, $max_body:expr) => {{
        let db = TestDb::new($backend);
        let store = db.store();
        let keys = seed(&store);
        let state = AppState {
            store: store.clone(),
            limits: $limits,
            max_body_bytes: $max_body,
        };
        let app = test::init_service(build_app(state, web::Data::new(Metrics::default()))).await;
        (db, store, app, keys)
    }};
}

fn assert_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "body: {}", r.body);
    assert_eq!(r.code(), code, "body: {}", r.body);
    assert_eq!(r.body["success"], json!(false));
    assert_eq!(r.body["error"]["status"], json!(status));
    let trace = r.body["error"]["trace_id"].as_str().unwrap();
    assert_eq!(
        r.headers.get("x-request-id").unwrap().to_str().unwrap(),
        trace
    );
    for field in ["message", "system_message", "type", "timestamp"] {
        assert!(r.body["error"][field].is_string(), "{field} in {}", r.body);
    }
    assert!(r.body["error"]["details"].is_object());
    if status == 422 {
        let detail = r.body["detail"].as_array().expect("422 has a detail list");
        assert!(!detail.is_empty());
        for d in detail {
            assert!(d["loc"].is_array() && d["msg"].is_string() && d["type"].is_string());
        }
    }
}

async fn create_thread<S, B>(app: &S, key: &str, body: Value) -> Value
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let r = send(app, Method::POST, "/v1/threads", Some(key), Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body
}

fn meta_with_keys(n: usize) -> Value {
    Value::Object((0..n).map(|i| (format!("k{i}"), json!("v"))).collect())
}

async fn create_returns_201_and_the_whole_thread(backend: Backend) {
    let (_db, _store, app, k) = setup!(backend);
    let t = create_thread(
        &app,
        &k.a1,
        json!({"organization_id": ORG_A, "title": "Support", "metadata": {"category": "support", "tags": ["a", "b"]}}),
    )
    .await;
    let id = t["id"].as_str().unwrap();
    assert!(id.starts_with("thread_") && id.len() == "thread_".len() + 24);
    assert_eq!(t["object"], "thread");
    assert_eq!(t["title"], "Support");
    assert_eq!(
        t["metadata"],
        json!({"category": "support", "tags": ["a", "b"]})
    );
    assert_eq!(t["organization_id"], ORG_A);
    assert_eq!(t["user_id"], "usr_1");
    assert_eq!(t["status"], "inactive");
    assert_eq!(t["state"], "open");
    assert_eq!(t["message_count"], 0);
    assert_eq!(t["visible_in_ui"], true);
    assert_eq!(t["is_pinned"], false);
    assert_eq!(t["space_ids"], json!([]));
    for key in [
        "last_message_at",
        "assistant_id",
        "last_model_used",
        "pinned_at",
    ] {
        assert!(
            t.get(key).is_some_and(Value::is_null),
            "{key} must be present and null"
        );
    }
    let created = t["created_at"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(created).is_ok());
    assert!(created.ends_with('Z') && created.len() == "2025-11-17T10:00:00.000Z".len());
    assert_eq!(t["created_at"], t["updated_at"]);
    // Reading it back gives the same object.
    let got = send(
        &app,
        Method::GET,
        &format!("/v1/threads/{id}"),
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, t);
}

async fn create_accepts_an_empty_body_and_camel_case(backend: Backend) {
    let (_db, _store, app, k) = setup!(backend);
    let req = test::TestRequest::post()
        .uri("/v1/threads")
        .insert_header(("X-API-Key", k.a1.as_str()))
        .insert_header(("Content-Type", "application/json"));
    let r = raw_send(&app, req).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["metadata"], json!({}));
    assert!(r.body["title"].is_null());
    let t = create_thread(
        &app,
        &k.a1,
        json!({"organizationId": ORG_A, "unknown_field": 1}),
    )
    .await;
    assert_eq!(t["organization_id"], ORG_A);
}

async fn create_validates_title_and_metadata_at_the_edges(backend: Backend) {
    let (_db, _store, app, k) = setup!(backend);
    create_thread(
        &app,
        &k.a1,
        json!({"title": "t".repeat(200), "metadata": meta_with_keys(16)}),
    )
    .await;
    let long = send(
        &app,
        Method::POST,
        "/v1/threads",
        Some(&k.a1),
        Some(json!({"title": "t".repeat(201)})),
    )
    .await;
    assert_error(&long, 422, "VALIDATION_ERROR");
    assert_eq!(long.body["detail"][0]["loc"], json!(["body", "title"]));
    let many = send(
        &app,
        Method::POST,
        "/v1/threads",
        Some(&k.a1),
        Some(json!({"metadata": meta_with_keys(17)})),
    )
    .await;
    assert_error(&many, 422, "VALIDATION_ERROR");
    assert_eq!(many.body["detail"][0]["loc"], json!(["body", "metadata"]));
    for bad in [
        json!({"k": "v".repeat(513)}),
        json!({"k".repeat(65): 1}),
        json!({"": 1}),
    ] {
        let r = send(
            &app,
            Method::POST,
            "/v1/threads",
            Some(&k.a1),
            Some(json!({"metadata": bad})),
        )
        .await;
        assert_error(&r, 422, "VALIDATION_ERROR");
    }
    let wrong_type = send(
        &app,
        Method::POST,
        "/v1/threads",
        Some(&k.a1),
        Some(json!({"metadata": [1, 2]})),
    )
    .await;
    assert_error(&wrong_type, 422, "VALIDATION_ERROR");
    assert_eq!(
        wrong_type.body["detail"][0]["loc"],
        json!(["body", "metadata"])
    );
    let wrong_title = send(
        &app,
        Method::POST,
        "/v1/threads",
        Some(&k.a1),
        Some(json!({"title": 5})),
    )
    .await;
    assert_error(&wrong_title, 422, "VALIDATION_ERROR");
    // Nothing was created by the rejected requests.
    let list = send(
        &app,
        Method::GET,
        "/v1/threads?include_total=true",
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(list.body["total"], 1);
}

async fn malformed_and_oversized_bodies_get_the_envelope(backend: Backend) {
    let (_db, _store, app, k) = setup!(backend, Limits::default(), 2048);
    let malformed = test::TestRequest::post()
        .uri("/v1/threads")
        .insert_header(("X-API-Key", k.a1.as_str()))
        .insert_header(("Content-Type", "application/json"))
        .set_payload("{\"title\": ");
    assert_error(&raw_send(&app, malformed).await, 400, "INVALID_JSON");
    let big = json!({"title": "x", "metadata": {"k": "v".repeat(4000)}});
    let r = send(&app, Method::POST, "/v1/threads", Some(&k.a1), Some(big)).await;
    assert_error(&r, 413, "PAYLOAD_TOO_LARGE");
    let t = create_thread(&app, &k.a1, json!({})).await;
    let id = t["id"].as_str().unwrap();
    let bad_patch = test::TestRequest::patch()
        .uri(&format!("/v1/threads/{id}"))
        .insert_header(("X-API-Key", k.a1.as_str()))
        .set_payload("not json");
    assert_error(&raw_send(&app, bad_patch).await, 400, "INVALID_JSON");
    let list = send(
        &app,
        Method::GET,
        "/v1/threads?include_total=true",
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(list.body["total"], 1);
}

async fn authentication_errors(backend: Backend) {
    let (_db, _store, app, _k) = setup!(backend);
    let none = send(&app, Method::GET, "/v1/threads", None, None).await;
    assert_error(&none, 401, "AUTHENTICATION_REQUIRED");
    let fake = format!("sk_{}", "A".repeat(48));
    assert_error(
        &send(&app, Method::GET, "/v1/threads", Some(&fake), None).await,
        401,
        "INVALID_API_KEY",
    );
    assert_error(
        &send(&app, Method::GET, "/v1/threads", Some("garbage"), None).await,
        401,
        "INVALID_API_KEY",
    );
    let jwt = test::TestRequest::get()
        .uri("/v1/threads")
        .insert_header(("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"));
    let r = raw_send(&app, jwt).await;
    assert_error(&r, 401, "TOKEN_INVALID");
    assert!(r.body["error"]["system_message"]
        .as_str()
        .unwrap()
        .contains("not enabled"));
}

async fn all_three_key_headers_work_and_a_revoked_key_stops_at_once(backend: Backend) {
    let (_db, store, app, k) = setup!(backend);
    for (name, value) in [
        ("X-API-Key", k.a1.clone()),
        ("x-api-key", k.a1.clone()),
        ("api-key", k.a1.clone()),
        ("Authorization", format!("Bearer {}", k.a1)),
    ] {
        let req = test::TestRequest::get()
            .uri("/v1/threads")
            .insert_header((name, value));
        assert_eq!(raw_send(&app, req).await.status, 200, "{name}");
    }
    let id = {
        let mut conn = store.conn().unwrap();
        let listed = keys::list(&mut conn).unwrap();
        let row = listed
            .into_iter()
            .find(|r| k.a1.starts_with(&format!("sk_{}", r.prefix)))
            .unwrap();
        assert!(row.last_used_at.is_some(), "use is recorded");
        keys::revoke(&mut conn, &row.id, clock::now()).unwrap();
        row.id
    };
    assert!(id.starts_with("key_"));
    assert_error(
        &send(&app, Method::GET, "/v1/threads", Some(&k.a1), None).await,
        401,
        "INVALID_API_KEY",
    );
    assert_eq!(
        send(&app, Method::GET, "/v1/threads", Some(&k.a2), None)
            .await
            .status,
        200
    );
}

async fn organization_and_visibility_rules(backend: Backend) {
    let (_db, _store, app, k) = setup!(backend);
    let r = send(
        &app,
        Method::POST,
        "/v1/threads",
        Some(&k.a1),
        Some(json!({"organization_id": ORG_B})),
    )
    .await;
    assert_error(&r, 403, "ORGANIZATION_ACCESS_DENIED");
    let r = send(
        &app,
        Method::GET,
        "/v1/threads?organization_id=org_b",
        Some(&k.a1),
        None,
    )
    .await;
    assert_error(&r, 403, "ORGANIZATION_ACCESS_DENIED");
    let r = send(
        &app,
        Method::POST,
        "/v1/threads",
        Some(&k.a1),
        Some(json!({"visible_in_ui": false})),
    )
    .await;
    assert_error(&r, 403, "BEARER_TOKEN_REQUIRED");
    let r = send(
        &app,
        Method::POST,
        "/v1/threads",
        Some(&k.a1),
        Some(json!({"visibleInUi": true})),
    )
    .await;
    assert_error(&r, 403, "BEARER_TOKEN_REQUIRED");
    let t = create_thread(&app, &k.a1, json!({})).await;
    let id = t["id"].as_str().unwrap();
    let r = send(
        &app,
        Method::PATCH,
        &format!("/v1/threads/{id}"),
        Some(&k.a1),
        Some(json!({"visible_in_ui": false})),
    )
    .await;
    assert_error(&r, 403, "BEARER_TOKEN_REQUIRED");
    let got = send(
        &app,
        Method::GET,
        &format!("/v1/threads/{id}?organization_id=org_a"),
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(got.body["visible_in_ui"], true);
    let list = send(
        &app,
        Method::GET,
        "/v1/threads?include_total=true",
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(list.body["total"], 1, "rejected creates changed nothing");
}

async fn assistant_binding_rules(backend: Backend) {
    let (_db, store, app, k) = setup!(backend);
    {
        let mut conn = store.conn().unwrap();
        let now = chrono::Utc::now().naive_utc();
        for (id, org) in [
            ("asst_one", ORG_A),
            ("asst_two", ORG_A),
            ("asst_other", ORG_B),
        ] {
            tenancy::insert_assistant(
                &mut conn,
                &AssistantRow {
                    id: id.into(),
                    organization_id: org.into(),
                    created_by: "usr_1".into(),
                    name: id.into(),
                    instructions: None,
                    model: None,
                    temperature: None,
                    metadata: "{}".into(),
                    created_at: now,
                    updated_at: now,
                },
            )
            .unwrap();
        }
    }
    for missing in ["asst_nope", "asst_other", "not an id"] {
        let r = send(
            &app,
            Method::POST,
            "/v1/threads",
            Some(&k.a1),
            Some(json!({"assistant_id": missing})),
        )
        .await;
        assert_error(&r, 404, "ASSISTANT_NOT_FOUND");
    }
    let t = create_thread(&app, &k.a1, json!({"assistantId": "asst_one"})).await;
    assert_eq!(t["assistant_id"], "asst_one");
    create_thread(&app, &k.a1, json!({})).await;
    let filtered = send(
        &app,
        Method::GET,
        "/v1/threads?assistant_id=asst_one",
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(filtered.body["data"].as_array().unwrap().len(), 1);
    let id = t["id"].as_str().unwrap();
    let uri = format!("/v1/threads/{id}");
    let r = send(
        &app,
        Method::PATCH,
        &uri,
        Some(&k.a1),
        Some(json!({"assistant_id": "asst_two"})),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["assistant_id"], "asst_two");
    let r = send(
        &app,
        Method::PATCH,
        &uri,
        Some(&k.a1),
        Some(json!({"assistant_id": "asst_other"})),
    )
    .await;
    assert_error(&r, 404, "ASSISTANT_NOT_FOUND");
    // Once the thread has a message the binding is locked.
    {
        let mut conn = store.conn().unwrap();
        let scope = Scope {
            organization_id: OrganizationId::parse(ORG_A).unwrap(),
            user_id: UserId::parse("usr_1").unwrap(),
        };
        threads::update(&mut conn, &scope, id, |t| {
            let mut t = t.clone();
            t.message_count = 1;
            Ok(t)
        })
        .unwrap();
    }
    let r = send(
        &app,
        Method::PATCH,
        &uri,
        Some(&k.a1),
        Some(json!({"assistant_id": "asst_one", "title": "x"})),
    )
    .await;
    assert_error(&r, 400, "ASSISTANT_BINDING_LOCKED");
    let got = send(&app, Method::GET, &uri, Some(&k.a1), None).await;
    assert_eq!(got.body["assistant_id"], "asst_two");
    assert!(got.body["title"].is_null());
}

async fn threads_are_invisible_to_other_users_and_organizations(backend: Backend) {
    let (_db, _store, app, k) = setup!(backend);
    let t = create_thread(&app, &k.a1, json!({"title": "mine", "metadata": {"a": 1}})).await;
    let id = t["id"].as_str().unwrap();
    let uri = format!("/v1/threads/{id}");
    for other in [&k.a2, &k.b1] {
        assert_error(
            &send(&app, Method::GET, &uri, Some(other), None).await,
            404,
            "THREAD_NOT_FOUND",
        );
        let r = send(
            &app,
            Method::PATCH,
            &uri,
            Some(other),
            Some(json!({"title": "stolen", "metadata": {"a": null}})),
        )
        .await;
        assert_error(&r, 404, "THREAD_NOT_FOUND");
        assert_error(
            &send(&app, Method::POST, &format!("{uri}/pin"), Some(other), None).await,
            404,
            "THREAD_NOT_FOUND",
        );
        assert_error(
            &send(
                &app,
                Method::POST,
                &format!("{uri}/unpin"),
                Some(other),
                None,
            )
            .await,
            404,
            "THREAD_NOT_FOUND",
        );
        assert_error(
            &send(&app, Method::DELETE, &uri, Some(other), None).await,
            404,
            "THREAD_NOT_FOUND",
        );
        let list = send(
            &app,
            Method::GET,
            "/v1/threads?include_deleted=true",
            Some(other),
            None,
        )
        .await;
        assert_eq!(list.body["data"], json!([]));
        let all = send(&app, Method::DELETE, "/v1/threads", Some(other), None).await;
        assert_eq!(all.body["deleted"], 0);
    }
    let r = send(
        &app,
        Method::GET,
        "/v1/threads/thread_doesnotexist",
        Some(&k.a1),
        None,
    )
    .await;
    assert_error(&r, 404, "THREAD_NOT_FOUND");
    assert_eq!(r.body["error"]["message"], "Thread not found");
    let got = send(&app, Method::GET, &uri, Some(&k.a1), None).await;
    assert_eq!(got.body, t, "nothing changed");
}

async fn walk<S, B>(app: &S, key: &str, query: &str) -> (Vec<String>, usize)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let cursor = after.map(|a| format!("&after={a}")).unwrap_or_default();
        let r = send(
            app,
            Method::GET,
            &format!("/v1/threads?limit=2{query}{cursor}"),
            Some(key),
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        pages += 1;
        let data = r.body["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        assert_eq!(r.body["limit"], 2);
        assert!(r.body.get("total").is_some_and(Value::is_null));
        if let Some(first) = data.first() {
            assert_eq!(r.body["first_id"], first["id"]);
            assert_eq!(r.body["last_id"], data.last().unwrap()["id"]);
        }
        ids.extend(data.iter().map(|t| t["id"].as_str().unwrap().to_string()));
        if !r.body["has_more"].as_bool().unwrap() {
            return (ids, pages);
        }
        after = r.body["last_id"].as_str().map(str::to_string);
    }
}

async fn listing_walks_pages_without_duplicates_or_skips(backend: Backend) {
    let (_db, _store, app, k) = setup!(backend);
    let mut created = Vec::new();
    for i in 0..5 {
        let t = create_thread(&app, &k.a1, json!({"title": format!("t{i}")})).await;
        created.push(t["id"].as_str().unwrap().to_string());
    }
    create_thread(&app, &k.a2, json!({})).await;
    let (desc, pages) = walk(&app, &k.a1, "").await;
    let mut newest_first = created.clone();
    newest_first.reverse();
    assert_eq!(desc, newest_first);
    assert_eq!(pages, 3);
    let (asc, _) = walk(&app, &k.a1, "&order=asc").await;
    assert_eq!(asc, created);
    // `before` pages back towards the newest.
    let r = send(
        &app,
        Method::GET,
        &format!("/v1/threads?limit=2&before={}", created[1]),
        Some(&k.a1),
        None,
    )
    .await;
    let ids: Vec<_> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![created[3].as_str(), created[2].as_str()]);
    assert_eq!(r.body["has_more"], true);
    // Unknown or foreign cursors are rejected.
    let foreign = send(&app, Method::GET, "/v1/threads", Some(&k.a2), None).await;
    let foreign_id = foreign.body["data"][0]["id"].as_str().unwrap().to_string();
    for cursor in ["thread_nope".to_string(), foreign_id] {
        let r = send(
            &app,
            Method::GET,
            &format!("/v1/threads?after={cursor}"),
            Some(&k.a1),
            None,
        )
        .await;
        assert_error(&r, 400, "INVALID_REQUEST");
    }
    let both = send(
        &app,
        Method::GET,
        &format!("/v1/threads?after={}&before={}", created[0], created[1]),
        Some(&k.a1),
        None,
    )
    .await;
    assert_error(&both, 400, "INVALID_REQUEST");
}

async fn list_query_validation_filters_and_total(backend: Backend) {
    let (_db, _store, app, k) = setup!(backend);
    for q in [
        "limit=0",
        "limit=101",
        "limit=abc",
        "order=sideways",
        "is_pinned=maybe",
    ] {
        let r = send(
            &app,
            Method::GET,
            &format!("/v1/threads?{q}"),
            Some(&k.a1),
            None,
        )
        .await;
        assert_error(&r, 422, "VALIDATION_ERROR");
        assert_eq!(r.body["detail"][0]["loc"][0], "query", "{q}");
    }
    let ok = send(
        &app,
        Method::GET,
        "/v1/threads?limit=100",
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(ok.status, 200);
    let ok = send(&app, Method::GET, "/v1/threads?limit=1", Some(&k.a1), None).await;
    assert_eq!(ok.status, 200);
    let default = send(&app, Method::GET, "/v1/threads", Some(&k.a1), None).await;
    assert_eq!(default.body["limit"], 20);
    assert_eq!(default.body["object"], "list");
    assert!(default.body["first_id"].is_null() && default.body["last_id"].is_null());
    let a = create_thread(&app, &k.a1, json!({})).await;
    create_thread(&app, &k.a1, json!({})).await;
    create_thread(&app, &k.a1, json!({})).await;
    let pin = send(
        &app,
        Method::POST,
        &format!("/v1/threads/{}/pin", a["id"].as_str().unwrap()),
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(pin.status, 200);
    let total = send(
        &app,
        Method::GET,
        "/v1/threads?limit=1&includeTotal=true",
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(total.body["total"], 3);
    assert_eq!(total.body["data"].as_array().unwrap().len(), 1);
    let pinned = send(
        &app,
        Method::GET,
        "/v1/threads?isPinned=true&include_total=true",
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(pinned.body["total"], 1);
    assert_eq!(pinned.body["data"][0]["id"], a["id"]);
    let unpinned = send(
        &app,
        Method::GET,
        "/v1/threads?is_pinned=false",
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(unpinned.body["data"].as_array().unwrap().len(), 2);
    let visible = send(
        &app,
        Method::GET,
        "/v1/threads?visible_in_ui=true",
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(visible.body["data"].as_array().unwrap().len(), 3);
    let hidden = send(
        &app,
        Method::GET,
        "/v1/threads?visibleInUi=false",
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(hidden.body["data"], json!([]));
}

async fn patch_merges_metadata_and_handles_nulls(backend: Backend) {
    let (_db, _store, app, k) = setup!(backend);
    let t = create_thread(
        &app,
        &k.a1,
        json!({"title": "Original", "metadata": {"a": "1", "b": "2"}}),
    )
    .await;
    let uri = format!("/v1/threads/{}", t["id"].as_str().unwrap());
    let r = send(
        &app,
        Method::PATCH,
        &uri,
        Some(&k.a1),
        Some(json!({"metadata": {"b": null, "c": "3"}})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["metadata"], json!({"a": "1", "c": "3"}));
    assert_eq!(r.body["title"], "Original");
    assert!(r.body["updated_at"].as_str().unwrap() >= t["updated_at"].as_str().unwrap());
    assert_eq!(r.body["created_at"], t["created_at"]);
    // Explicit nulls leave fields as they are.
    let r = send(
        &app,
        Method::PATCH,
        &uri,
        Some(&k.a1),
        Some(json!({"title": null, "metadata": null, "assistant_id": null, "state": null})),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["title"], "Original");
    assert_eq!(r.body["metadata"], json!({"a": "1", "c": "3"}));
    let r = send(
        &app,
        Method::PATCH,
        &uri,
        Some(&k.a1),
        Some(json!({"title": "New"})),
    )
    .await;
    assert_eq!(r.body["title"], "New");
    let r = send(
        &app,
        Method::PATCH,
        &uri,
        Some(&k.a1),
        Some(json!({"title": ""})),
    )
    .await;
    assert!(r.body["title"].is_null());
    let got = send(&app, Method::GET, &uri, Some(&k.a1), None).await;
    assert_eq!(got.body, r.body);
}

async fn patch_state_transitions(backend: Backend) {
    let (_db, _store, app, k) = setup!(backend);
    let t = create_thread(&app, &k.a1, json!({})).await;
    let uri = format!("/v1/threads/{}", t["id"].as_str().unwrap());
    for state in [
        "open", "locked", "locked", "open", "locked", "archived", "archived",
    ] {
        let r = send(
            &app,
            Method::PATCH,
            &uri,
            Some(&k.a1),
            Some(json!({"state": state})),
        )
        .await;
        assert_eq!(r.status, 200, "to {state}: {}", r.body);
        assert_eq!(r.body["state"], state);
    }
    for state in ["open", "locked"] {
        let r = send(
            &app,
            Method::PATCH,
            &uri,
            Some(&k.a1),
            Some(json!({"state": state})),
        )
        .await;
        assert_error(&r, 400, "INVALID_STATE_TRANSITION");
    }
    let r = send(
        &app,
        Method::PATCH,
        &uri,
        Some(&k.a1),
        Some(json!({"state": "deleted"})),
    )
    .await;
    assert_error(&r, 422, "VALIDATION_ERROR");
    // Title and metadata still change on an archived thread.
    let r = send(
        &app,
        Method::PATCH,
        &uri,
        Some(&k.a1),
        Some(json!({"title": "Archive", "metadata": {"k": "v"}})),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["state"], "archived");
    assert_eq!(r.body["title"], "Archive");
    let pin = send(&app, Method::POST, &format!("{uri}/pin"), Some(&k.a1), None).await;
    assert_eq!(pin.status, 200);
}

async fn a_rejected_patch_changes_nothing(backend: Backend) {
    let (_db, _store, app, k) = setup!(backend);
    let t = create_thread(
        &app,
        &k.a1,
        json!({"title": "Keep", "metadata": meta_with_keys(16)}),
    )
    .await;
    let uri = format!("/v1/threads/{}", t["id"].as_str().unwrap());
    let r = send(
        &app,
        Method::PATCH,
        &uri,
        Some(&k.a1),
        Some(json!({"title": "Changed", "metadata": {"extra": 1}})),
    )
    .await;
    assert_error(&r, 422, "VALIDATION_ERROR");
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "metadata"]));
    let r = send(
        &app,
        Method::PATCH,
        &uri,
        Some(&k.a1),
        Some(json!({"title": "t".repeat(201), "metadata": {"k0": null}})),
    )
    .await;
    assert_error(&r, 422, "VALIDATION_ERROR");
    let archived = send(
        &app,
        Method::PATCH,
        &uri,
        Some(&k.a1),
        Some(json!({"state": "archived"})),
    )
    .await;
    assert_eq!(archived.status, 200);
    let r = send(
        &app,
        Method::PATCH,
        &uri,
        Some(&k.a1),
        Some(json!({"state": "open", "title": "Changed", "metadata": {"k0": null}})),
    )
    .await;
    assert_error(&r, 400, "INVALID_STATE_TRANSITION");
    let got = send(&app, Method::GET, &uri, Some(&k.a1), None).await;
    assert_eq!(got.body, archived.body);
    assert_eq!(got.body["title"], "Keep");
    assert_eq!(got.body["metadata"].as_object().unwrap().len(), 16);
}

async fn delete_is_soft_and_answers_204(backend: Backend) {
    let (_db, _store, app, k) = setup!(backend);
    let t = create_thread(&app, &k.a1, json!({})).await;
    let keep = create_thread(&app, &k.a1, json!({})).await;
    let uri = format!("/v1/threads/{}", t["id"].as_str().unwrap());
    let r = send(&app, Method::DELETE, &uri, Some(&k.a1), None).await;
    assert_eq!(r.status, 204);
    assert!(r.raw.is_empty());
    assert_error(
        &send(&app, Method::GET, &uri, Some(&k.a1), None).await,
        404,
        "THREAD_NOT_FOUND",
    );
    assert_error(
        &send(&app, Method::DELETE, &uri, Some(&k.a1), None).await,
        404,
        "THREAD_NOT_FOUND",
    );
    assert_error(
        &send(
            &app,
            Method::PATCH,
            &uri,
            Some(&k.a1),
            Some(json!({"title": "x"})),
        )
        .await,
        404,
        "THREAD_NOT_FOUND",
    );
    assert_error(
        &send(&app, Method::POST, &format!("{uri}/pin"), Some(&k.a1), None).await,
        404,
        "THREAD_NOT_FOUND",
    );
    let live = send(&app, Method::GET, "/v1/threads", Some(&k.a1), None).await;
    assert_eq!(live.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(live.body["data"][0]["id"], keep["id"]);
    assert!(live.body["data"][0].get("deleted_at").is_none());
    let all = send(
        &app,
        Method::GET,
        "/v1/threads?include_deleted=true",
        Some(&k.a1),
        None,
    )
    .await;
    let data = all.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    let deleted = data.iter().find(|d| d["id"] == t["id"]).unwrap();
    assert!(deleted["deleted_at"].is_string());
}

async fn delete_all_deletes_only_the_callers_threads(backend: Backend) {
    let (_db, _store, app, k) = setup!(backend);
    for _ in 0..3 {
        create_thread(&app, &k.a1, json!({})).await;
    }
    let other = create_thread(&app, &k.a2, json!({})).await;
    let foreign = create_thread(&app, &k.b1, json!({})).await;
    let r = send(
        &app,
        Method::DELETE,
        "/v1/threads?organization_id=org_a",
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["deleted"], 3);
    assert!(r.body["message"].as_str().is_some_and(|m| !m.is_empty()));
    let again = send(&app, Method::DELETE, "/v1/threads", Some(&k.a1), None).await;
    assert_eq!(again.body["deleted"], 0);
    let denied = send(
        &app,
        Method::DELETE,
        "/v1/threads?organization_id=org_b",
        Some(&k.a1),
        None,
    )
    .await;
    assert_error(&denied, 403, "ORGANIZATION_ACCESS_DENIED");
    for (key, t) in [(&k.a2, &other), (&k.b1, &foreign)] {
        let got = send(
            &app,
            Method::GET,
            &format!("/v1/threads/{}", t["id"].as_str().unwrap()),
            Some(key),
            None,
        )
        .await;
        assert_eq!(got.status, 200);
    }
}

async fn pin_and_unpin_with_the_limit(backend: Backend) {
    let limits = Limits {
        max_pinned_threads: 2,
        ..Limits::default()
    };
    let (_db, _store, app, k) = setup!(backend, limits, skein_api::state::DEFAULT_MAX_BODY_BYTES);
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            create_thread(&app, &k.a1, json!({})).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let first = send(
        &app,
        Method::POST,
        &format!("/v1/threads/{}/pin", ids[0]),
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body["id"], ids[0].as_str());
    assert_eq!(first.body["is_pinned"], true);
    assert!(first.body["pinned_at"].is_string());
    assert!(first.body["message"].is_string());
    let again = send(
        &app,
        Method::POST,
        &format!("/v1/threads/{}/pin", ids[0]),
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(again.body["pinned_at"], first.body["pinned_at"]);
    send(
        &app,
        Method::POST,
        &format!("/v1/threads/{}/pin", ids[1]),
        Some(&k.a1),
        None,
    )
    .await;
    let over = send(
        &app,
        Method::POST,
        &format!("/v1/threads/{}/pin", ids[2]),
        Some(&k.a1),
        None,
    )
    .await;
    assert_error(&over, 400, "PIN_LIMIT");
    let got = send(
        &app,
        Method::GET,
        &format!("/v1/threads/{}", ids[2]),
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(got.body["is_pinned"], false);
    let got = send(
        &app,
        Method::GET,
        &format!("/v1/threads/{}", ids[0]),
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(got.body["is_pinned"], true);
    assert_eq!(got.body["pinned_at"], first.body["pinned_at"]);
    let un = send(
        &app,
        Method::POST,
        &format!("/v1/threads/{}/unpin", ids[0]),
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(un.status, 200);
    assert_eq!(un.body["is_pinned"], false);
    assert!(un.body["pinned_at"].is_null());
    let now_ok = send(
        &app,
        Method::POST,
        &format!("/v1/threads/{}/pin", ids[2]),
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(now_ok.status, 200);
    // The pins of another user do not count.
    let theirs = create_thread(&app, &k.a2, json!({})).await;
    let r = send(
        &app,
        Method::POST,
        &format!("/v1/threads/{}/pin", theirs["id"].as_str().unwrap()),
        Some(&k.a2),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
}

async fn service_endpoints_and_unknown_routes(backend: Backend) {
    let (_db, _store, app, k) = setup!(backend);
    let h = send(&app, Method::GET, "/healthz", None, None).await;
    assert_eq!((h.status, h.body["status"].as_str()), (200, Some("ok")));
    let r = send(&app, Method::GET, "/readyz", None, None).await;
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("ready")));
    assert!(r.headers.contains_key("x-request-id"));
    send(&app, Method::GET, "/v1/threads", Some(&k.a1), None).await;
    let m = send(&app, Method::GET, "/metrics", None, None).await;
    let text = String::from_utf8(m.raw).unwrap();
    assert!(
        text.contains("skein_http_requests_total{class=\"2xx\"}"),
        "{text}"
    );
    assert!(text.contains(&format!("backend=\"{}\"", backend.name())));
    let nf = send(&app, Method::GET, "/v2/nothing", Some(&k.a1), None).await;
    assert_error(&nf, 404, "NOT_FOUND");
    // An incoming request id is echoed so callers can correlate.
    let req = test::TestRequest::get()
        .uri("/v1/threads/none")
        .insert_header(("X-API-Key", k.a1.as_str()))
        .insert_header(("X-Request-Id", "client-42"));
    let r = raw_send(&app, req).await;
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
    let (_db, _store, app, _k) = setup!(Backend::Sqlite);
    let served = send(&app, Method::GET, "/openapi.json", None, None).await;
    assert_eq!(served.body, committed);
    let docs = send(&app, Method::GET, "/docs/", None, None).await;
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

async fn messages_append_list_update_delete_keep_the_thread_exact(backend: Backend) {
    let (_db, _store, app, k) = setup!(backend);
    let t = create_thread(&app, &k.a1, json!({})).await;
    let tid = t["id"].as_str().unwrap();
    let base = format!("/v1/threads/{tid}/messages");
    let first = send(
        &app,
        Method::POST,
        &base,
        Some(&k.a1),
        Some(json!({"role": "user", "content": "Hello there", "metadata": {"src": "import"}})),
    )
    .await;
    assert_eq!(first.status, 201, "{}", first.body);
    let m = &first.body;
    assert!(m["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(m["object"], "thread.message");
    assert_eq!(m["thread_id"], tid);
    assert_eq!(m["role"], "user");
    assert_eq!(m["content"], "Hello there");
    assert_eq!(m["metadata"], json!({"src": "import"}));
    assert_eq!(m["attachments"], json!([]));
    assert!(m["response_id"].is_null() && m["model"].is_null());
    assert!(m["created_at"].as_str().unwrap().ends_with('Z'));
    // Blocks and texts are accepted and joined.
    let blocks = send(&app, Method::POST, &base, Some(&k.a1), Some(json!({"role": "assistant", "content": [{"type": "output_text", "text": "Hi!"}, {"type": "output_text", "text": "How can I help?"}]}))).await;
    assert_eq!(blocks.status, 201);
    assert_eq!(blocks.body["content"], "Hi!\nHow can I help?");
    let texts = send(
        &app,
        Method::POST,
        &base,
        Some(&k.a1),
        Some(json!({"role": "user", "texts": [{"text": "third"}]})),
    )
    .await;
    assert_eq!(texts.body["content"], "third");

    let thread = send(
        &app,
        Method::GET,
        &format!("/v1/threads/{tid}"),
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(thread.body["message_count"], 3);
    assert_eq!(thread.body["last_message_at"], texts.body["created_at"]);

    let page = send(
        &app,
        Method::GET,
        &format!("{base}?limit=2"),
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(page.status, 200);
    assert_eq!(page.body["object"], "list");
    let contents: Vec<_> = page.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["Hello there", "Hi!\nHow can I help?"]);
    assert_eq!(page.body["has_more"], true);
    let rest = send(
        &app,
        Method::GET,
        &format!(
            "{base}?limit=2&after={}",
            page.body["last_id"].as_str().unwrap()
        ),
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(rest.body["data"][0]["content"], "third");
    assert_eq!(rest.body["has_more"], false);
    let desc = send(
        &app,
        Method::GET,
        &format!("{base}?order=desc&output_mode=text"),
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(desc.body["data"][0]["content"], "third");

    let mid = m["id"].as_str().unwrap();
    let patched = send(
        &app,
        Method::PATCH,
        &format!("{base}/{mid}"),
        Some(&k.a1),
        Some(json!({"content": "Hello again", "metadata": {"src": null, "edited": true}})),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["content"], "Hello again");
    assert_eq!(patched.body["metadata"], json!({"edited": true}));
    assert!(patched.body["updated_at"].as_str().unwrap() >= m["updated_at"].as_str().unwrap());

    let newest = texts.body["id"].as_str().unwrap();
    let del = send(
        &app,
        Method::DELETE,
        &format!("{base}/{newest}"),
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(del.status, 200);
    assert_eq!(
        del.body,
        json!({"id": newest, "deleted": true, "object": "thread.message.deleted"})
    );
    let again = send(
        &app,
        Method::DELETE,
        &format!("{base}/{newest}"),
        Some(&k.a1),
        None,
    )
    .await;
    assert_error(&again, 404, "MESSAGE_NOT_FOUND");
    let thread = send(
        &app,
        Method::GET,
        &format!("/v1/threads/{tid}"),
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(thread.body["message_count"], 2);
    assert_eq!(thread.body["last_message_at"], blocks.body["created_at"]);
    let missing = send(
        &app,
        Method::PATCH,
        &format!("{base}/msg_nope"),
        Some(&k.a1),
        Some(json!({"content": "x"})),
    )
    .await;
    assert_error(&missing, 404, "MESSAGE_NOT_FOUND");
    let bad_cursor = send(
        &app,
        Method::GET,
        &format!("{base}?after=msg_nope"),
        Some(&k.a1),
        None,
    )
    .await;
    assert_error(&bad_cursor, 400, "INVALID_REQUEST");
}

async fn message_writes_obey_the_lifecycle_and_the_cap(backend: Backend) {
    let limits = Limits {
        max_messages_per_thread: 3,
        ..Limits::default()
    };
    let (_db, store, app, k) = setup!(backend, limits, skein_api::state::DEFAULT_MAX_BODY_BYTES);
    let t = create_thread(&app, &k.a1, json!({})).await;
    let tid = t["id"].as_str().unwrap();
    let base = format!("/v1/threads/{tid}/messages");
    let m = send(
        &app,
        Method::POST,
        &base,
        Some(&k.a1),
        Some(json!({"role": "user", "content": "one"})),
    )
    .await;
    let mid = m.body["id"].as_str().unwrap().to_string();
    for (state, code) in [("locked", "THREAD_LOCKED"), ("archived", "THREAD_ARCHIVED")] {
        let r = send(
            &app,
            Method::PATCH,
            &format!("/v1/threads/{tid}"),
            Some(&k.a1),
            Some(json!({"state": state})),
        )
        .await;
        assert_eq!(r.status, 200);
        assert_error(
            &send(
                &app,
                Method::POST,
                &base,
                Some(&k.a1),
                Some(json!({"role": "user", "content": "x"})),
            )
            .await,
            423,
            code,
        );
        assert_error(
            &send(
                &app,
                Method::PATCH,
                &format!("{base}/{mid}"),
                Some(&k.a1),
                Some(json!({"content": "x"})),
            )
            .await,
            423,
            code,
        );
        assert_error(
            &send(
                &app,
                Method::DELETE,
                &format!("{base}/{mid}"),
                Some(&k.a1),
                None,
            )
            .await,
            423,
            code,
        );
        // Reading still works.
        let list = send(&app, Method::GET, &base, Some(&k.a1), None).await;
        assert_eq!(list.body["data"][0]["content"], "one");
    }
    let t2 = create_thread(&app, &k.a1, json!({})).await;
    let base2 = format!("/v1/threads/{}/messages", t2["id"].as_str().unwrap());
    for i in 0..3 {
        let r = send(
            &app,
            Method::POST,
            &base2,
            Some(&k.a1),
            Some(json!({"role": "user", "content": format!("m{i}")})),
        )
        .await;
        assert_eq!(r.status, 201);
    }
    let over = send(
        &app,
        Method::POST,
        &base2,
        Some(&k.a1),
        Some(json!({"role": "user", "content": "too many"})),
    )
    .await;
    assert_error(&over, 400, "THREAD_MESSAGE_LIMIT");
    let t2 = send(
        &app,
        Method::GET,
        &format!("/v1/threads/{}", t2["id"].as_str().unwrap()),
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(t2.body["message_count"], 3);
    // With messages, the assistant binding is locked.
    insert_assistant(&store, "asst_late", ORG_A);
    let uri = format!("/v1/threads/{}", t2.body["id"].as_str().unwrap());
    let r = send(
        &app,
        Method::PATCH,
        &uri,
        Some(&k.a1),
        Some(json!({"assistant_id": "asst_late"})),
    )
    .await;
    assert_error(&r, 400, "ASSISTANT_BINDING_LOCKED");
}

async fn messages_are_invisible_to_others_and_validated(backend: Backend) {
    let (_db, _store, app, k) = setup!(backend);
    let t = create_thread(&app, &k.a1, json!({})).await;
    let tid = t["id"].as_str().unwrap();
    let base = format!("/v1/threads/{tid}/messages");
    let m = send(
        &app,
        Method::POST,
        &base,
        Some(&k.a1),
        Some(json!({"role": "user", "content": "secret"})),
    )
    .await;
    let mid = m.body["id"].as_str().unwrap();
    for other in [&k.a2, &k.b1] {
        assert_error(
            &send(&app, Method::GET, &base, Some(other), None).await,
            404,
            "THREAD_NOT_FOUND",
        );
        assert_error(
            &send(
                &app,
                Method::POST,
                &base,
                Some(other),
                Some(json!({"role": "user", "content": "x"})),
            )
            .await,
            404,
            "THREAD_NOT_FOUND",
        );
        assert_error(
            &send(
                &app,
                Method::PATCH,
                &format!("{base}/{mid}"),
                Some(other),
                Some(json!({"content": "x"})),
            )
            .await,
            404,
            "THREAD_NOT_FOUND",
        );
        assert_error(
            &send(
                &app,
                Method::DELETE,
                &format!("{base}/{mid}"),
                Some(other),
                None,
            )
            .await,
            404,
            "THREAD_NOT_FOUND",
        );
    }
    for (body, loc) in [
        (json!({"role": "system", "content": "x"}), "role"),
        (json!({"role": "developer", "content": "x"}), "role"),
        (json!({"role": "user"}), "content"),
        (json!({"role": "user", "content": ""}), "content"),
        (
            json!({"role": "user", "content": [{"type": "image", "url": "x"}]}),
            "content",
        ),
    ] {
        let r = send(&app, Method::POST, &base, Some(&k.a1), Some(body)).await;
        assert_error(&r, 422, "VALIDATION_ERROR");
        assert_eq!(r.body["detail"][0]["loc"], json!(["body", loc]));
    }
    let r = send(
        &app,
        Method::POST,
        &base,
        Some(&k.a1),
        Some(json!({"content": "no role"})),
    )
    .await;
    assert_error(&r, 422, "VALIDATION_ERROR");
    for q in ["limit=0", "order=up", "output_mode=fancy"] {
        assert_error(
            &send(&app, Method::GET, &format!("{base}?{q}"), Some(&k.a1), None).await,
            422,
            "VALIDATION_ERROR",
        );
    }
    let thread = send(
        &app,
        Method::GET,
        &format!("/v1/threads/{tid}"),
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(
        thread.body["message_count"], 1,
        "rejected writes changed nothing"
    );
    // A deleted thread's messages are gone at once.
    send(
        &app,
        Method::DELETE,
        &format!("/v1/threads/{tid}"),
        Some(&k.a1),
        None,
    )
    .await;
    assert_error(
        &send(&app, Method::GET, &base, Some(&k.a1), None).await,
        404,
        "THREAD_NOT_FOUND",
    );
}

fn insert_assistant(store: &skein_persistence::Store, id: &str, org: &str) {
    let mut conn = store.conn().unwrap();
    let now = chrono::Utc::now().naive_utc();
    tenancy::insert_assistant(
        &mut conn,
        &AssistantRow {
            id: id.into(),
            organization_id: org.into(),
            created_by: "usr_1".into(),
            name: id.into(),
            instructions: None,
            model: None,
            temperature: None,
            metadata: "{}".into(),
            created_at: now,
            updated_at: now,
        },
    )
    .unwrap();
}
