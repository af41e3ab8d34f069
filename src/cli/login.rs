//! `authgate login URL`, `authgate token URL`, `authgate logout URL`: what an MCP client does,
//! for people at a terminal and for scripts. `login` discovers the authorization server from
//! the MCP server's 401 (RFC 9728, RFC 8414), runs authorization code + PKCE as a
//! first-party public client with a loopback redirect on a free port (RFC 8252), and keeps
//! the tokens per server URL in a file only its owner can read. `token` prints a valid access
//! token, refreshing it first when it is near expiry, one refresh at a time (the file is
//! locked, so concurrent scripts share one rotation); `logout` revokes and forgets.

use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::block_on;
use crate::crypto::{random_secret, sha256_b64url};

/// Refresh when the access token has less than this left.
const REFRESH_MARGIN: u64 = 60;
/// How long `login` waits for the browser to come back.
const LOGIN_WAIT: Duration = Duration::from_secs(300);

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The MCP server's URL at the gateway, e.g. https://gw.example.com/mcp.
    url: String,
    /// The pre-registered public client to log in as.
    #[arg(long, default_value = "authgate-cli")]
    client_id: String,
    /// Do not try to open a browser; only print the URL.
    #[arg(long)]
    no_browser: bool,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The MCP server's URL, as given to `login`.
    url: String,
    /// Refresh first unless the token stays valid at least this many seconds.
    #[arg(long, default_value_t = REFRESH_MARGIN)]
    min_valid: u64,
}

/// The tokens of one server URL, as kept in the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Saved {
    client_id: String,
    token_endpoint: String,
    revocation_endpoint: Option<String>,
    access_token: String,
    /// Unix seconds.
    expires_at: u64,
    refresh_token: Option<String>,
}

/// `$AUTHGATE_TOKENS`, else `$XDG_CONFIG_HOME/authgate/tokens.json`, else
/// `~/.config/authgate/tokens.json`.
fn tokens_file() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("AUTHGATE_TOKENS") {
        return Ok(PathBuf::from(p));
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(std::env::var_os("HOME").ok_or("HOME is not set")?).join(".config"),
    };
    Ok(base.join("authgate").join("tokens.json"))
}

/// The tokens file, opened for reading and writing (0600, its folder 0700) and locked
/// exclusively until dropped: one `login`, `token` or `logout` at a time.
fn open_locked() -> Result<(std::fs::File, BTreeMap<String, Saved>), String> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let path = tokens_file()?;
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.lock()
        .map_err(|e| format!("locking {}: {e}", path.display()))?;
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let saved = match text.trim().is_empty() {
        true => BTreeMap::new(),
        false => serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a tokens file: {e}", path.display()))?,
    };
    Ok((file, saved))
}

fn save(file: &mut std::fs::File, saved: &BTreeMap<String, Saved>) -> Result<(), String> {
    let text = serde_json::to_vec_pretty(saved).expect("serializes");
    file.set_len(0)
        .and_then(|_| file.rewind())
        .and_then(|_| file.write_all(&text))
        .and_then(|_| file.sync_all())
        .map_err(|e| format!("writing the tokens file: {e}"))
}

fn now() -> u64 {
    crate::vocab::unix_now()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client")
}

