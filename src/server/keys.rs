//! The gateway's key and what the store keeps sealed with it: a sealed check value tells at
//! start whether the configured keys open the store (a wrong or missing key is refused with
//! the key ids, rather than found later as values that do not open), and `authgate
//! rotate-key` seals every stored value again with the current key, so the previous one can
//! be dropped from `auth.previous_session_keys`.

use crate::crypto::Sealer;
use crate::store::{Store, StoreError};

/// The check value's secret name and sealing purpose.
const KEY_CHECK: &str = "key_check";
const CHECK_PURPOSE: &str = "key-check";
const CHECK_PLAINTEXT: &[u8] = b"authgate";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the store's sealed values were sealed with key {sealed_with}, which is not among this gateway's keys ({ours}): set auth.session_key to that key (or list it in auth.previous_session_keys while rotating), or the connected accounts and signing keys in the store cannot be read")]
    WrongKey { sealed_with: String, ours: String },
    #[error("the stored value {0} does not open with any configured key")]
    Unopenable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How the store's sealed values stand with the configured keys.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyCheck {
    /// Sealed with the current key (or a new store, now marked with it).
    Current,
    /// Sealed with a previous key: `authgate rotate-key` moves them to the current one.
    Previous(String),
}

/// Checks (or, for a store without one, writes) the sealed check value.
pub async fn check(store: &dyn Store, sealer: &Sealer) -> Result<KeyCheck, KeyError> {
    let stored = store
        .get_secret(KEY_CHECK)
        .await?
        .and_then(|v| String::from_utf8(v).ok())
        .filter(|v| !v.is_empty());
    let Some(stored) = stored else {
        let sealed = sealer.seal(CHECK_PURPOSE, CHECK_PLAINTEXT);
        store.put_secret(KEY_CHECK, sealed.into_bytes()).await?;
        return Ok(KeyCheck::Current);
    };
    let sealed_with = Sealer::sealed_with(&stored)
        .unwrap_or("(unnamed)")
        .to_string();
    match sealer.open(CHECK_PURPOSE, &stored).as_deref() {
        Some(CHECK_PLAINTEXT) if sealed_with == sealer.key_id() => Ok(KeyCheck::Current),
        Some(CHECK_PLAINTEXT) => Ok(KeyCheck::Previous(sealed_with)),
        _ => Err(KeyError::WrongKey {
            sealed_with,
            ours: sealer.key_ids().join(", "),
        }),
    }
}

/// Seals every sealed value the store keeps again with the current key; how many. Nothing
/// is written unless every one opens.
pub async fn reseal_store(store: &dyn Store, sealer: &Sealer) -> Result<usize, KeyError> {
    use crate::oauth::{connect, discover};
    let mut out = Vec::new();
    for name in store.secret_names().await? {
        let Some(value) = store.get_secret(&name).await?.filter(|v| !v.is_empty()) else {
            continue;
        };
        let text = || String::from_utf8(value.clone()).ok();
        let purpose = if name == KEY_CHECK {
            Some(CHECK_PURPOSE)
        } else if connect::SECRET_PREFIXES.iter().any(|p| name.starts_with(p)) {
            Some(connect::SEALED_CONNECTION)
        } else if name.starts_with(discover::SECRET_PREFIX) {
            Some(discover::SEALED_REGISTRATION)
        } else {
            None
        };
        let resealed = match purpose {
            Some(purpose) => text()
                .and_then(|t| sealer.reseal(purpose, &t))
                .map(String::into_bytes),
            None if name == crate::crypto::signing::SECRET_NAME => {
                crate::crypto::signing::reseal(&value, sealer)
            }
            // Not sealed with the gateway's key (the token tag key, schema notes).
            None => continue,
        };
        out.push((name.clone(), resealed.ok_or(KeyError::Unopenable(name))?));
    }
    for (name, value) in &out {
        store.put_secret(name, value.clone()).await?;
    }
    Ok(out.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::random_key;
    use crate::oauth::connect::SEALED_CONNECTION;
    use crate::store::RedbStore;

    #[tokio::test]
    async fn the_check_value_tells_a_wrong_key_and_rotation_moves_every_sealed_value() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        let (old, new) = (random_key(), random_key());
        let before = Sealer::new(&old);
        assert_eq!(check(&store, &before).await.unwrap(), KeyCheck::Current);
        let conn = before.seal(SEALED_CONNECTION, b"refresh");
        store
            .put_secret("user_account:cal\u{1f}local:alice", conn.into_bytes())
            .await
            .unwrap();
        store.put_secret("unsealed", b"raw".to_vec()).await.unwrap();

        let wrong = check(&store, &Sealer::new(&new)).await.unwrap_err();
        let said = wrong.to_string();
        assert!(said.contains(before.key_id()) && said.contains(&crate::crypto::key_id(&new)));

        let rotating = Sealer::with_previous(&new, &[old]);
        let previous = KeyCheck::Previous(before.key_id().to_string());
        assert_eq!(check(&store, &rotating).await.unwrap(), previous);
        assert_eq!(reseal_store(&store, &rotating).await.unwrap(), 2);
        let after = Sealer::new(&new);
        assert_eq!(check(&store, &after).await.unwrap(), KeyCheck::Current);
        let conn = store
            .get_secret("user_account:cal\u{1f}local:alice")
            .await
            .unwrap()
            .unwrap();
        let conn = String::from_utf8(conn).unwrap();
        assert_eq!(after.open(SEALED_CONNECTION, &conn).unwrap(), b"refresh");
        assert_eq!(
            store.get_secret("unsealed").await.unwrap().unwrap(),
            b"raw",
            "values not sealed with the key are left as they are"
        );

        // A value no configured key opens: nothing is written.
        let stray = Sealer::new(&random_key()).seal(SEALED_CONNECTION, b"x");
        store
            .put_secret("connected_account:crm", stray.into_bytes())
            .await
            .unwrap();
        let err = reseal_store(&store, &Sealer::with_previous(&old, &[new]))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("connected_account:crm"), "{err}");
        assert_eq!(check(&store, &after).await.unwrap(), KeyCheck::Current);
    }
}
