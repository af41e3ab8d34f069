//! `authgate policy explain` (what the policies decide for one person, and which rule
//! decided) and `authgate policy test` (cases in `*.test.toml` files, for CI), both on the
//! config and policy files as `check` loads them: nothing runs, nothing is contacted.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde::Deserialize;

use crate::config::{self, Config};
use crate::policy::{Call, Decision, Subject};
use crate::vocab::{unix_now, Identity, ScopeSet};

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// What the policies decide for one person at one upstream, and the rule behind it.
    Explain {
        #[arg(long, short, env = "AUTHGATE_CONFIG")]
        config: PathBuf,
        #[command(flatten)]
        who: Box<Person>,
        /// The upstream (by name).
        #[arg(long)]
        upstream: String,
        #[command(flatten)]
        what: Box<Target>,
    },
    /// Runs the cases of policy test files (`*.test.toml`; a folder: all of them in it).
    Test {
        #[arg(long, short, env = "AUTHGATE_CONFIG")]
        config: PathBuf,
        /// Test files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

/// Who is asking.
#[derive(Debug, Args)]
pub struct Person {
    /// An email address, or a user id `provider:subject`.
    #[arg(long)]
    user: String,
    /// Groups the person's provider reports (comma-separated).
    #[arg(long, value_delimiter = ',')]
    groups: Vec<String>,
    /// The provider they signed in at (default: taken from --user, else the first one).
    #[arg(long)]
    provider: Option<String>,
    /// The OAuth client (a client id or a metadata document URL).
    #[arg(long, default_value = "authgate-cli")]
    client: String,
    /// The granted scopes, space-separated (default: the upstream's).
    #[arg(long)]
    scopes: Option<String>,
}

/// What they call; none: access to the upstream only.
#[derive(Debug, Args)]
pub struct Target {
    #[arg(long, conflicts_with_all = ["prompt", "resource"])]
    tool: Option<String>,
    #[arg(long, conflicts_with = "resource")]
    prompt: Option<String>,
    #[arg(long)]
    resource: Option<String>,
    /// A JSON-RPC method (default: the one that names the tool, prompt or resource).
    #[arg(long)]
    method: Option<String>,
}

pub fn run(command: PolicyCommand) -> ExitCode {
    match command {
        PolicyCommand::Explain {
            config,
            who,
            upstream,
            what,
        } => explain(&config, &who, &upstream, &what),
        PolicyCommand::Test { config, paths } => test(&config, &paths),
    }
}

fn load(path: &Path) -> Option<Config> {
    match config::load(path) {
        Ok(c) => Some(c),
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{}: {} error(s)", path.display(), errors.0.len());
            None
        }
    }
}

/// The person as a token would carry them.
fn identity(config: &Config, user: &str, provider: Option<&str>, groups: &[String]) -> Identity {
    let first = config.providers.first().map_or("local", |p| p.id.as_str());
    let (provider, subject, email) = match user.split_once(':') {
        Some((p, s)) if !user.contains('@') => (provider.unwrap_or(p), s.to_string(), None),
        _ => (
            provider.unwrap_or(first),
            user.to_string(),
            Some(user.into()),
        ),
    };
    Identity {
        provider: provider.to_string(),
        subject,
        email,
        name: None,
        groups: groups.to_vec(),
    }
}

fn scopes(config: &Config, upstream: &str, given: Option<&str>) -> Result<ScopeSet, String> {
    match given {
        Some(s) => ScopeSet::parse(s),
        None => Ok(config
            .upstream(upstream)
            .map(|u| u.scopes.clone())
            .unwrap_or_default()),
    }
}

/// The call a tool, prompt or resource stands for.
fn call_of(t: &Target) -> Option<(String, Option<String>)> {
    let (default, name) = match (&t.tool, &t.prompt, &t.resource) {
        (Some(n), _, _) => ("tools/call", Some(n.clone())),
        (_, Some(n), _) => ("prompts/get", Some(n.clone())),
        (_, _, Some(n)) => ("resources/read", Some(n.clone())),
        _ => ("", None),
    };
    match (&t.method, default) {
        (Some(m), _) => Some((m.clone(), name)),
        (None, "") => None,
        (None, d) => Some((d.to_string(), name)),
    }
}

