//! Secret values in the config: `env:NAME`, `file:PATH` or (for local development only) a literal.
//! Resolved values live in [`SecretString`], whose `Debug` is redacted, so a secret cannot reach a
//! log line or a panic message by accident.

use std::path::{Path, PathBuf};

use secrecy::SecretString;

/// Where a secret comes from, as written in the config.
#[derive(Debug, Clone)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
    Literal(SecretString),
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    #[error("cannot read secret file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret is empty")]
    Empty,
}

impl SecretSource {
    /// Parses a config value; relative `file:` paths are taken from `base_dir`.
    pub(crate) fn parse(value: &str, base_dir: &Path) -> Self {
        if let Some(name) = value.strip_prefix("env:") {
            SecretSource::Env(name.to_string())
        } else if let Some(path) = value.strip_prefix("file:") {
            SecretSource::File(base_dir.join(path))
        } else {
            SecretSource::Literal(SecretString::from(value.to_string()))
        }
    }

    pub(crate) fn is_literal(&self) -> bool {
        matches!(self, SecretSource::Literal(_))
    }

    /// Reads the secret now. A file's trailing newline is trimmed.
    pub(crate) fn resolve(&self) -> Result<SecretString, SecretError> {
        let value = match self {
            SecretSource::Env(name) => {
                std::env::var(name).map_err(|_| SecretError::MissingEnv(name.clone()))?
            }
            SecretSource::File(path) => std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|source| SecretError::File {
                    path: path.clone(),
                    source,
                })?,
            SecretSource::Literal(secret) => {
                return Ok(secret.clone());
            }
        };
        if value.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(SecretString::from(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn file_secret_trims_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s"), "hunter2\n").unwrap();
        let source = SecretSource::parse("file:s", dir.path());
        assert_eq!(source.resolve().unwrap().expose_secret(), "hunter2");
    }

    #[test]
    fn missing_env_is_an_error_naming_the_variable_only() {
        let source = SecretSource::parse("env:KEYGATE_TEST_SURELY_UNSET", Path::new("."));
        let err = source.resolve().unwrap_err().to_string();
        assert!(err.contains("KEYGATE_TEST_SURELY_UNSET"));
    }

    #[test]
    fn debug_of_a_literal_is_redacted() {
        let source = SecretSource::parse("topsecret", Path::new("."));
        assert!(source.is_literal());
        assert!(!format!("{source:?}").contains("topsecret"));
    }
}
