//! Signed identity for upstreams: a short-lived JWT (EdDSA, Ed25519) per request naming who
//! is calling, so an upstream can verify it against the issuer's JWKS instead of trusting
//! the network. Keys live in the store (the private half sealed with the gateway's key), so
//! every process and restart signs with the same one; a rotation keeps the previous key
//! published until the last assertion it signed has expired. Assertions are cached per
//! grant and audience and reused until a quarter of their lifetime is left, so signing is
//! not per request.

use std::sync::Arc;

use arc_swap::ArcSwap;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::KeyPair;
use serde::{Deserialize, Serialize};

use super::{b64url, Sealer};
use crate::store::{AccessRecord, Store, StoreError};

/// Where the keys are kept in the store's `secrets`.
pub const SECRET_NAME: &str = "identity_signing_keys";
const SEAL_PURPOSE: &str = "identity-signing-key";

/// One key as stored: the PKCS#8 document sealed.
#[derive(Clone, Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    sealed_pkcs8: String,
    created_at: u64,
}

#[derive(Clone, Serialize, Deserialize)]
struct StoredKeys {
    current: StoredKey,
    /// The key before the last rotation, and until when it stays published.
    previous: Option<(StoredKey, u64)>,
}

/// The stored keys (`value` of [`SECRET_NAME`]) with every private key sealed again with
/// the current key (`authgate rotate-key`); `None` if one does not open.
pub fn reseal(value: &[u8], sealer: &Sealer) -> Option<Vec<u8>> {
    let mut keys: StoredKeys = serde_json::from_slice(value).ok()?;
    keys.current.sealed_pkcs8 = sealer.reseal(SEAL_PURPOSE, &keys.current.sealed_pkcs8)?;
    if let Some((previous, _)) = keys.previous.as_mut() {
        previous.sealed_pkcs8 = sealer.reseal(SEAL_PURPOSE, &previous.sealed_pkcs8)?;
    }
    Some(serde_json::to_vec(&keys).expect("serializes"))
}

struct Key {
    kid: String,
    encoding: EncodingKey,
    /// The raw Ed25519 public key, base64url (the JWK's `x`).
    x: String,
}

impl Key {
    fn open(stored: &StoredKey, sealer: &Sealer) -> Result<Self, String> {
        let pkcs8 = sealer
            .open(SEAL_PURPOSE, &stored.sealed_pkcs8)
            .ok_or("the identity signing key cannot be opened with this gateway's session key (was auth.session_key changed?)")?;
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(&pkcs8)
            .map_err(|e| format!("the identity signing key is damaged: {e}"))?;
        Ok(Key {
            kid: stored.kid.clone(),
            encoding: EncodingKey::from_ed_der(&pkcs8),
            x: b64url(pair.public_key().as_ref()),
        })
    }

    fn generate(sealer: &Sealer, now: u64) -> Result<StoredKey, String> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|e| format!("generating a signing key: {e}"))?;
        Ok(StoredKey {
            kid: super::random_id(),
            sealed_pkcs8: sealer.seal(SEAL_PURPOSE, pkcs8.as_ref()),
            created_at: now,
        })
    }

    fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": self.x,
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        })
    }
}

struct Keys {
    current: Key,
    previous: Option<(Key, u64)>,
}

/// What an assertion says (RFC 7519 claims plus who and how).
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    groups: &'a [String],
    client_id: &'a str,
    scope: String,
    jti: String,
    iat: u64,
    exp: u64,
}

pub struct IdentitySigner {
    keys: ArcSwap<Keys>,
    /// (grant, audience) → (assertion, its expiry).
    cache: quick_cache::sync::Cache<String, Arc<(String, u64)>>,
}

