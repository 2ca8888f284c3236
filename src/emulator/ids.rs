//! Identifiers shaped like Exchange's: opaque, URL-safe base64, case-sensitive.

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use rand::RngCore;

fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    rand::rng().fill_bytes(&mut buf);
    buf
}

/// An id with Exchange's look: a fixed prefix then URL-safe base64 with padding.
/// 104 random bytes give ids of about 150 characters ending in `=`, like real REST ids.
fn exchange_like(prefix: &str) -> String {
    format!("{prefix}{}", URL_SAFE.encode(random_bytes(104)))
}

/// A message id that changes when the item moves (Exchange's default REST id).
pub fn rest_item_id() -> String {
    exchange_like("AAMkA")
}

/// A message id that survives moves (`Prefer: IdType="ImmutableId"`).
pub fn immutable_item_id() -> String {
    exchange_like("AAkALg")
}

pub fn folder_id() -> String {
    exchange_like("AAMkA")
}

/// 104 bytes that depend only on `seed`: SHA-256 in counter mode.
fn seeded_bytes(seed: &str) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut out = Vec::with_capacity(128);
    for block in 0u8..4 {
        let mut h = Sha256::new();
        h.update(seed.as_bytes());
        h.update([0, block]);
        out.extend_from_slice(&h.finalize());
    }
    out.truncate(104);
    out
}

/// Ids for things loaded from fixtures: the same seed (tenant, mailbox, folder path or file)
/// gives the same id on every load, so a client that keeps its own store recognises everything
/// after the emulator restarts. They look exactly like the random ones.
pub mod seeded {
    use super::*;

    pub fn rest_item_id(seed: &str) -> String {
        format!(
            "AAMkA{}",
            URL_SAFE.encode(seeded_bytes(&format!("rest\0{seed}")))
        )
    }

    pub fn immutable_item_id(seed: &str) -> String {
        format!(
            "AAkALg{}",
            URL_SAFE.encode(seeded_bytes(&format!("imm\0{seed}")))
        )
    }

    pub fn folder_id(seed: &str) -> String {
        format!(
            "AAMkA{}",
            URL_SAFE.encode(seeded_bytes(&format!("folder\0{seed}")))
        )
    }

    pub fn guid(seed: &str) -> String {
        let b = seeded_bytes(&format!("guid\0{seed}"));
        super::format_guid(&b[..16])
    }
}

pub fn conversation_id(seed: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(seed.as_bytes());
    format!("AAQkA{}", URL_SAFE.encode(&digest[..]))
}

/// Opaque random token (OAuth tokens, skip and delta tokens, upload sessions).
pub fn token(bytes: usize) -> String {
    URL_SAFE_NO_PAD.encode(random_bytes(bytes))
}

pub fn guid() -> String {
    format_guid(&random_bytes(16))
}

fn format_guid(b: &[u8]) -> String {
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
        b[14], b[15]
    )
}

/// Whether a string could be an Exchange id at all. A string that cannot is
/// `400 ErrorInvalidIdMalformed`; one that could but names nothing is `404 ErrorItemNotFound`.
pub fn is_well_formed(id: &str) -> bool {
    if id.len() < 16 {
        return false;
    }
    let body = id.trim_end_matches('=');
    if id.len() - body.len() > 2 {
        return false;
    }
    body.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_well_formed_and_distinct() {
        let a = rest_item_id();
        let b = rest_item_id();
        assert_ne!(a, b);
        assert!(is_well_formed(&a));
        assert!(is_well_formed(&immutable_item_id()));
        assert!(!is_well_formed("abc"));
        assert!(!is_well_formed("AAMkA!!!!!!!!!!!!!!!!!!!!!!!"));
    }

    #[test]
    fn seeded_ids_repeat_and_look_like_random_ones() {
        let a = seeded::rest_item_id("t\0sales\0inbox/1.eml");
        assert_eq!(a, seeded::rest_item_id("t\0sales\0inbox/1.eml"));
        assert_ne!(a, seeded::rest_item_id("t\0sales\0inbox/2.eml"));
        assert_eq!(a.len(), rest_item_id().len());
        assert!(is_well_formed(&a));
        assert!(is_well_formed(&seeded::immutable_item_id("x")));
        assert_eq!(seeded::guid("x").len(), 36);
    }
}
