//! Typed mail operations on top of [`GraphClient`].

use base64::Engine;
use reqwest::Method;

use super::types::{DeltaMessage, MailFolder, Page, DELTA_EXPAND, DELTA_SELECT};
use super::{Body, GraphClient, GraphError};

/// Messages per delta page asked of Graph: delta items are small (ids, flags, a date), and
/// every page is a request against the mailbox's budget, so pages are as large as `$top` may
/// be (1,000).
const DELTA_PAGE_SIZE: u32 = 1000;

impl GraphClient {
    /// Every visible folder of the mailbox, parents before children.
    pub async fn all_folders(&self) -> Result<Vec<MailFolder>, GraphError> {
        let mut found = self
            .collect_pages::<MailFolder>(&self.url("/mailFolders?$top=100"))
            .await?;
        let mut next = 0;
        while next < found.len() {
            if found[next].child_folder_count > 0 {
                let url = self.url(&format!(
                    "/mailFolders/{}/childFolders?$top=100",
                    found[next].id
                ));
                let children = self.collect_pages::<MailFolder>(&url).await?;
                found.extend(children);
            }
            next += 1;
        }
        found.retain(|f| !f.is_hidden);
        Ok(found)
    }

    /// A folder by well-known name (`inbox`, `sentitems`, …); None when the mailbox has none.
    pub async fn well_known_folder(&self, name: &str) -> Result<Option<MailFolder>, GraphError> {
        match self
            .get_json(&self.url(&format!("/mailFolders/{name}")))
            .await
        {
            Ok(folder) => Ok(Some(folder)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn collect_pages<T: serde::de::DeserializeOwned>(
        &self,
        first: &str,
    ) -> Result<Vec<T>, GraphError> {
        let mut items = Vec::new();
        let mut url = first.to_string();
        loop {
            let page: Page<T> = self.get_json(&url).await?;
            items.extend(page.value);
            match page.next_link {
                Some(next) => url = next,
                None => return Ok(items),
            }
        }
    }

    /// The URL that starts a fresh message delta of a folder. It asks for the last-verb
    /// property too, which carries `\Answered` and $Forwarded, and the size estimate.
    pub fn delta_start_url(&self, folder_id: &str) -> String {
        self.url(&format!(
            "/mailFolders/{folder_id}/messages/delta?$select={DELTA_SELECT}&$expand={DELTA_EXPAND}"
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

    pub async fn patch_message(
        &self,
        message_id: &str,
        changes: serde_json::Value,
    ) -> Result<(), GraphError> {
        self.send_json(
            Method::PATCH,
            &self.url(&format!("/messages/{message_id}")),
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
