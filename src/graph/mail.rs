//! Typed mail operations on top of [`GraphClient`].

use base64::Engine;
use reqwest::Method;

use super::types::{DeltaMessage, MailFolder, Page, DELTA_SELECT};
use super::{Body, GraphClient, GraphError};

/// Messages per delta page asked of Graph.
const DELTA_PAGE_SIZE: u32 = 200;

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

    /// The URL that starts a fresh message delta of a folder.
    pub fn delta_start_url(&self, folder_id: &str) -> String {
        self.url(&format!(
            "/mailFolders/{folder_id}/messages/delta?$select={DELTA_SELECT}"
        ))
    }

    /// One delta page; `url` is a start URL, a nextLink or a deltaLink, followed verbatim.
    pub async fn delta_page(&self, url: &str) -> Result<Page<DeltaMessage>, GraphError> {
        self.get_json_prefer(url, &format!("odata.maxpagesize={DELTA_PAGE_SIZE}"))
            .await
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
