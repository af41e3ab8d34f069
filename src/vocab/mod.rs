//! The protocol vocabulary every layer speaks: identifiers, scopes, redirect URIs, secrets
//! and their hashes, who a person is, the clock, the gateway's own paths and the error codes
//! of its answers. It depends on nothing else of authgate's, so every other module can use
//! it and dependencies run one way (see the crate docs).
//!
//! Values are parsed once, at the edge where they enter (config, a request, the store), and
//! travel typed from there: a redirect URI is never compared like a free string, a scope
//! list never parsed twice, a secret never printed.

mod clock;
mod error_code;
mod identity;
mod ids;
pub mod paths;
mod redirect;
mod scope;
mod secret;
mod text;

pub use clock::unix_now;
pub use error_code::ErrorCode;
pub use identity::Identity;
pub use ids::{ClientId, GrantId, UpstreamName};
pub use redirect::{canonical_resource, is_loopback_host, RedirectUri};
pub use scope::{Scope, ScopeSet, IGNORED_SCOPES};
pub use secret::{Secret, SecretHash};
pub use text::check_display_name;