fn done(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn json(r: reqwest::RequestBuilder, what: &str) -> Result<Value, String> {
    let r = r.send().await.map_err(|e| format!("{what}: {e}"))?;
    let status = r.status();
    let v: Value = r
        .json()
        .await
        .map_err(|e| format!("{what}: not JSON ({status}): {e}"))?;
    if !status.is_success() {
        return Err(format!("{what}: {status}: {v}"));
    }
    Ok(v)
}

/// What discovery found: the authorization server's endpoints and the scopes to ask for.
struct Discovered {
    authorization_endpoint: String,
    token_endpoint: String,
    revocation_endpoint: Option<String>,
    scope: Option<String>,
}

/// The 401's `resource_metadata` → the protected resource metadata → its authorization
/// server's metadata.
async fn discover(http: &reqwest::Client, url: &str) -> Result<Discovered, String> {
    let r = http
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let challenge = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            format!(
                "{url} answered {} without a WWW-Authenticate challenge: is it an OAuth route of an authgate?",
                r.status()
            )
        })?
        .to_string();
    let param = |name: &str| {
        let start = challenge.find(&format!("{name}=\""))? + name.len() + 2;
        let end = challenge[start..].find('"')? + start;
        Some(challenge[start..end].to_string())
    };
    let prm_url = param("resource_metadata").ok_or("the challenge names no resource_metadata")?;
    let prm = json(http.get(&prm_url), "protected resource metadata").await?;
    let issuer = prm["authorization_servers"][0]
        .as_str()
        .ok_or("the resource metadata names no authorization server")?;
    let as_url = format!(
        "{}/.well-known/oauth-authorization-server",
        issuer.trim_end_matches('/')
    );
    let meta = json(http.get(&as_url), "authorization server metadata").await?;
    let field = |k: &str| meta[k].as_str().map(str::to_string);
    Ok(Discovered {
        authorization_endpoint: field("authorization_endpoint")
            .ok_or("no authorization_endpoint")?,
        token_endpoint: field("token_endpoint").ok_or("no token_endpoint")?,
        revocation_endpoint: field("revocation_endpoint"),
        scope: param("scope"),
    })
}

/// Waits for the browser's one request to the loopback redirect; returns its query.
async fn callback(listener: tokio::net::TcpListener) -> Result<String, String> {
    loop {
        let (mut stream, _) = listener
            .accept()
            .await
            .map_err(|e| format!("loopback redirect: {e}"))?;
        let mut buf = vec![0u8; 8192];
        let n = stream.read(&mut buf).await.unwrap_or(0);
        let head = String::from_utf8_lossy(&buf[..n]);
        let target = head.split_whitespace().nth(1).unwrap_or("");
        let Some(query) = target.strip_prefix("/callback?").map(str::to_string) else {
            // A favicon request or a stray connection: not ours.
            let _ = stream
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
            continue;
        };
        let page = "<!doctype html><meta charset=utf-8><title>authgate</title><p>Signed in. You can close this window and go back to the terminal.</p>";
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
            page.len()
        );
        let _ = stream.write_all(reply.as_bytes()).await;
        return Ok(query);
    }
}

fn open_browser(url: &str) {
    let candidates: Vec<String> = match std::env::var("BROWSER") {
        Ok(b) if !b.is_empty() => vec![b],
        _ => vec!["xdg-open".into(), "open".into()],
    };
    for program in candidates {
        let spawned = std::process::Command::new(&program)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if spawned.is_ok() {
            return;
        }
    }
}

pub fn login(args: &LoginArgs) -> ExitCode {
    done(block_on(login_async(args)))
}

async fn login_async(args: &LoginArgs) -> Result<(), String> {
    let http = http();
    let url = args.url.trim_end_matches('/').to_string();
    let found = discover(&http, &url).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("a loopback port for the redirect: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");
    let verifier = random_secret("");
    let challenge = sha256_b64url(verifier.as_bytes());
    let state = random_secret("");
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", &args.client_id)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", &state)
        .append_pair("resource", &url);
    if let Some(scope) = &found.scope {
        q.append_pair("scope", scope);
    }
    let authorize = format!("{}?{}", found.authorization_endpoint, q.finish());
    eprintln!("Sign in in your browser; if it did not open, open this URL:\n\n  {authorize}\n");
    if !args.no_browser {
        open_browser(&authorize);
    }
    let query = tokio::time::timeout(LOGIN_WAIT, callback(listener))
        .await
        .map_err(|_| "no answer from the browser within 5 minutes".to_string())??;
    let params: BTreeMap<String, String> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    if let Some(e) = params.get("error") {
        let why = params.get("error_description").map_or("", String::as_str);
        return Err(format!("the sign-in was refused: {e} {why}"));
    }
    if params.get("state") != Some(&state) {
        return Err("the redirect's state does not match this login; nothing was saved".into());
    }
    let code = params.get("code").ok_or("the redirect carries no code")?;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", verifier.as_str()),
        ("client_id", args.client_id.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
        ("resource", url.as_str()),
    ];
    let t = json(http.post(&found.token_endpoint).form(&form), "token").await?;
    let saved = saved_from(&t, &args.client_id, &found)?;
    let (mut file, mut all) = open_locked()?;
    all.insert(url.clone(), saved);
    save(&mut file, &all)?;
    eprintln!("Signed in to {url}; `authgate token {url}` prints an access token.");
    Ok(())
}

