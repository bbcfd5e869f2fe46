//! The Threads API: create, read, list, update, delete, pin; authentication
//! and organization rules as the thread endpoints apply them.

use super::common::*;
use serde_json::{json, Value};
use skein_api::AppState;
use skein_domain::{clock, Limits, OrganizationId, UserId};
use skein_persistence::{keys, threads, Backend, Scope};

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
);

fn id_of(t: &Value) -> &str {
    t["id"].as_str().unwrap()
}

async fn create_returns_201_and_the_whole_thread(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let t = app
        .create_thread(
            &k.a1,
            json!({"organization_id": ORG_A, "title": "Support", "metadata": {"category": "support", "tags": ["a", "b"]}}),
        )
        .await;
    let id = id_of(&t);
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
    let got = app.get_thread(&k.a1, id).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, t);
}

async fn create_accepts_an_empty_body_and_camel_case(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let r = app
        .post("/v1/threads")
        .key(&k.a1)
        .header("Content-Type", "application/json")
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["metadata"], json!({}));
    assert!(r.body["title"].is_null());
    let t = app
        .create_thread(&k.a1, json!({"organizationId": ORG_A, "unknown_field": 1}))
        .await;
    assert_eq!(t["organization_id"], ORG_A);
}

async fn create_validates_title_and_metadata_at_the_edges(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    app.create_thread(
        &k.a1,
        json!({"title": "t".repeat(200), "metadata": meta_with_keys(16)}),
    )
    .await;
    let long = app
        .post_thread(&k.a1, json!({"title": "t".repeat(201)}))
        .await;
    assert_error(&long, 422, "VALIDATION_ERROR");
    assert_eq!(long.body["detail"][0]["loc"], json!(["body", "title"]));
    let many = app
        .post_thread(&k.a1, json!({"metadata": meta_with_keys(17)}))
        .await;
    assert_error(&many, 422, "VALIDATION_ERROR");
    assert_eq!(many.body["detail"][0]["loc"], json!(["body", "metadata"]));
    for bad in [
        json!({"k": "v".repeat(513)}),
        json!({"k".repeat(65): 1}),
        json!({"": 1}),
    ] {
        let r = app.post_thread(&k.a1, json!({"metadata": bad})).await;
        assert_error(&r, 422, "VALIDATION_ERROR");
    }
    let wrong_type = app.post_thread(&k.a1, json!({"metadata": [1, 2]})).await;
    assert_error(&wrong_type, 422, "VALIDATION_ERROR");
    assert_eq!(
        wrong_type.body["detail"][0]["loc"],
        json!(["body", "metadata"])
    );
    let wrong_title = app.post_thread(&k.a1, json!({"title": 5})).await;
    assert_error(&wrong_title, 422, "VALIDATION_ERROR");
    // Nothing was created by the rejected requests.
    let list = app.list_threads(&k.a1, "include_total=true").await;
    assert_eq!(list.body["total"], 1);
}

async fn malformed_and_oversized_bodies_get_the_envelope(backend: Backend) {
    let app = TestApp::with(backend, |s: &mut AppState| s.max_body_bytes = 2048).await;
    let k = &app.keys;
    let malformed = app
        .post("/v1/threads")
        .key(&k.a1)
        .header("Content-Type", "application/json")
        .payload("{\"title\": ")
        .send()
        .await;
    assert_error(&malformed, 400, "INVALID_JSON");
    let big = json!({"title": "x", "metadata": {"k": "v".repeat(4000)}});
    let r = app.post_thread(&k.a1, big).await;
    assert_error(&r, 413, "PAYLOAD_TOO_LARGE");
    let t = app.create_thread(&k.a1, json!({})).await;
    let bad_patch = app
        .request(
            actix_web::http::Method::PATCH,
            format!("/v1/threads/{}", id_of(&t)),
        )
        .key(&k.a1)
        .header("Content-Type", "application/json")
        .payload("not json")
        .send()
        .await;
    assert_error(&bad_patch, 400, "INVALID_JSON");
    let list = app.list_threads(&k.a1, "include_total=true").await;
    assert_eq!(list.body["total"], 1);
}

