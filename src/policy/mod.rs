//! Who may reach which upstream, and which MCP methods, tools, prompts and resources they may
//! use there: rules read from policy files (parsed and checked by `config`), evaluated here.
//!
//! Evaluation, for one upstream (rules written for `"*"` count for every upstream):
//! 1. Rules past their `expires` match no one (an expired allow rule still closes the
//!    upstream to everyone else, as it did before it expired).
//! 2. **Deny wins**: the first deny rule (in file order) that matches decides.
//! 3. Else the first matching allow rule decides.
//! 4. Else the default: denied when some allow rule *governs* the request (the upstream has
//!    access allow rules; or, for an MCP call, an allow rule names its method or its kind of
//!    item), allowed otherwise, so an upstream without rules behaves as before.
//!
//! A rule without MCP fields (`methods`, `tools`, `prompts`, `resources`) is an *access*
//! rule: it decides whether a person reaches the upstream at all. A rule with them is a
//! *call* rule, checked per JSON-RPC request once access is granted.
//!
//! A rule matches when every "who" field it has matches (any value within a field): user
//! ids, emails, email domains, groups, providers, OAuth clients (globs), granted scopes (all
//! of them) and API keys (by name). Groups are the provider's (ID token, userinfo, GitHub teams, local users)
//! and those declared with `[[group]]`, which may carry a role (`"platform:admin"` matches
//! the group's admins and owners).

mod glob;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

pub use glob::Glob;

use crate::vocab::{Identity, Scope, ScopeSet, UpstreamName};

/// The provider of the identity an API key stands for (`key:<name>`).
pub const KEY_PROVIDER: &str = "key";

/// The upstream name that makes a rule count for every upstream.
pub const ANY_UPSTREAM: &str = "*";

/// Where a rule or group was written, for `check`, `explain` and the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Member,
    Admin,
    Owner,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "member" => Some(Role::Member),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }
}

/// A `[[group]]`: an organisation declared in config, with its members and their roles.
#[derive(Debug, Clone)]
pub struct GroupDef {
    pub name: String,
    pub origin: Origin,
    /// Members by email (lowercase), email domain (lowercase), or a group their provider
    /// reports (`acme/platform` for a GitHub team, `acme` for a GitHub organisation).
    pub emails: Vec<String>,
    pub email_domains: Vec<String>,
    pub provider_groups: Vec<String>,
    /// Emails (lowercase) holding a role above member; they are members too.
    pub admins: Vec<String>,
    pub owners: Vec<String>,
}

impl GroupDef {
    /// The person's role in this group, if they belong to it.
    fn role_of(&self, identity: &Identity, email: Option<&str>) -> Option<Role> {
        if let Some(email) = email {
            if self.owners.iter().any(|e| e == email) {
                return Some(Role::Owner);
            }
            if self.admins.iter().any(|e| e == email) {
                return Some(Role::Admin);
            }
            if self.emails.iter().any(|e| e == email) {
                return Some(Role::Member);
            }
            if let Some((_, domain)) = email.rsplit_once('@') {
                if self.email_domains.iter().any(|d| d == domain) {
                    return Some(Role::Member);
                }
            }
        }
        let in_provider_group = identity
            .groups
            .iter()
            .any(|g| self.provider_groups.iter().any(|p| p == g));
        in_provider_group.then_some(Role::Member)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// A group a rule names: a declared group (with a least role) or a provider group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRef {
    pub name: String,
    /// `None` for any member (and for provider groups).
    pub role: Option<Role>,
}

/// The "who" half of a rule; an empty list does not constrain.
#[derive(Debug, Clone, Default)]
pub struct Who {
    /// `provider:subject`.
    pub users: Vec<String>,
    /// Lowercase.
    pub emails: Vec<String>,
    /// Lowercase, without `@`.
    pub email_domains: Vec<String>,
    pub groups: Vec<GroupRef>,
    pub providers: Vec<String>,
    /// OAuth client ids, CIMD URLs included; `*` globs (`https://*.example.com/*`).
    pub clients: Vec<Glob>,
    /// Every one of these must be granted.
    pub scopes: Vec<Scope>,
    /// API keys by name (a key is the person `key:<name>`).
    pub api_keys: Vec<String>,
}

/// The MCP half of a rule: globs over the JSON-RPC method and the item a request names.
#[derive(Debug, Clone, Default)]
pub struct What {
    pub methods: Vec<Glob>,
    /// Tool names, for `tools/call` (and the items of `tools/list`).
    pub tools: Vec<Glob>,
    /// Prompt names, for `prompts/get` (and `prompts/list`).
    pub prompts: Vec<Glob>,
    /// Resource URIs, for `resources/read` (and `resources/list`).
    pub resources: Vec<Glob>,
}

impl What {
    fn is_empty(&self) -> bool {
        self.methods.is_empty()
            && self.tools.is_empty()
            && self.prompts.is_empty()
            && self.resources.is_empty()
    }

