//! Configuration: the TOML file (`file`), its checks (`validate`, one file per section), and
//! the resolved, immutable [`Config`] the rest of the gateway runs on (`model`). `load`
//! serves `run`, `check` and (later) reload alike.

mod error;
mod file;
mod interp;
mod model;
mod recover;
mod validate;

use std::path::Path;

pub use error::{ConfigError, ConfigErrors};
pub use model::*;

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

/// The most errors one run reports (a file of garbage would otherwise list thousands).
const MAX_ERRORS: usize = 100;

/// Parses and validates config text; `path` names the file in errors and anchors relative paths.
/// Every error is reported, sorted by place: a TOML syntax error stops reading (what follows
/// it cannot be trusted), but unknown keys and wrong types are skipped past
/// ([`recover`]), and checks that depend on a bad value do not report again.
pub fn parse(
    path: &Path,
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let mut src = Source::new(path, text);
    if let Err(e) = toml::de::DeTable::parse(text) {
        src.push(e.span().unwrap_or(0..0), String::new(), e.message().trim());
        return Err(ConfigErrors(src.errors));
    }
    let mut work = text.to_string();
    // Keys whose values were skipped: later checks that find them missing are consequences.
    let mut skipped: Vec<String> = Vec::new();
    let file: file::FileConfig = loop {
        match toml::from_str(&work) {
            Ok(f) => break f,
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                let key = src.key_path_at(span.start);
                src.push(span.clone(), key.clone(), e.message().trim());
                skipped.push(key);
                if span.is_empty()
                    || src.errors.len() >= MAX_ERRORS
                    || !recover::blank_entry(&mut work, span.start)
                {
                    return Err(ConfigErrors::sorted(src.errors));
                }
            }
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
    let parse_errors = src.errors.len();
    let mut v = validate::Validator { src, env };
    let config = v.config(file, &config_dir);
    let mut errors = v.src.errors;
    let later = errors.split_off(parse_errors);
    errors.extend(
        later
            .into_iter()
            .filter(|e| !skipped.iter().any(|k| k == &e.key)),
    );
    match config {
        Some(c) if errors.is_empty() => Ok(c),
        _ => Err(ConfigErrors::sorted(errors)),
    }
}

#[cfg(test)]
mod tests;

/// The JSON schema of the config file, generated from the types it is read into: editors
/// (taplo, Even Better TOML) complete and check the TOML with it (`authgate schema`).
pub fn json_schema() -> String {
    let mut schema = schemars::schema_for!(file::FileConfig);
    schema.insert("title".into(), "authgate config".into());
    schema.insert(
        "description".into(),
        "authgate's TOML config. String values may hold ${VAR} (an environment variable). See the README's configuration reference.".into(),
    );
    serde_json::to_string_pretty(&schema).expect("a schema serializes")
}