async fn authentication_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let none = app.get("/v1/threads").send().await;
    assert_error(&none, 401, "AUTHENTICATION_REQUIRED");
    let fake = format!("sk_{}", "A".repeat(48));
    assert_error(&app.list_threads(&fake, "").await, 401, "INVALID_API_KEY");
    assert_error(
        &app.list_threads("garbage", "").await,
        401,
        "INVALID_API_KEY",
    );
    let r = app
        .get("/v1/threads")
        .bearer("eyJhbGciOiJIUzI1NiJ9.e30.sig")
        .send()
        .await;
    assert_error(&r, 401, "TOKEN_INVALID");
    assert!(r.body["error"]["system_message"]
        .as_str()
        .unwrap()
        .contains("not enabled"));
}

async fn all_three_key_headers_work_and_a_revoked_key_stops_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    for (name, value) in [
        ("X-API-Key", k.a1.clone()),
        ("x-api-key", k.a1.clone()),
        ("api-key", k.a1.clone()),
        ("Authorization", format!("Bearer {}", k.a1)),
    ] {
        let r = app.get("/v1/threads").header(name, &value).send().await;
        assert_eq!(r.status, 200, "{name}");
    }
    let id = {
        let mut conn = app.store.conn().unwrap();
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
    assert_error(&app.list_threads(&k.a1, "").await, 401, "INVALID_API_KEY");
    assert_eq!(app.list_threads(&k.a2, "").await.status, 200);
}

async fn organization_and_visibility_rules(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let r = app
        .post_thread(&k.a1, json!({"organization_id": ORG_B}))
        .await;
    assert_error(&r, 403, "ORGANIZATION_ACCESS_DENIED");
    let r = app.list_threads(&k.a1, "organization_id=org_b").await;
    assert_error(&r, 403, "ORGANIZATION_ACCESS_DENIED");
    let r = app
        .post_thread(&k.a1, json!({"visible_in_ui": false}))
        .await;
    assert_error(&r, 403, "BEARER_TOKEN_REQUIRED");
    let r = app.post_thread(&k.a1, json!({"visibleInUi": true})).await;
    assert_error(&r, 403, "BEARER_TOKEN_REQUIRED");
    let t = app.create_thread(&k.a1, json!({})).await;
    let id = id_of(&t);
    let r = app
        .patch_thread(&k.a1, id, json!({"visible_in_ui": false}))
        .await;
    assert_error(&r, 403, "BEARER_TOKEN_REQUIRED");
    let got = app
        .get_thread(&k.a1, &format!("{id}?organization_id=org_a"))
        .await;
    assert_eq!(got.body["visible_in_ui"], true);
    let list = app.list_threads(&k.a1, "include_total=true").await;
    assert_eq!(list.body["total"], 1, "rejected creates changed nothing");
}

