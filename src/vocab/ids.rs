//! Identifiers that are not secrets: OAuth clients, grants, upstreams.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

string_id!(
    /// An OAuth client identifier: pre-registered, dynamically registered (`agc_…`) or a
    /// metadata document URL. Compared as an exact string.
    ClientId
);
string_id!(
    /// One authorization: the family of tokens revoked together.
    GrantId
);
string_id!(
    /// A name an upstream is known by in logs, tokens, metrics and policies: `[a-z0-9_-]`,
    /// 1 to 64 characters.
    UpstreamName
);

impl ClientId {
    /// Any non-empty string a client sends or the config names; validated where it enters.
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }
}

impl GrantId {
    /// A grant id: a fresh random one (`crypto::random_id`), or one read back from the store.
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }
}

impl UpstreamName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() || raw.len() > 64 {
            return Err("must be 1 to 64 characters".into());
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err("may contain only a-z, 0-9, `-` and `_`".into());
        }
        Ok(Self(raw.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_names() {
        assert!(UpstreamName::parse("git-hub_2").is_ok());
        for bad in ["", "GitHub", "a b", "a/b", &"x".repeat(65)] {
            assert!(UpstreamName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_are_transparent_strings() {
        let c = ClientId::new("agc_1");
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"agc_1\"");
        assert_eq!(c, "agc_1");
    }
}
