//! Name patterns in rules: `*` matches any run of characters (`/` included, so
//! `https://*.example.com/*` covers CIMD client URLs), `?` one character; everything else is
//! literal and case-sensitive, as MCP tool names are.

use wildmatch::WildMatch;

#[derive(Debug, Clone)]
pub struct Glob {
    pattern: String,
    /// `None` when the pattern has no wildcard: a plain comparison.
    wild: Option<WildMatch>,
}

impl Glob {
    pub fn new(pattern: &str) -> Self {
        let wild = pattern
            .contains(['*', '?'])
            .then(|| WildMatch::new(pattern));
        Glob {
            pattern: pattern.to_string(),
            wild,
        }
    }

    pub fn matches(&self, value: &str) -> bool {
        match &self.wild {
            Some(w) => w.matches(value),
            None => self.pattern == value,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }
}

impl PartialEq for Glob {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn globs_match_as_documented() {
        let cases = [
            ("search_*", "search_docs", true),
            ("search_*", "search_", true),
            ("search_*", "delete_docs", false),
            ("search_*", "Search_docs", false),
            ("get_?", "get_a", true),
            ("get_?", "get_ab", false),
            (
                "https://*.example.com/*",
                "https://app.example.com/client.json",
                true,
            ),
            ("https://*.example.com/*", "https://example.org/x", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("*", "", true),
        ];
        for (pattern, value, want) in cases {
            assert_eq!(
                Glob::new(pattern).matches(value),
                want,
                "{pattern} vs {value}"
            );
        }
    }
}
