//! Password guessing limits of `login`, through the real HTTP endpoint and a real
//! PostgreSQL: concurrent guesses cannot pass the throttle's cap, a login costs the same
//! number of Argon2 verifications whatever the email, and a server whose verification
//! slots are all busy answers RATE_LIMITED instead of queueing.
//!
//! Verifications are counted by the process-wide counter of `auth::password`, so the tests
//! of this file run one at a time (each holds [`SERIAL`]).

mod common;

use axum::http::{StatusCode, header};
use common::app::{PASSWORD, TestApp, error_code};
use enclave::auth::Role;
use enclave::auth::password;
use enclave::auth::throttle::PAIR_REFUSE_AFTER;
use enclave::resolvers::identity::LOGIN_FAN_OUT;
use serde_json::{Value, json};
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());

const LOGIN: &str = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token tenant { slug } choices { slug } } }";

fn login_body(email: &str, password: &str) -> Value {
    json!({ "query": LOGIN, "variables": { "e": email, "p": password } })
}

/// Logs in and returns the response with the number of Argon2 verifications it cost.
async fn login_cost(t: &TestApp, host: Option<&str>, email: &str, password: &str) -> (Value, u64) {
    let headers: Vec<(&str, &str)> = host.iter().map(|h| ("host", *h)).collect();
    let before = password::verifications();
    let (_, response) = t.call(&headers, login_body(email, password)).await;
    (response, password::verifications() - before)
}

#[tokio::test]
async fn two_hundred_concurrent_guesses_get_no_more_verifications_than_the_cap() {
    let _serial = SERIAL.lock().await;
    let t = TestApp::new().await;
    t.tenant("acme", &[]).await;
    t.user("acme", "admin@acme.example", Role::Admin).await;
    let before = password::verifications();
    let guesses = (0..200).map(|i| {
        t.exchange(
            &[("accept", "application/graphql-response+json")],
            login_body("admin@acme.example", &format!("wrong password {i}")),
        )
    });
    let responses = futures_util::future::join_all(guesses).await;
    let verified = password::verifications() - before;
    assert!(
        verified <= u64::from(PAIR_REFUSE_AFTER),
        "{verified} passwords were checked; the cap is {PAIR_REFUSE_AFTER}"
    );
    let codes: Vec<Option<&str>> = responses.iter().map(|(_, _, body)| error_code(body)).collect();
    let refused = codes.iter().filter(|c| **c == Some("RATE_LIMITED")).count();
    let wrong = codes.iter().filter(|c| **c == Some("UNAUTHENTICATED")).count();
    assert_eq!(refused + wrong, 200, "{codes:?}");
    assert!(refused >= 200 - PAIR_REFUSE_AFTER as usize, "{codes:?}");
    assert!(wrong as u64 <= verified);
    let (status, headers, body) = responses
        .iter()
        .find(|(_, _, body)| error_code(body) == Some("RATE_LIMITED"))
        .expect("a refused guess");
    assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let retry: u64 = headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(retry >= 1);
    assert_eq!(body["errors"][0]["extensions"]["retryAfter"], retry);

    // The cap holds afterwards too, even for the right password, without a verification.
    let (response, cost) = login_cost(&t, None, "admin@acme.example", PASSWORD).await;
    assert_eq!(error_code(&response), Some("RATE_LIMITED"), "{response}");
    assert_eq!(cost, 0);
    // Another email is not affected.
    t.user("acme", "other@acme.example", Role::Viewer).await;
    let (response, _) = login_cost(&t, None, "other@acme.example", PASSWORD).await;
    assert!(response["data"]["login"]["token"].is_string(), "{response}");
}

