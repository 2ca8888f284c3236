//! The sync engine against a misbehaving Microsoft 365: with errors, dropped connections, a 429
//! storm, expired access tokens and expired delta tokens, a sync still finishes and the store
//! equals the emulated mailbox. UIDs stay stable across delta token expiry, moves away and
//! back, and folder renames in Outlook.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use graphbridge::demo::{self, Demo, DemoOptions, DEMO_MAILBOX};
use graphbridge::emulator::generate::{write_fixtures, GenerateOptions};
use graphbridge::graph::types::DeltaMessage;
use graphbridge::mailstore::{accounts, folders, messages, Flags, FolderRecord};
use graphbridge::sync::{flags_from_graph, MailboxSync, CATEGORY_SEPARATOR};
use serde_json::{json, Value};

/// Starts the bridge against an emulator holding a generated mailbox (as the demo mailbox),
/// with `error_rate` of the Graph requests failing.
async fn start(messages: usize, error_rate: f64) -> (Demo, tempfile::TempDir, Arc<MailboxSync>) {
    let fixtures = tempfile::tempdir().expect("tempdir");
    let options = GenerateOptions {
        messages,
        mailbox: DEMO_MAILBOX.to_string(),
        folders: 4,
        median_bytes: 3_000,
        large_share: 0.0,
        ..GenerateOptions::default()
    };
    write_fixtures(fixtures.path(), &options).expect("fixtures");
    let mut demo_options = DemoOptions {
        imap_port: 0,
        smtp_port: 0,
        http_port: 0,
        poll_interval_secs: 1,
        ..DemoOptions::default()
    };
    demo_options.emulator.port = 0;
    demo_options.emulator.fixtures = Some(fixtures.path().to_path_buf());
    demo_options.emulator.error_rate = error_rate;
    let demo = demo::start(demo_options).await.expect("demo starts");
    let sync = common::demo_engine(&demo).await;
    (demo, fixtures, sync)
}

/// Microsoft 365 as Outlook sees it: its own sign-in and plain HTTP.
struct Outlook {
    http: reqwest::Client,
    root: String,
    token: String,
}

impl Outlook {
    async fn sign_in(graph: SocketAddr) -> Outlook {
        graphbridge::tls::install_crypto_provider();
        let http = reqwest::Client::new();
        let root = format!("http://{graph}");
        let code: Value = post_form(
            &http,
            &format!("{root}/common/oauth2/v2.0/devicecode"),
            &[("client_id", "outlook"), ("scope", "Mail.ReadWrite")],
        )
        .await;
        let device_code = code["device_code"].as_str().expect("device_code");
        let token: Value = post_form(
            &http,
            &format!("{root}/common/oauth2/v2.0/token"),
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", "outlook"),
                ("device_code", device_code),
            ],
        )
        .await;
        Outlook {
            http,
            root,
            token: token["access_token"].as_str().expect("token").to_string(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}/v1.0/me{path}", self.root)
        };
        let mut request = self
            .http
            .request(method, &url)
            .bearer_auth(&self.token)
            .header("Prefer", "IdType=\"ImmutableId\", odata.maxpagesize=1000");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("Graph answers");
        let status = response.status();
        let text = response.text().await.expect("body");
        assert!(status.is_success(), "{url}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn pages(&self, first: String) -> Vec<Value> {
        let mut url = first;
        let mut items = Vec::new();
        loop {
            let page = self.call(reqwest::Method::GET, &url, None).await;
            items.extend(page["value"].as_array().cloned().unwrap_or_default());
            match page["@odata.nextLink"].as_str() {
                Some(next) => url = next.to_string(),
                None => return items,
            }
        }
    }

    /// Visible folders: id → display name, as the bridge lists them.
    async fn folders(&self) -> BTreeMap<String, String> {
        self.pages("/mailFolders/delta".into())
            .await
            .into_iter()
            .filter(|f| f["isHidden"] != true)
            .filter_map(|f| Some((f["id"].as_str()?.into(), f["displayName"].as_str()?.into())))
            .collect()
    }

