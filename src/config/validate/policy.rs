//! `[policy] files`: reads each policy file and checks it against the config it belongs to
//! (upstreams, providers and scopes must exist; groups named with a role must be declared;
//! a rule that can never match is refused), reporting file, line and rule like the config.

use std::path::{Path, PathBuf};

use toml::Spanned;

use super::Validator;
use crate::config::error::Source;
use crate::config::file::{
    EffectName, GroupSection, PolicyFile, PolicySection, RuleSection, Text, ToolScopesSection,
};
use crate::config::model::{Provider, ScopeDef, Upstream, UpstreamAuth};
use crate::policy::{
    Effect, Glob, GroupDef, GroupRef, Origin, PolicySet, Role, Rule, ScopeRequirement, What, Who,
    ANY_UPSTREAM,
};
use crate::vocab::{Scope, UpstreamName};

impl<E: Fn(&str) -> Option<String>> Validator<'_, E> {
    pub(super) fn policy(
        &mut self,
        section: Option<&Spanned<PolicySection>>,
        config_dir: &Path,
        upstreams: &[Upstream],
        providers: &[Provider],
        scopes: &[ScopeDef],
    ) -> PolicySet {
        let Some(section) = section else {
            return PolicySet::default();
        };
        let mut files = Vec::new();
        for (i, f) in section.get_ref().files.iter().enumerate() {
            let key = format!("policy.files[{i}]");
            let Some(raw) = self.text(f, &key) else {
                continue;
            };
            match policy_files(&lexical(&config_dir.join(raw))) {
                Ok(found) => files.extend(found),
                Err(msg) => self.src.push(f.span(), key, msg),
            }
        }
        let names = |oauth: bool| {
            upstreams
                .iter()
                .filter(|u| (u.auth == UpstreamAuth::OAuth) == oauth)
                .map(|u| u.name.to_string())
                .collect()
        };
        let known = Known {
            upstreams: names(true),
            open: names(false),
            providers: providers.iter().map(|p| p.id.clone()).collect(),
            scopes: scopes.iter().map(|s| s.name.to_string()).collect(),
        };
        let mut loaded = Loaded::default();
        for path in files {
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    self.src.push(
                        section.span(),
                        "policy.files",
                        format!("cannot read {}: {e}", path.display()),
                    );
                    continue;
                }
            };
            let mut src = Source::new(&path, &text);
            read_policy_file(&mut src, &known, &mut loaded);
            self.src.errors.append(&mut src.errors);
        }
        loaded.check_group_refs(&mut self.src.errors);
        let names: Vec<UpstreamName> = upstreams
            .iter()
            .filter(|u| u.auth == UpstreamAuth::OAuth)
            .map(|u| u.name.clone())
            .collect();
        PolicySet::new(loaded.groups, loaded.rules, loaded.requirements, &names)
    }
}

/// `a/b/../c` as `a/c`, so errors and `explain` name files as people find them.
fn lexical(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// A policy file, or the policy files of a folder in name order (`*.test.toml` are tests).
pub fn policy_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".toml") && !name.ends_with(".test.toml")
        })
        .collect();
    found.sort();
    Ok(found)
}

/// Names the config defines, that policies may refer to.
struct Known {
    /// Upstreams that require OAuth: the ones policies can speak about.
    upstreams: Vec<String>,
    /// Upstreams with `auth = "none"`: nobody signs in there, so no rule can apply.
    open: Vec<String>,
    providers: Vec<String>,
    scopes: Vec<String>,
}

/// What every policy file adds up to.
#[derive(Default)]
struct Loaded {
    groups: Vec<GroupDef>,
    rules: Vec<(Vec<String>, Rule)>,
    requirements: Vec<(Vec<String>, ScopeRequirement)>,
    /// Groups named with a role, to check once every file has declared its groups.
    role_refs: Vec<(crate::config::ConfigError, String)>,
}

impl Loaded {
    fn check_group_refs(&mut self, errors: &mut Vec<crate::config::ConfigError>) {
        for (error, group) in self.role_refs.drain(..) {
            if !self.groups.iter().any(|g| g.name == group) {
                errors.push(error);
            }
        }
    }
}

