//! User tokens and organizations: every token edge case, several
//! organizations per user, visible_in_ui, removed memberships.

use super::common::*;
use actix_web::http::Method;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use skein_api::tokens::{JwtSettings, TokenVerifier};
use skein_api::AppState;
use skein_domain::{OrganizationId, UserId};
use skein_persistence::{tenancy, Backend};
use std::sync::Arc;

skein_persistence::on_both_backends_async!(
    token_edge_cases_answer_401_with_the_right_code,
    rs256_and_es256_tokens_are_verified_with_the_public_key,
    a_user_in_several_organizations_names_one_or_is_told_to,
    visible_in_ui_can_be_set_with_a_token,
    a_removed_membership_ends_access_at_once,
);

const SECRET: &str = "test-secret-that-is-at-least-32-bytes-long";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn hs256(claims: Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn verifier(settings: JwtSettings) -> Option<Arc<TokenVerifier>> {
    TokenVerifier::from_settings(&settings)
        .unwrap()
        .map(Arc::new)
}

fn with_secret(s: &mut AppState) {
    s.tokens = verifier(JwtSettings {
        secret: Some(SECRET.into()),
        audience: Some("skein".into()),
        issuer: Some("https://auth.example".into()),
        ..Default::default()
    });
}

fn claims(sub: &str) -> Value {
    json!({"sub": sub, "exp": now() + 600, "aud": "skein", "iss": "https://auth.example"})
}

async fn get_threads(app: &TestApp, token: &str, query: &str) -> Resp {
    app.get(format!("/v1/threads{query}"))
        .bearer(token)
        .send()
        .await
}

async fn token_edge_cases_answer_401_with_the_right_code(backend: Backend) {
    let app = TestApp::with(backend, with_secret).await;
    let ok = get_threads(&app, &hs256(claims("usr_2")), "").await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let mut expired = claims("usr_2");
    expired["exp"] = json!(now() - 120);
    assert_error(
        &get_threads(&app, &hs256(expired), "").await,
        401,
        "TOKEN_EXPIRED",
    );
    let mut within_leeway = claims("usr_2");
    within_leeway["exp"] = json!(now() - 5);
    assert_eq!(
        get_threads(&app, &hs256(within_leeway), "").await.status,
        200,
        "small clock skew is tolerated"
    );
    let mut early = claims("usr_2");
    early["nbf"] = json!(now() + 600);
    assert_error(
        &get_threads(&app, &hs256(early), "").await,
        401,
        "TOKEN_INVALID",
    );
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &claims("usr_2"),
        &EncodingKey::from_secret(b"another-secret-of-sufficient-length!!"),
    )
    .unwrap();
    assert_error(&get_threads(&app, &forged, "").await, 401, "TOKEN_INVALID");
    let hs384 = encode(
        &Header::new(Algorithm::HS384),
        &claims("usr_2"),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert_error(&get_threads(&app, &hs384, "").await, 401, "TOKEN_INVALID");
    // alg "none": header and claims, no signature.
    assert_eq!(
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"
    );
    let none = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&claims("usr_2").to_string())
    );
    assert_error(&get_threads(&app, &none, "").await, 401, "TOKEN_INVALID");
    let mut wrong_aud = claims("usr_2");
    wrong_aud["aud"] = json!("someone-else");
    assert_error(
        &get_threads(&app, &hs256(wrong_aud), "").await,
        401,
        "TOKEN_INVALID",
    );
    let mut wrong_iss = claims("usr_2");
    wrong_iss["iss"] = json!("https://evil.example");
    assert_error(
        &get_threads(&app, &hs256(wrong_iss), "").await,
        401,
        "TOKEN_INVALID",
    );
    let mut no_exp = claims("usr_2");
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_error(
        &get_threads(&app, &hs256(no_exp), "").await,
        401,
        "TOKEN_INVALID",
    );
    assert_error(
        &get_threads(&app, &hs256(claims("usr_ghost")), "").await,
        401,
        "TOKEN_INVALID",
    );
    assert_error(
        &get_threads(&app, "not.a.jwt", "").await,
        401,
        "TOKEN_INVALID",
    );
}

async fn rs256_and_es256_tokens_are_verified_with_the_public_key(backend: Backend) {
    for (public, private, alg) in [
        (
            "test-rsa-public.pem",
            "test-rsa-private.pem",
            Algorithm::RS256,
        ),
        (
            "test-ec-public.pem",
            "test-ec-private.pem",
            Algorithm::ES256,
        ),
    ] {
        let pem = fixture(public);
        let app = TestApp::with(backend, |s: &mut AppState| {
            s.tokens = verifier(JwtSettings {
                public_key_pem: Some(pem),
                ..Default::default()
            });
        })
        .await;
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(fixture(private).as_bytes()).unwrap(),
            _ => EncodingKey::from_ec_pem(fixture(private).as_bytes()).unwrap(),
        };
        let claims = json!({"sub": "usr_2", "exp": now() + 600});
        let token = encode(&Header::new(alg), &claims, &key).unwrap();
        assert_eq!(get_threads(&app, &token, "").await.status, 200, "{alg:?}");
        // A token signed with the HMAC of the public key (algorithm confusion) fails.
        let confused = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(fixture(public).as_bytes()),
        )
        .unwrap();
        assert_error(
            &get_threads(&app, &confused, "").await,
            401,
            "TOKEN_INVALID",
        );
    }
}