/// The decisions for one person and (optionally) one call: access first, then tool scopes,
/// then call rules, as the proxy takes them.
struct Outcome {
    memberships: Vec<String>,
    access: Option<Decision>,
    missing_scopes: Vec<String>,
    call: Option<Decision>,
}

impl Outcome {
    fn allowed(&self) -> bool {
        self.access.as_ref().is_none_or(|d| d.allowed)
            && self.missing_scopes.is_empty()
            && self.call.as_ref().is_none_or(|d| d.allowed)
    }

    /// The rule that decided the outcome, if one did.
    fn deciding_rule(&self) -> Option<&str> {
        let last = match (&self.access, &self.call) {
            (Some(a), _) if !a.allowed => Some(a),
            (_, Some(c)) => Some(c),
            (a, None) => a.as_ref(),
        };
        last.and_then(|d| d.rule.as_ref()).map(|r| r.name.as_str())
    }
}

fn evaluate(
    config: &Config,
    identity: &Identity,
    client: &str,
    granted: &ScopeSet,
    upstream: &str,
    call: Option<(&str, Option<&str>)>,
) -> Outcome {
    let policy = &config.policy;
    let who = Subject::new(policy, identity, client, granted);
    let memberships = who
        .memberships
        .iter()
        .map(|(g, r)| format!("{g} ({})", r.as_str()))
        .collect();
    let Some(rules) = policy.upstream(upstream) else {
        return Outcome {
            memberships,
            access: None,
            missing_scopes: Vec::new(),
            call: None,
        };
    };
    let now = unix_now();
    let access = rules.access(&who, now);
    let mut outcome = Outcome {
        memberships,
        access: Some(access),
        missing_scopes: Vec::new(),
        call: None,
    };
    if let Some((method, name)) = call {
        let call = Call { method, name };
        outcome.missing_scopes = rules
            .missing_scopes(call, granted)
            .iter()
            .map(|s| s.to_string())
            .collect();
        outcome.call = Some(rules.call(&who, call, now));
    }
    outcome
}

fn explain(path: &Path, person: &Person, upstream: &str, target: &Target) -> ExitCode {
    let Some(config) = load(path) else {
        return ExitCode::FAILURE;
    };
    if config.upstream(upstream).is_none() {
        eprintln!("{}: no upstream is named `{upstream}`", path.display());
        return ExitCode::FAILURE;
    }
    let id = identity(
        &config,
        &person.user,
        person.provider.as_deref(),
        &person.groups,
    );
    let granted = match scopes(&config, upstream, person.scopes.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("--scopes: {e}");
            return ExitCode::FAILURE;
        }
    };
    let call = call_of(target);
    let call_ref = call.as_ref().map(|(m, n)| (m.as_str(), n.as_deref()));
    let o = evaluate(&config, &id, &person.client, &granted, upstream, call_ref);
    println!("person       {} (provider {})", id.user_id(), id.provider);
    println!(
        "groups       provider: {}; declared: {}",
        list_or_none(&id.groups),
        list_or_none(&o.memberships)
    );
    println!("client       {}", person.client);
    println!("scopes       {}", granted);
    match &o.access {
        None => println!("access       allowed: upstream `{upstream}` has no policy"),
        Some(d) => println!("access       {}", d.explain()),
    }
    if let Some((method, name)) = &call {
        let what = match name {
            Some(n) => format!("{method} `{n}`"),
            None => method.clone(),
        };
        if !o.missing_scopes.is_empty() {
            println!(
                "{what}: needs scopes {} (403 insufficient_scope: the client may step up)",
                o.missing_scopes.join(" ")
            );
        }
        match &o.call {
            Some(d) => println!("{what}: {}", d.explain()),
            None => println!("{what}: allowed: no policy"),
        }
    }
    println!(
        "decision     {}",
        if o.allowed() { "ALLOW" } else { "DENY" }
    );
    ExitCode::SUCCESS
}