fn read_policy_file(src: &mut Source<'_>, known: &Known, loaded: &mut Loaded) {
    let file: PolicyFile = match toml::from_str(src.text) {
        Ok(f) => f,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let key = src.key_path_at(span.start);
            src.push(span, key, e.message().trim());
            return;
        }
    };
    for (i, g) in file.groups.iter().enumerate() {
        if let Some(group) = group(src, g, &format!("group[{i}]"), &loaded.groups) {
            loaded.groups.push(group);
        }
    }
    for (i, r) in file.rules.iter().enumerate() {
        if let Some(rule) = rule(src, known, r, &format!("rule[{i}]"), loaded) {
            loaded.rules.push(rule);
        }
    }
    for (i, t) in file.tool_scopes.iter().enumerate() {
        if let Some(req) = tool_scopes(src, known, t, &format!("tool_scopes[{i}]")) {
            loaded.requirements.push(req);
        }
    }
}

fn origin(src: &Source<'_>, span: std::ops::Range<usize>) -> Origin {
    Origin {
        file: src.path.to_path_buf(),
        line: src.line_col(span.start).0,
    }
}

/// Lowercased, trimmed values; an empty one is reported.
fn lower(src: &mut Source<'_>, list: &[Text], key: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, v) in list.iter().enumerate() {
        let s = v.get_ref().trim().to_ascii_lowercase();
        if s.is_empty() {
            src.push(v.span(), format!("{key}[{i}]"), "must not be empty");
        } else {
            out.push(s);
        }
    }
    out
}

fn emails(src: &mut Source<'_>, list: &[Text], key: &str) -> Vec<String> {
    let out = lower(src, list, key);
    for (i, (e, v)) in out.iter().zip(list).enumerate() {
        if !e.contains('@') {
            src.push(
                v.span(),
                format!("{key}[{i}]"),
                format!("`{e}` is not an email address (for a whole domain use email_domains)"),
            );
        }
    }
    out
}

fn domains(src: &mut Source<'_>, list: &[Text], key: &str) -> Vec<String> {
    let out: Vec<String> = lower(src, list, key)
        .into_iter()
        .map(|d| d.trim_start_matches('@').to_string())
        .collect();
    for (i, (d, v)) in out.iter().zip(list).enumerate() {
        if d.contains(['@', '/', ' ', ':']) || !d.contains('.') {
            src.push(
                v.span(),
                format!("{key}[{i}]"),
                format!("`{d}` is not an email domain (e.g. \"example.com\")"),
            );
        }
    }
    out
}

fn plain(list: &[Text]) -> Vec<String> {
    list.iter()
        .map(|v| v.get_ref().trim().to_string())
        .collect()
}

fn group(
    src: &mut Source<'_>,
    section: &Spanned<GroupSection>,
    key: &str,
    declared: &[GroupDef],
) -> Option<GroupDef> {
    let g = section.get_ref();
    let Some(name) = &g.name else {
        src.push(section.span(), format!("{key}.name"), "is required");
        return None;
    };
    let n = name.get_ref().trim();
    if n.is_empty() || n.contains([':', ' ']) {
        src.push(
            name.span(),
            format!("{key}.name"),
            "must be a non-empty name without spaces or `:` (`:` introduces a role in rules)",
        );
        return None;
    }
    if let Some(first) = declared.iter().find(|d| d.name == n) {
        src.push(
            name.span(),
            format!("{key}.name"),
            format!("group `{n}` is already declared at {}", first.origin),
        );
        return None;
    }
    let group = GroupDef {
        name: n.to_string(),
        origin: origin(src, section.span()),
        emails: emails(src, &g.emails, &format!("{key}.emails")),
        email_domains: domains(src, &g.email_domains, &format!("{key}.email_domains")),
        provider_groups: plain(&g.provider_groups),
        admins: emails(src, &g.admins, &format!("{key}.admins")),
        owners: emails(src, &g.owners, &format!("{key}.owners")),
    };
    if group.emails.is_empty()
        && group.email_domains.is_empty()
        && group.provider_groups.is_empty()
        && group.admins.is_empty()
        && group.owners.is_empty()
    {
        src.push(
            section.span(),
            key,
            format!("group `{n}` has no members: give emails, email_domains, provider_groups, admins or owners"),
        );
    }
    Some(group)
}

