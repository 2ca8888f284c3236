//! Download links: macros in the body take the attachments out; the link pages list and
//! serve them, ask for the agreement first when asked to, and expire (with a moved clock).
//! Also the large-message path through draft and upload sessions.

mod common;
mod smtp_support;

use std::sync::Arc;

use common::start_demo;
use graphbridge::mailstore::links as stored_links;
use graphbridge::submission::clock::ManualClock;
use graphbridge::submission::{links, links_http};
use smtp_support::{with_attachment, Outlook, Smtp};

const SALES: &str = "sales@contoso.test";

/// The token of the first link in `text` after `label: `.
fn token_after(text: &str, label: &str) -> String {
    let at = text
        .find(&format!("{label}: "))
        .unwrap_or_else(|| panic!("no {label} link in {text}"));
    let rest = &text[at..];
    let d = rest.find("/d/").expect("a /d/ URL");
    rest[d + 3..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn macros_become_links_that_serve_the_files() {
    let demo = start_demo(None).await;
    let bridge = demo.running.bridge.clone();
    let outlook = Outlook::sign_in(demo.graph.addr).await;
    let mut smtp = Smtp::login(demo.running.smtp).await;
    let pdf = b"%PDF-1.4 the offer\n".to_vec();
    let text = "Hello,\r\n_downloadLink(Offer files)\r\n_agreementLink(Signed terms)\r\nRegards";
    let message = with_attachment(SALES, SALES, "with links", "", text, &pdf);
    let reply = smtp.send(SALES, &[SALES], &message).await;
    assert!(reply.starts_with("250"), "{reply}");

    let got = outlook.with_subject("inbox", "with links").await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0]["hasAttachments"].as_bool(),
        Some(false),
        "the file was taken out"
    );
    let mime = outlook.mime(got[0]["id"].as_str().expect("id")).await;
    assert!(!mime.contains("_downloadLink"), "{mime}");
    let plain = mime.replace("=\r\n", "");
    let download = token_after(&plain, "Offer files");
    let agreement = token_after(&plain, "Signed terms");
    assert!(download.len() >= 22, "at least 128 bits: {download}");

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let base = format!("http://{}", demo.running.http);
    let page = http
        .get(format!("{base}/d/{download}"))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status().as_u16(), 200);
    let page = page.text().await.expect("page text");
    assert!(
        page.contains("offer.pdf") && page.contains("Offer files"),
        "{page}"
    );
    let file = http
        .get(format!("{base}/d/{download}/0"))
        .send()
        .await
        .expect("file");
    assert_eq!(file.status().as_u16(), 200);
    assert_eq!(file.headers()["content-type"], "application/pdf");
    let disposition = file.headers()["content-disposition"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        disposition.contains("filename=\"offer.pdf\""),
        "{disposition}"
    );
    assert_eq!(file.bytes().await.expect("bytes").to_vec(), pdf);

    // The agreement link shows the form and withholds the file until accepted.
    let form = http
        .get(format!("{base}/d/{agreement}"))
        .send()
        .await
        .expect("form");
    let form = form.text().await.expect("form text");
    assert!(
        form.contains("I accept the terms") && form.contains("<form"),
        "{form}"
    );
    let blocked = http
        .get(format!("{base}/d/{agreement}/0"))
        .send()
        .await
        .expect("blocked");
    assert_eq!(blocked.status().as_u16(), 303);
    let accepted = http
        .post(format!("{base}/d/{agreement}"))
        .form(&[("address", "buyer@example.test"), ("accept", "yes")])
        .send()
        .await
        .expect("accept");
    assert_eq!(accepted.status().as_u16(), 303);
    let location = accepted.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let ok = location.split("ok=").nth(1).expect("proof").to_string();
    let file = http
        .get(format!("{base}/d/{agreement}/0?ok={ok}"))
        .send()
        .await
        .expect("file after accepting");
    assert_eq!(file.status().as_u16(), 200);
    assert_eq!(file.bytes().await.expect("bytes").to_vec(), pdf);
    let tok = agreement.clone();
    let accepted = bridge
        .store
        .call(move |c| {
            let link = stored_links::link_by_token(c, &tok)?.expect("link");
            stored_links::acceptances(c, link.id)
        })
        .await
        .expect("store");
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].address, "buyer@example.test");

    let unknown = http
        .get(format!("{base}/d/nosuchlink"))
        .send()
        .await
        .expect("unknown");
    assert_eq!(unknown.status().as_u16(), 404);

    // Fifteen days later (a moved clock, not a wait): 410, and the sweeper deletes the files.
    let now = graphbridge::mailstore::now_unix();
    let later = ManualClock::at(now + 15 * 86_400);
    let router = links_http::router_with_clock::<()>(bridge.clone(), later.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    let expired = http
        .get(format!("http://{addr}/d/{download}"))
        .send()
        .await
        .expect("expired");
    assert_eq!(expired.status().as_u16(), 410);
    let fresh = ManualClock::at(now + 13 * 86_400);
    let router = links_http::router_with_clock::<()>(bridge.clone(), fresh);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr13 = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    let still = http
        .get(format!("http://{addr13}/d/{download}"))
        .send()
        .await
        .expect("day 13");
    assert_eq!(still.status().as_u16(), 200);
    let dir = links::links_dir(&demo.data_dir);
    let before = std::fs::read_dir(&dir).expect("links dir").count();
    assert_eq!(before, 2, "one sealed file per link");
    let removed = links::sweep(&bridge.store, &demo.data_dir, now + 15 * 86_400)
        .await
        .expect("sweep");
    assert_eq!(removed, 2);
    assert_eq!(std::fs::read_dir(&dir).expect("links dir").count(), 0);
    let after = http
        .get(format!("http://{addr}/d/{download}"))
        .send()
        .await
        .expect("swept");
    assert_eq!(after.status().as_u16(), 404);
    drop(Arc::clone(&bridge));
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_attachments_go_up_in_upload_sessions() {
    let demo = start_demo(None).await;
    let outlook = Outlook::sign_in(demo.graph.addr).await;
    let mut smtp = Smtp::login(demo.running.smtp).await;
    let big: Vec<u8> = (0..3_500_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let message = with_attachment(SALES, SALES, "large", "", "the big file", &big);
    assert!(message.len() > graphbridge::submission::GRAPH_MIME_LIMIT);
    let reply = smtp.send(SALES, &[SALES], &message).await;
    assert!(reply.starts_with("250"), "{reply}");
    let sent = outlook.with_subject("sentitems", "large").await;
    assert_eq!(sent.len(), 1, "sent once");
    assert_eq!(sent[0]["hasAttachments"].as_bool(), Some(true));
    let got = outlook.with_subject("inbox", "large").await;
    assert_eq!(got.len(), 1);
    let mime = outlook.mime(got[0]["id"].as_str().expect("id")).await;
    assert!(
        mime.len() > 4_000_000,
        "the file arrived: {} bytes",
        mime.len()
    );
    assert!(mime.contains("the big file"));
    demo.stop().await;
}
