//! The audit trail: one structured event per security event, target `authgate::audit` (and
//! `[audit] file`, when set). Every event has the same fields, present when known: `event`,
//! `outcome` (`success`, `failure`, `refused`), `user` (`provider:subject`), `provider`,
//! `client_id`, `upstream`, `remote_addr`, `reason`, `grant_id`, `count`; the timestamp is
//! the log line's. Never a token, code, secret, password or cookie: the fields take only
//! identifiers.

use std::fmt::Display;
use std::net::IpAddr;

use crate::vocab::Identity;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Refused,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Refused => "refused",
        }
    }
}

#[must_use = "an audit event is written by `emit`"]
#[derive(Debug, Default)]
pub struct Event {
    event: &'static str,
    outcome: Option<Outcome>,
    user: Option<String>,
    provider: Option<String>,
    client_id: Option<String>,
    upstream: Option<String>,
    remote_addr: Option<IpAddr>,
    reason: Option<String>,
    grant_id: Option<String>,
    count: Option<u64>,
}

/// Starts an event named `event` (`login`, `consent_given`, `token_issued`, …).
pub fn event(event: &'static str, outcome: Outcome) -> Event {
    Event {
        event,
        outcome: Some(outcome),
        ..Event::default()
    }
}

/// Something done.
pub fn success(name: &'static str) -> Event {
    event(name, Outcome::Success)
}

/// Something refused on purpose (bad credentials, a replay, a blocked person).
pub fn refused(name: &'static str) -> Event {
    event(name, Outcome::Refused)
}

/// Something that failed (a provider error, a store error).
pub fn failure(name: &'static str) -> Event {
    event(name, Outcome::Failure)
}

impl Event {
    /// The person: their user id and provider.
    pub fn identity(mut self, identity: &Identity) -> Self {
        self.user = Some(identity.user_id());
        self.provider = Some(identity.provider.clone());
        self
    }

    pub fn user(mut self, user_id: impl Display) -> Self {
        self.user = Some(user_id.to_string());
        self
    }

    pub fn provider(mut self, id: impl Display) -> Self {
        self.provider = Some(id.to_string());
        self
    }

    pub fn client(mut self, client_id: impl Display) -> Self {
        self.client_id = Some(client_id.to_string());
        self
    }

    pub fn upstream(mut self, name: impl Display) -> Self {
        self.upstream = Some(name.to_string());
        self
    }

    pub fn remote(mut self, addr: Option<IpAddr>) -> Self {
        self.remote_addr = addr;
        self
    }

    pub fn reason(mut self, reason: impl Display) -> Self {
        self.reason = Some(reason.to_string());
        self
    }

    pub fn grant(mut self, grant_id: impl Display) -> Self {
        self.grant_id = Some(grant_id.to_string());
        self
    }

    pub fn count(mut self, n: usize) -> Self {
        self.count = Some(n as u64);
        self
    }

    pub fn emit(self) {
        let outcome = self.outcome.unwrap_or(Outcome::Success).as_str();
        let remote = self.remote_addr.map(|a| a.to_string());
        macro_rules! write {
            ($level:ident) => {
                tracing::$level!(
                    target: "authgate::audit",
                    event = self.event,
                    outcome,
                    user = self.user.as_deref(),
                    provider = self.provider.as_deref(),
                    client_id = self.client_id.as_deref(),
                    upstream = self.upstream.as_deref(),
                    remote_addr = remote.as_deref(),
                    reason = self.reason.as_deref(),
                    grant_id = self.grant_id.as_deref(),
                    count = self.count,
                    "audit"
                )
            };
        }
        match self.outcome {
            Some(Outcome::Success) | None => write!(info),
            Some(_) => write!(warn),
        }
    }
}
