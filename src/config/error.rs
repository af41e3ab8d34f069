//! Config errors that point at the file, line, column and key, so an operator can fix the
//! file without guessing. Every check collects errors instead of stopping at the first.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is not tied to a place in the file (e.g. unreadable file).
    pub line: usize,
    pub column: usize,
    /// Dotted key path, e.g. `upstream[1].url`; empty when unknown.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// All problems found in one load; never empty.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// In file order, as an editor would walk them.
    pub fn sorted(mut errors: Vec<ConfigError>) -> Self {
        errors.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        Self(errors)
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Turns byte offsets into line/column and collects errors for one source text.
pub(crate) struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
    pub errors: Vec<ConfigError>,
}

impl<'a> Source<'a> {
    pub fn new(path: &'a Path, text: &'a str) -> Self {
        Self {
            path,
            text,
            errors: Vec::new(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    pub fn error_at(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        let (line, column) = self.line_col(span.start);
        ConfigError {
            file: self.path.to_path_buf(),
            line,
            column,
            key: key.into(),
            message: message.into(),
        }
    }

    pub fn push(&mut self, span: Range<usize>, key: impl Into<String>, message: impl Into<String>) {
        let e = self.error_at(span, key, message);
        self.errors.push(e);
    }

    /// The dotted key path of whatever stands at `offset`, read from the text itself: the last
    /// table header before it (arrays of tables get their index) plus the key on that line.
    /// Used for errors from the TOML parser, which knows the place but not the path.
    pub fn key_path_at(&self, offset: usize) -> String {
        let offset = offset.min(self.text.len());
        let mut table = String::new();
        let mut counts: std::collections::HashMap<String, usize> = Default::default();
        let mut pos = 0;
        // The last `key =` seen in the current table: lines of a multi-line value have none.
        let mut key = String::new();
        for line in self.text.split_inclusive('\n') {
            let end = pos + line.len();
            let trimmed = line.trim();
            if let Some(name) = trimmed
                .strip_prefix("[[")
                .and_then(|s| s.split("]]").next())
            {
                let name = name.trim().to_string();
                let n = counts.entry(name.clone()).or_insert(0);
                *n += 1;
                table = format!("{name}[{}]", *n - 1);
                key.clear();
            } else if let Some(name) = trimmed.strip_prefix('[').and_then(|s| s.split(']').next()) {
                table = name.trim().to_string();
                key.clear();
            } else if let Some((k, _)) = line.split_once('=') {
                let k = k.trim();
                let bare = !k.is_empty()
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
                let quoted = k.len() >= 2 && k.starts_with('"') && k.ends_with('"');
                let is_key = bare || quoted;
                if is_key {
                    key = k.trim_matches('"').to_string();
                }
            }
            if offset >= pos && offset < end.max(pos + 1) {
                break;
            }
            pos = end;
        }
        match (table.is_empty(), key.is_empty()) {
            (true, _) => key,
            (false, true) => table,
            (false, false) => format!("{table}.{key}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_path_follows_tables_and_array_indices() {
        let text = "[server]\nlisten = 1\n\n[[upstream]]\nname = \"a\"\n[[upstream]]\nurl = 5\n";
        let src = Source::new(Path::new("x.toml"), text);
        let at = |needle: &str| text.find(needle).unwrap();
        assert_eq!(src.key_path_at(at("listen")), "server.listen");
        assert_eq!(src.key_path_at(at("name")), "upstream[0].name");
        assert_eq!(src.key_path_at(at("url")), "upstream[1].url");
        assert_eq!(src.line_col(at("url")), (7, 1));
        let text = "[server]\nlist = [\n  \"a=b\",\n  7,\n]\n";
        let src = Source::new(Path::new("x.toml"), text);
        assert_eq!(src.key_path_at(text.find('7').unwrap()), "server.list");
    }

    #[test]
    fn display_names_file_line_and_key() {
        let e = ConfigError {
            file: "a.toml".into(),
            line: 3,
            column: 9,
            key: "server.listen".into(),
            message: "bad".into(),
        };
        assert_eq!(e.to_string(), "a.toml:3:9: server.listen: bad");
    }
}
