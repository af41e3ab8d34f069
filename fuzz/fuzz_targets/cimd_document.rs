//! Any bytes as a client metadata document fetched from `https://app.example/client.json`:
//! accepted only with that exact `client_id`, no secret, and redirect URIs and a name that
//! pass the checks; never a panic.
#![no_main]

use std::sync::OnceLock;

use authgate::config::Config;
use authgate::oauth::cimd::client_from_document;
use authgate::vocab::ClientId;
use libfuzzer_sys::fuzz_target;

const URL: &str = "https://app.example/client.json";

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| authgate::testing::config(""))
}

fuzz_target!(|data: &[u8]| {
    let cfg = &config().cimd;
    for allow_custom in [false, true] {
        if let Ok(client) =
            client_from_document(data, &ClientId::new(URL), "app.example", cfg, allow_custom)
        {
            assert_eq!(client.client_id.as_str(), URL);
            assert!(client.secret.is_none(), "a document client with a secret");
            assert!(!client.redirect_uris.is_empty());
            assert!(!client.name.trim().is_empty());
        }
    }
});
