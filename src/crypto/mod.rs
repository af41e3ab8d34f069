//! The few cryptographic primitives authgate uses, in one place: random secrets and ids, and
//! AES-256-GCM sealing for cookies and flow state. (What the store keeps of a secret, its
//! sha256, is [`crate::vocab::SecretHash`].)

pub mod signing;
pub mod tls;
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

/// The public name of a key: 8 characters derived from it (a hash, revealing nothing of it),
/// written before every value sealed with it so the right key is found after a rotation.
pub fn key_id(key: &[u8; 32]) -> String {
    let mut h = Sha256::new();
    h.update(b"authgate key id\0");
    h.update(key);
    B64.encode(h.finalize())[..8].to_string()
}

/// AES-256-GCM with a random 96-bit nonce per message; the purpose string is bound in as
/// associated data, so a session cookie cannot be replayed as flow state or vice versa.
/// Values are sealed with the current key as `<key id>.<nonce + ciphertext>`; previous keys
/// (`auth.previous_session_keys`) still open what they sealed, so a key can rotate without
/// ending sessions or losing what the store keeps sealed (`authgate rotate-key`).
#[derive(Clone)]
pub struct Sealer {
    /// The current key first.
    keys: Vec<(String, Aes256Gcm)>,
}

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Self {
        Self::with_previous(key, &[])
    }

    /// Seals with `key`; opens with it or any of `previous`.
    pub fn with_previous(key: &[u8; 32], previous: &[[u8; 32]]) -> Self {
        let keys = std::iter::once(key)
            .chain(previous)
            .map(|k| (key_id(k), Aes256Gcm::new(k.into())))
            .collect();
        Self { keys }
    }

    /// The current key's id.
    pub fn key_id(&self) -> &str {
        &self.keys[0].0
    }

    /// Every key's id, the current one first.
    pub fn key_ids(&self) -> Vec<&str> {
        self.keys.iter().map(|(id, _)| id.as_str()).collect()
    }

    /// The id of the key `sealed` names (`None` for a value sealed before key ids).
    pub fn sealed_with(sealed: &str) -> Option<&str> {
        sealed.split_once('.').map(|(id, _)| id)
    }

    /// The same plaintext sealed again with the current key.
    pub fn reseal(&self, purpose: &str, sealed: &str) -> Option<String> {
        Some(self.seal(purpose, &self.open(purpose, sealed)?))
    }

    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> String {
        let (id, cipher) = &self.keys[0];
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ct = cipher
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
        format!("{id}.{}", B64.encode(out))
    }

    /// `None` for anything not sealed by one of these keys for this purpose.
    pub fn open(&self, purpose: &str, sealed: &str) -> Option<Vec<u8>> {
        let decrypt = |cipher: &Aes256Gcm, body: &str| {
            let raw = B64.decode(body).ok()?;
            if raw.len() < 12 + 16 {
                return None;
            }
            let (nonce, ct) = raw.split_at(12);
            cipher
                .decrypt(
                    Nonce::from_slice(nonce),
                    Payload {
                        msg: ct,
                        aad: purpose.as_bytes(),
                    },
                )
                .ok()
        };
        match sealed.split_once('.') {
            Some((id, body)) => {
                let (_, cipher) = self.keys.iter().find(|(k, _)| k == id)?;
                decrypt(cipher, body)
            }
            // Sealed before key ids: whichever key opens it.
            None => self.keys.iter().find_map(|(_, c)| decrypt(c, sealed)),
        }
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
    fn previous_keys_open_what_they_sealed_and_reseal_moves_it() {
        let (old, new) = (random_key(), random_key());
        let before = Sealer::new(&old);
        let sealed = before.seal("p", b"kept");
        assert_eq!(Sealer::sealed_with(&sealed), Some(key_id(&old).as_str()));
        assert!(Sealer::new(&new).open("p", &sealed).is_none());
        let rotating = Sealer::with_previous(&new, &[old]);
        assert_eq!(rotating.key_ids(), [key_id(&new), key_id(&old)]);
        assert_eq!(rotating.open("p", &sealed).unwrap(), b"kept");
        let moved = rotating.reseal("p", &sealed).unwrap();
        assert_eq!(Sealer::sealed_with(&moved), Some(rotating.key_id()));
        assert_eq!(Sealer::new(&new).open("p", &moved).unwrap(), b"kept");
        // Values sealed before key ids (plain base64) still open.
        let legacy = sealed.split_once('.').unwrap().1;
        assert_eq!(rotating.open("p", legacy).unwrap(), b"kept");
        // A key id that names another key is not tried with this one.
        let renamed = format!("{}.{legacy}", key_id(&new));
        assert!(rotating.open("p", &renamed).is_none());
    }

    #[test]
    fn keys_decode() {
        assert!(decode_key("c2hvcnQ=").is_err());
        assert!(decode_key(&b64url(&[7u8; 32])).is_ok());
    }
}
