//! The config file as written: serde structs that mirror the TOML one to one. Unknown keys are
//! errors; values that are checked later keep their span so the check can point at them.
//! Nothing here is used past `validate`, which turns it into [`super::Config`].

use serde::Deserialize;
use toml::Spanned;

pub type Text = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub server: Spanned<ServerSection>,
    #[serde(default, rename = "upstream")]
    pub upstreams: Vec<Spanned<UpstreamSection>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Socket addresses to listen on.
    #[serde(default)]
    pub listen: Option<Spanned<Vec<Text>>>,
    /// The URL clients use to reach the gateway; the OAuth issuer and every resource URL derive
    /// from it, never from request headers.
    pub public_url: Text,
    pub data_dir: Option<Text>,
    pub threads: Option<Spanned<usize>>,
    /// Allow a plain-http public URL on a non-loopback host (a TLS proxy in front does not
    /// count: set public_url to the https URL it serves).
    #[serde(default)]
    pub allow_insecure_http: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    pub name: Text,
    pub path: Text,
    pub host: Option<Text>,
    pub url: Text,
    pub connect_timeout: Option<Text>,
    pub idle_timeout: Option<Text>,
    #[serde(default)]
    pub preserve_host: bool,
}