async fn a_user_in_several_organizations_names_one_or_is_told_to(backend: Backend) {
    let app = TestApp::with(backend, with_secret).await;
    let k = &app.keys;
    // usr_1 is a member of org_a and org_b.
    let token = hs256(claims("usr_1"));
    let r = app
        .post("/v1/threads")
        .bearer(&token)
        .json(json!({"title": "where?"}))
        .send()
        .await;
    assert_error(&r, 400, "AMBIGUOUS_ORGANIZATION");
    let r = app
        .post("/v1/threads")
        .bearer(&token)
        .json(json!({"organization_id": "org_c"}))
        .send()
        .await;
    assert_error(&r, 403, "ORGANIZATION_ACCESS_DENIED");
    let in_b = app
        .post("/v1/threads")
        .bearer(&token)
        .json(json!({"organization_id": ORG_B, "title": "b"}))
        .send()
        .await;
    assert_eq!(in_b.status, 201, "{}", in_b.body);
    let in_a = app.create_thread(&k.a1, json!({"title": "a"})).await;
    // Listing without organization_id spans both organizations; with it, one.
    let all = get_threads(&app, &token, "?include_total=true").await;
    assert_eq!(all.body["total"], 2);
    let only_a = get_threads(&app, &token, "?organization_id=org_a").await;
    assert_eq!(only_a.body["data"][0]["id"], in_a["id"]);
    assert_eq!(only_a.body["data"].as_array().unwrap().len(), 1);
    // A thread id is found in whichever organization holds it.
    let id_b = in_b.body["id"].as_str().unwrap();
    let got = app
        .get(format!("/v1/threads/{id_b}"))
        .bearer(&token)
        .send()
        .await;
    assert_eq!(got.body["organization_id"], ORG_B);
    let patched = app
        .request(Method::PATCH, format!("/v1/threads/{id_b}"))
        .bearer(&token)
        .json(json!({"title": "renamed"}))
        .send()
        .await;
    assert_eq!(patched.body["title"], "renamed");
    // The same client-chosen id in both organizations needs organization_id.
    for org in [ORG_A, ORG_B] {
        let r = app.post("/v1/model/response").bearer(&token).json(json!({"thread": "twin", "organization_id": org, "inputs": [{"role": "user", "content": org}]})).send().await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = app.get("/v1/threads/twin").bearer(&token).send().await;
    assert_error(&r, 400, "AMBIGUOUS_ORGANIZATION");
    let r = app
        .get("/v1/threads/twin/messages?organization_id=org_b")
        .bearer(&token)
        .send()
        .await;
    assert_eq!(r.body["data"][0]["content"], ORG_B);
    let r = app
        .post("/v1/model/response")
        .bearer(&token)
        .json(json!({"thread": "twin", "inputs": [{"role": "user", "content": "x"}]}))
        .send()
        .await;
    assert_error(&r, 400, "AMBIGUOUS_ORGANIZATION");
    // An existing thread in one organization is continued without naming it.
    let r = app
        .post("/v1/model/response")
        .bearer(&token)
        .json(json!({"thread": id_b, "inputs": [{"role": "user", "content": "more"}]}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // A key of the same user still sees only its own organization.
    let by_key = app.list_threads(&k.a1, "include_total=true").await;
    assert_eq!(
        by_key.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["organization_id"] == ORG_B)
            .count(),
        0
    );
}

async fn visible_in_ui_can_be_set_with_a_token(backend: Backend) {
    let app = TestApp::with(backend, with_secret).await;
    let k = &app.keys;
    let token = hs256(claims("usr_2"));
    let hidden = app
        .post("/v1/threads")
        .bearer(&token)
        .json(json!({"visible_in_ui": false}))
        .send()
        .await;
    assert_eq!(hidden.status, 201, "{}", hidden.body);
    assert_eq!(hidden.body["visible_in_ui"], false);
    let id = hidden.body["id"].as_str().unwrap();
    let shown = app
        .request(Method::PATCH, format!("/v1/threads/{id}"))
        .bearer(&token)
        .json(json!({"visibleInUi": true}))
        .send()
        .await;
    assert_eq!(shown.body["visible_in_ui"], true);
    // The same user's API key still may not.
    let r = app
        .patch_thread(&k.a2, id, json!({"visible_in_ui": false}))
        .await;
    assert_error(&r, 403, "BEARER_TOKEN_REQUIRED");
}

async fn a_removed_membership_ends_access_at_once(backend: Backend) {
    let app = TestApp::with(backend, with_secret).await;
    let token = hs256(claims("usr_2"));
    let t = app
        .post("/v1/threads")
        .bearer(&token)
        .json(json!({"title": "mine"}))
        .send()
        .await;
    let id = t.body["id"].as_str().unwrap().to_string();
    {
        let mut conn = app.store.conn().unwrap();
        let removed = tenancy::remove_membership(
            &mut conn,
            &OrganizationId::parse(ORG_A).unwrap(),
            &UserId::parse("usr_2").unwrap(),
        )
        .unwrap();
        assert!(removed);
    }
    let r = app
        .get(format!("/v1/threads/{id}"))
        .bearer(&token)
        .send()
        .await;
    assert_error(&r, 403, "ORGANIZATION_ACCESS_DENIED");
    let r = app
        .get(format!("/v1/threads/{id}?organization_id=org_a"))
        .bearer(&token)
        .send()
        .await;
    assert_error(&r, 403, "ORGANIZATION_ACCESS_DENIED");
    let r = get_threads(&app, &token, "").await;
    assert_error(&r, 403, "ORGANIZATION_ACCESS_DENIED");
}

/// base64url without padding (enough for a hand-made `alg: none` token).
fn b64(input: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = input.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}
