//! authgate: a declarative auth gateway for MCP servers, on Pingora.
//!
//! The tree follows the request: `config` (the TOML file → a validated `Config`), `server`
//! (Pingora wiring), `proxy` (the `ProxyHttp` phases and routing), `web` (local replies),
//! `store` (persistent state behind a trait), `logging`, and `cli`.

pub mod cli;
pub mod config;
pub mod crypto;
pub mod identity;
pub mod logging;
pub mod login;
pub mod oauth;
pub mod proxy;
pub mod server;
pub mod store;
pub mod web;
