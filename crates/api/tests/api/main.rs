//! The Threads API through the real app builder, on SQLite and PostgreSQL,
//! each test with its own fresh database.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[macro_use]
mod common;
mod assistants;
mod edge;
mod isolation;
mod ratelimit;
mod retention;
mod tokens;

use common::*;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::Method;
use actix_web::test;
use serde_json::{json, Value};
use skein_api::AppState;
use skein_domain::{clock, Limits, OrganizationId, UserId};
use skein_persistence::rows::AssistantRow;
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
    two_turns_inject_history_and_create_the_thread_on_first_use,
    thread_less_responses_store_nothing,
    response_requests_are_validated_and_change_nothing,
    responses_respect_the_lifecycle_and_apply_thread_state,
    a_busy_thread_answers_409_and_an_expired_lease_does_not_block,
    history_is_cut_to_the_context_window,
    streaming_sends_frames_and_saves_the_turn,
    provider_failures_save_nothing_and_release_the_lease,
    of_two_concurrent_responses_exactly_one_wins,
    cancel_quickly_keeps_nothing_and_later_keeps_the_partial_answer,
    a_foreign_thread_id_is_not_found,
    previous_response_id_rebuilds_the_conversation,
    generate_name_titles_the_thread,
    the_bound_assistant_applies_unless_the_request_overrides_it,
    heartbeats_fill_the_silence_of_a_stream,
    a_turn_that_cannot_fit_under_the_cap_is_refused_before_the_model_runs,
    a_client_that_disconnects_mid_stream_does_not_lose_the_turn,
);

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
            live: None,
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

// ---------------------------------------------------------------------------
// Model responses.

/// A fake OpenAI-compatible upstream on a real loopback port. The requested
/// model name picks the behaviour: `fake-ok` streams "fake answer",
/// `fake-500` fails, `hang` never answers, `fake-broken` stops mid-stream,
/// `fake-gated` signals `received` and waits for `gate`, `fake-slow` sends
/// one delta and then stalls.
mod fake {
    use actix_web::{web, App, HttpResponse, HttpServer};
    use serde_json::{json, Value};
    use std::sync::Arc;
    use tokio::sync::{mpsc, Notify};

    pub struct Upstream {
        pub base_url: String,
        pub received: mpsc::UnboundedReceiver<Value>,
        pub gate: Arc<Notify>,
    }

    struct Shared {
        received: mpsc::UnboundedSender<Value>,
        gate: Arc<Notify>,
    }

    fn chunk(text: &str) -> web::Bytes {
        web::Bytes::from(format!(
            "data: {}\n\n",
            json!({"choices": [{"index": 0, "delta": {"content": text}}]})
        ))
    }

    fn sse<S>(s: S) -> HttpResponse
    where
        S: futures_util::Stream<Item = Result<web::Bytes, actix_web::Error>> + 'static,
    {
        HttpResponse::Ok()
            .content_type("text/event-stream")
            .streaming(s)
    }

    async fn completions(body: web::Json<Value>, shared: web::Data<Shared>) -> HttpResponse {
        let model = body["model"].as_str().unwrap_or_default().to_string();
        let _ = shared.received.send(body.0.clone());
        if model == "fake-gated" {
            shared.gate.notified().await;
        }
        if body["stream"] != json!(true) && model == "fake-ok" {
            return HttpResponse::Ok().json(json!({
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "\"Password Reset Help\""}}],
                "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}
            }));
        }
        match model.as_str() {
            "fake-500" => HttpResponse::InternalServerError().body("model exploded"),
            "hang" => futures_util::future::pending().await,
            "fake-broken" => sse(async_stream::stream! {
                yield Ok::<_, actix_web::Error>(chunk("half "));
            }),
            "fake-slow" => sse(async_stream::stream! {
                yield Ok::<_, actix_web::Error>(chunk("partial answer"));
                futures_util::future::pending::<()>().await;
            }),
            _ => sse(async_stream::stream! {
                yield Ok::<_, actix_web::Error>(chunk("fake "));
                yield Ok(chunk("answer"));
                yield Ok(web::Bytes::from("data: [DONE]\n\n"));
            }),
        }
    }

    pub fn start() -> Upstream {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::unbounded_channel();
        let gate = Arc::new(Notify::new());
        let shared = web::Data::new(Shared {
            received: tx,
            gate: gate.clone(),
        });
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                HttpServer::new(move || {
                    App::new()
                        .app_data(shared.clone())
                        .route("/v1/chat/completions", web::post().to(completions))
                })
                .workers(1)
                .disable_signals()
                .listen(listener)
                .unwrap()
                .run()
                .await
            })
        });
        Upstream {
            base_url,
            received: rx,
            gate,
        }
    }
}

/// Routes `fake-*` to the fake upstream, `hang` to it with a short timeout,
/// everything else to echo with the given context window.
fn routing(upstream: &str, echo_window: u32) -> skein_providers::Router {
    let cfg: skein_providers::RoutingConfig = serde_json::from_value(json!({
        "providers": {
            "echo": {"kind": "echo"},
            "fake": {"kind": "openai", "base_url": upstream, "timeout_secs": 30.0},
            "fake_fast": {"kind": "openai", "base_url": upstream, "timeout_secs": 0.3}
        },
        "models": [
            {"pattern": "hang", "provider": "fake_fast"},
            {"pattern": "fake-*", "provider": "fake"}
        ],
        "default": {"provider": "echo", "context_window": echo_window}
    }))
    .unwrap();
    skein_providers::Router::from_config(&cfg).unwrap()
}

