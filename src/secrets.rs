//! Secrets at rest: refresh tokens (and later stored attachments) are sealed with
//! XChaCha20-Poly1305. The key lives in a 0600 file in the data folder, or comes from the
//! `GRAPHBRIDGE_KEY` environment variable (64 hex digits).

use std::io::Write;
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

const NONCE_LEN: usize = 24;
const KEY_FILE: &str = "secret.key";
pub const KEY_ENV: &str = "GRAPHBRIDGE_KEY";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("key file {0}: {1}")]
    KeyFile(String, std::io::Error),
    #[error("the encryption key must be 32 bytes written as 64 hex digits")]
    BadKey,
    #[error("a sealed secret could not be opened: wrong key or damaged data")]
    Open,
}

#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl SecretBox {
    /// Loads the key from the environment or the data folder, creating the file on first start.
    pub fn load_or_create(data_dir: &Path) -> Result<SecretBox, SecretError> {
        if let Ok(hex) = std::env::var(KEY_ENV) {
            return SecretBox::from_hex(hex.trim());
        }
        let path = data_dir.join(KEY_FILE);
        let shown = path.display().to_string();
        match std::fs::read_to_string(&path) {
            Ok(hex) => SecretBox::from_hex(hex.trim()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rng().fill_bytes(&mut key);
                write_private_file(&path, to_hex(&key).as_bytes())
                    .map_err(|e| SecretError::KeyFile(shown, e))?;
                Ok(SecretBox::from_key(&key))
            }
            Err(e) => Err(SecretError::KeyFile(shown, e)),
        }
    }

    fn from_hex(hex: &str) -> Result<SecretBox, SecretError> {
        let bytes = from_hex(hex).ok_or(SecretError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SecretError::BadKey)?;
        Ok(SecretBox::from_key(&key))
    }

    fn from_key(key: &[u8; 32]) -> SecretBox {
        SecretBox {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// Seals `plain` as nonce ‖ ciphertext.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        // Encryption with a fresh nonce and an in-memory buffer cannot fail.
        let sealed = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), plain)
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SecretError> {
        if sealed.len() < NONCE_LEN {
            return Err(SecretError::Open);
        }
        let (nonce, data) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(XNonce::from_slice(nonce), data)
            .map_err(|_| SecretError::Open)
    }
}

/// Writes a file readable by its owner only, atomically (temporary file, then rename).
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_round_trips_and_hides_the_plaintext() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secrets = SecretBox::load_or_create(dir.path()).expect("key");
        let sealed = secrets.seal(b"refresh-token-123");
        assert!(!sealed.windows(5).any(|w| w == b"token"));
        assert_eq!(secrets.open(&sealed).expect("opens"), b"refresh-token-123");
    }

    #[test]
    fn key_file_is_reused_and_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = SecretBox::load_or_create(dir.path()).expect("key");
        let sealed = first.seal(b"x");
        let second = SecretBox::load_or_create(dir.path()).expect("key again");
        assert_eq!(second.open(&sealed).expect("same key"), b"x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .expect("key file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn damaged_data_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secrets = SecretBox::load_or_create(dir.path()).expect("key");
        let mut sealed = secrets.seal(b"secret");
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(secrets.open(&sealed).is_err());
        assert!(secrets.open(b"short").is_err());
    }
}
