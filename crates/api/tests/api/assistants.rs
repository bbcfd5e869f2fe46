//! The Assistants API through the real app builder, on SQLite and PostgreSQL,
//! each test with its own fresh database.

use super::common::*;

use actix_web::http::Method;
use chrono::TimeDelta;
use serde_json::{json, Value};
use skein_domain::{
    clock, Assistant, AssistantName, AssistantSpec, Metadata, OrganizationId, UserId,
};
use skein_persistence::assistants::{self, AssistantQuery};
use skein_persistence::rows::AssistantRow;
use skein_persistence::{tenancy, Backend, Scope};
use std::collections::HashSet;

skein_persistence::on_both_backends_async!(
    create_returns_201_with_every_field_and_unix_seconds,
    create_with_only_a_name_fills_nulls_and_empty_metadata,
    get_returns_the_callers_assistant,
    listing_walks_pages_without_duplicates_or_skips,
    put_changes_the_given_fields_and_moves_updated_at,
    delete_answers_204_then_404,
    validation_errors_are_listed_and_change_nothing,
    assistants_are_invisible_to_other_users_and_organizations,
    threads_bind_only_the_callers_own_assistants,
    pages_break_creation_time_ties_by_id,
    authentication_is_required,
);

fn scope(org: &str, user: &str) -> Scope {
    Scope {
        organization_id: OrganizationId::parse(org).unwrap(),
        user_id: UserId::parse(user).unwrap(),
        live: None,
    }
}

/// The ids of the caller's assistants, as one page lists them.
async fn list_ids(app: &TestApp, key: &str) -> Vec<String> {
    let r = app.list_assistants(key, "limit=100").await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect()
}

/// Stores an assistant of `user` directly, created (and last updated) `age` ago.
fn insert_aged(store: &skein_persistence::Store, org: &str, user: &str, age: TimeDelta) -> String {
    let mut conn = store.conn().unwrap();
    let then = clock::now() - age;
    let a = Assistant::new(
        skein_domain::AssistantId::generate(),
        OrganizationId::parse(org).unwrap(),
        UserId::parse(user).unwrap(),
        AssistantSpec {
            name: AssistantName::parse("Aged").unwrap(),
            instructions: None,
            model: Some("old-model".into()),
            temperature: None,
            metadata: Metadata::empty(),
        },
        then,
    );
    assistants::insert(&mut conn, &a).unwrap();
    a.id.into_string()
}

async fn create_returns_201_with_every_field_and_unix_seconds(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let before = clock::now().timestamp();
    let a = app
        .create_assistant(
            &k.a1,
            json!({
                "organizationId": ORG_A, "name": "Support agent",
                "instructions": "Answer briefly.", "model": "gpt-4o", "temperature": 0.3,
                "metadata": {"team": "support", "tags": ["a", "b"]}
            }),
        )
        .await;
    let after = clock::now().timestamp();
    let id = a["id"].as_str().unwrap();
    let rest = id.strip_prefix("asst_").unwrap();
    assert_eq!(rest.len(), 24);
    assert!(rest.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(a["object"], "assistant");
    assert_eq!(a["name"], "Support agent");
    assert_eq!(a["instructions"], "Answer briefly.");
    assert_eq!(a["model"], "gpt-4o");
    assert_eq!(a["temperature"], 0.3);
    assert_eq!(
        a["metadata"],
        json!({"team": "support", "tags": ["a", "b"]})
    );
    assert_eq!(a["organization_id"], ORG_A);
    assert_eq!(a["created_by"], "usr_1");
    for field in ["created_at", "updated_at"] {
        let t = a[field].as_i64().expect("unix seconds are integers");
        assert!(a[field].is_i64(), "{field} must be an integer");
        assert!((before..=after).contains(&t), "{field} {t} not now");
    }
    assert_eq!(a["created_at"], a["updated_at"]);
    assert_eq!(
        a.as_object().unwrap().len(),
        11,
        "exactly the contract's fields: {a}"
    );
    // Read back, the stored assistant is the same.
    let got = app.get_assistant(&k.a1, id).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, a);
}

