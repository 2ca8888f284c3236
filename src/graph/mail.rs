//! Typed mail operations on top of [`GraphClient`].

use base64::Engine;
use reqwest::Method;

use super::types::{DeltaMessage, FolderDeltaItem, MailFolder, Page, DELTA_EXPAND, DELTA_SELECT};
use super::{Body, GraphClient, GraphError};

/// Messages per delta page asked of Graph: delta items are small (ids, flags, a date), and
/// every page is a request against the mailbox's budget, so pages are as large as `$top` may
/// be (1,000).
const DELTA_PAGE_SIZE: u32 = 1000;
/// Folders per `mailFolders/delta` page: mailboxes rarely have more, so the whole tree is
/// usually one request. Graph may hand out smaller pages; nextLinks are followed either way.
const FOLDER_PAGE_SIZE: u32 = 1000;

impl GraphClient {
    /// Every folder of the mailbox with its item counts, in one round of `mailFolders/delta`
    /// (one request for up to [`FOLDER_PAGE_SIZE`] folders, where walking the tree with
    /// `childFolders` costs one per folder that has children). A fresh round each time rather
    /// than a replayed deltaLink: a replay reports only folders whose own properties changed,
    /// while the sync wants every folder's current `totalItemCount`, and both cost one request.
    /// Graph returns the hierarchy as a flat list in no promised order; hidden folders come
    /// with `isHidden` and are left to the caller.
    pub async fn folder_tree(&self) -> Result<Vec<MailFolder>, GraphError> {
        let mut folders = Vec::new();
        let mut url = self.url("/mailFolders/delta");
        loop {
            let page: Page<FolderDeltaItem> = self
                .get_json_prefer(&url, &format!("odata.maxpagesize={FOLDER_PAGE_SIZE}"))
                .await?;
            folders.extend(
                page.value
                    .into_iter()
                    .filter_map(FolderDeltaItem::into_folder),
            );
            match page.next_link {
                Some(next) => url = next,
                None => return Ok(folders),
            }
        }
    }

    /// The path (below the user) of a folder addressed by its well-known name, for a `$batch`.
    pub fn well_known_path(name: &str) -> String {
        format!("/mailFolders/{name}")
    }

    /// The URL that starts a fresh message delta of a folder. It asks for the last-verb
    /// property too, which carries `\Answered` and $Forwarded, and the size estimate.
    pub fn delta_start_url(&self, folder_id: &str) -> String {
        self.url(&format!(
            "/mailFolders/{folder_id}/messages/delta?$select={DELTA_SELECT}&$expand={DELTA_EXPAND}"
        ))
    }

    /// The URL that starts a fresh message delta of the folder with a well-known name
    /// (`inbox`, `sentitems`, …), each message naming its folder (`parentFolderId`): the
    /// folder's id is learnt from its first message.
    pub fn delta_start_url_by_name(&self, well_known_name: &str) -> String {
        self.url(&format!(
            "/mailFolders/{well_known_name}/messages/delta\
             ?$select={DELTA_SELECT},parentFolderId&$expand={DELTA_EXPAND}"
        ))
    }

    /// One delta page; `url` is a start URL, a nextLink or a deltaLink, followed verbatim.
    pub async fn delta_page(&self, url: &str) -> Result<Page<DeltaMessage>, GraphError> {
        self.get_json_prefer(url, &format!("odata.maxpagesize={DELTA_PAGE_SIZE}"))
            .await
    }

    /// The path (below the user) of a message's RFC 822 bytes, for a `$batch`.
    pub fn mime_path(message_id: &str) -> String {
        format!("/messages/{message_id}/$value")
    }

    /// The message's RFC 822 bytes (`$value`).
    pub async fn mime(&self, message_id: &str) -> Result<Vec<u8>, GraphError> {
        self.get_bytes(&self.url(&format!("/messages/{message_id}/$value")))
            .await
    }

    /// The path (below the user) of a message, for a `$batch`.
    pub fn message_path(message_id: &str) -> String {
        format!("/messages/{message_id}")
    }

    pub async fn patch_message(
        &self,
        message_id: &str,
        changes: serde_json::Value,
    ) -> Result<(), GraphError> {
        self.send_json(
            Method::PATCH,
            &self.url(&Self::message_path(message_id)),
            changes,
        )
        .await
        .map(drop)
    }

