//! Who a person is, as established by a login provider and carried by every grant. This is
//! what upstreams receive in identity headers.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The login provider's id from the config.
    pub provider: String,
    /// The provider's stable subject for the person.
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

impl Identity {
    /// Stable user id across the gateway: `provider:subject`.
    pub fn user_id(&self) -> String {
        format!("{}:{}", self.provider, self.subject)
    }
}
