//! Client interop diagnostics: MCP clients fail in opaque ways ("connection failed" after
//! some discovery step). For each client id, and for clients not yet known by id their
//! address, the last attempts are kept with how far each got: 401 challenge → protected
//! resource metadata → authorization server metadata → registration (or metadata document) →
//! authorize → sign-in → consent → code → token → first authenticated call, and why it
//! stopped. `authgate diagnose` prints them. In memory only, bounded.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Mutex;

use serde::Serialize;

use crate::vocab::unix_now;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Challenge,
    ResourceMetadata,
    ServerMetadata,
    Registration,
    Authorize,
    SignIn,
    Consent,
    Code,
    Token,
    Call,
}

impl Step {
    pub fn describe(self) -> &'static str {
        match self {
            Step::Challenge => "401 challenge on the MCP route",
            Step::ResourceMetadata => "protected resource metadata",
            Step::ServerMetadata => "authorization server metadata",
            Step::Registration => "client registration",
            Step::Authorize => "authorization request",
            Step::SignIn => "sign-in",
            Step::Consent => "consent",
            Step::Code => "code sent back to the client",
            Step::Token => "token request",
            Step::Call => "authenticated MCP call",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub step: Step,
    pub at: u64,
    pub ok: bool,
    /// Why it failed (an OAuth error, a refusal), or a detail worth showing.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub client_id: Option<String>,
    pub address: Option<IpAddr>,
    pub started: u64,
    pub last: u64,
    pub steps: Vec<StepRecord>,
}

impl Attempt {
    /// The furthest step reached, and whether it worked.
    pub fn reached(&self) -> Option<&StepRecord> {
        self.steps.iter().max_by_key(|s| (s.step, s.at))
    }
}

/// Attempts kept in all.
const MAX_ATTEMPTS: usize = 1000;
/// Steps kept per attempt.
const MAX_STEPS: usize = 40;
/// An attempt idle this long is over; the next step starts a new one.
const IDLE: u64 = 600;
/// Attempts returned per query.
const SHOWN: usize = 5;

#[derive(Default)]
pub struct Diagnostics {
    attempts: Mutex<VecDeque<Attempt>>,
}

impl Diagnostics {
    /// Notes a step of the client `client_id` (when known) seen from `address`.
    pub fn note(
        &self,
        address: Option<IpAddr>,
        client_id: Option<&str>,
        step: Step,
        outcome: Result<(), String>,
    ) {
        let now = unix_now();
        let mut attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        let open = attempts.iter_mut().rev().find(|a| {
            now.saturating_sub(a.last) < IDLE
                && match (client_id, &a.client_id) {
                    (Some(c), Some(ac)) => c == ac,
                    (Some(_), None) | (None, _) => address.is_some() && a.address == address,
                }
        });
        // A client that starts over (a new 401, new discovery) is a new attempt.
        let restart = |a: &Attempt| {
            step <= Step::ServerMetadata && a.steps.iter().any(|s| s.step > Step::ServerMetadata)
        };
        let attempt = match open {
            Some(a) if !restart(a) => a,
            _ => {
                if attempts.len() >= MAX_ATTEMPTS {
                    attempts.pop_front();
                }
                attempts.push_back(Attempt {
                    client_id: None,
                    address,
                    started: now,
                    last: now,
                    steps: Vec::new(),
                });
                attempts.back_mut().expect("just pushed")
            }
        };
        if let (Some(c), None) = (client_id, &attempt.client_id) {
            attempt.client_id = Some(c.to_string());
        }
        attempt.address = attempt.address.or(address);
        attempt.last = now;
        if attempt.steps.len() < MAX_STEPS {
            let (ok, detail) = match outcome {
                Ok(()) => (true, None),
                Err(why) => (false, Some(why)),
            };
            attempt.steps.push(StepRecord {
                step,
                at: now,
                ok,
                detail,
            });
        }
    }

    fn matching(&self, pred: impl Fn(&Attempt) -> bool) -> Vec<Attempt> {
        let attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        let mut found: Vec<Attempt> = attempts
            .iter()
            .rev()
            .filter(|a| pred(a))
            .take(SHOWN)
            .cloned()
            .collect();
        found.reverse();
        found
    }

    pub fn for_client(&self, client_id: &str) -> Vec<Attempt> {
        self.matching(|a| a.client_id.as_deref() == Some(client_id))
    }

    pub fn for_address(&self, address: IpAddr) -> Vec<Attempt> {
        self.matching(|a| a.address == Some(address))
    }

    pub fn recent(&self) -> Vec<Attempt> {
        self.matching(|_| true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_a_client_from_its_address_to_its_id_and_says_where_it_stopped() {
        let d = Diagnostics::default();
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        d.note(Some(ip), None, Step::Challenge, Ok(()));
        d.note(Some(ip), None, Step::ResourceMetadata, Ok(()));
        d.note(Some(ip), None, Step::ServerMetadata, Ok(()));
        d.note(Some(ip), Some("agc_1"), Step::Registration, Ok(()));
        d.note(
            Some(ip),
            Some("agc_1"),
            Step::Authorize,
            Err("invalid_redirect_uri".into()),
        );
        let got = d.for_client("agc_1");
        assert_eq!(got.len(), 1);
        let steps: Vec<Step> = got[0].steps.iter().map(|s| s.step).collect();
        assert_eq!(steps[0], Step::Challenge);
        let reached = got[0].reached().unwrap();
        assert_eq!((reached.step, reached.ok), (Step::Authorize, false));
        assert_eq!(reached.detail.as_deref(), Some("invalid_redirect_uri"));
        // Starting over is a new attempt; another address is another client.
        d.note(Some(ip), None, Step::Challenge, Ok(()));
        assert_eq!(d.for_client("agc_1").len(), 1, "no id yet on the new one");
        assert_eq!(d.for_address(ip).len(), 2);
        assert!(d.for_address("10.0.0.8".parse().unwrap()).is_empty());
    }
}