async fn create_with_only_a_name_fills_nulls_and_empty_metadata(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    // organization_id may be omitted: the key has one organization.
    let a = app.create_assistant(&k.a1, json!({"name": "x"})).await;
    assert_eq!(a["organization_id"], ORG_A);
    for field in ["instructions", "model", "temperature"] {
        assert!(
            a.get(field).is_some_and(Value::is_null),
            "{field} must be present and null"
        );
    }
    assert_eq!(a["metadata"], json!({}));
    // Explicit nulls mean the same; a temperature at the edges is fine.
    let a = app
        .create_assistant(
            &k.a1,
            json!({"name": "y", "instructions": null, "metadata": null, "temperature": 2}),
        )
        .await;
    assert_eq!(a["metadata"], json!({}));
    assert_eq!(a["temperature"], 2.0);
    let a = app
        .create_assistant(&k.a1, json!({"name": "z", "temperature": 0}))
        .await;
    assert_eq!(a["temperature"], 0.0);
    // Another organization's id is refused.
    let r = app
        .post_assistant(&k.a1, json!({"organization_id": ORG_B, "name": "x"}))
        .await;
    assert_error(&r, 403, "ORGANIZATION_ACCESS_DENIED");
    assert_eq!(list_ids(&app, &k.a1).await.len(), 3);
}

async fn get_returns_the_callers_assistant(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let a = app
        .create_assistant(&k.a1, json!({"name": "Mine", "model": "m"}))
        .await;
    let id = a["id"].as_str().unwrap();
    for query in [
        String::new(),
        format!("?organization_id={ORG_A}"),
        format!("?organizationId={ORG_A}"),
    ] {
        let r = app.get_assistant(&k.a1, &format!("{id}{query}")).await;
        assert_eq!(r.status, 200, "{query}: {}", r.body);
        assert_eq!(r.body["id"], id);
        assert_eq!(r.body["model"], "m");
    }
    let r = app.get_assistant(&k.a1, "asst_missing").await;
    assert_error(&r, 404, "ASSISTANT_NOT_FOUND");
    assert!(r.body["error"]["system_message"]
        .as_str()
        .unwrap()
        .contains("asst_missing"));
}

async fn listing_walks_pages_without_duplicates_or_skips(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let mut created = Vec::new();
    for i in 0..5 {
        let a = app
            .create_assistant(&k.a1, json!({"name": format!("a{i}")}))
            .await;
        created.push(a["id"].as_str().unwrap().to_string());
    }
    // Someone else's assistant never shows up.
    app.create_assistant(&k.a2, json!({"name": "other"})).await;
    let first = app.list_assistants(&k.a1, "").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body["object"], "list");
    assert_eq!(first.body["has_more"], false);
    let data = first.body["data"].as_array().unwrap();
    // Newest first (two made in the same millisecond may come in either order).
    let times: Vec<i64> = data
        .iter()
        .map(|a| a["created_at"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    let all: Vec<String> = data
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        all.iter().collect::<HashSet<_>>(),
        created.iter().collect::<HashSet<_>>()
    );
    assert_eq!(first.body["first_id"], json!(all[0]));
    assert_eq!(first.body["last_id"], json!(all[4]));

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let query = match &after {
            Some(a) => format!("limit=2&after={a}"),
            None => "limit=2".to_string(),
        };
        let r = app.list_assistants(&k.a1, &query).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let data = r.body["data"].as_array().unwrap();
        pages.push(data.len());
        for a in data {
            seen.push(a["id"].as_str().unwrap().to_string());
        }
        assert_eq!(r.body["first_id"], data[0]["id"]);
        assert_eq!(r.body["last_id"], data[data.len() - 1]["id"]);
        if r.body["has_more"] == json!(false) {
            break;
        }
        after = Some(r.body["last_id"].as_str().unwrap().to_string());
        // A page inserted mid-walk lands in front and changes nothing behind.
        if pages.len() == 1 {
            app.create_assistant(&k.a1, json!({"name": "late"})).await;
        }
    }
    assert_eq!(pages, vec![2, 2, 1]);
    assert_eq!(seen, all, "every assistant once, in the list's order");

    // An empty list, a cursor that is not the caller's, bad limits.
    let empty = app.list_assistants(&k.b1, "").await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.body["data"], json!([]));
    assert!(empty.body["first_id"].is_null() && empty.body["last_id"].is_null());
    assert_eq!(empty.body["has_more"], false);
    let r = app.list_assistants(&k.a1, "after=asst_nope").await;
    assert_error(&r, 400, "INVALID_REQUEST");
    for q in ["limit=0", "limit=101", "limit=x"] {
        let r = app.list_assistants(&k.a1, q).await;
        assert_error(&r, 422, "VALIDATION_ERROR");
        assert_eq!(r.body["detail"][0]["loc"], json!(["query", "limit"]));
    }
    let r = app.list_assistants(&k.a1, "limit=100").await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 6);
}