async fn assistant_binding_rules(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    for (id, org) in [
        ("asst_one", ORG_A),
        ("asst_two", ORG_A),
        ("asst_other", ORG_B),
    ] {
        insert_assistant(&app.store, id, org);
    }
    for missing in ["asst_nope", "asst_other", "not an id"] {
        let r = app
            .post_thread(&k.a1, json!({"assistant_id": missing}))
            .await;
        assert_error(&r, 404, "ASSISTANT_NOT_FOUND");
    }
    let t = app
        .create_thread(&k.a1, json!({"assistantId": "asst_one"}))
        .await;
    assert_eq!(t["assistant_id"], "asst_one");
    app.create_thread(&k.a1, json!({})).await;
    let filtered = app.list_threads(&k.a1, "assistant_id=asst_one").await;
    assert_eq!(filtered.body["data"].as_array().unwrap().len(), 1);
    let id = id_of(&t);
    let r = app
        .patch_thread(&k.a1, id, json!({"assistant_id": "asst_two"}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["assistant_id"], "asst_two");
    let r = app
        .patch_thread(&k.a1, id, json!({"assistant_id": "asst_other"}))
        .await;
    assert_error(&r, 404, "ASSISTANT_NOT_FOUND");
    // Once the thread has a message the binding is locked.
    {
        let mut conn = app.store.conn().unwrap();
        let scope = Scope {
            organization_id: OrganizationId::parse(ORG_A).unwrap(),
            user_id: UserId::parse("usr_1").unwrap(),
            live: None,
        };
        threads::update(&mut conn, &scope, id, |t| {
            let mut t = t.to_storage();
            t.message_count = 1;
            Ok(skein_domain::Thread::from_storage(t, chrono::Utc::now()))
        })
        .unwrap();
    }
    let r = app
        .patch_thread(&k.a1, id, json!({"assistant_id": "asst_one", "title": "x"}))
        .await;
    assert_error(&r, 400, "ASSISTANT_BINDING_LOCKED");
    let got = app.get_thread(&k.a1, id).await;
    assert_eq!(got.body["assistant_id"], "asst_two");
    assert!(got.body["title"].is_null());
}

async fn threads_are_invisible_to_other_users_and_organizations(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let t = app
        .create_thread(&k.a1, json!({"title": "mine", "metadata": {"a": 1}}))
        .await;
    let id = id_of(&t);
    for other in [&k.a2, &k.b1] {
        assert_error(&app.get_thread(other, id).await, 404, "THREAD_NOT_FOUND");
        let r = app
            .patch_thread(
                other,
                id,
                json!({"title": "stolen", "metadata": {"a": null}}),
            )
            .await;
        assert_error(&r, 404, "THREAD_NOT_FOUND");
        assert_error(&app.pin(other, id).await, 404, "THREAD_NOT_FOUND");
        assert_error(&app.unpin(other, id).await, 404, "THREAD_NOT_FOUND");
        assert_error(&app.delete_thread(other, id).await, 404, "THREAD_NOT_FOUND");
        let list = app.list_threads(other, "include_deleted=true").await;
        assert_eq!(list.body["data"], json!([]));
        let all = app.delete_threads(other, "").await;
        assert_eq!(all.body["deleted"], 0);
    }
    let r = app.get_thread(&k.a1, "thread_doesnotexist").await;
    assert_error(&r, 404, "THREAD_NOT_FOUND");
    assert_eq!(r.body["error"]["message"], "Thread not found");
    let got = app.get_thread(&k.a1, id).await;
    assert_eq!(got.body, t, "nothing changed");
}

/// Walks every page of `limit=2{query}`; the ids in order and the pages.
async fn walk(app: &TestApp, key: &str, query: &str) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let cursor = after.map(|a| format!("&after={a}")).unwrap_or_default();
        let r = app
            .list_threads(key, &format!("limit=2{query}{cursor}"))
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
        ids.extend(data.iter().map(|t| id_of(t).to_string()));
        if !r.body["has_more"].as_bool().unwrap() {
            return (ids, pages);
        }
        after = r.body["last_id"].as_str().map(str::to_string);
    }
}

async fn listing_walks_pages_without_duplicates_or_skips(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let mut created = Vec::new();
    for i in 0..5 {
        let t = app
            .create_thread(&k.a1, json!({"title": format!("t{i}")}))
            .await;
        created.push(id_of(&t).to_string());
    }
    app.create_thread(&k.a2, json!({})).await;
    let (desc, pages) = walk(&app, &k.a1, "").await;
    let mut newest_first = created.clone();
    newest_first.reverse();
    assert_eq!(desc, newest_first);
    assert_eq!(pages, 3);
    let (asc, _) = walk(&app, &k.a1, "&order=asc").await;
    assert_eq!(asc, created);
    // `before` pages back towards the newest.
    let r = app
        .list_threads(&k.a1, &format!("limit=2&before={}", created[1]))
        .await;
    let ids: Vec<_> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(ids, vec![created[3].as_str(), created[2].as_str()]);
    assert_eq!(r.body["has_more"], true);
    // Unknown or foreign cursors are rejected.
    let foreign = app.list_threads(&k.a2, "").await;
    let foreign_id = id_of(&foreign.body["data"][0]).to_string();
    for cursor in ["thread_nope".to_string(), foreign_id] {
        let r = app.list_threads(&k.a1, &format!("after={cursor}")).await;
        assert_error(&r, 400, "INVALID_REQUEST");
    }
    let both = app
        .list_threads(
            &k.a1,
            &format!("after={}&before={}", created[0], created[1]),
        )
        .await;
    assert_error(&both, 400, "INVALID_REQUEST");
}

