//! Configuration: the TOML file (`file`), its checks (`validate`), and the resolved, immutable
//! [`Config`] the rest of the gateway runs on (`model`). `load` serves `run`, `check` and
//! (later) reload alike.

mod error;
mod file;
mod interp;
mod model;
mod validate;

use std::path::Path;

pub use error::{ConfigError, ConfigErrors};
pub use model::*;
pub use validate::RESERVED_PATHS;

use error::Source;

/// Reads, parses and validates a config file, taking `${VAR}`s from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            key: String::new(),
            message: format!("cannot read the file: {e}"),
        }])
    })?;
    parse(path, &text, |name| std::env::var(name).ok())
}

/// Parses and validates config text; `path` names the file in errors and anchors relative paths.
pub fn parse(
    path: &Path,
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let mut src = Source::new(path, text);
    let file: file::FileConfig = match toml::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let mut key = src.key_path_at(span.start);
            if let Some(field) = e
                .message()
                .strip_prefix("missing field `")
                .and_then(|m| m.split('`').next())
            {
                key = if key.is_empty() {
                    field.to_string()
                } else {
                    format!("{key}.{field}")
                };
            }
            let message = e.message().trim().to_string();
            src.push(span, key, message);
            return Err(ConfigErrors(src.errors));
        }
    };
    let config_dir = path
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(Path::new("."));
    let config_dir = std::path::absolute(config_dir).unwrap_or_else(|_| config_dir.to_path_buf());
    let mut v = validate::Validator { src, env };
    match v.config(file, &config_dir) {
        Some(c) if v.src.errors.is_empty() => Ok(c),
        _ => Err(ConfigErrors(v.src.errors)),
    }
}

#[cfg(test)]
mod tests;