impl IdentitySigner {
    /// The keys in the store, or a first key made and stored now.
    pub async fn load_or_create(
        store: &dyn Store,
        sealer: &Sealer,
        now: u64,
    ) -> Result<Self, SigningError> {
        let stored = match store.get_secret(SECRET_NAME).await? {
            Some(raw) => serde_json::from_slice::<StoredKeys>(&raw)
                .map_err(|e| SigningError::Key(format!("stored signing keys: {e}")))?,
            None => {
                let keys = StoredKeys {
                    current: Key::generate(sealer, now).map_err(SigningError::Key)?,
                    previous: None,
                };
                let raw = serde_json::to_vec(&keys).expect("serializes");
                if !store.insert_secret(SECRET_NAME, raw).await? {
                    // Another replica stored its first key meanwhile: use that one.
                    return Box::pin(Self::load_or_create(store, sealer, now)).await;
                }
                keys
            }
        };
        Ok(IdentitySigner {
            keys: ArcSwap::from_pointee(open_all(&stored, sealer)?),
            cache: quick_cache::sync::Cache::new(100_000),
        })
    }

    /// Reads the stored keys again (another replica rotated them).
    pub async fn reload(&self, store: &dyn Store, sealer: &Sealer) -> Result<(), SigningError> {
        let Some(raw) = store.get_secret(SECRET_NAME).await? else {
            return Ok(());
        };
        let stored = serde_json::from_slice::<StoredKeys>(&raw)
            .map_err(|e| SigningError::Key(format!("stored signing keys: {e}")))?;
        self.keys.store(Arc::new(open_all(&stored, sealer)?));
        self.cache.clear();
        Ok(())
    }

    /// A signer with a key of its own that is not stored (tests, benchmarks).
    pub fn ephemeral(sealer: &Sealer) -> Self {
        let keys = StoredKeys {
            current: Key::generate(sealer, 0).expect("a key is generated"),
            previous: None,
        };
        IdentitySigner {
            keys: ArcSwap::from_pointee(open_all(&keys, sealer).expect("a fresh key opens")),
            cache: quick_cache::sync::Cache::new(1024),
        }
    }

    /// Makes a new current key; the old one stays published until `previous_until` (the
    /// end of the longest assertion lifetime from now). Cached assertions are dropped.
    pub async fn rotate(
        &self,
        store: &dyn Store,
        sealer: &Sealer,
        now: u64,
        previous_until: u64,
    ) -> Result<String, SigningError> {
        let raw = store
            .get_secret(SECRET_NAME)
            .await?
            .ok_or_else(|| SigningError::Key("no signing keys stored".into()))?;
        let old: StoredKeys = serde_json::from_slice(&raw)
            .map_err(|e| SigningError::Key(format!("stored signing keys: {e}")))?;
        let keys = StoredKeys {
            current: Key::generate(sealer, now).map_err(SigningError::Key)?,
            previous: Some((old.current, previous_until)),
        };
        store
            .put_secret(SECRET_NAME, serde_json::to_vec(&keys).expect("serializes"))
            .await?;
        let kid = keys.current.kid.clone();
        self.keys.store(Arc::new(open_all(&keys, sealer)?));
        self.cache.clear();
        Ok(kid)
    }

    /// The JWKS document: the current key, and the previous one while it is published.
    pub fn jwks(&self, now: u64) -> serde_json::Value {
        let keys = self.keys.load();
        let mut list = vec![keys.current.jwk()];
        if let Some((k, until)) = &keys.previous {
            if now < *until {
                list.push(k.jwk());
            }
        }
        serde_json::json!({ "keys": list })
    }

