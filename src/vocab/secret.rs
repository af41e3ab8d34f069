//! Secrets and their hashes. Tokens, codes and client secrets are stored only as their
//! sha256 ([`SecretHash`]); secrets authgate must hold (provider client secrets, password
//! hashes, PKCE verifiers, CSRF and OAuth `state` values) are wrapped in [`Secret`], which
//! never prints its value, as `oauth2`'s secret types do.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// sha256 of a secret; the only form in which tokens, codes and client secrets are stored.
/// Serialized as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretHash(pub [u8; 32]);

impl SecretHash {
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// Constant-time equality, for comparing a presented secret's hash with a stored one
    /// outside a keyed lookup (client secrets, CSRF and `state` values).
    pub fn ct_eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.0.ct_eq(&other.0).into()
    }

    pub fn hex_prefix(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretHash({}…)", self.hex_prefix())
    }
}

impl Serialize for SecretHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for SecretHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&text, &mut bytes).map_err(serde::de::Error::custom)?;
        Ok(Self(bytes))
    }
}

/// A secret value held in memory: `Debug` prints `Secret([redacted])`, and the value comes
/// out only through [`Secret::expose`], so it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret<T = String>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The value itself. Never log it or put it in an error message.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl Secret<String> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl From<String> for Secret<String> {
    fn from(s: String) -> Self {
        Self(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_compare_and_serialize_as_hex() {
        let h = SecretHash::of("x");
        assert!(h.ct_eq(&SecretHash::of("x")));
        assert!(!h.ct_eq(&SecretHash::of("y")));
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json.len(), 66);
        assert_eq!(serde_json::from_str::<SecretHash>(&json).unwrap(), h);
        assert!(serde_json::from_str::<SecretHash>("\"abc\"").is_err());
        assert!(format!("{h:?}").starts_with("SecretHash(2d71"));
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2".to_string());
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"hunter2\"");
    }
}
