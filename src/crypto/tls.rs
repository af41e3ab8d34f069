//! The gateway's TLS certificate (`[server.tls]`): a PEM chain and its private key, read
//! into what rustls serves, and a certificate resolver the listeners keep, so a reload swaps
//! the certificate without a restart or a dropped connection.

use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, CryptoProvider, ResolvesServerCert};

/// Reads `cert` (PEM, the leaf first) and `key` (PEM: PKCS#8, PKCS#1 or SEC1), checking that
/// the key belongs to the certificate.
pub fn load(cert: &std::path::Path, key: &std::path::Path) -> Result<Arc<CertifiedKey>, String> {
    pingora::tls::install_default_crypto_provider();
    for file in [cert, key] {
        std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    }
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let (chain, private) = pingora::tls::load_certs_and_key_files(&cert, &key)
        .map_err(|e| format!("cannot be read: {}", e.root_cause()))?
        .ok_or_else(|| format!("{cert} holds no certificate, or {key} no private key"))?;
    if chain.is_empty() {
        return Err(format!("{cert} holds no certificate"));
    }
    let provider = CryptoProvider::get_default().ok_or("no TLS crypto provider")?;
    let signing = provider
        .key_provider
        .load_private_key(private)
        .map_err(|e| format!("{key}: unusable private key: {e}"))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|_| {
        format!("the private key in {key} does not belong to the certificate in {cert}")
    })?;
    Ok(Arc::new(certified))
}

/// What every TLS listener presents; [`Certificate::swap`] replaces it for new handshakes.
#[derive(Debug)]
pub struct Certificate(ArcSwap<CertifiedKey>);

impl Certificate {
    pub fn new(key: Arc<CertifiedKey>) -> Self {
        Self(ArcSwap::new(key))
    }

    pub fn swap(&self, key: Arc<CertifiedKey>) {
        self.0.store(key);
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}
