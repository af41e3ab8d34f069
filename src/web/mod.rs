//! HTTP plumbing for what the gateway answers itself (health, OAuth endpoints, login and
//! consent pages): a [`Request`] in, a [`Reply`] out, written to the client in one place;
//! the `Authorization` header, cookies, and the HTML pages.

pub mod authorization;
pub mod cookies;
pub mod pages;
pub mod reply;
pub mod request;

pub use reply::Reply;
pub use request::{Params, Request};
