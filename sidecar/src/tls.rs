//! TLS on the public port: the certificate chain and key come from PEM files (a
//! `kubernetes.io/tls` Secret mounted into the pod, as cert-manager writes it), HTTP/2 or
//! HTTP/1.1 is chosen by ALPN, and the files are re-read every [`RELOAD_INTERVAL`]: a changed
//! pair whose key matches its certificate is served to new connections from then on, while
//! connections already open keep theirs. A pair that does not load (a half-written update, a
//! key that does not match) is logged and the previous one kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::ring as provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use crate::errors::ConfigError;

/// How often the certificate files are checked for a change (the kubelet updates a mounted
/// Secret within about a minute).
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(5);
/// The ALPN protocol of HTTP/2.
pub const ALPN_HTTP2: &[u8] = b"h2";
/// The ALPN protocol of HTTP/1.1.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The certificate and key files, and what they held when last loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Files {
    cert: PathBuf,
    key: PathBuf,
}

impl Files {
    /// Both files' bytes.
    fn read(&self) -> Result<(Vec<u8>, Vec<u8>), ConfigError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| ConfigError::Tls {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
        };
        Ok((read(&self.cert)?, read(&self.key)?))
    }

    /// The certified key the bytes hold.
    fn parse(&self, cert: &[u8], key: &[u8]) -> Result<CertifiedKey, ConfigError> {
        let bad = |path: &Path, reason: String| ConfigError::Tls {
            path: path.to_path_buf(),
            reason,
        };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
            .collect::<Result<_, _>>()
            .map_err(|e| bad(&self.cert, format!("not a PEM certificate chain: {e}")))?;
        if chain.is_empty() {
            return Err(bad(&self.cert, "holds no certificate".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(key)
            .map_err(|e| bad(&self.key, format!("not a PEM private key: {e}")))?;
        let signing = provider::sign::any_supported_type(&key)
            .map_err(|e| bad(&self.key, format!("unsupported private key: {e}")))?;
        let certified = CertifiedKey::new(chain, signing);
        certified
            .keys_match()
            .map_err(|e| bad(&self.key, format!("does not match the certificate: {e}")))?;
        Ok(certified)
    }
}

/// The certificate served to new connections, swapped when the files change.
#[derive(Debug)]
pub struct Certificates {
    files: Files,
    current: RwLock<Arc<CertifiedKey>>,
    loaded: RwLock<(Vec<u8>, Vec<u8>)>,
}

impl Certificates {
    /// Loads the pair; an unreadable or invalid pair is a configuration error.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Self>, ConfigError> {
        let files = Files {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        };
        let (cert_pem, key_pem) = files.read()?;
        let certified = files.parse(&cert_pem, &key_pem)?;
        Ok(Arc::new(Self {
            files,
            current: RwLock::new(Arc::new(certified)),
            loaded: RwLock::new((cert_pem, key_pem)),
        }))
    }

    /// Re-reads the files; returns true when a new pair is now served.
    pub fn reload(&self) -> Result<bool, ConfigError> {
        let bytes = self.files.read()?;
        let unchanged = self
            .loaded
            .read()
            .map(|loaded| *loaded == bytes)
            .unwrap_or(false);
        if unchanged {
            return Ok(false);
        }
        let certified = self.files.parse(&bytes.0, &bytes.1)?;
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(certified);
        }
        if let Ok(mut loaded) = self.loaded.write() {
            *loaded = bytes;
        }
        Ok(true)
    }

    /// The TLS acceptor of the public port: this certificate store, HTTP/2 and HTTP/1.1 by
    /// ALPN, TLS 1.2 and 1.3.
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, ConfigError> {
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| ConfigError::Tls {
                    path: self.files.cert.clone(),
                    reason: e.to_string(),
                })?
                .with_no_client_auth()
                .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![ALPN_HTTP2.to_vec(), ALPN_HTTP1.to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// Checks the files every [`RELOAD_INTERVAL`] for the life of the process.
    pub fn watch(self: Arc<Self>) {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RELOAD_INTERVAL).await;
                match self.reload() {
                    Ok(true) => info!(
                        cert = %self.files.cert.display(),
                        "TLS certificate reloaded: new connections get the new one"
                    ),
                    Ok(false) => {}
                    Err(e) => warn!(
                        error = %e,
                        "TLS certificate not reloaded: keeping the previous one"
                    ),
                }
            }
        });
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, pair.cert.pem()).unwrap();
        std::fs::write(&key, pair.signing_key.serialize_pem()).unwrap();
        (cert, key)
    }

    fn served(store: &Certificates) -> Vec<u8> {
        store.current.read().unwrap().cert[0].to_vec()
    }

    #[test]
    fn a_changed_pair_is_served_and_a_broken_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path(), "a");
        let store = Certificates::load(&cert, &key).unwrap();
        let first = served(&store);
        assert!(!store.reload().unwrap(), "unchanged files are no reload");

        let (b_cert, b_key) = write_pair(dir.path(), "b");
        std::fs::copy(&b_cert, &cert).unwrap();
        // Half-updated: the new certificate with the old key does not load.
        let err = store.reload().unwrap_err().to_string();
        assert!(err.contains("does not match the certificate"), "{err}");
        assert_eq!(served(&store), first);
        std::fs::copy(&b_key, &key).unwrap();
        assert!(store.reload().unwrap());
        assert_ne!(served(&store), first);
    }

    #[test]
    fn unusable_files_are_refused_with_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path(), "a");
        let missing = dir.path().join("missing.crt");
        let err = Certificates::load(&missing, &key).unwrap_err().to_string();
        assert!(err.contains("missing.crt"), "{err}");
        let garbage = dir.path().join("garbage.crt");
        std::fs::write(&garbage, "not pem").unwrap();
        let err = Certificates::load(&garbage, &key).unwrap_err().to_string();
        assert!(err.contains("holds no certificate"), "{err}");
        let err = Certificates::load(&cert, &garbage).unwrap_err().to_string();
        assert!(err.contains("not a PEM private key"), "{err}");
        let store = Certificates::load(&cert, &key).unwrap();
        assert!(store.acceptor().is_ok());
    }
}