    /// Sends a MIME message; Graph reads the recipients from its headers and saves a copy in
    /// Sent Items.
    pub async fn send_mime(&self, message: &[u8]) -> Result<(), GraphError> {
        let body = base64::engine::general_purpose::STANDARD.encode(message);
        self.request(Method::POST, &self.url("/sendMail"), Body::Mime(body), None)
            .await
            .map(drop)
    }
}

/// A created or moved message as Graph returns it (only what the bridge needs).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageRef {
    pub id: String,
    #[serde(default)]
    pub received_date_time: Option<String>,
}

impl GraphClient {
    pub async fn create_folder(
        &self,
        parent_id: Option<&str>,
        name: &str,
    ) -> Result<MailFolder, GraphError> {
        let url = match parent_id {
            Some(parent) => self.url(&format!("/mailFolders/{parent}/childFolders")),
            None => self.url("/mailFolders"),
        };
        let body = self
            .send_json(
                Method::POST,
                &url,
                serde_json::json!({ "displayName": name }),
            )
            .await?;
        decode_json(&body)
    }

    pub async fn rename_folder(&self, folder_id: &str, name: &str) -> Result<(), GraphError> {
        self.send_json(
            Method::PATCH,
            &self.url(&format!("/mailFolders/{folder_id}")),
            serde_json::json!({ "displayName": name }),
        )
        .await
        .map(drop)
    }

    pub async fn move_folder(&self, folder_id: &str, destination: &str) -> Result<(), GraphError> {
        self.send_json(
            Method::POST,
            &self.url(&format!("/mailFolders/{folder_id}/move")),
            serde_json::json!({ "destinationId": destination }),
        )
        .await
        .map(drop)
    }

    pub async fn delete_folder(&self, folder_id: &str) -> Result<(), GraphError> {
        self.request(
            Method::DELETE,
            &self.url(&format!("/mailFolders/{folder_id}")),
            Body::None,
            None,
        )
        .await
        .map(drop)
    }

    /// Moves (`copy == false`) or copies a message; returns the message in its new folder.
    pub async fn move_message(
        &self,
        message_id: &str,
        destination: &str,
        copy: bool,
    ) -> Result<MessageRef, GraphError> {
        let verb = if copy { "copy" } else { "move" };
        let body = self
            .send_json(
                Method::POST,
                &self.url(&format!("/messages/{message_id}/{verb}")),
                serde_json::json!({ "destinationId": destination }),
            )
            .await?;
        decode_json(&body)
    }

    /// Deletes a message: to Deleted Items, or for good with `permanent`.
    pub async fn delete_message(
        &self,
        message_id: &str,
        permanent: bool,
    ) -> Result<(), GraphError> {
        let (method, path) = if permanent {
            (
                Method::POST,
                format!("/messages/{message_id}/permanentDelete"),
            )
        } else {
            (Method::DELETE, format!("/messages/{message_id}"))
        };
        // permanentDelete is a POST, but deleting twice does no harm: retry it like a DELETE.
        self.request(method, &self.url(&path), Body::None, None)
            .await
            .map(drop)
    }

    /// Creates a message in a folder from MIME; Graph makes it a draft.
    pub async fn create_mime_message(
        &self,
        folder_id: &str,
        message: &[u8],
    ) -> Result<MessageRef, GraphError> {
        let body = base64::engine::general_purpose::STANDARD.encode(message);
        let answer = self
            .request(
                Method::POST,
                &self.url(&format!("/mailFolders/{folder_id}/messages")),
                Body::Mime(body),
                None,
            )
            .await?;
        decode_json(&answer)
    }

    /// Creates a message in a folder from Graph JSON.
    pub async fn create_json_message(
        &self,
        folder_id: &str,
        message: serde_json::Value,
    ) -> Result<MessageRef, GraphError> {
        let answer = self
            .send_json(
                Method::POST,
                &self.url(&format!("/mailFolders/{folder_id}/messages")),
                message,
            )
            .await?;
        decode_json(&answer)
    }

    /// Adds a file attachment (under 3 MB) to a message.
    pub async fn add_attachment(
        &self,
        message_id: &str,
        attachment: serde_json::Value,
    ) -> Result<(), GraphError> {
        self.send_json(
            Method::POST,
            &self.url(&format!("/messages/{message_id}/attachments")),
            attachment,
        )
        .await
        .map(drop)
    }
}