/// `upstreams = [...]`: required, each a configured upstream or `"*"`.
fn upstreams(
    src: &mut Source<'_>,
    known: &Known,
    value: &Option<Spanned<Vec<Text>>>,
    at: std::ops::Range<usize>,
    key: &str,
) -> Option<Vec<String>> {
    let Some(list) = value else {
        src.push(
            at,
            format!("{key}.upstreams"),
            "is required: the upstreams this applies to (or [\"*\"] for all)",
        );
        return None;
    };
    if list.get_ref().is_empty() {
        src.push(list.span(), format!("{key}.upstreams"), "must not be empty");
        return None;
    }
    let mut ok = true;
    for (i, u) in list.get_ref().iter().enumerate() {
        let name = u.get_ref();
        if known.open.iter().any(|k| k == name) {
            ok = false;
            src.push(
                u.span(),
                format!("{key}.upstreams[{i}]"),
                format!("upstream `{name}` has auth = \"none\": nobody signs in there, so no rule can apply"),
            );
        } else if name != ANY_UPSTREAM && !known.upstreams.iter().any(|k| k == name) {
            ok = false;
            src.push(
                u.span(),
                format!("{key}.upstreams[{i}]"),
                format!(
                    "no [[upstream]] is named `{name}` (known: {})",
                    known.upstreams.join(", ")
                ),
            );
        }
    }
    ok.then(|| plain(list.get_ref()))
}

fn scopes(src: &mut Source<'_>, known: &Known, list: &[Text], key: &str) -> Vec<Scope> {
    let mut out = Vec::new();
    for (i, v) in list.iter().enumerate() {
        let k = format!("{key}[{i}]");
        match Scope::parse(v.get_ref()) {
            Ok(s) if known.scopes.iter().any(|n| n == s.as_str()) => out.push(s),
            Ok(s) => src.push(
                v.span(),
                k,
                format!("scope `{s}` is not declared with [[scope]] in the config"),
            ),
            Err(e) => src.push(v.span(), k, e),
        }
    }
    out
}

fn globs(src: &mut Source<'_>, list: &[Text], key: &str) -> Vec<Glob> {
    let mut out = Vec::new();
    for (i, v) in list.iter().enumerate() {
        let s = v.get_ref().trim();
        if s.is_empty() {
            src.push(v.span(), format!("{key}[{i}]"), "must not be empty");
        } else {
            out.push(Glob::new(s));
        }
    }
    out
}

