//! `GET /v1/threads/export` (issue 14): the caller's threads with their
//! messages as NDJSON, one thread per line, with the thread list's filters;
//! a fork's line holds its whole history, OpenAI items are kept as stored,
//! and long threads and many threads come whole.

use super::common::*;
use super::responses::user;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use skein_domain::{clock, Limits, MessageRole, Metadata, NewMessage, OrganizationId, UserId};
use skein_persistence::{messages, Backend, Scope};

skein_persistence::on_both_backends_async!(
    the_export_streams_exactly_the_callers_threads_with_their_whole_history,
    the_export_honours_the_filters_of_the_thread_list,
    an_empty_export_is_an_empty_200_and_refusals_come_before_the_first_byte,
    long_threads_and_many_threads_are_exported_whole,
);

/// `GET /v1/threads/export?{query}` with a key.
async fn export(app: &TestApp, key: &str, query: &str) -> Resp {
    let uri = match query {
        "" => "/v1/threads/export".to_string(),
        q => format!("/v1/threads/export?{q}"),
    };
    app.get(uri).key(key).send().await
}

/// The lines of a 200 NDJSON answer, each a complete line.
#[track_caller]
fn lines(r: &Resp) -> Vec<Value> {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.raw));
    assert_eq!(
        r.headers.get("content-type").unwrap(),
        "application/x-ndjson"
    );
    let text = std::str::from_utf8(&r.raw).unwrap();
    if text.is_empty() {
        return Vec::new();
    }
    assert!(text.ends_with('\n'), "every line ends with a newline");
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .collect()
}

/// The thread ids of export lines.
fn ids(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l["thread"]["id"].as_str().unwrap().to_string())
        .collect()
}

/// The thread ids of `GET /v1/threads?{query}&limit=100`.
async fn listed(app: &TestApp, key: &str, query: &str) -> Vec<String> {
    let q = match query {
        "" => "limit=100".to_string(),
        q => format!("{q}&limit=100"),
    };
    let r = app.list_threads(key, &q).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["has_more"], false);
    r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

/// A timestamp of either format (the API's milliseconds, the export's RFC
/// 3339 at full precision) as an instant.
fn instant(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str().map(|s| {
        DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .with_timezone(&Utc)
    })
}

/// The export record of a thread says what `GET /v1/threads/{id}` says.
#[track_caller]
fn same_thread(record: &Value, api: &Value) {
    let ctx = format!("{record}\n{api}");
    for field in [
        "id",
        "organization_id",
        "user_id",
        "title",
        "metadata",
        "assistant_id",
        "state",
        "visible_in_ui",
        "last_model_used",
        "workflow_id",
        "is_incognito",
        "message_count",
        "has_unread",
        "forked_from",
    ] {
        assert_eq!(record[field], api[field], "{field}: {ctx}");
    }
    for field in [
        "created_at",
        "updated_at",
        "last_message_at",
        "pinned_at",
        "expected_deletion_at",
    ] {
        assert_eq!(
            instant(&record[field]),
            instant(&api[field]),
            "{field}: {ctx}"
        );
    }
    assert_eq!(record["pinned_at"].is_null(), api["is_pinned"] == false);
}

/// The exported messages of a line say what the message list says.
#[track_caller]
fn same_messages(exported: &Value, listed: &Value) {
    let exported = exported.as_array().unwrap();
    let listed = listed["data"].as_array().unwrap();
    assert_eq!(exported.len(), listed.len(), "{exported:?}\n{listed:?}");
    let mut previous = 0;
    for (e, l) in exported.iter().zip(listed) {
        for field in [
            "id",
            "role",
            "content",
            "metadata",
            "attachments",
            "response_id",
            "model",
        ] {
            assert_eq!(e[field], l[field], "{field}: {e}\n{l}");
        }
        assert_eq!(e["kind"], "message");
        assert_eq!(instant(&e["created_at"]), instant(&l["created_at"]));
        assert_eq!(instant(&e["updated_at"]), instant(&l["updated_at"]));
        let seq = e["seq"].as_i64().unwrap();
        assert!(seq > previous, "increasing seq: {e}");
        previous = seq;
        assert!(e["token_count"].as_i64().unwrap() > 0, "{e}");
    }
}

/// The line of thread `id`.
#[track_caller]
fn line_of<'a>(lines: &'a [Value], id: &str) -> &'a Value {
    let found: Vec<&Value> = lines.iter().filter(|l| l["thread"]["id"] == id).collect();
    assert_eq!(found.len(), 1, "one line for {id}");
    found[0]
}

