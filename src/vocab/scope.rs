//! OAuth scopes (RFC 6749 §3.3): a scope is a run of printable ASCII without spaces, quotes
//! or backslashes; a set of them travels as one space-separated string. Sets are kept sorted
//! so equal sets print and compare equally.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One scope name, e.g. `mcp:tools`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Scope(String);

impl Scope {
    /// RFC 6749 §3.3 `scope-token = 1*NQCHAR`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let nqchar = |b: u8| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b);
        if raw.is_empty() || !raw.bytes().all(nqchar) {
            return Err(
                "must be printable ASCII without spaces, quotes or backslashes (RFC 6749 §3.3)"
                    .into(),
            );
        }
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// OIDC and token-lifetime scopes clients send that are not ours ([`IGNORED_SCOPES`]).
    pub fn is_ignored(&self) -> bool {
        IGNORED_SCOPES.contains(&self.0.as_str())
    }
}

impl TryFrom<String> for Scope {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<Scope> for String {
    fn from(s: Scope) -> String {
        s.0
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// Scopes clients send that belong to OpenID Connect or token lifetime, not to our
/// upstreams; tolerated and dropped rather than refused (several MCP clients send them).
pub const IGNORED_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

/// A set of scopes. Serialized as a list (the store's format); printed space-separated.
/// Kept as a sorted, deduplicated slice: sets hold a handful of scopes, and every cached
/// token holds one (a B-tree node would be ~300 bytes of it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(from = "Vec<Scope>")]
pub struct ScopeSet(Box<[Scope]>);

impl From<Vec<Scope>> for ScopeSet {
    fn from(mut v: Vec<Scope>) -> Self {
        v.sort_unstable();
        v.dedup();
        Self(v.into_boxed_slice())
    }
}

impl Serialize for ScopeSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl ScopeSet {
    /// A `scope` parameter: split on spaces only, tolerating repeated and leading ones
    /// (`scope=+offline_access` arrives as " offline_access" after form decoding). A token
    /// that is not a valid scope is an error naming it.
    pub fn parse(raw: &str) -> Result<Self, String> {
        raw.split(' ')
            .filter(|s| !s.is_empty())
            .map(|s| Scope::parse(s).map_err(|e| format!("`{s}` {e}")))
            .collect::<Result<Vec<_>, _>>()
            .map(Self::from)
    }

    /// Without the scopes that only concern OIDC or token lifetime.
    pub fn without_ignored(self) -> Self {
        self.0
            .into_vec()
            .into_iter()
            .filter(|s| !s.is_ignored())
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn contains(&self, s: &str) -> bool {
        self.0.iter().any(|x| x.as_str() == s)
    }

    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.iter().all(|s| other.0.binary_search(s).is_ok())
    }

    /// Both sets together.
    pub fn union(&self, other: &ScopeSet) -> ScopeSet {
        self.0.iter().chain(other.0.iter()).collect()
    }

    pub fn insert(&mut self, s: Scope) {
        if let Err(at) = self.0.binary_search(&s) {
            let mut v = std::mem::take(&mut self.0).into_vec();
            v.insert(at, s);
            self.0 = v.into_boxed_slice();
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(it: I) -> Self {
        Self::from(it.into_iter().collect::<Vec<_>>())
    }
}

impl<'a> FromIterator<&'a Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = &'a Scope>>(it: I) -> Self {
        it.into_iter().cloned().collect()
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(s.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_on_spaces_only() {
        let s = ScopeSet::parse(" mcp:tools  offline_access mcp:read").unwrap();
        assert_eq!(s.to_string(), "mcp:read mcp:tools offline_access");
        assert_eq!(
            s.clone().without_ignored().to_string(),
            "mcp:read mcp:tools"
        );
        assert!(ScopeSet::parse("").unwrap().is_empty());
        // `+` is a legal scope character; form decoding already turned `+` into spaces.
        assert_eq!(ScopeSet::parse("a+b").unwrap().len(), 1);
        assert!(ScopeSet::parse("ok bad\"quote")
            .unwrap_err()
            .contains("`bad\"quote`"));
        assert!(Scope::parse("back\\slash").is_err());
    }

    #[test]
    fn sets_serialize_as_lists_like_the_store_always_did() {
        let s = ScopeSet::parse("b a").unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), r#"["a","b"]"#);
        let back: ScopeSet = serde_json::from_str(r#"["b","a","a"]"#).unwrap();
        assert_eq!(back, s);
        assert!(serde_json::from_str::<ScopeSet>(r#"["a b"]"#).is_err());
    }
}