fn user(text: &str) -> Value {
    json!({"role": "user", "texts": [{"text": text}]})
}

fn output_text(r: &Value) -> String {
    r["output"][0]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn thread_state<S, B>(app: &S, key: &str, id: &str) -> Value
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    send(
        app,
        Method::GET,
        &format!("/v1/threads/{id}"),
        Some(key),
        None,
    )
    .await
    .body
}

async fn two_turns_inject_history_and_create_the_thread_on_first_use(backend: Backend) {
    let (_db, _store, app, k) = setup!(backend);
    let first = send(
        &app,
        Method::POST,
        "/v1/model/response",
        Some(&k.a1),
        Some(json!({
            "model": "gpt-4.1",
            "thread": {"id": "support_user123", "metadata": {"channel": "web"}},
            "inputs": [user("My name is Ada.")]
        })),
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.body);
    let r = &first.body;
    assert!(r["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(r["object"], "response");
    assert!(r["created_at"].is_i64());
    assert_eq!(r["status"], "completed");
    assert_eq!(r["model"], "gpt-4.1");
    assert_eq!(r["thread_id"], "support_user123");
    assert!(r["previous_response_id"].is_null() && r["error"].is_null());
    assert_eq!(r["output"][0]["type"], "message");
    assert_eq!(r["output"][0]["role"], "assistant");
    assert_eq!(r["output"][0]["content"][0]["type"], "output_text");
    assert_eq!(output_text(r), "Echo (1 context messages): My name is Ada.");
    let usage = &r["usage"];
    assert_eq!(
        usage["total_tokens"],
        usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap()
    );

    let t = thread_state(&app, &k.a1, "support_user123").await;
    assert_eq!(t["metadata"], json!({"channel": "web"}));
    assert_eq!(t["message_count"], 2);
    assert_eq!(t["last_model_used"], "gpt-4.1");
    assert_eq!(t["status"], "inactive");

    // The second answer proves the first turn was in the context.
    let second = send(
        &app,
        Method::POST,
        "/v1/model/response",
        Some(&k.a1),
        Some(json!({
            "model": "gpt-4.1", "threadId": "support_user123",
            "inputs": [{"role": "system", "content": "Be brief."}, user("What is my name?")]
        })),
    )
    .await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(
        output_text(&second.body),
        "Echo (4 context messages): What is my name?"
    );
    let msgs = send(
        &app,
        Method::GET,
        "/v1/threads/support_user123/messages",
        Some(&k.a1),
        None,
    )
    .await;
    let data = msgs.body["data"].as_array().unwrap();
    let roles: Vec<_> = data.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(
        roles,
        ["user", "assistant", "user", "assistant"],
        "system inputs are not stored"
    );
    assert_eq!(
        data[1]["content"],
        "Echo (1 context messages): My name is Ada."
    );
    assert_eq!(data[1]["model"], "gpt-4.1");
    assert_eq!(data[1]["response_id"], first.body["id"]);
    assert_eq!(data[3]["id"], second.body["output"][0]["id"]);
    assert_eq!(
        thread_state(&app, &k.a1, "support_user123").await["message_count"],
        4
    );
    // The same client-chosen id in another organization is another thread.
    let other = send(
        &app,
        Method::POST,
        "/v1/model/response",
        Some(&k.b1),
        Some(json!({
            "thread_id": "support_user123", "inputs": [user("hi")]
        })),
    )
    .await;
    assert_eq!(output_text(&other.body), "Echo (1 context messages): hi");
}

async fn thread_less_responses_store_nothing(backend: Backend) {
    let (_db, _store, app, k) = setup!(backend);
    let modes = send(
        &app,
        Method::GET,
        "/v1/model/response/output-modes",
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(modes.body["success"], true);
    let defaults: Vec<_> = modes.body["output_modes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["is_default"] == true)
        .map(|m| m["mode"].clone())
        .collect();
    assert_eq!(defaults, [json!("text")]);
    let levels = send(
        &app,
        Method::GET,
        "/v1/model/response/reasoning-levels",
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(levels.body["reasoning_levels"].as_array().unwrap().len(), 3);
    assert_error(
        &send(
            &app,
            Method::GET,
            "/v1/model/response/output-modes",
            None,
            None,
        )
        .await,
        401,
        "AUTHENTICATION_REQUIRED",
    );
    let r = send(
        &app,
        Method::POST,
        "/v1/model/response",
        Some(&k.a1),
        Some(json!({
            "inputs": [{"role": "user", "content": [{"type": "input_text", "text": "Hello"}]}],
            "metadata": {"trace": "t1"}
        })),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["thread_id"].is_null());
    assert_eq!(r.body["metadata"], json!({"trace": "t1"}));
    assert_eq!(output_text(&r.body), "Echo (1 context messages): Hello");
    let list = send(
        &app,
        Method::GET,
        "/v1/threads?include_total=true",
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(list.body["total"], 0);
}

async fn response_requests_are_validated_and_change_nothing(backend: Backend) {
    let router = routing("http://127.0.0.1:9/v1", 8192);
    let cfg: skein_providers::RoutingConfig = serde_json::from_value(json!({
        "providers": {"echo": {"kind": "echo"}},
        "models": [{"pattern": "gpt-*", "provider": "echo"}]
    }))
    .unwrap();
    let strict = skein_providers::Router::from_config(&cfg).unwrap();
    let (_db, _store, app, k) =
        setup_with!(backend, move |s: &mut AppState| s.router = strict.clone());
    drop(router);
    let post = |body: Value| {
        send(
            &app,
            Method::POST,
            "/v1/model/response",
            Some(&k.a1),
            Some(body),
        )
    };
    let r = post(json!({"model": "gpt-4", "inputs": []})).await;
    assert_error(&r, 422, "VALIDATION_ERROR");
    let r = post(json!({"model": "gpt-4", "inputs": [{"role": "tool", "content": "x"}]})).await;
    assert_error(&r, 422, "VALIDATION_ERROR");
    assert_eq!(
        r.body["detail"][0]["loc"],
        json!(["body", "inputs", 0, "role"])
    );
    let r = post(json!({"model": "gpt-4", "inputs": [{"role": "user"}]})).await;
    assert_error(&r, 422, "VALIDATION_ERROR");
    let r = post(json!({"model": "gpt-4", "thread": "bad id!", "inputs": [user("x")]})).await;
    assert_error(&r, 422, "VALIDATION_ERROR");
    let r = post(json!({"model": "gpt-4", "thread": "t1", "previous_response_id": "resp_x", "inputs": [user("x")]})).await;
    assert_error(&r, 400, "INVALID_REQUEST");
    let r = post(json!({"model": "claude-3", "thread": "t1", "inputs": [user("x")]})).await;
    assert_error(&r, 400, "MODEL_NOT_FOUND");
    let r = post(json!({"model": "gpt-4", "thread": "t1", "organization_id": "org_b", "inputs": [user("x")]})).await;
    assert_error(&r, 403, "ORGANIZATION_ACCESS_DENIED");
    let list = send(
        &app,
        Method::GET,
        "/v1/threads?include_total=true",
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(
        list.body["total"], 0,
        "no thread was created by a rejected request"
    );
}

async fn responses_respect_the_lifecycle_and_apply_thread_state(backend: Backend) {
    let (_db, _store, app, k) = setup!(backend);
    let post = |body: Value| {
        send(
            &app,
            Method::POST,
            "/v1/model/response",
            Some(&k.a1),
            Some(body),
        )
    };
    let r =
        post(json!({"thread": "life", "threadState": "locked", "inputs": [user("last words")]}))
            .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let t = thread_state(&app, &k.a1, "life").await;
    assert_eq!(t["state"], "locked");
    assert_eq!(t["message_count"], 2, "the turn was saved before locking");
    assert_error(
        &post(json!({"thread": "life", "inputs": [user("more")]})).await,
        423,
        "THREAD_LOCKED",
    );
    send(
        &app,
        Method::PATCH,
        "/v1/threads/life",
        Some(&k.a1),
        Some(json!({"state": "archived"})),
    )
    .await;
    assert_error(
        &post(json!({"thread": "life", "inputs": [user("more")]})).await,
        423,
        "THREAD_ARCHIVED",
    );
    let t = thread_state(&app, &k.a1, "life").await;
    assert_eq!(
        (t["message_count"].as_i64(), t["status"].as_str()),
        (Some(2), Some("inactive"))
    );
    // An impossible thread_state fails the whole turn.
    post(json!({"thread": "life2", "inputs": [user("a")]})).await;
    send(
        &app,
        Method::PATCH,
        "/v1/threads/life2",
        Some(&k.a1),
        Some(json!({"state": "open"})),
    )
    .await;
    let r =
        post(json!({"thread": "life2", "thread_state": "archived", "inputs": [user("b")]})).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        thread_state(&app, &k.a1, "life2").await["state"],
        "archived"
    );
}

async fn a_busy_thread_answers_409_and_an_expired_lease_does_not_block(backend: Backend) {
    let (_db, store, app, k) = setup!(backend);
    let scope = Scope {
        organization_id: OrganizationId::parse(ORG_A).unwrap(),
        user_id: UserId::parse("usr_1").unwrap(),
        live: None,
    };
    let start = |lease: &str, ttl: chrono::TimeDelta| skein_persistence::turns::TurnStart {
        thread_id: skein_domain::ThreadId::parse("busy").unwrap(),
        metadata: Default::default(),
        assistant: None,
        lease_id: lease.into(),
        lease_ttl: ttl,
        new_messages: 2,
    };
    {
        let mut conn = store.conn().unwrap();
        skein_persistence::turns::begin(
            &mut conn,
            &scope,
            &start("resp_other", chrono::TimeDelta::seconds(30)),
            &Limits::default(),
            clock::now(),
        )
        .unwrap();
    }
    assert_eq!(
        thread_state(&app, &k.a1, "busy").await["status"],
        "streaming"
    );
    let r = send(
        &app,
        Method::POST,
        "/v1/model/response",
        Some(&k.a1),
        Some(json!({"thread": "busy", "inputs": [user("x")]})),
    )
    .await;
    assert_error(&r, 409, "THREAD_BUSY");
    let retry: u64 = r
        .headers
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=5).contains(&retry),
        "clients are told to retry soon: {retry}"
    );
    // A crashed holder's lease lapses by itself.
    {
        let mut conn = store.conn().unwrap();
        let id = skein_domain::ThreadId::parse("busy").unwrap();
        skein_persistence::turns::release(&mut conn, &scope, &id, "resp_other", false).unwrap();
        skein_persistence::turns::begin(
            &mut conn,
            &scope,
            &start("resp_crashed", chrono::TimeDelta::milliseconds(-1)),
            &Limits::default(),
            clock::now(),
        )
        .unwrap();
    }
    assert_eq!(
        thread_state(&app, &k.a1, "busy").await["status"],
        "inactive"
    );
    let r = send(
        &app,
        Method::POST,
        "/v1/model/response",
        Some(&k.a1),
        Some(json!({"thread": "busy", "inputs": [user("x")]})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

async fn history_is_cut_to_the_context_window(backend: Backend) {
    // Each stored turn here costs 1 token + 4 of framing; the new input too.
    let (_db, _store, app, k) = setup_with!(backend, |s: &mut AppState| s.router =
        routing("http://127.0.0.1:9/v1", 40));
    let base = "/v1/threads/window/messages";
    send(
        &app,
        Method::POST,
        "/v1/model/response",
        Some(&k.a1),
        Some(json!({"thread": "window", "inputs": [user("x")]})),
    )
    .await;
    for i in 0..10 {
        let r = send(
            &app,
            Method::POST,
            base,
            Some(&k.a1),
            Some(json!({"role": "user", "content": format!("{i}")})),
        )
        .await;
        assert_eq!(r.status, 201);
    }
    // Window 40 = new input (5) + 7 stored turns of 5 tokens: the 7 newest.
    let r = send(
        &app,
        Method::POST,
        "/v1/model/response",
        Some(&k.a1),
        Some(json!({"thread": "window", "inputs": [user("q")]})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(output_text(&r.body), "Echo (8 context messages): q");
    let long = "word ".repeat(60);
    let r = send(
        &app,
        Method::POST,
        "/v1/model/response",
        Some(&k.a1),
        Some(json!({"thread": "window", "inputs": [user(&long)]})),
    )
    .await;
    assert_error(&r, 400, "CONTEXT_LENGTH_EXCEEDED");
    let t = thread_state(&app, &k.a1, "window").await;
    assert_eq!(
        (t["status"].as_str(), t["message_count"].as_i64()),
        (Some("inactive"), Some(14))
    );
}

fn sse_events(raw: &[u8]) -> Vec<(String, Value)> {
    let text = String::from_utf8_lossy(raw);
    let mut out = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut name = None;
        let mut data = None;
        for line in block.lines() {
            if let Some(n) = line.strip_prefix("event: ") {
                name = Some(n.to_string());
            } else if let Some(d) = line.strip_prefix("data: ") {
                data = Some(d.to_string());
            }
        }
        let data = data.expect("every frame has data");
        if data == "[DONE]" {
            out.push(("[DONE]".into(), Value::Null));
        } else {
            let v: Value = serde_json::from_str(&data).unwrap();
            assert_eq!(
                v["event"].as_str(),
                name.as_deref(),
                "event line and key agree"
            );
            out.push((name.unwrap(), v));
        }
    }
    out
}

async fn streaming_sends_frames_and_saves_the_turn(backend: Backend) {
    let (_db, _store, app, k) = setup!(backend);
    let r = send(
        &app,
        Method::POST,
        "/v1/model/response",
        Some(&k.a1),
        Some(json!({"thread": "streamed", "stream": true, "inputs": [user("Stream me please")]})),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r
        .headers
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let events = sse_events(&r.raw);
    let names: Vec<_> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"response.created"));
    assert_eq!(&names[names.len() - 2..], ["response.completed", "[DONE]"]);
    assert!(
        names
            .iter()
            .filter(|n| **n == "response.content_delta")
            .count()
            >= 2
    );
    let seqs: Vec<u64> = events
        .iter()
        .filter_map(|(_, v)| v["sequence_number"].as_u64())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1) && seqs[0] == 1,
        "{seqs:?}"
    );
    let deltas: String = events
        .iter()
        .filter(|(n, _)| n == "response.content_delta")
        .map(|(_, v)| v["delta"].as_str().unwrap())
        .collect();
    let completed = &events[events.len() - 2].1["response"];
    assert_eq!(output_text(completed), deltas);
    assert_eq!(deltas, "Echo (1 context messages): Stream me please");
    assert_eq!(events[0].1["thread_id"], "streamed");
    assert_eq!(events[0].1["response_id"], completed["id"]);
    let t = thread_state(&app, &k.a1, "streamed").await;
    assert_eq!(
        (t["message_count"].as_i64(), t["status"].as_str()),
        (Some(2), Some("inactive"))
    );
}

async fn provider_failures_save_nothing_and_release_the_lease(backend: Backend) {
    let upstream = fake::start();
    let base = upstream.base_url.clone();
    let (_db, _store, app, k) = setup_with!(backend, move |s: &mut AppState| s.router =
        routing(&base, 8192));
    let post = |body: Value| {
        send(
            &app,
            Method::POST,
            "/v1/model/response",
            Some(&k.a1),
            Some(body),
        )
    };
    let ok = post(json!({"model": "fake-ok", "thread": "up", "inputs": [user("first")]})).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(output_text(&ok.body), "fake answer");
    let before = thread_state(&app, &k.a1, "up").await;
    for (model, status, code) in [
        ("fake-500", 502, "UPSTREAM_ERROR"),
        ("hang", 504, "UPSTREAM_TIMEOUT"),
        ("fake-broken", 502, "UPSTREAM_ERROR"),
    ] {
        let r = post(json!({"model": model, "thread": "up", "inputs": [user("lost")]})).await;
        assert_error(&r, status, code);
        let after = thread_state(&app, &k.a1, "up").await;
        assert_eq!(after, before, "{model}: the thread is exactly as before");
        // The same failure over a stream ends with response.error.
        let s =
            post(json!({"model": model, "thread": "up", "stream": true, "inputs": [user("lost")]}))
                .await;
        let events = sse_events(&s.raw);
        let (name, err) = &events[events.len() - 2];
        assert_eq!(name, "response.error");
        assert_eq!(
            (err["status"].as_str(), err["code"].as_str()),
            (Some("failed"), Some(code))
        );
        assert_eq!(thread_state(&app, &k.a1, "up").await, before);
    }
    let msgs = send(
        &app,
        Method::GET,
        "/v1/threads/up/messages",
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(msgs.body["data"].as_array().unwrap().len(), 2);
}

async fn of_two_concurrent_responses_exactly_one_wins(backend: Backend) {
    let mut upstream = fake::start();
    let base = upstream.base_url.clone();
    let gate = upstream.gate.clone();
    let (_db, _store, app, k) = setup_with!(backend, move |s: &mut AppState| s.router =
        routing(&base, 8192));
    let body = json!({"model": "fake-gated", "thread": "race", "inputs": [user("who wins?")]});
    let first = send(
        &app,
        Method::POST,
        "/v1/model/response",
        Some(&k.a1),
        Some(body.clone()),
    );
    let second = async {
        // Once the upstream has the first request, its lease is taken.
        assert_eq!(
            upstream.received.recv().await.unwrap()["model"],
            "fake-gated"
        );
        let r = send(
            &app,
            Method::POST,
            "/v1/model/response",
            Some(&k.a1),
            Some(body.clone()),
        )
        .await;
        gate.notify_one();
        r
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first.status, 200, "{}", first.body);
    assert_error(&second, 409, "THREAD_BUSY");
    let t = thread_state(&app, &k.a1, "race").await;
    assert_eq!(
        (t["message_count"].as_i64(), t["status"].as_str()),
        (Some(2), Some("inactive"))
    );
}

async fn cancel_quickly_keeps_nothing_and_later_keeps_the_partial_answer(backend: Backend) {
    for (window, mode) in [
        (std::time::Duration::from_secs(60), "quick_edit"),
        (std::time::Duration::ZERO, "keep_partial"),
    ] {
        let mut upstream = fake::start();
        let base = upstream.base_url.clone();
        let (_db, _store, app, k) = setup_with!(backend, move |s: &mut AppState| {
            s.router = routing(&base, 8192);
            s.quick_cancel = window;
        });
        let none = send(
            &app,
            Method::POST,
            "/v1/model/response/nothing/cancel",
            Some(&k.a1),
            None,
        )
        .await;
        assert_error(&none, 404, "THREAD_NOT_FOUND");
        let running = send(
            &app,
            Method::POST,
            "/v1/model/response",
            Some(&k.a1),
            Some(
                json!({"model": "fake-slow", "thread": "c", "stream": true, "inputs": [user("go")]}),
            ),
        );
        let cancel = async {
            assert_eq!(
                upstream.received.recv().await.unwrap()["model"],
                "fake-slow"
            );
            // Others cannot cancel it.
            let foreign = send(
                &app,
                Method::POST,
                "/v1/model/response/c/cancel",
                Some(&k.a2),
                None,
            )
            .await;
            assert_error(&foreign, 404, "THREAD_NOT_FOUND");
            // The delta may still be in flight: cancel once it is recorded.
            send(
                &app,
                Method::POST,
                "/v1/model/response/c/cancel",
                Some(&k.a1),
                None,
            )
            .await
        };
        let (stream, cancelled) = tokio::join!(running, cancel);
        assert_eq!(cancelled.status, 200, "{}", cancelled.body);
        assert_eq!(cancelled.body["success"], true);
        assert_eq!(cancelled.body["cancel_mode"], mode);
        assert!(cancelled.body["elapsed_seconds"].is_f64());
        let names: Vec<_> = sse_events(&stream.raw)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(&names[names.len() - 2..], ["response.cancelled", "[DONE]"]);
        let t = thread_state(&app, &k.a1, "c").await;
        if mode == "quick_edit" {
            // The turn created the thread: nothing of it is kept.
            assert_eq!(t["error"]["code"], "THREAD_NOT_FOUND", "{t}");
            assert_eq!(cancelled.body["user_message_deleted"], true);
            assert_eq!(cancelled.body["partial_content_saved"], false);
            continue;
        }
        assert_eq!(t["status"], "inactive");
        let msgs = send(
            &app,
            Method::GET,
            "/v1/threads/c/messages",
            Some(&k.a1),
            None,
        )
        .await;
        let contents: Vec<_> = msgs.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(contents[0], "go");
        assert_eq!(cancelled.body["user_message_deleted"], false);
        let saved = cancelled.body["partial_content_saved"].as_bool().unwrap();
        assert_eq!(saved, contents.len() == 2);
        if saved {
            assert_eq!(contents[1], "partial answer");
        }
    }
}

async fn a_foreign_thread_id_is_not_found(backend: Backend) {
    let (_db, _store, app, k) = setup!(backend);
    let mine = send(
        &app,
        Method::POST,
        "/v1/model/response",
        Some(&k.a1),
        Some(json!({"thread": "private", "inputs": [user("mine")]})),
    )
    .await;
    assert_eq!(mine.status, 200);
    let before = thread_state(&app, &k.a1, "private").await;
    let theirs = send(
        &app,
        Method::POST,
        "/v1/model/response",
        Some(&k.a2),
        Some(json!({"thread": "private", "inputs": [user("intrude")]})),
    )
    .await;
    assert_error(&theirs, 404, "THREAD_NOT_FOUND");
    assert_eq!(thread_state(&app, &k.a1, "private").await, before);
}

async fn previous_response_id_rebuilds_the_conversation(backend: Backend) {
    let (_db, _store, app, k) = setup!(backend);
    let post = |key: &str, body: Value| {
        let key = key.to_string();
        let app = &app;
        async move {
            send(
                app,
                Method::POST,
                "/v1/model/response",
                Some(&key),
                Some(body),
            )
            .await
        }
    };
    let r1 = post(
        &k.a1,
        json!({"model": "m", "inputs": [user("My name is Ada.")]}),
    )
    .await;
    assert_eq!(r1.status, 200);
    let id1 = r1.body["id"].as_str().unwrap().to_string();
    let r2 = post(
        &k.a1,
        json!({"model": "m", "previousResponseId": id1, "inputs": [user("What is my name?")]}),
    )
    .await;
    assert_eq!(r2.status, 200, "{}", r2.body);
    assert_eq!(
        output_text(&r2.body),
        "Echo (3 context messages): What is my name?"
    );
    assert_eq!(r2.body["previous_response_id"], id1.as_str());
    assert!(r2.body["thread_id"].is_null());
    let id2 = r2.body["id"].as_str().unwrap().to_string();
    let r3 = post(
        &k.a1,
        json!({"model": "m", "previous_response_id": id2, "inputs": [user("And again?")]}),
    )
    .await;
    assert_eq!(
        output_text(&r3.body),
        "Echo (5 context messages): And again?"
    );
    // Not stored, unknown, or someone else's: not found.
    let unstored = post(
        &k.a1,
        json!({"model": "m", "store": false, "inputs": [user("forget me")]}),
    )
    .await;
    let gone = unstored.body["id"].as_str().unwrap();
    for (key, prev) in [
        (&k.a1, gone.to_string()),
        (&k.a1, "resp_nope".to_string()),
        (&k.a2, id1.clone()),
        (&k.b1, id1.clone()),
    ] {
        let r = post(
            key,
            json!({"model": "m", "previous_response_id": prev, "inputs": [user("x")]}),
        )
        .await;
        assert_error(&r, 404, "RESPONSE_NOT_FOUND");
    }
    let list = send(
        &app,
        Method::GET,
        "/v1/threads?include_total=true",
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(list.body["total"], 0, "chains create no threads");
}

#[actix_web::test]
async fn responses_older_than_the_ttl_cannot_be_chained() {
    let (_db, _store, app, k) = setup_with!(Backend::Sqlite, |s: &mut AppState| s.response_ttl =
        chrono::TimeDelta::milliseconds(-1));
    let r1 = send(
        &app,
        Method::POST,
        "/v1/model/response",
        Some(&k.a1),
        Some(json!({"inputs": [user("old")]})),
    )
    .await;
    let id1 = r1.body["id"].as_str().unwrap();
    let r = send(
        &app,
        Method::POST,
        "/v1/model/response",
        Some(&k.a1),
        Some(json!({"previous_response_id": id1, "inputs": [user("x")]})),
    )
    .await;
    assert_error(&r, 404, "RESPONSE_NOT_FOUND");
}

async fn generate_name_titles_the_thread(backend: Backend) {
    let upstream = fake::start();
    let base = upstream.base_url.clone();
    let (_db, _store, app, k) = setup_with!(backend, move |s: &mut AppState| s.router =
        routing(&base, 8192));
    let post = |uri: String, key: &str, body: Option<Value>| {
        let key = key.to_string();
        let app = &app;
        async move { send(app, Method::POST, &uri, Some(&key), body).await }
    };
    post(
        "/v1/model/response".into(),
        &k.a1,
        Some(json!({"thread": "named", "inputs": [user("how do I reset my password, please?")]})),
    )
    .await;
    let r = post(
        "/v1/threads/named/generateName?stream=false".into(),
        &k.a1,
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"success": true, "thread_id": "named", "name": "How do I reset my", "title": "How do I reset my", "message": "Thread name generated"})
    );
    assert_eq!(
        thread_state(&app, &k.a1, "named").await["title"],
        "How do I reset my"
    );
    let r = post("/v1/threads/named/generateName".into(), &k.a1, Some(json!({"messages": [{"role": "assistant", "content": "Hi"}, {"role": "user", "content": "Billing"}]}))).await;
    assert_eq!(r.body["title"], "Billing conversation");
    let bad = post(
        "/v1/threads/named/generateName".into(),
        &k.a1,
        Some(json!({"messages": [{"role": "system", "content": "x"}]})),
    )
    .await;
    assert_error(&bad, 422, "VALIDATION_ERROR");
    // With a real model, the thread's last model is asked.
    post(
        "/v1/model/response".into(),
        &k.a1,
        Some(
            json!({"model": "fake-ok", "thread": "real", "inputs": [user("my password is lost")]}),
        ),
    )
    .await;
    let r = post("/v1/threads/real/generateName".into(), &k.a1, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["title"], "Password Reset Help");
    // Nothing to name from, or not the caller's.
    create_thread(&app, &k.a1, json!({})).await;
    let empty = send(&app, Method::GET, "/v1/threads?limit=1", Some(&k.a1), None).await;
    let empty_id = empty.body["data"][0]["id"].as_str().unwrap().to_string();
    assert_error(
        &post(format!("/v1/threads/{empty_id}/generateName"), &k.a1, None).await,
        400,
        "INVALID_REQUEST",
    );
    assert_error(
        &post("/v1/threads/named/generateName".into(), &k.a2, None).await,
        404,
        "THREAD_NOT_FOUND",
    );
    assert_eq!(
        thread_state(&app, &k.a1, "named").await["title"],
        "Billing conversation"
    );
}

async fn the_bound_assistant_applies_unless_the_request_overrides_it(backend: Backend) {
    let mut upstream = fake::start();
    let base = upstream.base_url.clone();
    let (_db, _store, app, k) = setup_with!(backend, move |s: &mut AppState| s.router =
        routing(&base, 8192));
    let asst = send(&app, Method::POST, "/v1/assistants", Some(&k.a1), Some(json!({
        "name": "Formal", "instructions": "Always be formal.", "model": "fake-ok", "temperature": 0.3
    }))).await;
    assert_eq!(asst.status, 201, "{}", asst.body);
    let asst_id = asst.body["id"].as_str().unwrap().to_string();
    // Unknown or foreign assistants are refused before anything is written.
    let theirs = send(
        &app,
        Method::POST,
        "/v1/assistants",
        Some(&k.a2),
        Some(json!({"name": "Theirs"})),
    )
    .await;
    for bad in ["asst_nope", theirs.body["id"].as_str().unwrap()] {
        let r = send(
            &app,
            Method::POST,
            "/v1/model/response",
            Some(&k.a1),
            Some(json!({"thread": "never", "assistant_id": bad, "inputs": [user("x")]})),
        )
        .await;
        assert_error(&r, 404, "ASSISTANT_NOT_FOUND");
    }
    assert_error(
        &send(&app, Method::GET, "/v1/threads/never", Some(&k.a1), None).await,
        404,
        "THREAD_NOT_FOUND",
    );

    let r = send(
        &app,
        Method::POST,
        "/v1/model/response",
        Some(&k.a1),
        Some(json!({"thread": "formal", "assistantId": asst_id, "inputs": [user("hello")]})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["model"], "fake-ok", "the assistant's model");
    let sent = upstream.received.recv().await.unwrap();
    assert_eq!(sent["model"], "fake-ok");
    assert_eq!(sent["temperature"], 0.3);
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Always be formal."})
    );
    assert_eq!(
        thread_state(&app, &k.a1, "formal").await["assistant_id"],
        asst_id.as_str()
    );

    // Later requests on the thread use the bound assistant without naming it;
    // request values win.
    let r = send(&app, Method::POST, "/v1/model/response", Some(&k.a1), Some(json!({"thread": "formal", "instructions": "Be casual.", "temperature": 1.0, "inputs": [user("again")]}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let sent = upstream.received.recv().await.unwrap();
    assert_eq!(sent["temperature"], 1.0);
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Be casual."})
    );
    assert_eq!(
        sent["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "system")
            .count(),
        1
    );
    let r = send(
        &app,
        Method::POST,
        "/v1/model/response",
        Some(&k.a1),
        Some(json!({"thread": "formal", "model": "echo-it", "inputs": [user("third")]})),
    )
    .await;
    assert_eq!(r.body["model"], "echo-it");
    assert_eq!(
        output_text(&r.body),
        "Echo (6 context messages): third",
        "instructions + 4 stored + input"
    );

    // The binding is locked once the thread has messages.
    let other = send(
        &app,
        Method::POST,
        "/v1/assistants",
        Some(&k.a1),
        Some(json!({"name": "Other"})),
    )
    .await;
    let r = send(&app, Method::POST, "/v1/model/response", Some(&k.a1), Some(json!({"thread": "formal", "assistant_id": other.body["id"], "inputs": [user("switch")]}))).await;
    assert_error(&r, 400, "ASSISTANT_BINDING_LOCKED");
    let t = thread_state(&app, &k.a1, "formal").await;
    assert_eq!(
        (t["message_count"].as_i64(), t["status"].as_str()),
        (Some(6), Some("inactive"))
    );
}

async fn heartbeats_fill_the_silence_of_a_stream(backend: Backend) {
    use actix_web::body::MessageBody as _;
    let mut upstream = fake::start();
    let base = upstream.base_url.clone();
    let (_db, _store, app, k) = setup_with!(backend, move |s: &mut AppState| {
        s.router = routing(&base, 8192);
        s.heartbeat = std::time::Duration::from_millis(20);
    });
    let req = test::TestRequest::post()
        .uri("/v1/model/response")
        .insert_header(("X-API-Key", k.a1.as_str()))
        .set_json(
            json!({"model": "fake-slow", "thread": "hb", "stream": true, "inputs": [user("go")]}),
        );
    let res = test::call_service(&app, req.to_request()).await;
    assert_eq!(res.status().as_u16(), 200);
    let mut body = std::pin::pin!(res.into_body());
    let mut seen = String::new();
    // The upstream stalls after one delta: the stream must keep talking.
    while !seen.contains("event: response.heartbeat") {
        let chunk = std::future::poll_fn(|cx| body.as_mut().poll_next(cx))
            .await
            .expect("the stream stays open while the model is silent")
            .unwrap_or_else(|_| panic!("stream error"));
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_eq!(
        upstream.received.recv().await.unwrap()["model"],
        "fake-slow"
    );
    let cancelled = send(
        &app,
        Method::POST,
        "/v1/model/response/hb/cancel",
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(cancelled.status, 200);
    while let Some(chunk) = std::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await {
        let chunk = chunk.unwrap_or_else(|_| panic!("stream error"));
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let events = sse_events(seen.as_bytes());
    let heartbeat = events
        .iter()
        .find(|(n, _)| n == "response.heartbeat")
        .unwrap();
    assert!(heartbeat.1["sequence_number"].as_u64().unwrap() >= 2);
    let names: Vec<_> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[0], "response.created");
    assert_eq!(&names[names.len() - 2..], ["response.cancelled", "[DONE]"]);
}

async fn a_turn_that_cannot_fit_under_the_cap_is_refused_before_the_model_runs(backend: Backend) {
    let mut upstream = fake::start();
    let base = upstream.base_url.clone();
    let (_db, _store, app, k) = setup_with!(backend, move |s: &mut AppState| {
        s.router = routing(&base, 8192);
        s.limits.max_messages_per_thread = 3;
    });
    let ok = send(
        &app,
        Method::POST,
        "/v1/model/response",
        Some(&k.a1),
        Some(json!({"model": "fake-ok", "thread": "capped", "inputs": [user("one")]})),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(upstream.received.recv().await.unwrap()["model"], "fake-ok");
    let over = send(
        &app,
        Method::POST,
        "/v1/model/response",
        Some(&k.a1),
        Some(json!({"model": "fake-ok", "thread": "capped", "inputs": [user("two")]})),
    )
    .await;
    assert_error(&over, 400, "THREAD_MESSAGE_LIMIT");
    assert!(
        upstream.received.try_recv().is_err(),
        "the model was not called"
    );
    let t = thread_state(&app, &k.a1, "capped").await;
    assert_eq!(
        (t["message_count"].as_i64(), t["status"].as_str()),
        (Some(2), Some("inactive"))
    );
}

async fn a_client_that_disconnects_mid_stream_does_not_lose_the_turn(backend: Backend) {
    use actix_web::body::MessageBody as _;
    let mut upstream = fake::start();
    let base = upstream.base_url.clone();
    let gate = upstream.gate.clone();
    let (_db, _store, app, k) = setup_with!(backend, move |s: &mut AppState| s.router =
        routing(&base, 8192));
    let req = test::TestRequest::post()
        .uri("/v1/model/response")
        .insert_header(("X-API-Key", k.a1.as_str()))
        .set_json(json!({"model": "fake-gated", "thread": "gone", "stream": true, "inputs": [user("still there?")]}));
    let res = test::call_service(&app, req.to_request()).await;
    {
        let mut body = std::pin::pin!(res.into_body());
        let first = std::future::poll_fn(|cx| body.as_mut().poll_next(cx))
            .await
            .expect("a first frame")
            .unwrap_or_else(|_| panic!("stream error"));
        assert!(String::from_utf8_lossy(&first).contains("response.created"));
        assert_eq!(
            upstream.received.recv().await.unwrap()["model"],
            "fake-gated"
        );
        // The client goes away here: the stream is dropped mid-answer.
    }
    gate.notify_one();
    // The turn is saved by the generation task regardless. Poll the thread
    // (each read is a real round trip, so the task runs meanwhile).
    let mut saved = Value::Null;
    for _ in 0..10_000 {
        saved = thread_state(&app, &k.a1, "gone").await;
        if saved["message_count"] == 2 && saved["status"] == "inactive" {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(saved["message_count"], 2, "{saved}");
    assert_eq!(saved["status"], "inactive");
    let msgs = send(
        &app,
        Method::GET,
        "/v1/threads/gone/messages",
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(msgs.body["data"][1]["content"], "fake answer");
}
