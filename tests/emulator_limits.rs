//! Contract tests for throttling, faults, the control endpoints, and the rest of sign-in.

mod emulator_common;

use base64::Engine;
use emulator_common::*;
use graphbridge::emulator::EmulatorArgs;
use serde_json::{json, Value};
use sha2::Digest;

fn demo_args() -> EmulatorArgs {
    EmulatorArgs {
        port: 0,
        fixtures: Some(fixture("")),
        auto_consent: Some(SALES.into()),
        ..EmulatorArgs::default()
    }
}

fn assert_throttled_body(body: &Value) {
    assert_eq!(body["error"]["code"], "ApplicationThrottled");
    assert_eq!(
        body["error"]["message"],
        "Application is over its MailboxConcurrency limit."
    );
}

#[tokio::test]
async fn a_fifth_concurrent_request_is_429_with_retry_after() {
    // Latency keeps each admitted request in flight long enough for all five to overlap.
    let e = start_with(EmulatorArgs {
        latency_ms: 400,
        ..demo_args()
    })
    .await;
    let t = e.sign_in().await;
    let url = format!("{}/v1.0/me/mailFolders/inbox", e.base);
    let calls = (0..5).map(|_| e.client.get(&url).bearer_auth(&t).send());
    let results = futures::future::join_all(calls).await;
    let mut ok = 0;
    let mut throttled = Vec::new();
    for r in results {
        let r = r.expect("response");
        match r.status().as_u16() {
            200 => ok += 1,
            429 => {
                let retry = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                assert!(retry.is_some_and(|s| s >= 1));
                throttled.push(r.json::<Value>().await.unwrap_or_default());
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((ok, throttled.len()), (4, 1));
    assert_throttled_body(&throttled[0]);
    let (_, stats) = e.get_with(&t, "/_emulator/stats").await;
    let mb = &stats["mailboxes"][SALES];
    assert_eq!(mb["concurrentPeak"], 4);
    assert_eq!(mb["throttled"], 1);
}

#[tokio::test]
async fn the_request_budget_runs_out() {
    let e = start_with(EmulatorArgs {
        throttle: "3/600".into(),
        ..demo_args()
    })
    .await;
    let t = e.sign_in().await;
    for _ in 0..3 {
        let (status, _) = e.get_with(&t, "/v1.0/me/mailFolders/inbox").await;
        assert_eq!(status, 200);
    }
    let resp = e
        .client
        .get(format!("{}/v1.0/me/mailFolders/inbox", e.base))
        .bearer_auth(&t)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(retry > 0 && retry <= 600, "{retry}");
    assert_throttled_body(&resp.json::<Value>().await.unwrap_or_default());
}

#[tokio::test]
async fn storm_revocation_and_delta_expiry_from_the_control_endpoints() {
    let e = start(Opts::default()).await;
    let dc = e.devicecode().await;
    let tok = e.poll_device(&dc).await;
    let t = s(&tok["access_token"]);
    let (_, link) = e
        .delta_round(
            &t,
            &format!("{}/v1.0/me/mailFolders/inbox/messages/delta", e.base),
            "",
        )
        .await;
    let (status, v) = e.post_form("/_emulator/delta/expire", String::new()).await;
    assert_eq!(status, 200);
    assert!(v["expired"].as_u64().is_some_and(|n| n >= 1));
    let (status, body) = e.get_url(&t, &link).await;
    assert_eq!(status, 410);
    assert_eq!(body["error"]["code"], "syncStateNotFound");

    let (status, _) = e
        .post_form(
            "/_emulator/accounts/sales@contoso.test/revoke",
            String::new(),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = e.refresh(&s(&tok["refresh_token"])).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");

    let (status, _) = e
        .post_form("/_emulator/storm?seconds=60", String::new())
        .await;
    assert_eq!(status, 200);
    let (status, body) = e.get_with(&t, "/v1.0/me/mailFolders").await;
    assert_eq!(status, 429);
    assert_throttled_body(&body);

    let (status, _) = e.post_form("/_emulator/tokens/expire", String::new()).await;
    assert_eq!(status, 200);
    let (status, body) = e.get_with(&t, "/v1.0/me").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
}

#[tokio::test]
async fn deliver_puts_outside_mail_into_a_folder() {
    let e = start(Opts::default()).await;
    let t = e.sign_in().await;
    let raw = "From: Outside <o@example.test>\r\nTo: sales@contoso.test\r\nSubject: From the internet\r\nMessage-ID: <ext-1@example.test>\r\n\r\nhi\r\n";
    let resp = e
        .client
        .post(format!(
            "{}/_emulator/mailboxes/info@contoso.test/deliver?folder=archive",
            e.base
        ))
        .body(raw)
        .send()
        .await
        .expect("deliver");
    assert_eq!(resp.status(), 201);
    let got = e.find_message(&t, "archive", "From the internet").await;
    assert_eq!(got["isRead"], false);
    let resp = e
        .client
        .post(format!(
            "{}/_emulator/mailboxes/nobody@contoso.test/deliver",
            e.base
        ))
        .body(raw)
        .send()
        .await
        .expect("deliver");
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn faults_fail_every_request_at_rate_one() {
    let e = start_with(EmulatorArgs {
        error_rate: 1.0,
        ..demo_args()
    })
    .await;
    let t = e.sign_in().await;
    for _ in 0..12 {
        let r = e
            .client
            .get(format!("{}/v1.0/me/mailFolders", e.base))
            .bearer_auth(&t)
            .send()
            .await;
        match r {
            Ok(resp) if matches!(resp.status().as_u16(), 503 | 504) => {}
            Ok(resp) => {
                // A dropped connection may surface while reading the body.
                let status = resp.status().as_u16();
                assert!(
                    resp.bytes().await.is_err(),
                    "status {status} without a fault"
                );
            }
            Err(_) => {}
        }
    }
    let (status, _) = e.post_form("/_emulator/faults", String::new()).await;
    assert_eq!(status, 400, "faults need a JSON body");
    let resp = e
        .client
        .post(format!("{}/_emulator/faults", e.base))
        .json(&json!({"errorRate": 0.0}))
        .send()
        .await
        .expect("faults");
    assert_eq!(resp.status(), 200);
    let (status, _) = e.get_with(&t, "/v1.0/me/mailFolders").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn alias_from_is_rewritten_when_the_tenant_disallows_it() {
    let e = start(Opts::default()).await;
    let t = e.sign_in().await;
    let resp = e
        .client
        .post(format!("{}/_emulator/tenant", e.base))
        .json(&json!({"sendFromAliasEnabled": false}))
        .send()
        .await
        .expect("tenant");
    assert_eq!(resp.status(), 200);
    let raw =
        b"From: Info <info@contoso.test>\r\nTo: x@example.test\r\nSubject: Alias off\r\n\r\nx\r\n";
    let (status, _) = e.post_mime(&t, "/v1.0/me/sendMail", raw).await;
    assert_eq!(status, 202);
    let sent = e.find_message(&t, "sentitems", "Alias off").await;
    assert_eq!(
        sent["from"]["emailAddress"]["address"],
        "sales@contoso.test"
    );
}

#[tokio::test]
async fn sending_limits_and_request_size() {
    let e = start_with(EmulatorArgs {
        recipients_per_message: 2,
        send_per_minute: 1,
        ..demo_args()
    })
    .await;
    let t = e.sign_in().await;
    let raw = b"From: sales@contoso.test\r\nTo: a@example.test, b@example.test, c@example.test\r\nSubject: many\r\n\r\nx\r\n";
    let (status, _) = e.post_mime(&t, "/v1.0/me/sendMail", raw).await;
    assert_eq!(status, 400);
    let one = b"From: sales@contoso.test\r\nTo: a@example.test\r\nSubject: one\r\n\r\nx\r\n";
    let (status, _) = e.post_mime(&t, "/v1.0/me/sendMail", one).await;
    assert_eq!(status, 202);
    let (status, _) = e.post_mime(&t, "/v1.0/me/sendMail", one).await;
    assert_eq!(status, 429, "over the per-minute submission limit");
    let big = "A".repeat(4 * 1024 * 1024 + 4);
    let (status, body) = e.post_text(&t, "/v1.0/me/sendMail", big).await;
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], "ErrorMessageSizeExceeded");
}

#[tokio::test]
async fn authorization_code_with_pkce_and_client_id_check() {
    let e = start_with(EmulatorArgs {
        client_id: Some("bridge-app".into()),
        ..demo_args()
    })
    .await;
    let verifier = "a-very-long-code-verifier-0123456789-abcdefghijklmnop";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    let url = format!(
        "{}/common/oauth2/v2.0/authorize?client_id=bridge-app&response_type=code&redirect_uri=http%3A%2F%2Flocalhost%2Fcb&scope=offline_access%20Mail.ReadWrite&state=xyz&code_challenge={challenge}&code_challenge_method=S256",
        e.base
    );
    let resp = e.client.get(url).send().await.expect("authorize");
    assert_eq!(resp.status(), 302);
    let loc = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(loc.starts_with("http://localhost/cb?code="), "{loc}");
    assert!(loc.ends_with("&state=xyz"));
    let code = loc
        .split("code=")
        .nth(1)
        .and_then(|r| r.split('&').next())
        .unwrap_or_default()
        .to_string();
    let form = |v: &str| {
        format!("grant_type=authorization_code&client_id=bridge-app&code={code}&redirect_uri=http%3A%2F%2Flocalhost%2Fcb&code_verifier={v}")
    };
    let (status, body) = e
        .post_form("/common/oauth2/v2.0/token", form("wrong-verifier"))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    let (status, body) = e
        .post_form("/common/oauth2/v2.0/token", form(verifier))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["refresh_token"].is_string());
    let (status, body) = e
        .post_form("/common/oauth2/v2.0/token", form(verifier))
        .await;
    assert_eq!(status, 400, "a code is redeemed once");
    assert_eq!(body["error"], "invalid_grant");
    let (status, body) = e
        .post_form(
            "/common/oauth2/v2.0/devicecode",
            "client_id=other&scope=Mail.Read".into(),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "unauthorized_client");
}
