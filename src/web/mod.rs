//! What the gateway answers itself (health, errors, and later the OAuth endpoints and pages):
//! a [`Reply`] value built by protocol code and written to the client in one place.

pub mod reply;

pub use reply::Reply;