impl GraphClient {
    /// Subscribes to changes of a folder's messages; Graph validates `notification_url` before
    /// answering. Returns Graph's answer (the subscription).
    pub async fn create_subscription(
        &self,
        folder_id: &str,
        notification_url: &str,
        client_state: &str,
        expires: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<u8>, GraphError> {
        let body = serde_json::json!({
            "changeType": "created,updated,deleted",
            "notificationUrl": notification_url,
            "resource": format!("{}/mailFolders('{folder_id}')/messages", self.user_path().trim_start_matches('/')),
            "expirationDateTime": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "clientState": client_state,
        });
        self.send_json(Method::POST, &self.root_url("/subscriptions"), body)
            .await
    }

    pub async fn renew_subscription(
        &self,
        id: &str,
        expires: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), GraphError> {
        let body = serde_json::json!({
            "expirationDateTime": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
        self.send_json(
            Method::PATCH,
            &self.root_url(&format!("/subscriptions/{id}")),
            body,
        )
        .await
        .map(drop)
    }

    pub async fn delete_subscription(&self, id: &str) -> Result<(), GraphError> {
        self.request(
            Method::DELETE,
            &self.root_url(&format!("/subscriptions/{id}")),
            Body::None,
            None,
        )
        .await
        .map(drop)
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, GraphError> {
    serde_json::from_slice(bytes).map_err(|e| GraphError::Decode(e.to_string()))
}

/// The named extended property (in PS_PUBLIC_STRINGS) that marks a draft, and the Sent Items
/// copy Exchange makes of it, with the outbox item it came from.
pub const OUTBOX_TAG_PROPERTY: &str =
    "String {00020329-0000-0000-C000-000000000046} Name GraphbridgeOutboxTag";

/// Raw bytes per upload-session chunk (Graph takes at most 4 MB per PUT).
pub(super) const UPLOAD_CHUNK: usize = 3 * 1024 * 1024;

/// A message found by its outbox tag.
#[derive(Debug, Clone)]
pub struct TaggedMessage {
    pub id: String,
    pub is_draft: bool,
    pub from: Option<String>,
    pub internet_message_id: Option<String>,
}

impl GraphClient {
    /// Creates a draft from MIME (Graph makes every MIME-created item a draft) in Drafts.
    pub async fn create_mime_draft(&self, message: &[u8]) -> Result<String, GraphError> {
        let body = base64::engine::general_purpose::STANDARD.encode(message);
        let bytes = self
            .request(Method::POST, &self.url("/messages"), Body::Mime(body), None)
            .await?;
        created_id(&bytes)
    }

    /// Sets the outbox tag on a draft.
    pub async fn tag_message(&self, message_id: &str, tag: &str) -> Result<(), GraphError> {
        let patch = serde_json::json!({
            "singleValueExtendedProperties": [{"id": OUTBOX_TAG_PROPERTY, "value": tag}]
        });
        self.patch_message(message_id, patch).await
    }

    /// Sends a draft; Exchange moves it to Sent Items.
    pub async fn send_draft(&self, message_id: &str) -> Result<(), GraphError> {
        self.request(
            Method::POST,
            &self.url(&format!("/messages/{message_id}/send")),
            Body::None,
            None,
        )
        .await
        .map(drop)
    }

    /// Looks for the item carrying `tag` in a folder (a well-known name or id) among the
    /// messages received since `since` (RFC 3339). The property is expanded rather than
    /// filtered on, so only `receivedDateTime` is needed in `$filter`.
    pub async fn find_tagged(
        &self,
        folder: &str,
        tag: &str,
        since: &str,
    ) -> Result<Option<TaggedMessage>, GraphError> {
        let mut url = self.url(&format!(
            "/mailFolders/{folder}/messages?$top=100&$select=id,isDraft,from,internetMessageId\
             &$filter=receivedDateTime ge {since}\
             &$expand=singleValueExtendedProperties($filter=id eq '{OUTBOX_TAG_PROPERTY}')"
        ));
        loop {
            let page: Page<serde_json::Value> = self.get_json(&url).await?;
            if let Some(found) = page.value.iter().find_map(|m| tagged(m, tag)) {
                return Ok(Some(found));
            }
            match page.next_link {
                Some(next) => url = next,
                None => return Ok(None),
            }
        }
    }

    /// Drafts made since `since` with this Message-ID that carry no outbox tag: what a crash
    /// between creating a draft and tagging it leaves behind.
    pub async fn untagged_drafts(
        &self,
        message_id: &str,
        since: &str,
    ) -> Result<Vec<String>, GraphError> {
        let mut url = self.url(&format!(
            "/mailFolders/drafts/messages?$top=100&$select=id,isDraft,internetMessageId\
             &$filter=receivedDateTime ge {since}\
             &$expand=singleValueExtendedProperties($filter=id eq '{OUTBOX_TAG_PROPERTY}')"
        ));
        let mut found = Vec::new();
        loop {
            let page: Page<serde_json::Value> = self.get_json(&url).await?;
            found.extend(page.value.iter().filter_map(|m| {
                let untagged = m["singleValueExtendedProperties"]
                    .as_array()
                    .is_none_or(|p| p.is_empty());
                // Graph writes the Message-ID with its angle brackets; callers may not.
                let bare = |id: &str| {
                    id.trim()
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_string()
                };
                let same = m["internetMessageId"]
                    .as_str()
                    .is_some_and(|id| bare(id) == bare(message_id));
                (untagged && same && m["isDraft"].as_bool().unwrap_or(false))
                    .then(|| m["id"].as_str().map(str::to_string))
                    .flatten()
            }));
            match page.next_link {
                Some(next) => url = next,
                None => return Ok(found),
            }
        }
    }

    /// Creates a message from Graph JSON in a folder; returns its id.
    pub async fn create_in_folder(
        &self,
        folder: &str,
        message: serde_json::Value,
    ) -> Result<String, GraphError> {
        let bytes = self
            .send_json(
                Method::POST,
                &self.url(&format!("/mailFolders/{folder}/messages")),
                message,
            )
            .await?;
        created_id(&bytes)
    }

    /// Adds a file to a message through an upload session (files of 3 to 150 MB).
    pub async fn upload_attachment(
        &self,
        message_id: &str,
        name: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> Result<(), GraphError> {
        let item = serde_json::json!({
            "attachmentType": "file", "name": name, "contentType": content_type,
            "size": bytes.len()});
        self.upload_attachment_item(message_id, item, bytes).await
    }

    /// Adds a file described by `item` (Graph's `attachmentItem`) to a message through an
    /// upload session: sequential chunks of at most 4 MB, PUT to the pre-authenticated URL
    /// without an Authorization header, each paced against the mailbox's upload quota.
    pub async fn upload_attachment_item(
        &self,
        message_id: &str,
        item: serde_json::Value,
        bytes: &[u8],
    ) -> Result<(), GraphError> {
        let answer = self
            .send_json(
                Method::POST,
                &self.url(&format!(
                    "/messages/{message_id}/attachments/createUploadSession"
                )),
                serde_json::json!({ "AttachmentItem": item }),
            )
            .await?;
        let value: serde_json::Value =
            serde_json::from_slice(&answer).map_err(|e| GraphError::Decode(e.to_string()))?;
        let upload_url = value["uploadUrl"]
            .as_str()
            .ok_or_else(|| GraphError::Decode("upload session without uploadUrl".into()))?
            .to_string();
        // A separate client: the upload URL must not see the bearer token.
        let http = super::http_client()?;
        let total = bytes.len();
        for (index, chunk) in bytes.chunks(UPLOAD_CHUNK).enumerate() {
            let start = index * UPLOAD_CHUNK;
            let range = format!("bytes {start}-{}/{total}", start + chunk.len() - 1);
            self.put_chunk(&http, &upload_url, &range, chunk).await?;
        }
        Ok(())
    }

    /// PUTs one chunk of an upload session. A throttled or unavailable answer means the
    /// chunk was not taken: it is sent again after `Retry-After` (or a backoff), unless that
    /// wait is long (the upload quota, say), when the caller is better told at once. A
    /// connection lost before the answer is not retried: the chunk may have been taken, and
    /// sending it again would not fit the session's next expected range.
    async fn put_chunk(
        &self,
        http: &reqwest::Client,
        upload_url: &str,
        range: &str,
        chunk: &[u8],
    ) -> Result<(), GraphError> {
        use super::client::{backoff, is_transient, retry_after, status_error};
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (status, retry_after, body) = {
                // Held until the answer is in, like a request's place in the request budget.
                let _quota = self.uploads.spend(1).await;
                let response = http
                    .put(upload_url)
                    .header("Content-Range", range)
                    .body(chunk.to_vec())
                    .send()
                    .await?;
                let status = response.status();
                let retry_after = retry_after(&response);
                (
                    status,
                    retry_after,
                    response.bytes().await.unwrap_or_default(),
                )
            };
            if status.is_success() {
                return Ok(());
            }
            let wait = retry_after.unwrap_or_else(|| backoff(attempt));
            if !is_transient(status) || attempt >= CHUNK_ATTEMPTS || wait > CHUNK_MAX_WAIT {
                return Err(status_error(status, &body));
            }
            tracing::debug!(%status, attempt, "upload chunk refused, sending it again");
            tokio::time::sleep(wait).await;
        }
    }
}

/// Attempts at one upload chunk, and the longest wait between two worth making.
const CHUNK_ATTEMPTS: u32 = 5;
const CHUNK_MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

fn created_id(bytes: &[u8]) -> Result<String, GraphError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| GraphError::Decode(e.to_string()))?;
    value["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| GraphError::Decode("created item without id".into()))
}

/// The message if it carries `tag` in the outbox property (ids compared case-insensitively:
/// Graph canonicalises them).
fn tagged(m: &serde_json::Value, tag: &str) -> Option<TaggedMessage> {
    let props = m["singleValueExtendedProperties"].as_array()?;
    let carries = props.iter().any(|p| {
        p["id"]
            .as_str()
            .is_some_and(|id| id.eq_ignore_ascii_case(OUTBOX_TAG_PROPERTY))
            && p["value"].as_str() == Some(tag)
    });
    if !carries {
        return None;
    }
    Some(TaggedMessage {
        id: m["id"].as_str()?.to_string(),
        is_draft: m["isDraft"].as_bool().unwrap_or(false),
        from: m["from"]["emailAddress"]["address"]
            .as_str()
            .map(str::to_string),
        internet_message_id: m["internetMessageId"].as_str().map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use axum::http::StatusCode;
    use axum::response::IntoResponse;

    use super::*;
    use crate::graph::budget::RequestBudget;
    use crate::graph::oauth::{OAuthClient, TokenSet};

    fn client() -> GraphClient {
        let http = crate::graph::http_client().expect("http client");
        let oauth = OAuthClient::new(http.clone(), &crate::config::GraphConfig::default());
        let tokens = TokenSet {
            access_token: "token".into(),
            refresh_token: "refresh".into(),
            expires_at: i64::MAX / 2,
        };
        GraphClient::new(
            http,
            "http://127.0.0.1:9/v1.0",
            oauth,
            tokens,
            Arc::new(|_| Ok(())),
            4,
            RequestBudget::new(100, Duration::from_secs(60)),
        )
    }

    /// An upload URL whose answers are `answers` in turn (then 200); returns it and a count
    /// of the PUTs it received.
    async fn upload_host(
        answers: Vec<(StatusCode, Option<&'static str>)>,
    ) -> (String, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let answers = Arc::new(answers);
        let app = axum::Router::new().route(
            "/upload",
            axum::routing::put(move || {
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let answers = answers.clone();
                async move {
                    match answers.get(n) {
                        Some((status, Some(retry))) => {
                            (*status, [("Retry-After", *retry)], "{}").into_response()
                        }
                        Some((status, None)) => (*status, "{}").into_response(),
                        None => (StatusCode::OK, "{}").into_response(),
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/upload", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, calls)
    }

    #[tokio::test]
    async fn a_refused_chunk_is_sent_again_after_retry_after() {
        let (url, calls) = upload_host(vec![
            (StatusCode::SERVICE_UNAVAILABLE, Some("1")),
            (StatusCode::TOO_MANY_REQUESTS, Some("0")),
        ])
        .await;
        let graph = client();
        let result = graph
            .put_chunk(&graph.http, &url, "bytes 0-2/3", b"abc")
            .await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_long_wait_or_a_real_refusal_is_reported_at_once() {
        for answer in [
            (StatusCode::TOO_MANY_REQUESTS, Some("300")),
            (StatusCode::RANGE_NOT_SATISFIABLE, None),
        ] {
            let (url, calls) = upload_host(vec![answer]).await;
            let graph = client();
            let result = graph
                .put_chunk(&graph.http, &url, "bytes 0-2/3", b"abc")
                .await;
            assert!(result.is_err(), "{answer:?}");
            assert_eq!(calls.load(Ordering::SeqCst), 1, "{answer:?}");
        }
    }
}