    /// The item globs for a method that names one item (`tools/call`, not `tools/list`:
    /// lists are filtered item by item instead).
    fn items_for(&self, method: &str) -> Option<&[Glob]> {
        match method {
            "tools/call" => Some(&self.tools),
            "prompts/get" => Some(&self.prompts),
            "resources/read" => Some(&self.resources),
            _ => None,
        }
    }

    /// Whether the rule speaks about this call's method at all.
    fn governs(&self, method: &str) -> bool {
        if !self.methods.is_empty() {
            return self.methods.iter().any(|m| m.matches(method));
        }
        self.items_for(method)
            .is_some_and(|items| !items.is_empty())
    }

    fn matches(&self, call: Call<'_>) -> bool {
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m.matches(call.method)) {
            return false;
        }
        let item_fields = [&self.tools, &self.prompts, &self.resources];
        if item_fields.iter().all(|f| f.is_empty()) {
            return true;
        }
        // Item globs only match requests that name an item of their kind.
        match (self.items_for(call.method), call.name) {
            (Some(items), Some(name)) if !items.is_empty() => items.iter().any(|g| g.matches(name)),
            _ => false,
        }
    }
}

/// The kinds of item an MCP request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    Tool,
    Prompt,
    Resource,
}

/// The kind of item `method` names (`tools/call`) or lists (`tools/list`).
pub fn item_kind(method: &str) -> Option<ItemKind> {
    match method {
        "tools/call" | "tools/list" => Some(ItemKind::Tool),
        "prompts/get" | "prompts/list" => Some(ItemKind::Prompt),
        "resources/read" | "resources/list" => Some(ItemKind::Resource),
        _ => None,
    }
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub origin: Origin,
    pub effect: Effect,
    pub who: Who,
    pub what: What,
    /// Unix seconds after which the rule no longer counts.
    pub expires: Option<u64>,
}

impl Rule {
    pub fn is_call_rule(&self) -> bool {
        !self.what.is_empty()
    }

    fn live(&self, now: u64) -> bool {
        self.expires.is_none_or(|t| now < t)
    }
}

/// `[[tool_scopes]]`: calling these tools needs these scopes; a token without them gets a
/// 403 `insufficient_scope` challenge naming what it holds plus what is needed.
#[derive(Debug, Clone)]
pub struct ScopeRequirement {
    pub origin: Origin,
    pub tools: Vec<Glob>,
    pub scopes: Vec<Scope>,
}

/// One MCP request: its JSON-RPC method and the tool/prompt name or resource URI it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call<'a> {
    pub method: &'a str,
    pub name: Option<&'a str>,
}

/// Who is asking: the token's person, client and scopes, with their declared-group roles
/// worked out once.
pub struct Subject<'a> {
    pub identity: &'a Identity,
    pub client_id: &'a str,
    pub scopes: &'a ScopeSet,
    email: Option<String>,
    /// Declared groups the person belongs to, with their role.
    pub memberships: Vec<(&'a str, Role)>,
}