fn saved_from(t: &Value, client_id: &str, found: &Discovered) -> Result<Saved, String> {
    Ok(Saved {
        client_id: client_id.to_string(),
        token_endpoint: found.token_endpoint.clone(),
        revocation_endpoint: found.revocation_endpoint.clone(),
        access_token: t["access_token"]
            .as_str()
            .ok_or("the token response has no access_token")?
            .to_string(),
        expires_at: now() + t["expires_in"].as_u64().unwrap_or(3600),
        refresh_token: t["refresh_token"].as_str().map(str::to_string),
    })
}

pub fn token(args: &TokenArgs) -> ExitCode {
    done(block_on(token_async(args)))
}

async fn token_async(args: &TokenArgs) -> Result<(), String> {
    let url = args.url.trim_end_matches('/').to_string();
    // Held until the end: a second `token` waits here and then finds the fresh token.
    let (mut file, mut all) = open_locked()?;
    let saved = all
        .get(&url)
        .cloned()
        .ok_or_else(|| format!("not signed in to {url}: run `authgate login {url}`"))?;
    if saved.expires_at > now() + args.min_valid {
        println!("{}", saved.access_token);
        return Ok(());
    }
    let refresh = saved.refresh_token.as_deref().ok_or_else(|| {
        format!("the access token for {url} has expired and there is no refresh token: run `authgate login {url}`")
    })?;
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh),
        ("client_id", saved.client_id.as_str()),
        ("resource", url.as_str()),
    ];
    let t = json(http().post(&saved.token_endpoint).form(&form), "refresh")
        .await
        .map_err(|e| format!("{e}\nrun `authgate login {url}` again"))?;
    let found = Discovered {
        authorization_endpoint: String::new(),
        token_endpoint: saved.token_endpoint.clone(),
        revocation_endpoint: saved.revocation_endpoint.clone(),
        scope: None,
    };
    let mut fresh = saved_from(&t, &saved.client_id, &found)?;
    if fresh.refresh_token.is_none() {
        fresh.refresh_token = saved.refresh_token.clone();
    }
    println!("{}", fresh.access_token);
    all.insert(url, fresh);
    save(&mut file, &all)
}

pub fn logout(args: &TokenArgs) -> ExitCode {
    done(block_on(logout_async(args)))
}

async fn logout_async(args: &TokenArgs) -> Result<(), String> {
    let url = args.url.trim_end_matches('/').to_string();
    let (mut file, mut all) = open_locked()?;
    let Some(saved) = all.remove(&url) else {
        eprintln!("not signed in to {url}");
        return Ok(());
    };
    // Revoking the refresh token revokes the whole grant (its access tokens too).
    if let (Some(endpoint), Some(token)) = (&saved.revocation_endpoint, &saved.refresh_token) {
        let form = [
            ("token", token.as_str()),
            ("token_type_hint", "refresh_token"),
            ("client_id", saved.client_id.as_str()),
        ];
        if let Err(e) = http().post(endpoint).form(&form).send().await {
            eprintln!("warning: could not revoke at {endpoint}: {e}; forgetting the tokens anyway");
        }
    }
    save(&mut file, &all)?;
    eprintln!("Signed out of {url}.");
    Ok(())
}
