//! Tagged tokens: access and refresh tokens carry a short keyed tag, so a token authgate never
//! issued is refused from its shape and tag alone, without a store read. A flood of random
//! tokens then costs about one hash each, not a database lookup.
//!
//! Format: `<prefix><24 random bytes, base64url>.<8-byte tag, base64url>`; the tag is
//! SipHash-2-4 (a keyed PRF) of the prefix and the random part under a 128-bit key kept in the
//! store, so every process on one store checks the same tags. Forging one is guessing 64 bits.
//! Tokens from before tags (`<prefix><32 random bytes, base64url>`, no `.`) are "legacy": still
//! looked up in the store, until a cutoff set by the caller.

use std::hash::Hasher;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use rand::RngCore;
use siphasher::sip::SipHasher24;

/// Random bytes in a tagged token (192 bits).
pub const RANDOM: usize = 24;
/// base64url length of the random part and of the tag.
const RANDOM_CHARS: usize = 32;
const TAG_CHARS: usize = 11;
/// base64url length of a legacy token's 32 random bytes.
const LEGACY_CHARS: usize = 43;

/// What a presented token's shape says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Tagged, and the tag checks out: it may be one of ours (the store decides).
    Tagged,
    /// An untagged token of the form authgate issued before tags.
    Legacy,
    /// Not something authgate issued: a wrong tag, prefix or length.
    Forged,
}

#[derive(Clone)]
pub struct TokenTags {
    key: [u8; 16],
}

impl std::fmt::Debug for TokenTags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenTags(<key>)")
    }
}

impl TokenTags {
    pub fn new(key: [u8; 16]) -> Self {
        Self { key }
    }

    fn tag(&self, prefix: &str, random: &str) -> [u8; 8] {
        let mut h = SipHasher24::new_with_key(&self.key);
        h.write(prefix.as_bytes());
        h.write_u8(0);
        h.write(random.as_bytes());
        h.finish().to_le_bytes()
    }

    /// A new token with `prefix` (`ag_at_`, `ag_rt_`).
    pub fn mint(&self, prefix: &str) -> String {
        let mut bytes = [0u8; RANDOM];
        rand::rng().fill_bytes(&mut bytes);
        self.tagged(prefix, &bytes)
    }

    /// The token of `random` under this key: [`Self::mint`] with chosen bytes, for benchmarks
    /// that need the same tokens on every run.
    pub fn tagged(&self, prefix: &str, random: &[u8; RANDOM]) -> String {
        let random = B64.encode(random);
        let tag = B64.encode(self.tag(prefix, &random));
        format!("{prefix}{random}.{tag}")
    }

    /// What `token` is, for a token that must start with `prefix`. Compares the tag in constant
    /// time.
    pub fn shape(&self, prefix: &str, token: &str) -> Shape {
        let Some(rest) = token.strip_prefix(prefix) else {
            return Shape::Forged;
        };
        match rest.split_once('.') {
            Some((random, tag)) if random.len() == RANDOM_CHARS && tag.len() == TAG_CHARS => {
                // Decoded, not re-encoded: no allocation on the path a flood of forged tokens
                // takes. The engine refuses non-canonical trailing bits, so one tag has one
                // spelling.
                let mut presented = [0u8; 8];
                if B64.decode_slice(tag, &mut presented) != Ok(8) {
                    return Shape::Forged;
                }
                let expected = self.tag(prefix, random);
                match subtle::ConstantTimeEq::ct_eq(&expected[..], &presented[..]).into() {
                    true => Shape::Tagged,
                    false => Shape::Forged,
                }
            }
            None if rest.len() == LEGACY_CHARS => Shape::Legacy,
            _ => Shape::Forged,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_check_and_everything_else_is_told_apart() {
        let tags = TokenTags::new([7; 16]);
        let t = tags.mint("ag_at_");
        assert!(t.starts_with("ag_at_") && t.len() == 6 + 32 + 1 + 11, "{t}");
        assert_eq!(tags.shape("ag_at_", &t), Shape::Tagged);
        // Another key, another prefix, a changed character: not ours.
        assert_eq!(TokenTags::new([8; 16]).shape("ag_at_", &t), Shape::Forged);
        let as_refresh = t.replacen("ag_at_", "ag_rt_", 1);
        assert_eq!(tags.shape("ag_rt_", &as_refresh), Shape::Forged);
        let mut changed = t.clone().into_bytes();
        changed[10] = if changed[10] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            tags.shape("ag_at_", &String::from_utf8(changed).unwrap()),
            Shape::Forged
        );
        // An untagged token of the old form, and garbage.
        let legacy = crate::crypto::random_secret("ag_at_");
        assert_eq!(tags.shape("ag_at_", &legacy), Shape::Legacy);
        for junk in [
            "",
            "ag_at_",
            "ag_at_x",
            "Bearer",
            &format!("{t}x"),
            &legacy[..40],
        ] {
            assert_eq!(tags.shape("ag_at_", junk), Shape::Forged, "{junk}");
        }
    }
}
