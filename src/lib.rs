//! authgate: a declarative auth gateway for MCP servers, on Pingora.
//!
//! Modules are layered; each uses only those below it, so the request's path can be read
//! top-down and no change in a low layer needs a high one:
//!
//! ```text
//! cli              the command line: run, check, the admin client, store commands
//! server           Pingora wiring: listeners, services, signals, reload, the admin API
//! proxy            the ProxyHttp phases: routing, bearer check, header rewriting, MCP checks
//! oauth            the authorization server: metadata, registration, authorize, consent, tokens
//! login            people signing in: OIDC, GitHub, local users, sealed browser state
//! config  store    the validated config; persistent state behind the Store trait
//! web     crypto   requests, replies and pages; sealing, random secrets
//! metrics audit diagnose   what happens: Prometheus metrics, the audit trail, client attempts
//! vocab            protocol values: ids, scopes, redirect URIs, secrets, paths, error codes
//! ```
//!
//! `logging` stands beside `cli`, used only by it.

pub mod audit;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod diagnose;
pub mod logging;
pub mod login;
pub mod metrics;
pub mod oauth;
pub mod policy;
pub mod proxy;
pub mod server;
pub mod store;
/// Fixtures shared by the unit tests and the fuzz targets (`fuzz/`, feature `testing`).
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod vocab;
pub mod web;
