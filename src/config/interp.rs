//! `${VAR}` interpolation, so secrets live in the environment and not in the file.
//! `$${` stands for a literal `${`. A `$` not followed by `{` is left alone (argon2 hashes
//! are full of them).

/// Replaces every `${NAME}` in `raw` using `lookup`; the error names the first unset variable
/// (or the malformed reference).
pub fn interpolate(raw: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    if !raw.contains("${") {
        return Ok(raw.to_string());
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or_else(|| "unterminated `${` (write `$${` for a literal)".to_string())?;
            let name = &after[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "`${{{name}}}` is not a valid environment variable reference"
                ));
            }
            let value =
                lookup(name).ok_or_else(|| format!("environment variable `{name}` is not set"))?;
            out.push_str(&value);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "SECRET").then(|| "s3cr$t".to_string())
    }

    #[test]
    fn replaces_and_escapes() {
        assert_eq!(interpolate("a-${SECRET}-b", env).unwrap(), "a-s3cr$t-b");
        assert_eq!(interpolate("$${SECRET}", env).unwrap(), "${SECRET}");
        assert_eq!(
            interpolate("$argon2id$v=19$m=1", env).unwrap(),
            "$argon2id$v=19$m=1"
        );
        assert_eq!(interpolate("plain", env).unwrap(), "plain");
    }

    #[test]
    fn names_the_missing_variable() {
        let e = interpolate("${NOPE}", env).unwrap_err();
        assert!(e.contains("`NOPE`"), "{e}");
        assert!(interpolate("${bad-name}", env)
            .unwrap_err()
            .contains("not a valid"));
        assert!(interpolate("${OPEN", env)
            .unwrap_err()
            .contains("unterminated"));
    }
}