async fn the_export_streams_exactly_the_callers_threads_with_their_whole_history(backend: Backend) {
    let app = TestApp::with(backend, enable_tokens).await;
    let k = &app.keys;
    // usr_1 in org_a: a turn on the echo model, renamed, tagged and pinned.
    let r = app
        .post_response(
            &k.a1,
            json!({"thread": "chat", "inputs": [user("hello export")]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app
        .patch_thread(
            &k.a1,
            "chat",
            json!({"title": "Chat", "metadata": {"team": "support"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(app.pin(&k.a1, "chat").await.status, 200);
    // An archived thread with a message that carries metadata.
    let old = app.create_thread(&k.a1, json!({"title": "Old"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .post_message(
            &k.a1,
            &old,
            json!({"role": "user", "content": "kept", "metadata": {"source": "import"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = app
        .patch_thread(&k.a1, &old, json!({"state": "archived"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // A fork of the chat, with a message of its own.
    let r = app
        .post("/v1/threads/chat/fork")
        .key(&k.a1)
        .json(json!({}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let fork = r.body["id"].as_str().unwrap().to_string();
    let r = app
        .post_message(
            &k.a1,
            &fork,
            json!({"role": "user", "content": "after the fork"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // A conversation of the OpenAI dialect with a function call and its output.
    let r = app
        .post("/v1/conversations")
        .key(&k.a1)
        .json(json!({"items": [{"role": "user", "content": "weather in Oslo?"}]}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let conv = r.body["id"].as_str().unwrap().to_string();
    let r = app
        .post(format!("/v1/conversations/{conv}/items"))
        .key(&k.a1)
        .json(json!({"items": [
            {"type": "function_call", "call_id": "call_1", "name": "get_weather",
             "arguments": "{\"city\":\"Oslo\"}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny, 21C"},
        ]}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Other users' and organizations' threads, one of them named "chat" too.
    app.create_thread(&k.a2, json!({"title": "theirs"})).await;
    let r = app
        .post_response(
            &k.b1,
            json!({"thread": "chat", "inputs": [user("other organization")]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    let all = lines(&export(&app, &k.a1, "").await);
    // Exactly the caller's threads, oldest first (the list with
    // `order=asc`), so that an import keeps the list's order.
    assert_eq!(ids(&all), listed(&app, &k.a1, "order=asc").await);
    assert_eq!(all.len(), 4);
    for line in &all {
        let record = &line["thread"];
        assert_eq!(record["organization_id"], ORG_A);
        assert_eq!(record["user_id"], "usr_1");
        let id = record["id"].as_str().unwrap();
        let api = app.get_thread(&k.a1, id).await;
        same_thread(record, &api.body);
        if id != conv {
            let listed = app.list_messages(&k.a1, id, "order=asc&limit=100").await;
            same_messages(&line["messages"], &listed.body);
        }
    }
    let chat = line_of(&all, "chat");
    assert_eq!(chat["thread"]["title"], "Chat");
    assert_eq!(chat["thread"]["metadata"], json!({"team": "support"}));
    assert!(chat["thread"]["pinned_at"].is_string());
    assert_eq!(chat["thread"]["last_model_used"], "default");
    assert_eq!(chat["messages"][0]["content"], "hello export");
    assert_eq!(chat["messages"][1]["role"], "assistant");
    assert_eq!(line_of(&all, &old)["thread"]["state"], "archived");
    assert_eq!(
        line_of(&all, &old)["messages"][0]["metadata"],
        json!({"source": "import"})
    );
    // The fork holds the chat's history, then its own message.
    let forked = line_of(&all, &fork);
    let history: Vec<&Value> = forked["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["id"])
        .collect();
    let chat_ids: Vec<&Value> = chat["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["id"])
        .collect();
    assert_eq!(history.len(), 3);
    assert_eq!(history[..2], chat_ids[..]);
    assert_eq!(forked["messages"][2]["content"], "after the fork");
    assert_eq!(
        forked["thread"]["forked_from"],
        json!({"thread_id": "chat", "message_id": chat_ids[1]})
    );
    // The conversation's items in order, the call kept as stored.
    let items = app
        .get(format!(
            "/v1/conversations/{conv}/items?order=asc&limit=100"
        ))
        .key(&k.a1)
        .send()
        .await;
    let item_ids: Vec<&Value> = items.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["id"])
        .collect();
    let exported = line_of(&all, &conv);
    let exported_ids: Vec<&Value> = exported["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["id"])
        .collect();
    assert_eq!(exported_ids, item_ids);
    assert_eq!(exported["thread"]["message_count"], 1);
    assert_eq!(exported["thread"]["item_count"], 2);
    let call = &exported["messages"][1];
    assert_eq!(call["kind"], "function_call");
    assert_eq!(call["role"], "assistant");
    let stored: Value = serde_json::from_str(call["content"].as_str().unwrap()).unwrap();
    assert_eq!(stored["name"], "get_weather");
    assert_eq!(stored["arguments"], "{\"city\":\"Oslo\"}");
    assert_eq!(exported["messages"][2]["kind"], "function_call_output");

    // The other organization's "chat" is usr_1's too, but not in org_a.
    let other = lines(&export(&app, &k.b1, "").await);
    assert_eq!(ids(&other), vec!["chat"]);
    assert_eq!(other[0]["thread"]["organization_id"], ORG_B);
    assert_eq!(other[0]["messages"][0]["content"], "other organization");
    assert_eq!(ids(&lines(&export(&app, &k.a2, "").await)).len(), 1);
    // A user token of both organizations exports both, one after the other;
    // naming one exports that one.
    let token = token_for("usr_1", 600);
    let both = app.get("/v1/threads/export").bearer(&token).send().await;
    let both = lines(&both);
    assert_eq!(both.len(), 5);
    let orgs: Vec<&Value> = both
        .iter()
        .map(|l| &l["thread"]["organization_id"])
        .collect();
    assert_eq!(orgs.iter().filter(|o| **o == ORG_B).count(), 1);
    let one = app
        .get(format!("/v1/threads/export?organization_id={ORG_B}"))
        .bearer(&token)
        .send()
        .await;
    assert_eq!(ids(&lines(&one)), vec!["chat"]);
}

async fn the_export_honours_the_filters_of_the_thread_list(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let mut made = Vec::new();
    for (title, team) in [
        ("alpha one", "a"),
        ("beta two", "b"),
        ("alpha three", "b"),
        ("gamma four", "a"),
        ("delta five", "a"),
    ] {
        let t = app
            .create_thread(
                &k.a1,
                json!({"title": title, "metadata": {"team": team}, "workflow_id": format!("wf-{team}")}),
            )
            .await;
        made.push(t);
    }
    let id = |i: usize| made[i]["id"].as_str().unwrap().to_string();
    assert_eq!(
        app.patch_thread(&k.a1, &id(1), json!({"state": "archived"}))
            .await
            .status,
        200
    );
    assert_eq!(app.pin(&k.a1, &id(2)).await.status, 200);
    assert_eq!(app.delete_thread(&k.a1, &id(4)).await.status, 204);
    let second = made[1]["created_at"].as_str().unwrap().to_string();
    let queries = [
        String::new(),
        "order=asc".into(),
        "metadata[team]=a".into(),
        "metadata[team]=b&state=open".into(),
        "state=archived".into(),
        "is_pinned=true".into(),
        "is_pinned=false".into(),
        "search=ALPHA".into(),
        "workflow_id=wf-b".into(),
        "visible_in_ui=true".into(),
        format!("created_after={second}"),
        format!("created_before={second}&order=asc"),
        "include_deleted=true".into(),
        "include_deleted=true&metadata[team]=a&order=asc".into(),
    ];
    for query in &queries {
        let exported = lines(&export(&app, &k.a1, query).await);
        // The export's default order is oldest first (the list's is newest
        // first).
        let as_listed = if query.contains("order=") {
            query.clone()
        } else if query.is_empty() {
            "order=asc".to_string()
        } else {
            format!("{query}&order=asc")
        };
        let want = listed(&app, &k.a1, &as_listed).await;
        assert_eq!(ids(&exported), want, "{query}");
        // Threads made in the same millisecond make the time filters' result
        // vary; the others always match something here.
        assert!(!want.is_empty() || query.contains("created_"), "{query}");
    }
    // Soft-deleted threads only on request, with their deletion time.
    let live = ids(&lines(&export(&app, &k.a1, "").await));
    assert!(!live.contains(&id(4)));
    let with_deleted = lines(&export(&app, &k.a1, "include_deleted=true").await);
    let deleted = line_of(&with_deleted, &id(4));
    assert!(instant(&deleted["thread"]["deleted_at"]).is_some());
    assert!(line_of(&with_deleted, &id(0))["thread"]["deleted_at"].is_null());
}

async fn an_empty_export_is_an_empty_200_and_refusals_come_before_the_first_byte(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    app.create_thread(&k.a1, json!({"title": "not theirs"}))
        .await;
    // Nothing of usr_2's: an empty body.
    let r = export(&app, &k.a2, "").await;
    assert_eq!(lines(&r), Vec::<Value>::new());
    assert!(r.raw.is_empty());
    // No match: empty too.
    assert!(lines(&export(&app, &k.a1, "metadata[none]=x").await).is_empty());
    // Refusals answer the envelope.
    for (query, loc) in [
        ("state=bogus", json!(["query", "state"])),
        ("limit=5", json!(["query", "limit"])),
        ("after=x", json!(["query", "after"])),
        ("before=x", json!(["query", "before"])),
        ("include_total=true", json!(["query", "include_total"])),
        ("created_after=yesterday", json!(["query", "created_after"])),
        ("is_pinned=maybe", json!(["query", "is_pinned"])),
        ("order=sideways", json!(["query", "order"])),
        ("metadata[]=x", json!(["query", "metadata[]"])),
    ] {
        let r = export(&app, &k.a1, query).await;
        assert_error(&r, 422, "VALIDATION_ERROR");
        assert_eq!(r.body["detail"][0]["loc"], loc, "{query}: {}", r.body);
    }
    let r = export(&app, &k.a1, &format!("organization_id={ORG_B}")).await;
    assert_error(&r, 403, "ORGANIZATION_ACCESS_DENIED");
    let r = app.get("/v1/threads/export").send().await;
    assert_error(&r, 401, "AUTHENTICATION_REQUIRED");
    let r = export(&app, "sk_wrong", "").await;
    assert_error(&r, 401, "INVALID_API_KEY");
    // Only GET is the export: the other methods of the path are a thread's.
    let r = app.delete_thread(&k.a1, "export").await;
    assert_error(&r, 404, "THREAD_NOT_FOUND");
}

async fn long_threads_and_many_threads_are_exported_whole(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    // More threads than one page of the export, and one thread with more
    // messages than several of its chunks.
    let mut made = Vec::new();
    for i in 0..105 {
        let t = app
            .create_thread(&k.a1, json!({"title": format!("thread {i}")}))
            .await;
        made.push(t["id"].as_str().unwrap().to_string());
    }
    let long = made[7].clone();
    let scope = Scope::new(
        OrganizationId::parse(ORG_A).unwrap(),
        UserId::parse("usr_1").unwrap(),
    );
    let batch: Vec<NewMessage> = (0..700)
        .map(|i| NewMessage {
            id: None,
            role: if i % 2 == 0 {
                MessageRole::User
            } else {
                MessageRole::Assistant
            },
            content: format!("message {i}"),
            token_count: 2,
            metadata: Metadata::from_stored(json!({"n": i}).as_object().unwrap().clone()),
            attachments: if i == 3 {
                vec![json!({"type": "file", "file_id": "file_1", "name": "a.pdf"})]
            } else {
                Vec::new()
            },
            response_id: None,
            model: (i % 2 == 1).then(|| "default".to_string()),
            item: None,
        })
        .collect();
    let store = app.store.clone();
    let thread_id = long.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = store.conn().unwrap();
        messages::append(
            &mut conn,
            &scope,
            &thread_id,
            batch,
            &Limits::default(),
            clock::now(),
        )
        .unwrap();
    })
    .await
    .unwrap();

    let all = lines(&export(&app, &k.a1, "order=asc").await);
    assert_eq!(ids(&all), made);
    let line = line_of(&all, &long);
    let exported = line["messages"].as_array().unwrap();
    assert_eq!(exported.len(), 700);
    assert_eq!(line["thread"]["message_count"], 700);
    for (i, m) in exported.iter().enumerate() {
        assert_eq!(m["content"], format!("message {i}"));
        assert_eq!(m["seq"], json!(i + 1));
        assert_eq!(m["metadata"], json!({"n": i}));
    }
    assert_eq!(
        exported[3]["attachments"],
        json!([{"type": "file", "file_id": "file_1", "name": "a.pdf"}])
    );
    assert_eq!(exported[3]["model"], "default");
    // The same through the message list, page by page.
    let mut listed = Vec::new();
    let mut query = "order=asc&limit=100".to_string();
    loop {
        let r = app.list_messages(&k.a1, &long, &query).await;
        let page = r.body["data"].as_array().unwrap().clone();
        listed.extend(page.iter().cloned());
        if r.body["has_more"] != true {
            break;
        }
        query = format!(
            "order=asc&limit=100&after={}",
            page.last().unwrap()["id"].as_str().unwrap()
        );
    }
    same_messages(&line["messages"], &json!({ "data": listed }));
}