impl<'a> Subject<'a> {
    pub fn new(
        policy: &'a PolicySet,
        identity: &'a Identity,
        client_id: &'a str,
        scopes: &'a ScopeSet,
    ) -> Self {
        let email = identity.email.as_ref().map(|e| e.to_ascii_lowercase());
        let memberships = policy
            .groups
            .iter()
            .filter_map(|g| Some((g.name.as_str(), g.role_of(identity, email.as_deref())?)))
            .collect();
        Subject {
            identity,
            client_id,
            scopes,
            email,
            memberships,
        }
    }

    fn in_group(&self, group: &GroupRef) -> bool {
        let declared = self
            .memberships
            .iter()
            .find(|(name, _)| *name == group.name);
        match (declared, group.role) {
            (Some((_, role)), Some(least)) => *role >= least,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => self.identity.groups.contains(&group.name),
        }
    }

    fn matches(&self, who: &Who) -> bool {
        let id = self.identity;
        let email = self.email.as_deref();
        let any = |list: &[String], value: Option<&str>| {
            list.is_empty() || value.is_some_and(|v| list.iter().any(|x| x == v))
        };
        (who.users.is_empty() || who.users.iter().any(|u| is_user(u, id)))
            && any(&who.emails, email)
            && any(
                &who.email_domains,
                email.and_then(|e| e.rsplit_once('@')).map(|(_, d)| d),
            )
            && any(&who.providers, Some(&id.provider))
            && (who.groups.is_empty() || who.groups.iter().any(|g| self.in_group(g)))
            && (who.clients.is_empty() || who.clients.iter().any(|c| c.matches(self.client_id)))
            && who.scopes.iter().all(|s| self.scopes.contains(s.as_str()))
            && (who.api_keys.is_empty()
                || (id.provider == KEY_PROVIDER && who.api_keys.contains(&id.subject)))
    }
}

fn is_user(user_id: &str, id: &Identity) -> bool {
    user_id
        .split_once(':')
        .is_some_and(|(p, s)| p == id.provider && s == id.subject)
}

/// What a decision rests on.
#[derive(Debug, Clone)]
pub struct Decision {
    pub allowed: bool,
    /// The rule that decided; `None` for the default.
    pub rule: Option<Arc<Rule>>,
}

impl Decision {
    fn default_for(governed: bool) -> Self {
        Decision {
            allowed: !governed,
            rule: None,
        }
    }

    /// One line for people: which rule decided, and where it is written.
    pub fn explain(&self) -> String {
        let verdict = if self.allowed { "allowed" } else { "denied" };
        match &self.rule {
            Some(r) => format!("{verdict} by rule \"{}\" ({})", r.name, r.origin),
            None if self.allowed => format!("{verdict}: no rule applies"),
            None => format!("{verdict}: no allow rule matches"),
        }
    }
}

/// The rules of one upstream, in file order, split by what they decide.
#[derive(Debug, Clone, Default)]
pub struct UpstreamRules {
    access: Vec<Arc<Rule>>,
    calls: Vec<Arc<Rule>>,
    scope_requirements: Vec<Arc<ScopeRequirement>>,
}

impl UpstreamRules {
    /// Whether requests need their JSON-RPC calls looked at (call rules or tool scopes).
    pub fn inspects_calls(&self) -> bool {
        !self.calls.is_empty() || !self.scope_requirements.is_empty()
    }

    /// Whether a list result could differ per caller (so it must be filtered).
    pub fn filters_lists(&self) -> bool {
        self.calls.iter().any(|r| {
            !r.what.tools.is_empty() || !r.what.prompts.is_empty() || !r.what.resources.is_empty()
        })
    }

    /// May the subject reach this upstream at all?
    pub fn access(&self, who: &Subject<'_>, now: u64) -> Decision {
        decide(&self.access, now, |r| who.matches(&r.who), |_| true)
    }

    /// May the subject make this call (access being granted)?
    pub fn call(&self, who: &Subject<'_>, call: Call<'_>, now: u64) -> Decision {
        decide(
            &self.calls,
            now,
            |r| r.what.matches(call) && who.matches(&r.who),
            |r| r.what.governs(call.method),
        )
    }