async fn list_query_validation_filters_and_total(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    for q in [
        "limit=0",
        "limit=101",
        "limit=abc",
        "order=sideways",
        "is_pinned=maybe",
    ] {
        let r = app.list_threads(&k.a1, q).await;
        assert_error(&r, 422, "VALIDATION_ERROR");
        assert_eq!(r.body["detail"][0]["loc"][0], "query", "{q}");
    }
    assert_eq!(app.list_threads(&k.a1, "limit=100").await.status, 200);
    assert_eq!(app.list_threads(&k.a1, "limit=1").await.status, 200);
    let default = app.list_threads(&k.a1, "").await;
    assert_eq!(default.body["limit"], 20);
    assert_eq!(default.body["object"], "list");
    assert!(default.body["first_id"].is_null() && default.body["last_id"].is_null());
    let a = app.create_thread(&k.a1, json!({})).await;
    app.create_thread(&k.a1, json!({})).await;
    app.create_thread(&k.a1, json!({})).await;
    assert_eq!(app.pin(&k.a1, id_of(&a)).await.status, 200);
    let total = app.list_threads(&k.a1, "limit=1&includeTotal=true").await;
    assert_eq!(total.body["total"], 3);
    assert_eq!(total.body["data"].as_array().unwrap().len(), 1);
    let pinned = app
        .list_threads(&k.a1, "isPinned=true&include_total=true")
        .await;
    assert_eq!(pinned.body["total"], 1);
    assert_eq!(pinned.body["data"][0]["id"], a["id"]);
    let unpinned = app.list_threads(&k.a1, "is_pinned=false").await;
    assert_eq!(unpinned.body["data"].as_array().unwrap().len(), 2);
    let visible = app.list_threads(&k.a1, "visible_in_ui=true").await;
    assert_eq!(visible.body["data"].as_array().unwrap().len(), 3);
    let hidden = app.list_threads(&k.a1, "visibleInUi=false").await;
    assert_eq!(hidden.body["data"], json!([]));
}

async fn patch_merges_metadata_and_handles_nulls(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let t = app
        .create_thread(
            &k.a1,
            json!({"title": "Original", "metadata": {"a": "1", "b": "2"}}),
        )
        .await;
    let id = id_of(&t);
    let r = app
        .patch_thread(&k.a1, id, json!({"metadata": {"b": null, "c": "3"}}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["metadata"], json!({"a": "1", "c": "3"}));
    assert_eq!(r.body["title"], "Original");
    assert!(r.body["updated_at"].as_str().unwrap() >= t["updated_at"].as_str().unwrap());
    assert_eq!(r.body["created_at"], t["created_at"]);
    // Explicit nulls leave fields as they are.
    let r = app
        .patch_thread(
            &k.a1,
            id,
            json!({"title": null, "metadata": null, "assistant_id": null, "state": null}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["title"], "Original");
    assert_eq!(r.body["metadata"], json!({"a": "1", "c": "3"}));
    let r = app.patch_thread(&k.a1, id, json!({"title": "New"})).await;
    assert_eq!(r.body["title"], "New");
    let r = app.patch_thread(&k.a1, id, json!({"title": ""})).await;
    assert!(r.body["title"].is_null());
    let got = app.get_thread(&k.a1, id).await;
    assert_eq!(got.body, r.body);
}

async fn patch_state_transitions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let t = app.create_thread(&k.a1, json!({})).await;
    let id = id_of(&t);
    for state in [
        "open", "locked", "locked", "open", "locked", "archived", "archived",
    ] {
        let r = app.patch_thread(&k.a1, id, json!({"state": state})).await;
        assert_eq!(r.status, 200, "to {state}: {}", r.body);
        assert_eq!(r.body["state"], state);
    }
    for state in ["open", "locked"] {
        let r = app.patch_thread(&k.a1, id, json!({"state": state})).await;
        assert_error(&r, 400, "INVALID_STATE_TRANSITION");
    }
    let r = app
        .patch_thread(&k.a1, id, json!({"state": "deleted"}))
        .await;
    assert_error(&r, 422, "VALIDATION_ERROR");
    // Title and metadata still change on an archived thread.
    let r = app
        .patch_thread(
            &k.a1,
            id,
            json!({"title": "Archive", "metadata": {"k": "v"}}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["state"], "archived");
    assert_eq!(r.body["title"], "Archive");
    assert_eq!(app.pin(&k.a1, id).await.status, 200);
}

async fn a_rejected_patch_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let t = app
        .create_thread(
            &k.a1,
            json!({"title": "Keep", "metadata": meta_with_keys(16)}),
        )
        .await;
    let id = id_of(&t);
    let r = app
        .patch_thread(
            &k.a1,
            id,
            json!({"title": "Changed", "metadata": {"extra": 1}}),
        )
        .await;
    assert_error(&r, 422, "VALIDATION_ERROR");
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "metadata"]));
    let r = app
        .patch_thread(
            &k.a1,
            id,
            json!({"title": "t".repeat(201), "metadata": {"k0": null}}),
        )
        .await;
    assert_error(&r, 422, "VALIDATION_ERROR");
    let archived = app
        .patch_thread(&k.a1, id, json!({"state": "archived"}))
        .await;
    assert_eq!(archived.status, 200);
    let r = app
        .patch_thread(
            &k.a1,
            id,
            json!({"state": "open", "title": "Changed", "metadata": {"k0": null}}),
        )
        .await;
    assert_error(&r, 400, "INVALID_STATE_TRANSITION");
    let got = app.get_thread(&k.a1, id).await;
    assert_eq!(got.body, archived.body);
    assert_eq!(got.body["title"], "Keep");
    assert_eq!(got.body["metadata"].as_object().unwrap().len(), 16);
}