    /// The assertion for `rec` at `audience`: cached while more than a quarter of its
    /// lifetime is left.
    pub fn assertion(
        &self,
        rec: &AccessRecord,
        issuer: &str,
        audience: &str,
        lifetime: u64,
        now: u64,
    ) -> Result<Arc<(String, u64)>, SigningError> {
        let key = format!("{}\n{audience}", rec.grant_id);
        if let Some(hit) = self.cache.get(&key) {
            if hit.1 > now + lifetime / 4 {
                return Ok(hit);
            }
        }
        let keys = self.keys.load();
        let id = &rec.identity;
        let claims = Claims {
            iss: issuer,
            aud: audience,
            sub: id.user_id(),
            email: id.email.as_deref(),
            name: id.name.as_deref(),
            groups: &id.groups,
            client_id: rec.client_id.as_str(),
            scope: rec.scopes.to_string(),
            jti: super::random_id(),
            iat: now,
            exp: now + lifetime,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(keys.current.kid.clone());
        let jwt = jsonwebtoken::encode(&header, &claims, &keys.current.encoding)
            .map_err(|e| SigningError::Key(format!("signing: {e}")))?;
        let made = Arc::new((jwt, claims.exp));
        self.cache.insert(key, made.clone());
        Ok(made)
    }
}

fn open_all(stored: &StoredKeys, sealer: &Sealer) -> Result<Keys, SigningError> {
    let previous = match &stored.previous {
        Some((k, until)) => Some((Key::open(k, sealer).map_err(SigningError::Key)?, *until)),
        None => None,
    };
    Ok(Keys {
        current: Key::open(&stored.current, sealer).map_err(SigningError::Key)?,
        previous,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Key(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    fn decoding(jwks: &serde_json::Value, kid: &str) -> Option<DecodingKey> {
        let k = jwks["keys"].as_array()?.iter().find(|k| k["kid"] == kid)?;
        DecodingKey::from_ed_components(k["x"].as_str()?).ok()
    }

    #[tokio::test]
    async fn assertions_verify_with_the_published_key_and_survive_one_rotation() {
        let t = crate::testing::authority();
        let now = 1_000;
        let signer = IdentitySigner::load_or_create(&*t.store, &t.sealer, now)
            .await
            .unwrap();
        let rec = crate::testing::access_record();
        let made = signer
            .assertion(
                &rec,
                "https://gw.example",
                "https://gw.example/mcp",
                300,
                now,
            )
            .unwrap();
        let kid = jsonwebtoken::decode_header(&made.0).unwrap().kid.unwrap();
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_audience(&["https://gw.example/mcp"]);
        v.set_issuer(&["https://gw.example"]);
        v.validate_exp = false;
        let jwks = signer.jwks(now);
        let claims =
            jsonwebtoken::decode::<serde_json::Value>(&made.0, &decoding(&jwks, &kid).unwrap(), &v)
                .unwrap()
                .claims;
        assert_eq!(claims["sub"], rec.identity.user_id());
        assert_eq!(claims["client_id"], rec.client_id.as_str());
        assert_eq!(claims["exp"], now + 300);
        // Cached: the same assertion until a quarter of its lifetime is left.
        let again = signer
            .assertion(
                &rec,
                "https://gw.example",
                "https://gw.example/mcp",
                300,
                now + 200,
            )
            .unwrap();
        assert_eq!(again.0, made.0);
        let fresh = signer
            .assertion(
                &rec,
                "https://gw.example",
                "https://gw.example/mcp",
                300,
                now + 226,
            )
            .unwrap();
        assert_ne!(fresh.0, made.0);
        // A tampered assertion does not verify.
        let mut parts: Vec<String> = made.0.split('.').map(str::to_string).collect();
        parts[1] = b64url(br#"{"sub":"mallory"}"#);
        let tampered = parts.join(".");
        assert!(jsonwebtoken::decode::<serde_json::Value>(
            &tampered,
            &decoding(&jwks, &kid).unwrap(),
            &v
        )
        .is_err());
        // Rotation: the old key stays published until `previous_until`, then only the new.
        let new_kid = signer
            .rotate(&*t.store, &t.sealer, now + 300, now + 600)
            .await
            .unwrap();
        assert_ne!(new_kid, kid);
        assert!(decoding(&signer.jwks(now + 599), &kid).is_some());
        assert!(decoding(&signer.jwks(now + 600), &kid).is_none());
        assert!(decoding(&signer.jwks(now + 600), &new_kid).is_some());
        // A restart reads the same keys; the private key is sealed in the store.
        let reopened = IdentitySigner::load_or_create(&*t.store, &t.sealer, now + 700)
            .await
            .unwrap();
        assert!(decoding(&reopened.jwks(now + 700), &new_kid).is_some());
        let raw = t.store.get_secret(SECRET_NAME).await.unwrap().unwrap();
        assert!(
            !String::from_utf8_lossy(&raw).contains("MC4CAQAwBQYDK2Vw"),
            "no plain PKCS#8"
        );
    }
}