    /// A folder's messages: immutable id → (IMAP flags, keywords).
    async fn messages(&self, folder_id: &str) -> BTreeMap<String, (Flags, String)> {
        let url = format!(
            "/mailFolders/{folder_id}/messages/delta?$select=isRead,isDraft,flag,categories\
             &$expand=singleValueExtendedProperties($filter=id eq 'Integer 0x1081')"
        );
        self.pages(url)
            .await
            .into_iter()
            .map(|m| serde_json::from_value::<DeltaMessage>(m).expect("message"))
            .map(|m| {
                let keywords = m
                    .categories
                    .clone()
                    .unwrap_or_default()
                    .join(CATEGORY_SEPARATOR);
                (m.id.clone(), (flags_from_graph(&m), keywords))
            })
            .collect()
    }
}

async fn post_form(http: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> Value {
    http.post(url)
        .form(form)
        .send()
        .await
        .expect("OAuth answers")
        .json()
        .await
        .expect("OAuth JSON")
}

async fn control(graph: SocketAddr, path: &str, body: Value) {
    let response = reqwest::Client::new()
        .post(format!("http://{graph}/_emulator/{path}"))
        .json(&body)
        .send()
        .await
        .expect("control endpoint");
    assert!(response.status().is_success(), "{path}");
}

async fn store_folders(sync: &MailboxSync) -> Vec<FolderRecord> {
    let account = sync.account_id;
    sync.store()
        .call(move |c| folders::list_folders(c, account))
        .await
        .expect("folders")
}

async fn store_messages(sync: &MailboxSync, folder_id: i64) -> Vec<messages::MessageRecord> {
    sync.store()
        .call(move |c| messages::list_messages(c, folder_id))
        .await
        .expect("messages")
}

/// Asserts that the store holds exactly Outlook's folders and messages, with the same flags.
async fn assert_store_equals_graph(sync: &MailboxSync, outlook: &Outlook) {
    let graph_folders = outlook.folders().await;
    let stored = store_folders(sync).await;
    let stored_ids: BTreeSet<String> = stored.iter().map(|f| f.graph_id.clone()).collect();
    let graph_ids: BTreeSet<String> = graph_folders.keys().cloned().collect();
    assert_eq!(stored_ids, graph_ids, "same folders");
    for folder in &stored {
        assert_eq!(
            Some(&folder.display_name),
            graph_folders.get(&folder.graph_id)
        );
        let expected = outlook.messages(&folder.graph_id).await;
        let actual: BTreeMap<String, (Flags, String)> = store_messages(sync, folder.id)
            .await
            .into_iter()
            .map(|m| {
                (
                    m.graph_id,
                    (m.flags.with(Flags::DELETED, false), m.keywords),
                )
            })
            .collect();
        assert_eq!(actual, expected, "messages and flags of {}", folder.path);
    }
}

/// Runs passes until one finishes cleanly (each pass already retries what failed).
async fn sync_until_clean(sync: &MailboxSync) {
    for _ in 0..10 {
        let pass = match sync.sync_once().await {
            Ok(()) => sync.fetch_missing_bodies().await.map(drop),
            Err(e) => Err(e),
        };
        match pass {
            Ok(()) => return,
            Err(e) => eprintln!("pass failed, again: {e}"),
        }
    }
    panic!("no sync pass finished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_under_faults_ends_equal_to_graph() {
    let (demo, _fixtures, sync) = start(400, 0.2).await;
    let graph = demo.graph.addr;
    // Outside changes while the faults are on, so the sync has something to catch up on.
    control(graph, "faults", json!({"errorRate": 0.0})).await;
    let outlook = Outlook::sign_in(graph).await;
    let inbox = outlook
        .call(reqwest::Method::GET, "/mailFolders/inbox", None)
        .await;
    let inbox_id = inbox["id"].as_str().expect("inbox id").to_string();
    let some: Vec<String> = outlook
        .messages(&inbox_id)
        .await
        .into_keys()
        .take(3)
        .collect();
    for id in &some {
        let patch =
            json!({"isRead": false, "flag": {"flagStatus": "flagged"}, "categories": ["Kunde"]});
        outlook
            .call(
                reqwest::Method::PATCH,
                &format!("/messages/{id}"),
                Some(patch),
            )
            .await;
    }
    outlook
        .call(
            reqwest::Method::POST,
            &format!("/messages/{}/move", some[0]),
            Some(json!({"destinationId": "archive"})),
        )
        .await;
    control(graph, "faults", json!({"errorRate": 0.2})).await;

    // Every kind of trouble at once, mid-sync.
    let trouble = tokio::spawn(async move {
        control(graph, "delta/expire", json!({})).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        control(graph, "storm?seconds=2", json!({})).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        control(graph, "tokens/expire", json!({})).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        control(graph, "delta/expire", json!({})).await;
    });
    sync_until_clean(&sync).await;
    trouble.await.expect("trouble");
    sync_until_clean(&sync).await;

    control(graph, "faults", json!({"errorRate": 0.0})).await;
    // Outlook's own token expired with everyone's.
    let outlook = Outlook::sign_in(graph).await;
    assert_store_equals_graph(&sync, &outlook).await;
    let account = sync.account_id;
    let progress = sync
        .store()
        .call(move |c| accounts::sync_progress(c, account))
        .await
        .expect("progress");
    assert_eq!(progress.bodies, progress.messages, "every body stored");
    demo.stop().await;
}

/// UID and UIDVALIDITY of every message of a folder.
async fn uid_map(sync: &MailboxSync, path: &str) -> (u32, BTreeMap<String, u32>) {
    let folder = store_folders(sync)
        .await
        .into_iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("folder {path}"));
    let uids = store_messages(sync, folder.id)
        .await
        .into_iter()
        .map(|m| (m.graph_id, m.uid))
        .collect();
    (folder.uidvalidity, uids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uids_survive_token_expiry_moves_and_renames() {
    let (demo, _fixtures, sync) = start(120, 0.0).await;
    let graph = demo.graph.addr;
    let outlook = Outlook::sign_in(graph).await;
    sync.sync_once().await.expect("sync");

    // Expired delta tokens: a full reconciliation that changes no UID.
    let before = uid_map(&sync, "INBOX").await;
    control(graph, "delta/expire", json!({})).await;
    sync.sync_once().await.expect("resync");
    assert_eq!(uid_map(&sync, "INBOX").await, before);

    // A move away and back in Outlook: the same immutable id comes back under a new UID.
    let (validity, uids) = before;
    let (id, old_uid) = uids
        .iter()
        .next()
        .map(|(i, u)| (i.clone(), *u))
        .expect("mail");
    let moved = outlook
        .call(
            reqwest::Method::POST,
            &format!("/messages/{id}/move"),
            Some(json!({"destinationId": "archive"})),
        )
        .await;
    assert_eq!(moved["id"], id.as_str(), "immutable id survives the move");
    sync.sync_once().await.expect("sync");
    let (_, inbox) = uid_map(&sync, "INBOX").await;
    assert!(!inbox.contains_key(&id), "expunged from INBOX");
    let (_, archive) = uid_map(&sync, "Archive").await;
    assert!(archive.contains_key(&id), "in Archive");
    outlook
        .call(
            reqwest::Method::POST,
            &format!("/messages/{id}/move"),
            Some(json!({"destinationId": "inbox"})),
        )
        .await;
    sync.sync_once().await.expect("sync");
    let (validity_after, inbox) = uid_map(&sync, "INBOX").await;
    assert_eq!(validity_after, validity);
    let new_uid = inbox.get(&id).copied().expect("back in INBOX");
    assert!(new_uid > old_uid, "a new UID, never the old one");
    let max_before = uids.values().copied().max().unwrap_or(0);
    assert!(new_uid > max_before, "UIDs are never reused");
    for (other, uid) in &uids {
        if other != &id {
            assert_eq!(inbox.get(other), Some(uid), "other UIDs unchanged");
        }
    }

    // A rename in Outlook: the same folder under a new name, UIDs and UIDVALIDITY kept.
    let folder = store_folders(&sync)
        .await
        .into_iter()
        .find(|f| f.path == "Projects")
        .expect("a user folder");
    let before = uid_map(&sync, &folder.path).await;
    outlook
        .call(
            reqwest::Method::PATCH,
            &format!("/mailFolders/{}", folder.graph_id),
            Some(json!({"displayName": "Renamed in Outlook"})),
        )
        .await;
    sync.sync_once().await.expect("sync");
    let renamed = store_folders(&sync)
        .await
        .into_iter()
        .find(|f| f.graph_id == folder.graph_id)
        .expect("still there");
    assert!(
        renamed.path.ends_with("Renamed in Outlook"),
        "{}",
        renamed.path
    );
    assert_eq!(uid_map(&sync, &renamed.path).await, before);
    assert_store_equals_graph(&sync, &outlook).await;
    demo.stop().await;
}
