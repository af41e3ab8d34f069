//! Local users from the config, with argon2 password hashes (like Dex's static passwords),
//! so a demo or a small team needs no cloud account.
//!
//! A check needs the hash's memory cost in RAM (19 MiB with the defaults). Allocated and freed
//! per login, glibc kept the freed blocks (they fall under its dynamic mmap threshold once one
//! was freed), so RSS grew by that much per concurrent login and never came back. Checks now
//! run at most [`PasswordChecks::PERMITS`] at a time, each in a buffer kept for the next one:
//! memory stays at PERMITS × m, and a flood of logins queues instead of taking the process
//! down.

use std::sync::Mutex;

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;

use crate::config::LocalUser;
use crate::vocab::Identity;

/// A PHC hash of `password` with fresh salt (what `authgate hash-password` prints).
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashing with default parameters succeeds")
        .to_string()
}

/// A fixed argon2 hash (default parameters), verified when the user does not exist.
const DUMMY: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2xFSoKxNK2lD2u6XzA1Q2tGv3hOrfbXHcQ5Yh1Z0pkk";

/// The largest memory cost a configured hash may ask for (KiB): 256 MiB.
const MAX_M_COST: u32 = 256 * 1024;

/// Bounded, memory-reusing password checks (see the module doc).
pub struct PasswordChecks {
    permits: tokio::sync::Semaphore,
    buffers: Mutex<Vec<Vec<Block>>>,
}

impl Default for PasswordChecks {
    fn default() -> Self {
        Self {
            permits: tokio::sync::Semaphore::new(Self::PERMITS),
            buffers: Mutex::new(Vec::new()),
        }
    }
}

impl PasswordChecks {
    /// Password checks that may run at once.
    pub const PERMITS: usize = 2;

    /// Checks a username and password on a blocking thread, waiting for a permit first.
    /// Runs argon2 even for unknown users, so the answer time does not tell which usernames
    /// exist.
    pub async fn verify(
        &self,
        provider_id: &str,
        users: &[LocalUser],
        username: &str,
        password: String,
    ) -> Option<Identity> {
        let _permit = self.permits.acquire().await.ok()?;
        let user = users.iter().find(|u| u.username == username);
        let hash = user.map_or(DUMMY, |u| u.password_hash.as_str()).to_string();
        let mut buffer = self
            .buffers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
        let (ok, buffer) = tokio::task::spawn_blocking(move || {
            let ok = check(&hash, password.as_bytes(), &mut buffer);
            (ok, buffer)
        })
        .await
        .ok()?;
        self.buffers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(buffer);
        identity(provider_id, user.filter(|_| ok)?)
    }
}

/// Whether `password` matches the PHC argon2 `hash`, computed in `blocks` (grown as needed
/// and kept by the caller). The comparison is constant-time.
fn check(hash: &str, password: &[u8], blocks: &mut Vec<Block>) -> bool {
    let Ok(h) = PasswordHash::new(hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (Algorithm::try_from(h.algorithm), Params::try_from(&h))
    else {
        return false;
    };
    let version = match h.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let (Some(salt), Some(expected)) = (h.salt, h.hash) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    if params.m_cost() > MAX_M_COST {
        return false;
    }
    let need = params.block_count();
    blocks.resize(need, Block::default());
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt, &mut out, &mut blocks[..need])
        .is_ok()
        && bool::from(out.as_slice().ct_eq(expected.as_bytes()))
}

fn identity(provider_id: &str, user: &LocalUser) -> Option<Identity> {
    Some(Identity {
        provider: provider_id.to_string(),
        subject: user.username.clone(),
        email: user.email.clone(),
        name: user.name.clone(),
        groups: user.groups.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::DEMO_HASH;
    use crate::vocab::Secret;

    #[test]
    fn the_dummy_hash_parses_so_unknown_users_cost_the_same() {
        assert!(PasswordHash::new(DUMMY).is_ok());
    }

    #[tokio::test]
    async fn hashes_and_verifies() {
        let users = vec![LocalUser {
            username: "alice".into(),
            password_hash: Secret::new(hash_password("correct horse")),
            email: Some("alice@example.test".into()),
            name: Some("Alice".into()),
            groups: vec!["admins".into()],
        }];
        let checks = PasswordChecks::default();
        let verify = |name: &'static str, pw: &str| checks.verify("local", &users, name, pw.into());
        let id = verify("alice", "correct horse").await.unwrap();
        assert_eq!(id.user_id(), "local:alice");
        assert_eq!(id.groups, vec!["admins"]);
        assert!(verify("alice", "wrong").await.is_none());
        assert!(verify("bob", "correct horse").await.is_none());
        // The buffers are kept: at most one per permit.
        assert_eq!(checks.buffers.lock().unwrap().len(), 1);
    }

    #[test]
    fn checks_hashes_of_other_parameters_and_refuses_malformed_ones() {
        let light = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x10,
            Params::new(1024, 3, 1, Some(24)).unwrap(),
        );
        let salt = SaltString::encode_b64(b"sixteen byte slt").unwrap();
        let hash = light.hash_password(b"pw", &salt).unwrap().to_string();
        let mut blocks = Vec::new();
        assert!(check(&hash, b"pw", &mut blocks));
        assert!(!check(&hash, b"pW", &mut blocks));
        assert_eq!(blocks.len(), 1024);
        assert!(check(DEMO_HASH, b"demo", &mut blocks));
        for bad in [
            "",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$",
            "$md5$x",
        ] {
            assert!(!check(bad, b"pw", &mut blocks), "{bad}");
        }
        let huge = "$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$2xFSoKxNK2lD2u6XzA1Q2tGv3hOrfbXHcQ5Yh1Z0pkk";
        assert!(
            !check(huge, b"pw", &mut blocks),
            "a 4 GiB memory cost is refused"
        );
    }
}
