//! A large synthetic mailbox (the generator): the emulator answers it correctly, with counts,
//! pages, delta and `$value` that agree with each other. The ignored test prints figures for a
//! 100,000-message mailbox (`cargo test --release --test emulator_scale -- --ignored
//! --nocapture`); no test asserts a timing.

mod emulator_common;

use std::time::Instant;

use emulator_common::*;
use graphbridge::emulator::generate::{write_fixtures, GenerateOptions};
use graphbridge::emulator::EmulatorArgs;
use serde_json::{json, Value};

const BULK: &str = "bulk@contoso.test";

async fn start_generated(dir: &std::path::Path) -> Running {
    start_with(EmulatorArgs {
        port: 0,
        fixtures: Some(dir.to_path_buf()),
        auto_consent: Some(BULK.to_string()),
        throttle: "1000000/600".into(),
        ..EmulatorArgs::default()
    })
    .await
}

/// Every folder (folder delta), with its counts.
async fn all_folders(e: &Running, t: &str) -> Vec<Value> {
    let url = format!("{}/v1.0/me/mailFolders/delta", e.base);
    e.delta_round(t, &url, "odata.maxpagesize=200").await.0
}

#[tokio::test]
async fn generated_mailbox_counts_pages_and_delta_agree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = GenerateOptions {
        messages: 3_000,
        median_bytes: 4_000,
        large_share: 0.002,
        folders: 12,
        ..GenerateOptions::default()
    };
    let summary = write_fixtures(dir.path(), &opts).expect("generate");
    assert_eq!(summary.messages, 3_000);
    assert!(summary.shapes.iter().all(|n| *n > 0), "{summary:?}");
    // Same options, same bytes.
    let again = tempfile::tempdir().expect("tempdir");
    assert_eq!(write_fixtures(again.path(), &opts).expect("again"), summary);

    let e = start_generated(dir.path()).await;
    let t = e.sign_in().await;
    let folders = all_folders(&e, &t).await;
    let total: u64 = folders
        .iter()
        .filter_map(|f| f["totalItemCount"].as_u64())
        .sum();
    assert_eq!(total, 3_000);

    // The inbox, page by page, newest first, agrees with its counts.
    let (_, inbox) = e.get_with(&t, "/v1.0/me/mailFolders/inbox").await;
    let mut url = format!(
        "{}/v1.0/me/mailFolders/inbox/messages?$top=250&$select=receivedDateTime,isRead&$count=true",
        e.base
    );
    let mut seen = Vec::new();
    loop {
        let (status, page) = e.get_url(&t, &url).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["@odata.count"], inbox["totalItemCount"]);
        seen.extend(page["value"].as_array().cloned().unwrap_or_default());
        match page.get("@odata.nextLink") {
            Some(next) => url = s(next),
            None => break,
        }
    }
    assert_eq!(Some(seen.len() as u64), inbox["totalItemCount"].as_u64());
    let dates: Vec<String> = seen.iter().map(|m| s(&m["receivedDateTime"])).collect();
    assert!(dates.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let unread = seen.iter().filter(|m| m["isRead"] == false).count() as u64;
    assert_eq!(Some(unread), inbox["unreadItemCount"].as_u64());

    // Marking one read changes the count and is the only change a delta replay reports.
    let url = format!("{}/v1.0/me/mailFolders/inbox/messages/delta", e.base);
    let (items, delta) = e.delta_round(&t, &url, "odata.maxpagesize=500").await;
    assert_eq!(items.len(), seen.len());
    let target = items
        .iter()
        .find(|m| m["isRead"] == false)
        .expect("an unread message");
    let (status, _) = e
        .patch_json(
            &t,
            &format!("/v1.0/me/messages/{}", s(&target["id"])),
            json!({"isRead": true}),
            "",
        )
        .await;
    assert_eq!(status, 200);
    let (changed, _) = e.delta_round(&t, &delta, "").await;
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0]["id"], target["id"]);
    let (_, inbox2) = e.get_with(&t, "/v1.0/me/mailFolders/inbox").await;
    assert_eq!(inbox2["unreadItemCount"].as_u64(), Some(unread - 1));

    // $value is the file's bytes.
    let resp = e
        .client
        .get(format!(
            "{}/v1.0/me/messages/{}/$value",
            e.base,
            s(&target["id"])
        ))
        .bearer_auth(&t)
        .send()
        .await
        .expect("value");
    let body = resp.bytes().await.expect("bytes");
    let subject = s(&target["subject"]);
    assert!(String::from_utf8_lossy(&body).contains("Message-ID: <gen."));
    assert!(!subject.is_empty());
}

#[tokio::test]
#[ignore = "prints figures for a 100,000-message mailbox; run on demand"]
async fn hundred_thousand_messages_figures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = GenerateOptions {
        messages: 100_000,
        ..GenerateOptions::default()
    };
    let clock = Instant::now();
    let summary = write_fixtures(dir.path(), &opts).expect("generate");
    println!("generate: {:?} {summary:?}", clock.elapsed());
    let clock = Instant::now();
    let e = start_generated(dir.path()).await;
    println!("load: {:?}", clock.elapsed());
    let t = e.sign_in().await;
    let clock = Instant::now();
    let (_, page) = e
        .get_with(
            &t,
            "/v1.0/me/mailFolders/inbox/messages?$top=100&$skip=20000&$select=subject",
        )
        .await;
    println!("list page at $skip=20000: {:?}", clock.elapsed());
    assert!(page["value"].is_array());
    let clock = Instant::now();
    let url = format!(
        "{}/v1.0/me/mailFolders/inbox/messages/delta?$select=subject",
        e.base
    );
    let (items, delta) = e.delta_round(&t, &url, "odata.maxpagesize=1000").await;
    println!(
        "delta first round ({} items): {:?}",
        items.len(),
        clock.elapsed()
    );
    let clock = Instant::now();
    let (_, replay) = e.get_url(&t, &delta).await;
    println!(
        "delta replay, no changes: {:?} {}",
        clock.elapsed(),
        replay["value"]
    );
    let clock = Instant::now();
    for m in items.iter().take(200) {
        let resp = e
            .client
            .get(format!(
                "{}/v1.0/me/messages/{}/$value",
                e.base,
                s(&m["id"])
            ))
            .bearer_auth(&t)
            .send()
            .await
            .expect("value");
        let _ = resp.bytes().await;
    }
    println!("200 x $value: {:?}", clock.elapsed());
    let clock = Instant::now();
    let _ = all_folders(&e, &t).await;
    println!("folder delta: {:?}", clock.elapsed());
}
