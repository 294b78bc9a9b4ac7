//! Key-encryption keys: the current one from `vault.key` (created, mode 0600, when its file is
//! missing), and `previous_keys` still accepted for opening records during a rotation. A key is
//! named by a short id derived from it, so every sealed record says which key sealed it.

use std::path::Path;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretBox};

use crate::config::{SecretError, SecretSource};

pub(crate) const KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("vault key: {0}")]
    Secret(#[from] SecretError),
    #[error("vault key {0} is not base64 of 32 bytes")]
    Malformed(String),
    #[error("cannot create the vault key file {path}: {source}")]
    Create {
        path: String,
        source: std::io::Error,
    },
    #[error("random number generator failed")]
    Random,
    #[error(
        "the new vault keys leave out the current key {0}, which sealed records: list it in \
         vault.previous_keys until `keygate vault rotate-key` has re-sealed them"
    )]
    CurrentKeyDropped(String),
}

/// One key-encryption key. `Debug` never shows the key.
pub struct Kek {
    pub id: String,
    bytes: SecretBox<[u8; KEY_BYTES]>,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Kek {
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Kek {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
        let id = digest.as_ref()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Kek {
            id,
            bytes: SecretBox::new(Box::new(bytes)),
        }
    }

    pub fn generate() -> Result<Kek, KeyError> {
        let mut bytes = [0u8; KEY_BYTES];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| KeyError::Random)?;
        Ok(Kek::from_bytes(bytes))
    }

    pub(crate) fn expose(&self) -> &[u8; KEY_BYTES] {
        self.bytes.expose_secret()
    }

    fn parse(text: &str, name: &str) -> Result<Kek, KeyError> {
        let decoded = STANDARD
            .decode(text.trim())
            .map_err(|_| KeyError::Malformed(name.to_string()))?;
        let bytes: [u8; KEY_BYTES] = decoded
            .try_into()
            .map_err(|_| KeyError::Malformed(name.to_string()))?;
        Ok(Kek::from_bytes(bytes))
    }

    /// Base64 text of a key, as written to a key file.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.expose())
    }
}

/// The current key and the previous ones.
#[derive(Debug)]
pub struct KeyRing {
    pub current: Kek,
    pub previous: Vec<Kek>,
}

impl KeyRing {
    /// Loads the keys; a missing `file:` current key is created with mode 0600.
    pub fn load(current: &SecretSource, previous: &[SecretSource]) -> Result<KeyRing, KeyError> {
        let current = match current {
            SecretSource::File(path) if !path.exists() => create_key_file(path)?,
            source => load_key(source)?,
        };
        let previous = previous
            .iter()
            .map(load_key)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(KeyRing { current, previous })
    }

    /// Whether this ring opens records sealed by the key named `id`.
    pub(crate) fn knows(&self, id: &str) -> bool {
        self.find(id).is_some()
    }

    pub(crate) fn find(&self, id: &str) -> Option<&Kek> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
    }
}

fn load_key(source: &SecretSource) -> Result<Kek, KeyError> {
    let name = match source {
        SecretSource::Env(name) => format!("env:{name}"),
        SecretSource::File(path) => format!("file:{}", path.display()),
        SecretSource::Literal(_) => "(inline)".to_string(),
    };
    let secret = source.resolve()?;
    Kek::parse(secret.expose_secret(), &name)
}

/// Creates the key file, unless another process (a replica started at the same instant on a
/// shared volume) created it first: then its key is the one used.
fn create_key_file(path: &Path) -> Result<Kek, KeyError> {
    let key = Kek::generate()?;
    let created = crate::fsutil::create_private(path, format!("{}\n", key.to_base64()).as_bytes())
        .map_err(|source| KeyError::Create {
            path: path.display().to_string(),
            source,
        })?;
    if !created {
        return load_key(&SecretSource::File(path.to_path_buf()));
    }
    tracing::info!(path = %path.display(), key_id = %key.id, "created the vault key");
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_missing_key_file_is_created_private_and_reloads_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/vault.key");
        let source = SecretSource::File(path.clone());
        let first = KeyRing::load(&source, &[]).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = KeyRing::load(&source, &[]).unwrap();
        assert_eq!(first.current.id, second.current.id);
        assert_eq!(first.current.expose(), second.current.expose());
    }

    #[test]
    fn malformed_keys_are_refused_without_echoing_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "c2hvcnQ=\n").unwrap();
        let err = KeyRing::load(&SecretSource::File(path), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("not base64 of 32 bytes"), "{err}");
        assert!(!err.contains("c2hvcnQ"), "{err}");
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let key = Kek::from_bytes([7u8; 32]);
        let shown = format!("{key:?}");
        assert!(shown.contains(&key.id));
        assert!(!shown.contains("7, 7"));
    }
}
