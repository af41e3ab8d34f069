//! Local users from the config, with argon2 password hashes (like Dex's static passwords),
//! so a demo or a small team needs no cloud account.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

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

/// Checks a username and password. Runs argon2 even for unknown users, so the answer time
/// does not tell which usernames exist. CPU-heavy by design: call from a blocking thread.
pub fn verify(
    provider_id: &str,
    users: &[LocalUser],
    username: &str,
    password: &str,
) -> Option<Identity> {
    let user = users.iter().find(|u| u.username == username);
    let hash = user.map_or(DUMMY, |u| u.password_hash.as_str());
    let ok = PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false);
    let user = user.filter(|_| ok)?;
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
    use crate::vocab::Secret;

    #[test]
    fn the_dummy_hash_parses_so_unknown_users_cost_the_same() {
        assert!(PasswordHash::new(DUMMY).is_ok());
    }

    #[test]
    fn hashes_and_verifies() {
        let users = vec![LocalUser {
            username: "alice".into(),
            password_hash: Secret::new(hash_password("correct horse")),
            email: Some("alice@example.test".into()),
            name: Some("Alice".into()),
            groups: vec!["admins".into()],
        }];
        let id = verify("local", &users, "alice", "correct horse").unwrap();
        assert_eq!(id.user_id(), "local:alice");
        assert_eq!(id.groups, vec!["admins"]);
        assert!(verify("local", &users, "alice", "wrong").is_none());
        assert!(verify("local", &users, "bob", "correct horse").is_none());
    }
}