fn rule(
    src: &mut Source<'_>,
    known: &Known,
    section: &Spanned<RuleSection>,
    key: &str,
    loaded: &mut Loaded,
) -> Option<(Vec<String>, Rule)> {
    let r = section.get_ref();
    let at = section.span();
    let name = match &r.name {
        Some(n) if !n.get_ref().trim().is_empty() => n.get_ref().trim().to_string(),
        Some(n) => {
            src.push(n.span(), format!("{key}.name"), "must not be empty");
            return None;
        }
        None => {
            src.push(
                at,
                format!("{key}.name"),
                "is required: `explain` and the logs name the rule that decided",
            );
            return None;
        }
    };
    let key = format!("rule \"{name}\"");
    if let Some((_, first)) = loaded.rules.iter().find(|(_, x)| x.name == name) {
        src.push(
            at.clone(),
            format!("{key}.name"),
            format!("another rule has this name, at {}", first.origin),
        );
    }
    let effect = match &r.effect {
        Some(e) => match e.get_ref() {
            EffectName::Allow => Effect::Allow,
            EffectName::Deny => Effect::Deny,
        },
        None => {
            src.push(
                at.clone(),
                format!("{key}.effect"),
                "is required: \"allow\" or \"deny\"",
            );
            return None;
        }
    };
    let upstreams = upstreams(src, known, &r.upstreams, at.clone(), &key);
    for (i, p) in r.providers.iter().enumerate() {
        if !known.providers.iter().any(|k| k == p.get_ref()) {
            src.push(
                p.span(),
                format!("{key}.providers[{i}]"),
                format!("no [[provider]] has id `{}`", p.get_ref()),
            );
        }
    }
    for (i, u) in r.users.iter().enumerate() {
        if !u.get_ref().contains(':') {
            src.push(
                u.span(),
                format!("{key}.users[{i}]"),
                "a user id is `provider:subject` (as in the X-Authgate-User header); for an email use emails",
            );
        }
    }
    let mut groups = Vec::new();
    for (i, g) in r.groups.iter().enumerate() {
        let raw = g.get_ref().trim();
        match raw.split_once(':') {
            Some((group, role)) => match Role::parse(role) {
                Some(role) => {
                    let e = src.error_at(
                        g.span(),
                        format!("{key}.groups[{i}]"),
                        format!("`{group}` with a role must be declared with [[group]]"),
                    );
                    loaded.role_refs.push((e, group.to_string()));
                    groups.push(GroupRef {
                        name: group.to_string(),
                        role: Some(role),
                    });
                }
                None => src.push(
                    g.span(),
                    format!("{key}.groups[{i}]"),
                    format!("`{role}` is not a role: owner, admin or member"),
                ),
            },
            None => groups.push(GroupRef {
                name: raw.to_string(),
                role: None,
            }),
        }
    }
    let who = Who {
        users: plain(&r.users),
        emails: emails(src, &r.emails, &format!("{key}.emails")),
        email_domains: domains(src, &r.email_domains, &format!("{key}.email_domains")),
        groups,
        providers: plain(&r.providers),
        clients: globs(src, &r.clients, &format!("{key}.clients")),
        scopes: scopes(src, known, &r.scopes, &format!("{key}.scopes")),
        api_keys: plain(&r.api_keys),
    };
    let what = What {
        methods: globs(src, &r.methods, &format!("{key}.methods")),
        tools: globs(src, &r.tools, &format!("{key}.tools")),
        prompts: globs(src, &r.prompts, &format!("{key}.prompts")),
        resources: globs(src, &r.resources, &format!("{key}.resources")),
    };
    // Items are named only by their own method: tools by tools/call, and so on.
    if !what.methods.is_empty() {
        for (field, method, list) in [
            ("tools", "tools/call", &what.tools),
            ("prompts", "prompts/get", &what.prompts),
            ("resources", "resources/read", &what.resources),
        ] {
            if !list.is_empty() && !what.methods.iter().any(|m| m.matches(method)) {
                src.push(
                    at.clone(),
                    format!("{key}.{field}"),
                    format!("can never match: {field} are named only by {method}, which `methods` leaves out"),
                );
            }
        }
    }
    if !who.emails.is_empty() && !who.email_domains.is_empty() {
        let reachable = who.emails.iter().any(|e| {
            e.rsplit_once('@')
                .is_some_and(|(_, d)| who.email_domains.iter().any(|x| x == d))
        });
        if !reachable {
            src.push(
                at.clone(),
                format!("{key}.email_domains"),
                "can never match: no email in `emails` is in one of `email_domains` (both must match)",
            );
        }
    }
    let expires =
        r.expires.as_ref().and_then(
            |e| match humantime::parse_rfc3339(&e.get_ref().to_string()) {
                Ok(t) => Some(
                    t.duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                ),
                Err(_) => {
                    src.push(
                        e.span(),
                        format!("{key}.expires"),
                        "must be a date and time with its offset, e.g. 2027-01-31T00:00:00Z",
                    );
                    None
                }
            },
        );
    let rule = Rule {
        name,
        origin: origin(src, at),
        effect,
        who,
        what,
        expires,
    };
    Some((upstreams?, rule))
}

fn tool_scopes(
    src: &mut Source<'_>,
    known: &Known,
    section: &Spanned<ToolScopesSection>,
    key: &str,
) -> Option<(Vec<String>, ScopeRequirement)> {
    let t = section.get_ref();
    let upstreams = upstreams(src, known, &t.upstreams, section.span(), key);
    if t.tools.is_empty() || t.scopes.is_empty() {
        src.push(
            section.span(),
            key,
            "needs `tools` (globs) and the `scopes` calling them requires",
        );
        return None;
    }
    let req = ScopeRequirement {
        origin: origin(src, section.span()),
        tools: globs(src, &t.tools, &format!("{key}.tools")),
        scopes: scopes(src, known, &t.scopes, &format!("{key}.scopes")),
    };
    Some((upstreams?, req))
}
