//! Commands that talk to a running gateway's admin API (`[admin]` in its config): `reload`,
//! `diagnose` and `admin …`. Text for people by default, the API's JSON with `--json`.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::block_on;
use serde_json::Value;

#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The running gateway's admin listener.
    #[arg(
        long,
        env = "AUTHGATE_ADMIN_URL",
        default_value = "http://127.0.0.1:9090"
    )]
    pub admin_url: String,
    /// Its admin token (`admin.token` in its config).
    #[arg(long, env = "AUTHGATE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Print the admin API's JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Record counts and the store file's size.
    Stats,
    /// Dynamically registered clients.
    Clients,
    /// One registered client.
    Client { client_id: String },
    /// Delete a registered client and revoke its grants.
    DeleteClient { client_id: String },
    /// Grants (a person's authorization of a client for an upstream), optionally filtered.
    Grants {
        /// `provider:subject`, e.g. `corp:alice`.
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        client: Option<String>,
    },
    /// Revoke a grant and every token it issued, at once.
    Revoke { grant_id: String },
    /// People who signed in: provider, last login, whether blocked.
    Users,
    /// Refuse a person everywhere at once (`provider:subject`), existing tokens included.
    Block { user: String },
    /// Lift a block.
    Unblock { user: String },
    /// Write a consistent copy of the store to FILE (on the gateway's machine; it must not
    /// exist yet). Restore with `authgate restore`.
    Backup { file: PathBuf },
    /// Connect an upstream's service account (`kind = "connected_account"`): prints the URL
    /// to open and sign in at the service; authgate keeps the refresh token, sealed.
    Connect { upstream: String },
    /// Upstreams with a connected account, and who each is connected as.
    Connections,
    /// Forget an upstream's connected account (with --person, that person's own account).
    Disconnect {
        upstream: String,
        /// A person's user id (`provider:subject`, as `admin connections` lists them).
        #[arg(long)]
        person: Option<String>,
    },
    /// Make a new key for the signed identity assertions; the old one stays in the JWKS
    /// until every assertion it signed has expired.
    RotateSigningKey,
    /// API keys for machines: list, create (the key is printed once), revoke.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Every key: name, owner, upstreams, scopes, expiry, last use (never the key).
    List,
    /// Create a key; prints it once (only its sha256 is kept).
    Create {
        /// Unique name ([a-z0-9_-]); policies name it (`api_keys = ["NAME"]`), upstreams
        /// see `key:NAME` as the user.
        #[arg(long)]
        name: String,
        /// Who answers for it (e.g. an email).
        #[arg(long)]
        owner: String,
        /// An upstream it is good for (repeat for several).
        #[arg(long = "upstream", required = true)]
        upstreams: Vec<String>,
        /// Space-separated scopes (default: what its upstreams require).
        #[arg(long)]
        scopes: Option<String>,
        /// Lifetime, e.g. "90d" (default: until revoked).
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// Revoke a key: refused from the next request on.
    Revoke { name: String },
}

