//! Download links: attachments taken out of a message are sealed with the bridge's key into
//! `<data_dir>/links/`, and a random token (256 bits) names them in the URL.

use std::path::{Path, PathBuf};

use base64::Engine;
use rand::RngCore;

use super::message::{Attachment, LinkKind};
use crate::mailstore::links::{self as stored, LinkFile, LinkRecord};
use crate::mailstore::{Store, StoreError};
use crate::secrets::SecretBox;

/// An unguessable token: 256 random bits, URL-safe base64.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn links_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("links")
}

/// The URL recipients open.
pub fn url(public_url: &str, token: &str) -> String {
    format!("{}/d/{token}", public_url.trim_end_matches('/'))
}

/// A link written to disk but not yet recorded in the store.
#[derive(Debug, Clone)]
pub struct PreparedLink {
    pub kind: LinkKind,
    pub record: LinkRecord,
    pub files: Vec<LinkFile>,
}

/// What a new link needs.
pub struct LinkRequest<'a> {
    pub mailbox_id: i64,
    pub kind: LinkKind,
    pub label: &'a str,
    pub agreement_text: &'a str,
    pub now: i64,
    pub validity_days: u32,
}

/// Seals every attachment into its own file (synced to disk) and describes the link.
pub fn prepare(
    secrets: &SecretBox,
    data_dir: &Path,
    request: &LinkRequest<'_>,
    attachments: &[Attachment],
) -> std::io::Result<PreparedLink> {
    let dir = links_dir(data_dir);
    std::fs::create_dir_all(&dir)?;
    let token = random_token();
    let mut files = Vec::new();
    for (position, a) in attachments.iter().enumerate() {
        let file = format!("{}-{position}.sealed", random_token());
        crate::secrets::write_private_file(&dir.join(&file), &secrets.seal(&a.bytes))?;
        files.push(LinkFile {
            position: position as u32,
            name: a.name.clone(),
            content_type: a.content_type.clone(),
            size: a.bytes.len() as u64,
            file,
        });
    }
    sync_dir(&dir);
    Ok(PreparedLink {
        kind: request.kind,
        record: LinkRecord {
            id: 0,
            token,
            mailbox_id: request.mailbox_id,
            label: request.label.to_string(),
            agreement_text: (request.kind == LinkKind::Agreement)
                .then(|| request.agreement_text.to_string()),
            created_at: request.now,
            expires_at: request.now + i64::from(request.validity_days) * 86_400,
        },
        files,
    })
}

/// Makes the renames in `dir` durable (best effort where directories cannot be opened).
fn sync_dir(dir: &Path) {
    if let Ok(handle) = std::fs::File::open(dir) {
        let _ = handle.sync_all();
    }
}

/// The plain bytes of a stored file.
pub fn read_file(secrets: &SecretBox, data_dir: &Path, file: &str) -> Option<Vec<u8>> {
    // Names come from the store, but never let one leave the folder.
    if file.contains(['/', '\\']) || file.starts_with('.') {
        return None;
    }
    let sealed = std::fs::read(links_dir(data_dir).join(file)).ok()?;
    secrets.open(&sealed).ok()
}

/// Deletes expired links and their files, and files no link names (left by a crash between
/// writing them and queueing the message) once they are a day old.
pub async fn sweep(store: &Store, data_dir: &Path, now: i64) -> Result<usize, StoreError> {
    let expired = store.call(move |c| stored::remove_expired(c, now)).await?;
    let dir = links_dir(data_dir);
    for file in &expired {
        let _ = std::fs::remove_file(dir.join(file));
    }
    let known: std::collections::HashSet<String> = store
        .call(|c| stored::all_files(c))
        .await?
        .into_iter()
        .collect();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(expired.len());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() > 86_400);
        if !known.contains(&name) && old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(expired.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_and_distinct() {
        let a = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token());
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }

    #[test]
    fn files_are_sealed_on_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secrets = SecretBox::load_or_create(dir.path()).expect("key");
        let request = LinkRequest {
            mailbox_id: 1,
            kind: LinkKind::Agreement,
            label: "Files",
            agreement_text: "Terms",
            now: 1000,
            validity_days: 14,
        };
        let attachment = Attachment {
            name: "a.txt".into(),
            content_type: "text/plain".into(),
            bytes: b"plain secret words".to_vec(),
        };
        let link = prepare(&secrets, dir.path(), &request, &[attachment]).expect("prepared");
        assert_eq!(link.record.expires_at, 1000 + 14 * 86_400);
        assert_eq!(link.record.agreement_text.as_deref(), Some("Terms"));
        let on_disk = std::fs::read(links_dir(dir.path()).join(&link.files[0].file)).expect("file");
        assert!(!on_disk.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            read_file(&secrets, dir.path(), &link.files[0].file).expect("opens"),
            b"plain secret words"
        );
        assert!(read_file(&secrets, dir.path(), "../secret.key").is_none());
    }
}
