//! The few cryptographic primitives authgate uses, in one place: random secrets and ids, and
//! AES-256-GCM sealing for cookies and flow state. (What the store keeps of a secret, its
//! sha256, is [`crate::vocab::SecretHash`].)

pub mod signing;
pub mod tokens;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A fresh random secret: `prefix` + 32 random bytes (256 bits) in base64url. The prefix makes
/// leaked tokens recognisable to secret scanners and to people.
pub fn random_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", B64.encode(bytes))
}

/// A random id for records that are not secrets (grant ids, flow ids): 16 bytes, base64url.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    B64.encode(bytes)
}

pub fn b64url(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

pub fn sha256_b64url(input: &[u8]) -> String {
    B64.encode(Sha256::digest(input))
}

/// AES-256-GCM with a random 96-bit nonce per message; the purpose string is bound in as
/// associated data, so a session cookie cannot be replayed as flow state or vice versa.
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: purpose.as_bytes(),
                },
            )
            .expect("AES-GCM encryption does not fail for in-memory buffers");
        let mut out = Vec::with_capacity(12 + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        B64.encode(out)
    }

    /// `None` for anything not sealed by this key for this purpose.
    pub fn open(&self, purpose: &str, sealed: &str) -> Option<Vec<u8>> {
        let raw = B64.decode(sealed).ok()?;
        if raw.len() < 12 + 16 {
            return None;
        }
        let (nonce, ct) = raw.split_at(12);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: purpose.as_bytes(),
                },
            )
            .ok()
    }

    pub fn seal_json<T: serde::Serialize>(&self, purpose: &str, value: &T) -> String {
        self.seal(purpose, &serde_json::to_vec(value).expect("serializable"))
    }

    pub fn open_json<T: serde::de::DeserializeOwned>(
        &self,
        purpose: &str,
        sealed: &str,
    ) -> Option<T> {
        serde_json::from_slice(&self.open(purpose, sealed)?).ok()
    }
}

pub fn decode_key(b64: &str) -> Result<[u8; 32], String> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let trimmed = b64.trim();
    let bytes = STANDARD
        .decode(trimmed)
        .or_else(|_| URL_SAFE_NO_PAD.decode(trimmed))
        .map_err(|_| {
            "must be 32 bytes in base64 (generate one with `openssl rand -base64 32`)".to_string()
        })?;
    bytes.try_into().map_err(|_| {
        "must decode to exactly 32 bytes (generate one with `openssl rand -base64 32`)".to_string()
    })
}

pub fn random_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    rand::rng().fill_bytes(&mut k);
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_prefixed() {
        let a = random_secret("ag_at_");
        let b = random_secret("ag_at_");
        assert_ne!(a, b);
        assert!(a.starts_with("ag_at_"));
        assert_eq!(a.len(), 6 + 43);
    }

    #[test]
    fn sealing_round_trips_and_binds_purpose() {
        let s = Sealer::new(&random_key());
        let sealed = s.seal("session", b"hello");
        assert_eq!(s.open("session", &sealed).unwrap(), b"hello");
        assert!(s.open("flow", &sealed).is_none(), "purpose is bound");
        let other = Sealer::new(&random_key());
        assert!(other.open("session", &sealed).is_none(), "key is bound");
        let mut tampered = sealed.into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(s
            .open("session", std::str::from_utf8(&tampered).unwrap())
            .is_none());
    }

    #[test]
    fn keys_decode() {
        assert!(decode_key("c2hvcnQ=").is_err());
        assert!(decode_key(&b64url(&[7u8; 32])).is_ok());
    }
}