/// One request to the admin API; the JSON answer, or a message to print.
async fn call(
    c: &Connection,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<(reqwest::StatusCode, Value), String> {
    let token = c
        .admin_token
        .as_deref()
        .ok_or("the admin token is needed: --admin-token or AUTHGATE_ADMIN_TOKEN")?;
    let url = format!("{}{path}", c.admin_url.trim_end_matches('/'));
    let mut req = reqwest::Client::new()
        .request(method, &url)
        .bearer_auth(token)
        .timeout(std::time::Duration::from_secs(60));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req
        .send()
        .await
        .map_err(|e| format!("cannot reach the admin API at {url}: {e}"))?;
    let status = r.status();
    let value = r
        .json::<Value>()
        .await
        .map_err(|e| format!("{url}: not a JSON answer ({status}): {e}"))?;
    Ok((status, value))
}

/// Prints the answer (`text` renders a successful one for people) and the exit code.
fn finish(
    c: &Connection,
    answer: Result<(reqwest::StatusCode, Value), String>,
    text: impl Fn(&Value) -> String,
) -> ExitCode {
    match answer {
        Err(msg) => {
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
        Ok((status, v)) if c.json => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            if status.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Ok((status, v)) if status.is_success() => {
            print!("{}", text(&v));
            ExitCode::SUCCESS
        }
        Ok((status, v)) => {
            let msg = v["error"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            eprintln!("{status}: {msg}");
            ExitCode::FAILURE
        }
    }
}

pub fn reload(c: &Connection) -> ExitCode {
    let answer = block_on(call(c, reqwest::Method::POST, "/admin/reload", None));
    if let Ok((_, v)) = &answer {
        if v["ok"] == false && !c.json {
            for e in v["errors"].as_array().into_iter().flatten() {
                eprintln!("{}", e.as_str().unwrap_or_default());
            }
            eprintln!("reload refused: the running config stays");
            return ExitCode::FAILURE;
        }
    }
    finish(c, answer, |v| {
        let mut out = String::from("reloaded\n");
        for w in v["warnings"].as_array().into_iter().flatten() {
            let _ = writeln!(out, "  warning: {}", w.as_str().unwrap_or_default());
        }
        let changes = v["changes"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if changes.is_empty() {
            out.push_str("  no change\n");
        }
        for ch in changes {
            let _ = writeln!(out, "  {}", ch.as_str().unwrap_or_default());
        }
        out
    })
}

pub fn diagnose(c: &Connection, client: Option<&str>, ip: Option<IpAddr>) -> ExitCode {
    let query = match (client, ip) {
        (Some(id), _) => format!(
            "?client={}",
            percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
        ),
        (None, Some(ip)) => format!("?ip={ip}"),
        (None, None) => String::new(),
    };
    let answer = block_on(call(
        c,
        reqwest::Method::GET,
        &format!("/admin/diagnose{query}"),
        None,
    ));
    finish(c, answer, |v| {
        let attempts = v.as_array().map(Vec::as_slice).unwrap_or_default();
        if attempts.is_empty() {
            return "no attempts recorded (they are kept in memory, for the last 1000 attempts)\n"
                .into();
        }
        let mut out = String::new();
        for (n, a) in attempts.iter().enumerate() {
            let who = a["client_id"].as_str().unwrap_or("unknown client");
            let from = a["address"].as_str().unwrap_or("?");
            let _ = writeln!(out, "attempt {} — {who} from {from}", n + 1);
            for s in a["steps"].as_array().into_iter().flatten() {
                let mark = if s["ok"] == true { "ok  " } else { "FAIL" };
                let step = s["step"].as_str().unwrap_or("?").replace('_', " ");
                let detail = s["detail"]
                    .as_str()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default();
                let _ = writeln!(out, "  {mark} {} {step}{detail}", time(&s["at"]));
            }
            let last = a["steps"].as_array().and_then(|s| s.last());
            match last {
                Some(s) if s["ok"] == false => {
                    let _ = writeln!(
                        out,
                        "  → stopped at {}",
                        s["step"].as_str().unwrap_or("?").replace('_', " ")
                    );
                }
                Some(s) if s["step"] == "call" => out.push_str("  → connected\n"),
                Some(s) => {
                    let _ = writeln!(
                        out,
                        "  → nothing after {}",
                        s["step"].as_str().unwrap_or("?").replace('_', " ")
                    );
                }
                None => {}
            }
        }
        out
    })
}

fn time(v: &Value) -> String {
    let secs = v.as_u64().unwrap_or(0);
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .to_string()
}

fn time_or_never(v: &Value) -> String {
    match v.is_null() {
        true => "never".into(),
        false => time(v),
    }
}

pub fn run(c: &Connection, command: AdminCommand) -> ExitCode {
    use reqwest::Method;
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let (method, path, body) = match &command {
        AdminCommand::Stats => (Method::GET, "/admin/stats".to_string(), None),
        AdminCommand::Clients => (Method::GET, "/admin/clients".into(), None),
        AdminCommand::Client { client_id } => (
            Method::GET,
            format!("/admin/clients/{}", enc(client_id)),
            None,
        ),
        AdminCommand::DeleteClient { client_id } => (
            Method::DELETE,
            format!("/admin/clients/{}", enc(client_id)),
            None,
        ),
        AdminCommand::Grants { user, client } => {
            let mut q = form_urlencoded::Serializer::new(String::new());
            if let Some(u) = user {
                q.append_pair("user", u);
            }
            if let Some(cl) = client {
                q.append_pair("client", cl);
            }
            (Method::GET, format!("/admin/grants?{}", q.finish()), None)
        }
        AdminCommand::Revoke { grant_id } => (
            Method::DELETE,
            format!("/admin/grants/{}", enc(grant_id)),
            None,
        ),
        AdminCommand::Users => (Method::GET, "/admin/users".into(), None),
        AdminCommand::Block { user } => (
            Method::PUT,
            format!("/admin/users/{}/blocked", enc(user)),
            None,
        ),
        AdminCommand::Unblock { user } => (
            Method::DELETE,
            format!("/admin/users/{}/blocked", enc(user)),
            None,
        ),
        AdminCommand::Backup { file } => {
            let path = std::path::absolute(file).unwrap_or_else(|_| file.clone());
            (
                Method::POST,
                "/admin/backup".into(),
                Some(serde_json::json!({"path": path})),
            )
        }
        AdminCommand::RotateSigningKey => (Method::POST, "/admin/signing-key/rotate".into(), None),
        AdminCommand::Connect { upstream } => (
            Method::POST,
            format!("/admin/connections/{}", enc(upstream)),
            None,
        ),
        AdminCommand::Connections => (Method::GET, "/admin/connections".into(), None),
        AdminCommand::Disconnect { upstream, person } => (
            Method::DELETE,
            match person {
                Some(p) => format!("/admin/connections/{}?person={}", enc(upstream), enc(p)),
                None => format!("/admin/connections/{}", enc(upstream)),
            },
            None,
        ),
        AdminCommand::Keys(KeysCommand::List) => (Method::GET, "/admin/keys".into(), None),
        AdminCommand::Keys(KeysCommand::Create {
            name,
            owner,
            upstreams,
            scopes,
            expires_in,
        }) => (
            Method::POST,
            "/admin/keys".into(),
            Some(serde_json::json!({
                "name": name,
                "owner": owner,
                "upstreams": upstreams,
                "scopes": scopes,
                "expires_in": expires_in,
            })),
        ),
        AdminCommand::Keys(KeysCommand::Revoke { name }) => {
            (Method::DELETE, format!("/admin/keys/{}", enc(name)), None)
        }
    };
    let answer = block_on(call(c, method, &path, body));
    finish(c, answer, |v| render(&command, v))
}

/// Text for people.
fn render(command: &AdminCommand, v: &Value) -> String {
    let mut out = String::new();
    let list = v.as_array().map(Vec::as_slice).unwrap_or_default();
    let s = |v: &Value| v.as_str().unwrap_or("-").to_string();
    match command {
        AdminCommand::Stats => {
            for (k, n) in v.as_object().into_iter().flatten() {
                let _ = writeln!(out, "{k:<16} {n}");
            }
        }
        AdminCommand::Clients => {
            let _ = writeln!(out, "{} registered client(s)", list.len());
            for c in list {
                let _ = writeln!(
                    out,
                    "  {:<28} {:<28} {}",
                    s(&c["client_id"]),
                    s(&c["client_name"]),
                    s(&c["token_endpoint_auth_method"])
                );
            }
        }
        AdminCommand::Grants { .. } => {
            let _ = writeln!(out, "{} grant(s)", list.len());
            for g in list {
                let _ = writeln!(
                    out,
                    "  {:<24} {:<24} {:<28} {:<12} {}",
                    s(&g["grant_id"]),
                    s(&g["user"]),
                    s(&g["client_id"]),
                    s(&g["upstream"]),
                    s(&g["scopes"])
                );
            }
        }
        AdminCommand::Users => {
            let _ = writeln!(out, "{} user(s)", list.len());
            for u in list {
                let blocked = if u["blocked_since"].is_null() {
                    ""
                } else {
                    "  BLOCKED"
                };
                let _ = writeln!(
                    out,
                    "  {:<32} {:<28} last login {}  ({} logins){blocked}",
                    s(&u["user_id"]),
                    s(&u["email"]),
                    time(&u["last_login"]),
                    u["logins"]
                );
            }
        }
        AdminCommand::Keys(KeysCommand::List) => {
            let _ = writeln!(out, "{} API key(s)", list.len());
            for k in list {
                let upstreams: Vec<String> = k["upstreams"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(s)
                    .collect();
                let _ = writeln!(
                    out,
                    "  {:<20} {:<28} {:<20} {:<16} expires {}  last used {}",
                    s(&k["name"]),
                    s(&k["owner"]),
                    upstreams.join(","),
                    s(&k["scopes"]),
                    time_or_never(&k["expires_at"]),
                    time_or_never(&k["last_used_at"])
                );
            }
        }
        AdminCommand::Keys(KeysCommand::Create { .. }) => {
            let _ = writeln!(out, "{}", s(&v["key"]));
            eprintln!(
                "API key `{}` created; it is shown this once (authgate keeps only its sha256). Send it as Authorization: Bearer <key>.",
                s(&v["name"])
            );
        }
        AdminCommand::Connect { .. } => {
            let _ = writeln!(out, "{}", s(&v["authorize_url"]));
            eprintln!(
                "Open this URL and sign in with the service account; it is valid for ten minutes."
            );
        }
        AdminCommand::Connections => {
            for c in list {
                let status = match c["connected_as"].as_str() {
                    Some(who) => format!("connected as {who} since {}", time(&c["connected_at"])),
                    None => "not connected".to_string(),
                };
                let whose = c["person"].as_str().unwrap_or("(service account)");
                let _ = writeln!(out, "  {:<20} {:<28} {status}", s(&c["upstream"]), whose);
            }
        }
        AdminCommand::RotateSigningKey => {
            let _ = writeln!(
                out,
                "new signing key {}; the previous one stays published until {}",
                s(&v["kid"]),
                time(&v["previous_published_until"])
            );
        }
        AdminCommand::Backup { .. } => {
            let _ = writeln!(
                out,
                "backup written to {} ({} bytes)",
                s(&v["path"]),
                v["stats"]["file_bytes"]
            );
        }
        _ if v["done"].is_string() => {
            let _ = writeln!(out, "{}", s(&v["done"]));
        }
        _ => {
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(v).unwrap_or_default()
            );
        }
    }
    out
}