fn list_or_none(list: &[String]) -> String {
    match list.is_empty() {
        true => "none".into(),
        false => list.join(", "),
    }
}

/// A policy test file: `[[case]]`s.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default, rename = "case")]
    cases: Vec<toml::Spanned<Case>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    /// An email, or `provider:subject`.
    user: String,
    provider: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    client: Option<String>,
    /// Space-separated; default: the upstream's scopes.
    scopes: Option<String>,
    upstream: String,
    method: Option<String>,
    tool: Option<String>,
    prompt: Option<String>,
    resource: Option<String>,
    expect: Expect,
    /// The rule expected to decide (by name).
    rule: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Expect {
    Allow,
    Deny,
}

impl Expect {
    fn as_str(self) -> &'static str {
        match self {
            Expect::Allow => "allow",
            Expect::Deny => "deny",
        }
    }
}

fn test_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.to_string_lossy().ends_with(".test.toml"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    if files.is_empty() {
        return Err("no *.test.toml files found".into());
    }
    Ok(files)
}

fn test(path: &Path, paths: &[PathBuf]) -> ExitCode {
    let Some(config) = load(path) else {
        return ExitCode::FAILURE;
    };
    let files = match test_files(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let (mut passed, mut failed) = (0, 0);
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                return ExitCode::FAILURE;
            }
        };
        let cases: TestFile = match toml::from_str(&text) {
            Ok(c) => c,
            Err(e) => {
                let line = e
                    .span()
                    .map_or(0, |s| text[..s.start].matches('\n').count() + 1);
                eprintln!("{}:{line}: {}", file.display(), e.message().trim());
                return ExitCode::FAILURE;
            }
        };
        for case in &cases.cases {
            let line = text[..case.span().start].matches('\n').count() + 1;
            let at = format!("{}:{line}", file.display());
            match run_case(&config, case.get_ref()) {
                Ok(()) => {
                    passed += 1;
                    println!("ok    {} ({at})", case.get_ref().name);
                }
                Err(why) => {
                    failed += 1;
                    println!("FAIL  {} ({at}): {why}", case.get_ref().name);
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    match failed {
        0 if passed > 0 => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

fn run_case(config: &Config, case: &Case) -> Result<(), String> {
    if config.upstream(&case.upstream).is_none() {
        return Err(format!("no upstream is named `{}`", case.upstream));
    }
    let id = identity(config, &case.user, case.provider.as_deref(), &case.groups);
    let granted = scopes(config, &case.upstream, case.scopes.as_deref())?;
    let target = Target {
        tool: case.tool.clone(),
        prompt: case.prompt.clone(),
        resource: case.resource.clone(),
        method: case.method.clone(),
    };
    let call = call_of(&target);
    let call_ref = call.as_ref().map(|(m, n)| (m.as_str(), n.as_deref()));
    let client = case.client.as_deref().unwrap_or("authgate-cli");
    let o = evaluate(config, &id, client, &granted, &case.upstream, call_ref);
    let got = if o.allowed() {
        Expect::Allow
    } else {
        Expect::Deny
    };
    let describe = |o: &Outcome| {
        let mut parts = Vec::new();
        if let Some(a) = &o.access {
            parts.push(format!("access {}", a.explain()));
        }
        if !o.missing_scopes.is_empty() {
            parts.push(format!("missing scopes {}", o.missing_scopes.join(" ")));
        }
        if let Some(c) = &o.call {
            parts.push(format!("call {}", c.explain()));
        }
        parts.join("; ")
    };
    if got != case.expect {
        return Err(format!(
            "expected {}, got {}: {}",
            case.expect.as_str(),
            got.as_str(),
            describe(&o)
        ));
    }
    if let Some(want) = &case.rule {
        if o.deciding_rule() != Some(want.as_str()) {
            return Err(format!(
                "decided as expected, but not by rule \"{want}\": {}",
                describe(&o)
            ));
        }
    }
    Ok(())
}