    /// May the subject see this item of a list (`tools/list` etc.)? Decided as a call to it.
    pub fn may_list(&self, who: &Subject<'_>, kind: ItemKind, name: &str, now: u64) -> bool {
        let method = match kind {
            ItemKind::Tool => "tools/call",
            ItemKind::Prompt => "prompts/get",
            ItemKind::Resource => "resources/read",
        };
        self.call(
            who,
            Call {
                method,
                name: Some(name),
            },
            now,
        )
        .allowed
    }

    /// The scopes a `tools/call` of `tool` needs beyond `granted`; empty when none.
    pub fn missing_scopes(&self, call: Call<'_>, granted: &ScopeSet) -> Vec<Scope> {
        let (Some(ItemKind::Tool), Some(tool)) = (item_kind(call.method), call.name) else {
            return Vec::new();
        };
        if call.method != "tools/call" {
            return Vec::new();
        }
        let mut missing: Vec<Scope> = Vec::new();
        for req in &self.scope_requirements {
            if req.tools.iter().any(|g| g.matches(tool)) {
                for s in &req.scopes {
                    if !granted.contains(s.as_str()) && !missing.contains(s) {
                        missing.push(s.clone());
                    }
                }
            }
        }
        missing
    }
}

/// Steps 1-4 of the module docs over `rules`.
fn decide(
    rules: &[Arc<Rule>],
    now: u64,
    matches: impl Fn(&Rule) -> bool,
    governs: impl Fn(&Rule) -> bool,
) -> Decision {
    let live = || rules.iter().filter(|r| r.live(now));
    if let Some(r) = live().find(|r| r.effect == Effect::Deny && matches(r)) {
        return Decision {
            allowed: false,
            rule: Some(r.clone()),
        };
    }
    if let Some(r) = live().find(|r| r.effect == Effect::Allow && matches(r)) {
        return Decision {
            allowed: true,
            rule: Some(r.clone()),
        };
    }
    // Expired allow rules still govern: an allow-list whose last entry expired stays closed.
    Decision::default_for(
        rules
            .iter()
            .any(|r| r.effect == Effect::Allow && governs(r)),
    )
}

/// Every policy the config names, indexed by upstream.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    pub groups: Vec<GroupDef>,
    pub rules: Vec<Arc<Rule>>,
    pub scope_requirements: Vec<Arc<ScopeRequirement>>,
    by_upstream: HashMap<String, UpstreamRules>,
}

impl PolicySet {
    /// Indexes `rules` and `scope_requirements` (each with the upstreams it is written for)
    /// by the configured `upstreams`.
    pub fn new(
        groups: Vec<GroupDef>,
        rules: Vec<(Vec<String>, Rule)>,
        scope_requirements: Vec<(Vec<String>, ScopeRequirement)>,
        upstreams: &[UpstreamName],
    ) -> Self {
        let mut by_upstream: HashMap<String, UpstreamRules> = HashMap::new();
        let applies = |names: &[String], u: &UpstreamName| {
            names.iter().any(|n| n == ANY_UPSTREAM || n == u.as_str())
        };
        let mut all_rules = Vec::new();
        for (names, rule) in rules {
            let rule = Arc::new(rule);
            for u in upstreams.iter().filter(|u| applies(&names, u)) {
                let entry = by_upstream.entry(u.to_string()).or_default();
                match rule.is_call_rule() {
                    true => entry.calls.push(rule.clone()),
                    false => entry.access.push(rule.clone()),
                }
            }
            all_rules.push(rule);
        }
        let mut all_requirements = Vec::new();
        for (names, req) in scope_requirements {
            let req = Arc::new(req);
            for u in upstreams.iter().filter(|u| applies(&names, u)) {
                by_upstream
                    .entry(u.to_string())
                    .or_default()
                    .scope_requirements
                    .push(req.clone());
            }
            all_requirements.push(req);
        }
        PolicySet {
            groups,
            rules: all_rules,
            scope_requirements: all_requirements,
            by_upstream,
        }
    }

    /// The rules of `upstream`; `None` when it has none (nothing to evaluate).
    pub fn upstream(&self, upstream: &str) -> Option<&UpstreamRules> {
        self.by_upstream.get(upstream)
    }

    pub fn is_empty(&self) -> bool {
        self.by_upstream.is_empty()
    }
}