async fn delete_is_soft_and_answers_204(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let t = app.create_thread(&k.a1, json!({})).await;
    let keep = app.create_thread(&k.a1, json!({})).await;
    let id = id_of(&t);
    let r = app.delete_thread(&k.a1, id).await;
    assert_eq!(r.status, 204);
    assert!(r.raw.is_empty());
    assert_error(&app.get_thread(&k.a1, id).await, 404, "THREAD_NOT_FOUND");
    assert_error(&app.delete_thread(&k.a1, id).await, 404, "THREAD_NOT_FOUND");
    assert_error(
        &app.patch_thread(&k.a1, id, json!({"title": "x"})).await,
        404,
        "THREAD_NOT_FOUND",
    );
    assert_error(&app.pin(&k.a1, id).await, 404, "THREAD_NOT_FOUND");
    let live = app.list_threads(&k.a1, "").await;
    assert_eq!(live.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(live.body["data"][0]["id"], keep["id"]);
    assert!(live.body["data"][0].get("deleted_at").is_none());
    let all = app.list_threads(&k.a1, "include_deleted=true").await;
    let data = all.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    let deleted = data.iter().find(|d| d["id"] == t["id"]).unwrap();
    assert!(deleted["deleted_at"].is_string());
}

async fn delete_all_deletes_only_the_callers_threads(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    for _ in 0..3 {
        app.create_thread(&k.a1, json!({})).await;
    }
    let other = app.create_thread(&k.a2, json!({})).await;
    let foreign = app.create_thread(&k.b1, json!({})).await;
    let r = app.delete_threads(&k.a1, "organization_id=org_a").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["deleted"], 3);
    assert!(r.body["message"].as_str().is_some_and(|m| !m.is_empty()));
    let again = app.delete_threads(&k.a1, "").await;
    assert_eq!(again.body["deleted"], 0);
    let denied = app.delete_threads(&k.a1, "organization_id=org_b").await;
    assert_error(&denied, 403, "ORGANIZATION_ACCESS_DENIED");
    for (key, t) in [(&k.a2, &other), (&k.b1, &foreign)] {
        assert_eq!(app.get_thread(key, id_of(t)).await.status, 200);
    }
}

async fn pin_and_unpin_with_the_limit(backend: Backend) {
    let limits = Limits {
        max_pinned_threads: 2,
        ..Limits::default()
    };
    let app = TestApp::with(backend, |s: &mut AppState| s.limits = limits).await;
    let k = &app.keys;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(id_of(&app.create_thread(&k.a1, json!({})).await).to_string());
    }
    let first = app.pin(&k.a1, &ids[0]).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body["id"], ids[0].as_str());
    assert_eq!(first.body["is_pinned"], true);
    assert!(first.body["pinned_at"].is_string());
    assert!(first.body["message"].is_string());
    let again = app.pin(&k.a1, &ids[0]).await;
    assert_eq!(again.body["pinned_at"], first.body["pinned_at"]);
    app.pin(&k.a1, &ids[1]).await;
    let over = app.pin(&k.a1, &ids[2]).await;
    assert_error(&over, 400, "PIN_LIMIT");
    let got = app.get_thread(&k.a1, &ids[2]).await;
    assert_eq!(got.body["is_pinned"], false);
    let got = app.get_thread(&k.a1, &ids[0]).await;
    assert_eq!(got.body["is_pinned"], true);
    assert_eq!(got.body["pinned_at"], first.body["pinned_at"]);
    let un = app.unpin(&k.a1, &ids[0]).await;
    assert_eq!(un.status, 200);
    assert_eq!(un.body["is_pinned"], false);
    assert!(un.body["pinned_at"].is_null());
    assert_eq!(app.pin(&k.a1, &ids[2]).await.status, 200);
    // The pins of another user do not count.
    let theirs = app.create_thread(&k.a2, json!({})).await;
    assert_eq!(app.pin(&k.a2, id_of(&theirs)).await.status, 200);
}
