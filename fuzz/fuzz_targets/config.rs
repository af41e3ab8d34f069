//! Any text as a config file: parsing and validation answer with a config or with errors
//! that name a place in the file, and never panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Every `${VAR}` is set, so validation runs past interpolation.
    let env = |name: &str| Some(format!("value-of-{name}"));
    if let Err(errors) = authgate::config::parse(Path::new("/fuzz/authgate.toml"), text, env) {
        for e in &errors.0 {
            assert!(
                e.line <= text.lines().count() + 1,
                "error past the end: {e}"
            );
            let _ = e.to_string();
        }
    }
});