#[tokio::test]
async fn a_login_costs_the_same_verifications_whatever_the_email() {
    let _serial = SERIAL.lock().await;
    let t = TestApp::new().await;
    for slug in ["acme", "globex", "initech", "umbrella"] {
        t.tenant(slug, &[&format!("{slug}.example.com")]).await;
    }
    t.user("acme", "solo@example.com", Role::Admin).await;
    for slug in ["acme", "globex", "initech"] {
        t.user(slug, "three@example.com", Role::Admin).await;
    }
    for slug in ["acme", "globex", "initech", "umbrella"] {
        t.user(slug, "four@example.com", Role::Admin).await;
    }
    let fan_out = LOGIN_FAN_OUT as u64;

    // Without a vanity domain: always the fan-out, whatever the email.
    let (unknown, cost) = login_cost(&t, None, "nobody@example.com", "wrong password").await;
    assert_eq!(cost, fan_out, "unknown email");
    for email in ["solo@example.com", "three@example.com", "four@example.com"] {
        let (wrong, cost) = login_cost(&t, None, email, "wrong password").await;
        assert_eq!(cost, fan_out, "{email}, wrong password");
        // Same answer as for an unknown email.
        assert_eq!(wrong["errors"], unknown["errors"], "{email}");
        assert!(wrong["data"].is_null(), "{wrong}");
    }
    let (solo, cost) = login_cost(&t, None, "solo@example.com", PASSWORD).await;
    assert_eq!(cost, fan_out);
    assert_eq!(solo["data"]["login"]["tenant"]["slug"], "acme", "{solo}");
    let (three, cost) = login_cost(&t, None, "three@example.com", PASSWORD).await;
    assert_eq!(cost, fan_out);
    assert_eq!(
        three["data"]["login"]["choices"].as_array().map(Vec::len),
        Some(3),
        "{three}"
    );
    // In more tenants than the fan-out: the first three by slug, never more work.
    let (four, cost) = login_cost(&t, None, "four@example.com", PASSWORD).await;
    assert_eq!(cost, fan_out);
    let slugs: Vec<&str> = four["data"]["login"]["choices"]
        .as_array()
        .expect("choices")
        .iter()
        .filter_map(|c| c["slug"].as_str())
        .collect();
    assert_eq!(slugs.len(), 3, "{four}");
    assert!(!slugs.contains(&"umbrella"), "{four}");
    // …and the fourth tenant through its own domain.
    let (umbrella, cost) = login_cost(&t, Some("umbrella.example.com"), "four@example.com", PASSWORD).await;
    assert_eq!(cost, 1);
    assert_eq!(
        umbrella["data"]["login"]["tenant"]["slug"], "umbrella",
        "{umbrella}"
    );

    // With a vanity domain: exactly one, member or not.
    for email in ["nobody@example.com", "solo@example.com", "three@example.com"] {
        let (_, cost) = login_cost(&t, Some("globex.example.com"), email, "wrong password").await;
        assert_eq!(cost, 1, "{email} on a vanity domain");
    }
}

#[tokio::test]
async fn a_login_finding_every_verification_slot_busy_is_rate_limited() {
    let _serial = SERIAL.lock().await;
    let t = TestApp::new().await;
    t.tenant("acme", &[]).await;
    t.user("acme", "admin@acme.example", Role::Admin).await;
    let slots = t.app.throttle.verification_slots();
    let held = slots
        .acquire_many(u32::try_from(slots.available_permits()).expect("slots"))
        .await
        .expect("every verification slot");
    let before = password::verifications();
    for accept in ["application/json", "application/graphql-response+json"] {
        let (status, headers, body) = t
            .exchange(&[("accept", accept)], login_body("admin@acme.example", PASSWORD))
            .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{accept}: {body}");
        assert_eq!(error_code(&body), Some("RATE_LIMITED"), "{body}");
        assert_eq!(
            headers.get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()),
            Some("1")
        );
    }
    assert_eq!(password::verifications(), before, "a password was checked");
    assert_eq!(t.app.throttle.stats().busy, 2);
    drop(held);
    // The refused attempts were not counted as failures: no slowdown, and the login works.
    let (response, cost) = login_cost(&t, None, "admin@acme.example", PASSWORD).await;
    assert!(response["data"]["login"]["token"].is_string(), "{response}");
    assert_eq!(cost, 1);
}
