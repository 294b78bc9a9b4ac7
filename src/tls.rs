//! TLS: the listener's rustls config from PEM files (ALPN h2 and http/1.1), the upstream client's
//! trust roots, and a development CA plus server certificate made with rcgen (`keygate certs dev`).
//! Everything uses the aws-lc-rs provider.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("{path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("TLS setup failed: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn pem_error(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::Pem {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The listener's TLS config: certificate chain and key from PEM files, ALPN h2 then http/1.1.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = certificates(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error(key, e))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The upstream client's TLS config: webpki roots plus the CAs in `extra_roots`.
pub fn client_config(extra_roots: Option<&Path>) -> Result<ClientConfig, TlsError> {
    client_config_with_roots(extra_roots.into_iter())
}

/// A client TLS config trusting the webpki roots plus the CAs in every PEM file given.
pub(crate) fn client_config_with_roots<'a>(
    extra_roots: impl Iterator<Item = &'a Path>,
) -> Result<ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for path in extra_roots {
        for cert in certificates(path)? {
            roots.add(cert)?;
        }
    }
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// PEM text of a development CA and a server certificate it signed.
struct DevCertificates {
    ca_cert: String,
    server_cert: String,
    server_key: String,
}

/// Makes a development CA and a server certificate for `hosts` (names or IP addresses).
fn generate_dev_certificates(hosts: &[String]) -> Result<DevCertificates, TlsError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::default();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let mut ca_name = DistinguishedName::new();
    ca_name.push(DnType::CommonName, "keygate development CA");
    ca_params.distinguished_name = ca_name;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate()?;
    let mut server_params = CertificateParams::new(hosts.to_vec())?;
    let mut server_name = DistinguishedName::new();
    server_name.push(
        DnType::CommonName,
        hosts.first().map_or("localhost", String::as_str),
    );
    server_params.distinguished_name = server_name;
    let server_cert = server_params.signed_by(&server_key, &issuer)?;
    Ok(DevCertificates {
        ca_cert: ca_cert.pem(),
        server_cert: server_cert.pem(),
        server_key: server_key.serialize_pem(),
    })
}

/// Writes `ca.crt`, `server.crt` and `server.key` (mode 0600) into `dir`.
pub fn write_dev_certificates(dir: &Path, hosts: &[String]) -> Result<Vec<PathBuf>, TlsError> {
    let certs = generate_dev_certificates(hosts)?;
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let files = [
        ("ca.crt", certs.ca_cert, false),
        ("server.crt", certs.server_cert, false),
        ("server.key", certs.server_key, true),
    ];
    let mut written = Vec::new();
    for (name, pem, private) in files {
        let path = dir.join(name);
        crate::fsutil::write_file(&path, pem.as_bytes(), private).map_err(|source| {
            TlsError::Write {
                path: path.clone(),
                source,
            }
        })?;
        written.push(path);
    }
    Ok(written)
}
