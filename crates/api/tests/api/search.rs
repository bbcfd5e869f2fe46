//! `GET /v1/search/messages` (contract 11.1): full-text search over the
//! caller's live messages, kept in the transaction of every write.

use super::common::*;
use actix_web::http::Method;
use serde_json::{json, Value};
use skein_persistence::Backend;

skein_persistence::on_both_backends_async!(
    search_finds_what_was_said_and_forgets_what_is_gone,
    search_pages_filters_and_refusals,
);

async fn search(app: &TestApp, key: &str, q: &str) -> Resp {
    app.get(format!("/v1/search/messages?{q}"))
        .key(key)
        .send()
        .await
}

/// The message ids of a 200 answer.
fn hit_ids(r: &Resp) -> Vec<String> {
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["message_id"].as_str().unwrap().to_string())
        .collect()
}

async fn say(app: &TestApp, key: &str, thread: &str, text: &str) -> String {
    let r = app
        .post_message(key, thread, json!({"role": "user", "content": text}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

fn q(text: &str) -> String {
    let encoded: String = form_urlencoded::byte_serialize(text.as_bytes()).collect();
    format!("q={encoded}")
}

async fn search_finds_what_was_said_and_forgets_what_is_gone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let t1 = app.new_thread(&k.a1).await;
    let resend = say(&app, &k.a1, &t1, "Please resend the invoice for October").await;
    let attached = say(&app, &k.a1, &t1, "The INVOICE is attached.").await;
    let dessert = say(&app, &k.a1, &t1, "Crème brûlée recipe, please").await;
    let tokyo = say(&app, &k.a1, &t1, "昨日東京タワーに行きました").await;
    let t2 = app.new_thread(&k.a1).await;
    let other = say(&app, &k.a1, &t2, "one more invoice").await;
    // Someone else's messages are never found.
    let t3 = app.new_thread(&k.a2).await;
    say(&app, &k.a2, &t3, "my invoice, not yours").await;
    let t4 = app.new_thread(&k.b1).await;
    say(&app, &k.b1, &t4, "invoice of another organization").await;

    let mut found = hit_ids(&search(&app, &k.a1, &q("invoice")).await);
    found.sort();
    let mut want = vec![resend.clone(), attached.clone(), other.clone()];
    want.sort();
    assert_eq!(found, want);
    let r = search(&app, &k.a1, &q("invoice october")).await;
    assert_eq!(hit_ids(&r), vec![resend.clone()]);
    let hit = &r.body["data"][0];
    assert_eq!(hit["thread_id"], t1.as_str());
    assert_eq!(hit["role"], "user");
    assert_eq!(
        hit["snippet"],
        "Please resend the **invoice** for **October**"
    );
    assert!(hit["score"].as_f64().unwrap() > 0.0, "{hit}");
    assert!(hit["created_at"].as_str().unwrap().ends_with('Z'));
    // Case and accents do not matter; phrases keep their order.
    assert_eq!(
        hit_ids(&search(&app, &k.a1, &q("CREME Brulee")).await),
        vec![dessert.clone()]
    );
    assert_eq!(
        hit_ids(&search(&app, &k.a1, &q("\"brûlée recipe\"")).await),
        vec![dessert.clone()]
    );
    assert!(hit_ids(&search(&app, &k.a1, &q("\"recipe brulee\"")).await).is_empty());
    // Text without spaces is found by any run of its characters, in order.
    assert_eq!(
        hit_ids(&search(&app, &k.a1, &q("東京")).await),
        vec![tokyo.clone()]
    );
    assert_eq!(
        hit_ids(&search(&app, &k.a1, &q("タワー")).await),
        vec![tokyo.clone()]
    );
    assert!(hit_ids(&search(&app, &k.a1, &q("京東")).await).is_empty());

    // An edit re-indexes the message at once.
    let r = app
        .patch_message(
            &k.a1,
            &t1,
            &attached,
            json!({"content": "The bill is attached."}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!hit_ids(&search(&app, &k.a1, &q("invoice")).await).contains(&attached));
    assert_eq!(
        hit_ids(&search(&app, &k.a1, &q("bill")).await),
        vec![attached.clone()]
    );
    // A delete, a rewind, a deleted thread: gone at once.
    assert_eq!(app.delete_message(&k.a1, &t1, &dessert).await.status, 200);
    assert!(hit_ids(&search(&app, &k.a1, &q("brulee")).await).is_empty());
    let r = app
        .post_response(
            &k.a1,
            json!({"thread": t1, "previous_message_id": resend,
                   "inputs": [{"role": "user", "content": "never mind"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        hit_ids(&search(&app, &k.a1, &q("bill")).await).is_empty(),
        "rewound"
    );
    assert!(
        hit_ids(&search(&app, &k.a1, &q("東京")).await).is_empty(),
        "rewound"
    );
    // The turn's own messages are found right after it: the input and the
    // echo model's answer, which quotes it.
    let r = search(&app, &k.a1, &format!("{}&role=assistant", q("never mind"))).await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1, "{}", r.body);
    assert_eq!(app.delete_thread(&k.a1, &t2).await.status, 204);
    assert_eq!(hit_ids(&search(&app, &k.a1, &q("invoice")).await), [resend]);
    // Conversation items that are not messages are not searched.
    let r = app
        .post(format!("/v1/conversations/{t1}/items"))
        .key(&k.a1)
        .json(json!({"items": [{"type": "function_call", "call_id": "c1",
                                "name": "lookup_ledger", "arguments": "{}"}]}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(hit_ids(&search(&app, &k.a1, &q("ledger")).await).is_empty());
}

async fn search_pages_filters_and_refusals(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let t1 = app.new_thread(&k.a1).await;
    let t2 = app.new_thread(&k.a1).await;
    let mut all = Vec::new();
    for (n, t) in [(0, &t1), (1, &t2), (2, &t1), (3, &t2), (4, &t1)] {
        // More mentions score higher.
        let text = format!("{} and more text", "apple ".repeat(n + 1));
        all.push(say(&app, &k.a1, t, &text).await);
    }
    let first = search(&app, &k.a1, &q("apple")).await;
    let ranked = hit_ids(&first);
    assert_eq!(ranked.len(), 5);
    let scores: Vec<f64> = first.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["score"].as_f64().unwrap())
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "best first: {scores:?}"
    );
    // Pages of two walk the same order, without gaps or repeats.
    let mut walked = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut query = format!("{}&limit=2", q("apple"));
        if let Some(a) = &after {
            query.push_str(&format!("&after={a}"));
        }
        let page = search(&app, &k.a1, &query).await;
        walked.extend(hit_ids(&page));
        assert_eq!(page.body["last_id"], json!(walked.last()));
        if page.body["has_more"] != json!(true) {
            break;
        }
        after = Some(page.body["last_id"].as_str().unwrap().to_string());
    }
    assert_eq!(walked, ranked);
    // Filters: one thread, one role.
    let mut in_t2 = hit_ids(&search(&app, &k.a1, &format!("{}&thread_id={t2}", q("apple"))).await);
    in_t2.sort();
    let mut want = vec![all[1].clone(), all[3].clone()];
    want.sort();
    assert_eq!(in_t2, want);
    assert!(
        hit_ids(&search(&app, &k.a1, &format!("{}&role=assistant", q("apple"))).await).is_empty()
    );
    assert!(
        hit_ids(&search(&app, &k.a2, &format!("{}&thread_id={t2}", q("apple"))).await).is_empty(),
        "another user's thread"
    );
    // Refusals.
    for bad in [
        String::new(),
        q(""),
        q(" ?! "),
        q(&"a".repeat(257)),
        format!("{}&role=system", q("apple")),
        format!("{}&limit=0", q("apple")),
    ] {
        assert_error(&search(&app, &k.a1, &bad).await, 422, "VALIDATION_ERROR");
    }
    let r = search(&app, &k.a1, &format!("{}&after={}", q("pear"), all[0])).await;
    assert_error(&r, 400, "INVALID_REQUEST");
    let r = app
        .request(Method::GET, format!("/v1/search/messages?{}", q("apple")))
        .send()
        .await;
    assert_eq!(r.status, 401);
    let _: Value = r.body;
}