async fn put_changes_the_given_fields_and_moves_updated_at(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let id = insert_aged(&app.store, ORG_A, "usr_1", TimeDelta::hours(1));
    let old = app.get_assistant(&k.a1, &id).await;
    assert_eq!(old.body["model"], "old-model");
    let created_at = old.body["created_at"].as_i64().unwrap();
    let before = clock::now().timestamp();
    let r = app
        .put_assistant(
            &k.a1,
            &id,
            json!({"name": "New", "instructions": "Be kind.", "model": "gpt-4o-mini",
                    "temperature": 1.5, "metadata": {"v": 2}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["id"], json!(id));
    assert_eq!(r.body["name"], "New");
    assert_eq!(r.body["instructions"], "Be kind.");
    assert_eq!(r.body["model"], "gpt-4o-mini");
    assert_eq!(r.body["temperature"], 1.5);
    assert_eq!(r.body["metadata"], json!({"v": 2}));
    assert_eq!(r.body["created_by"], "usr_1");
    assert_eq!(r.body["organization_id"], ORG_A);
    assert_eq!(r.body["created_at"], json!(created_at), "created_at stays");
    let updated_at = r.body["updated_at"].as_i64().unwrap();
    assert!(updated_at >= before && updated_at > created_at + 3000);
    let got = app.get_assistant(&k.a1, &id).await;
    assert_eq!(got.body, r.body, "the update is stored");

    // Only the fields given change: absent and null ones stay (the
    // published clients send partial updates).
    let r = app
        .put_assistant(&k.a1, &id, json!({"temperature": 0.5, "model": null}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["temperature"], 0.5);
    assert_eq!(r.body["name"], "New");
    assert_eq!(r.body["instructions"], "Be kind.");
    assert_eq!(r.body["model"], "gpt-4o-mini");
    assert_eq!(r.body["metadata"], json!({"v": 2}));
    let r = app.put_assistant(&k.a1, &id, json!({})).await;
    assert_eq!(
        r.status, 200,
        "an empty update changes nothing but updated_at"
    );
    assert_eq!(r.body["name"], "New");
    let got = app.get_assistant(&k.a1, &id).await;
    assert_eq!(got.body, r.body);

    // A missing assistant is named in the 404.
    let r = app
        .put_assistant(&k.a1, "asst_gone", json!({"name": "x"}))
        .await;
    assert_error(&r, 404, "ASSISTANT_NOT_FOUND");
    assert!(r.body["error"]["system_message"]
        .as_str()
        .unwrap()
        .contains("asst_gone"));
}

async fn delete_answers_204_then_404(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let a = app.create_assistant(&k.a1, json!({"name": "Doomed"})).await;
    let keep = app.create_assistant(&k.a1, json!({"name": "Kept"})).await;
    let id = a["id"].as_str().unwrap();
    let r = app.delete_assistant(&k.a1, id).await;
    assert_eq!(r.status, 204);
    assert!(r.raw.is_empty(), "204 has an empty body");
    assert_error(
        &app.get_assistant(&k.a1, id).await,
        404,
        "ASSISTANT_NOT_FOUND",
    );
    assert_error(
        &app.delete_assistant(&k.a1, id).await,
        404,
        "ASSISTANT_NOT_FOUND",
    );
    assert_error(
        &app.put_assistant(&k.a1, id, json!({"name": "x"})).await,
        404,
        "ASSISTANT_NOT_FOUND",
    );
    assert_eq!(
        list_ids(&app, &k.a1).await,
        vec![keep["id"].as_str().unwrap().to_string()]
    );
    // A deleted assistant can no longer be bound.
    let r = app
        .post_thread(&k.a1, json!({"assistant_id": a["id"]}))
        .await;
    assert_error(&r, 404, "ASSISTANT_NOT_FOUND");
}

async fn validation_errors_are_listed_and_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let a = app
        .create_assistant(&k.a1, json!({"name": "Stable", "model": "m"}))
        .await;
    let id = a["id"].as_str().unwrap();
    let long_name = "x".repeat(257);
    let long_instructions = "x".repeat(256_001);
    let cases = [
        (json!({}), "name"),
        (json!({"name": null}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": long_name}), "name"),
        (json!({"name": "ok", "temperature": 2.5}), "temperature"),
        (json!({"name": "ok", "temperature": -0.1}), "temperature"),
        (json!({"name": "ok", "temperature": "hot"}), "temperature"),
        (
            json!({"name": "ok", "metadata": meta_with_keys(17)}),
            "metadata",
        ),
        (json!({"name": "ok", "metadata": [1]}), "metadata"),
        (
            json!({"name": "ok", "instructions": long_instructions}),
            "instructions",
        ),
    ];
    for (body, loc) in cases {
        let r = app.post_assistant(&k.a1, body.clone()).await;
        assert_error(&r, 422, "VALIDATION_ERROR");
        assert_eq!(
            r.body["detail"][0]["loc"],
            json!(["body", loc]),
            "POST {body}"
        );
        // A missing name is fine in an update: it stays as it is.
        if body.get("name").is_none_or(Value::is_null) {
            continue;
        }
        let r = app.put_assistant(&k.a1, id, body.clone()).await;
        assert_error(&r, 422, "VALIDATION_ERROR");
        assert_eq!(
            r.body["detail"][0]["loc"],
            json!(["body", loc]),
            "PUT {body}"
        );
    }
    // Several broken fields are all reported.
    let r = app
        .post_assistant(
            &k.a1,
            json!({"temperature": 9, "metadata": meta_with_keys(17)}),
        )
        .await;
    assert_error(&r, 422, "VALIDATION_ERROR");
    let locs: Vec<Value> = r.body["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["loc"][1].clone())
        .collect();
    assert_eq!(
        locs,
        vec![json!("name"), json!("temperature"), json!("metadata")]
    );
    // Malformed JSON is 400.
    let r = app
        .post("/v1/assistants")
        .key(&k.a1)
        .header("Content-Type", "application/json")
        .payload("{\"name\": ")
        .send()
        .await;
    assert_eq!(r.status, 400);
    // Exactly at the limits passes.
    let edge = app
        .create_assistant(
            &k.a1,
            json!({"name": "x".repeat(256), "metadata": meta_with_keys(16),
                   "instructions": "x".repeat(256_000)}),
        )
        .await;
    assert_eq!(edge["name"].as_str().unwrap().chars().count(), 256);
    // Nothing rejected was written or changed.
    assert_eq!(list_ids(&app, &k.a1).await.len(), 2);
    let got = app.get_assistant(&k.a1, id).await;
    assert_eq!(got.body, a);
}

async fn assistants_are_invisible_to_other_users_and_organizations(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let a = app
        .create_assistant(&k.a1, json!({"name": "Private", "instructions": "secret"}))
        .await;
    let id = a["id"].as_str().unwrap();
    for other in [&k.a2, &k.b1] {
        for r in [
            app.get_assistant(other, id).await,
            app.delete_assistant(other, id).await,
        ] {
            assert_error(&r, 404, "ASSISTANT_NOT_FOUND");
            assert!(!r.raw.windows(6).any(|w| w == b"secret"));
        }
        let r = app
            .put_assistant(other, id, json!({"name": "hijacked"}))
            .await;
        assert_error(&r, 404, "ASSISTANT_NOT_FOUND");
        assert!(list_ids(&app, other).await.is_empty());
        let r = app.list_assistants(other, &format!("after={id}")).await;
        assert_error(&r, 400, "INVALID_REQUEST");
    }
    // Naming the owner's organization with another organization's key is 403.
    let in_org_a = format!("{id}?organization_id={ORG_A}");
    for r in [
        app.get_assistant(&k.b1, &in_org_a).await,
        app.delete_assistant(&k.b1, &in_org_a).await,
        app.list_assistants(&k.b1, &format!("organization_id={ORG_A}"))
            .await,
    ] {
        assert_error(&r, 403, "ORGANIZATION_ACCESS_DENIED");
    }
    // The owner still sees it unchanged.
    let got = app.get_assistant(&k.a1, id).await;
    assert_eq!(got.body, a);
    assert_eq!(list_ids(&app, &k.a1).await, vec![id.to_string()]);
}

async fn threads_bind_only_the_callers_own_assistants(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let mine = app.create_assistant(&k.a1, json!({"name": "Mine"})).await;
    let colleagues = app.create_assistant(&k.a2, json!({"name": "Theirs"})).await;
    let elsewhere = app
        .create_assistant(&k.b1, json!({"name": "Other org"}))
        .await;
    for foreign in [&colleagues, &elsewhere] {
        let r = app
            .post_thread(&k.a1, json!({"assistant_id": foreign["id"]}))
            .await;
        assert_error(&r, 404, "ASSISTANT_NOT_FOUND");
        assert!(r.body["error"]["system_message"]
            .as_str()
            .unwrap()
            .contains(foreign["id"].as_str().unwrap()));
    }
    let r = app
        .post_thread(&k.a1, json!({"assistantId": mine["id"]}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["assistant_id"], mine["id"]);
    // PATCH follows the same rule.
    let thread = app.post_thread(&k.a1, json!({})).await;
    let tid = thread.body["id"].as_str().unwrap();
    let r = app
        .patch_thread(&k.a1, tid, json!({"assistant_id": colleagues["id"]}))
        .await;
    assert_error(&r, 404, "ASSISTANT_NOT_FOUND");
    let r = app
        .patch_thread(&k.a1, tid, json!({"assistant_id": mine["id"]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["assistant_id"], mine["id"]);
    // The colleague can bind their own.
    let r = app
        .post_thread(&k.a2, json!({"assistant_id": colleagues["id"]}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // Rows written the old way (tenancy::insert_assistant) bind for their creator only.
    {
        let mut conn = app.store.conn().unwrap();
        let now = chrono::Utc::now().naive_utc();
        tenancy::insert_assistant(
            &mut conn,
            &AssistantRow {
                id: "asst_legacy".into(),
                organization_id: ORG_A.into(),
                created_by: "usr_1".into(),
                name: "legacy".into(),
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
    let body = json!({"assistant_id": "asst_legacy"});
    let r = app.post_thread(&k.a1, body.clone()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = app.post_thread(&k.a2, body).await;
    assert_error(&r, 404, "ASSISTANT_NOT_FOUND");
    // The lookup the response flow uses sees the same thing.
    let mut conn = app.store.conn().unwrap();
    let found = assistants::find(&mut conn, &scope(ORG_A, "usr_1"), "asst_legacy").unwrap();
    assert_eq!(found.unwrap().name.as_str(), "legacy");
    assert!(
        assistants::find(&mut conn, &scope(ORG_A, "usr_2"), "asst_legacy")
            .unwrap()
            .is_none()
    );
}

async fn pages_break_creation_time_ties_by_id(backend: Backend) {
    // Assistants created in the same millisecond still page exactly once each.
    let app = TestApp::spawn(backend).await;
    let mut conn = app.store.conn().unwrap();
    let s = scope(ORG_A, "usr_1");
    let now = clock::now();
    let mut ids = Vec::new();
    for i in 0..7 {
        let at = if i < 5 {
            now
        } else {
            now + TimeDelta::seconds(1)
        };
        let a = Assistant::new(
            skein_domain::AssistantId::generate(),
            s.organization_id.clone(),
            s.user_id.clone(),
            AssistantSpec {
                name: AssistantName::parse(format!("tie{i}")).unwrap(),
                instructions: None,
                model: None,
                temperature: None,
                metadata: Metadata::empty(),
            },
            at,
        );
        assistants::insert(&mut conn, &a).unwrap();
        ids.push((at, a.id.into_string()));
    }
    // The two newer ones first; the ties in the collation's id order.
    let newer: HashSet<String> = ids[5..].iter().map(|(_, id)| id.clone()).collect();
    let all: HashSet<String> = ids.iter().map(|(_, id)| id.clone()).collect();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = assistants::list(&mut conn, &s, &AssistantQuery { limit: 2, after }).unwrap();
        seen.extend(page.assistants.iter().map(|a| a.id.to_string()));
        if !page.has_more {
            break;
        }
        after = seen.last().cloned();
    }
    assert_eq!(seen.len(), 7, "{seen:?}");
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), all);
    assert_eq!(seen[..2].iter().cloned().collect::<HashSet<_>>(), newer);
    // The walk matches one big page exactly.
    let one = assistants::list(
        &mut conn,
        &s,
        &AssistantQuery {
            limit: 100,
            after: None,
        },
    )
    .unwrap();
    let one: Vec<String> = one.assistants.iter().map(|a| a.id.to_string()).collect();
    assert_eq!(seen, one);
}

async fn authentication_is_required(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let a = app.create_assistant(&k.a1, json!({"name": "x"})).await;
    let uri = format!("/v1/assistants/{}", a["id"].as_str().unwrap());
    for (method, path) in [
        (Method::POST, "/v1/assistants"),
        (Method::GET, "/v1/assistants"),
        (Method::GET, uri.as_str()),
        (Method::PUT, uri.as_str()),
        (Method::DELETE, uri.as_str()),
    ] {
        let r = app
            .request(method.clone(), path)
            .json(json!({"name": "y"}))
            .send()
            .await;
        assert_error(&r, 401, "AUTHENTICATION_REQUIRED");
        let r = app
            .request(method, path)
            .key("sk_wrong")
            .json(json!({"name": "y"}))
            .send()
            .await;
        assert_error(&r, 401, "INVALID_API_KEY");
    }
    assert_eq!(list_ids(&app, &k.a1).await.len(), 1);
}

#[actix_web::test]
async fn the_committed_openapi_document_has_the_assistant_operations() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi/openapi.json");
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("openapi/openapi.json"))
            .unwrap();
    let expected = [
        ("post", "/v1/assistants", "create_assistant", "201"),
        ("get", "/v1/assistants", "list_assistants", "200"),
        (
            "get",
            "/v1/assistants/{assistant_id}",
            "get_assistant",
            "200",
        ),
        (
            "put",
            "/v1/assistants/{assistant_id}",
            "update_assistant",
            "200",
        ),
        (
            "delete",
            "/v1/assistants/{assistant_id}",
            "delete_assistant",
            "204",
        ),
    ];
    for (method, path, op, ok) in expected {
        let operation = &doc["paths"][path][method];
        assert_eq!(operation["operationId"], op, "{method} {path}");
        assert_eq!(operation["tags"], json!(["assistants"]), "{op}");
        assert!(operation["description"].is_string() || operation["summary"].is_string());
        for status in [ok, "401", "403"] {
            assert!(
                operation["responses"].get(status).is_some(),
                "{op} lacks {status}"
            );
        }
        if method != "post" {
            assert!(operation["responses"].get("404").is_some() || op == "list_assistants");
        }
    }
    assert!(doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "assistants"));
    let schema = &doc["components"]["schemas"]["AssistantResponse"];
    for field in ["created_at", "updated_at"] {
        assert_eq!(schema["properties"][field]["type"], "integer", "{field}");
    }
}
