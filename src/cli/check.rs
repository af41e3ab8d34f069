//! `authgate check`: validates a config without touching anything, and prints what it serves.

use std::path::Path;
use std::process::ExitCode;

use crate::config;

pub fn check(path: &Path) -> ExitCode {
    match config::load(path) {
        Ok(c) => {
            print!("{}", summary(path, &c));
            for (upstream, why) in crate::proxy::router::unresolvable(&c) {
                eprintln!(
                    "{}: warning: upstream `{upstream}`: {why}; authgate starts anyway and answers 502 on this route until the name resolves",
                    path.display()
                );
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{}: {} error(s)", path.display(), errors.0.len());
            ExitCode::FAILURE
        }
    }
}

/// What `check` prints for a good config: where it listens and everything it serves.
pub fn summary(path: &Path, c: &config::Config) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "{}: ok", path.display());
    let _ = writeln!(w, "  public URL  {}", c.server.public_url.as_str());
    let listen: Vec<String> = c.server.listen.iter().map(|a| a.to_string()).collect();
    let _ = writeln!(w, "  listen      {}", listen.join(", "));
    if let Some(tls) = &c.server.tls {
        let _ = writeln!(
            w,
            "  tls         {} (HTTP/2 and HTTP/1.1)",
            tls.cert.display()
        );
    }
    let _ = writeln!(w, "  data dir    {}", c.server.data_dir.display());
    let _ = match &c.store {
        crate::config::StoreConfig::Redb => {
            writeln!(w, "  store       redb (authgate.redb in the data dir)")
        }
        // Never the connection string: it may hold a password.
        crate::config::StoreConfig::Postgres(pg) => writeln!(
            w,
            "  store       postgres, schema {}, {} connections per replica (shared by replicas)",
            pg.schema, pg.pool_size
        ),
    };
    let _ = writeln!(w, "  routes      {}", c.upstreams.len());
    for u in &c.upstreams {
        let host = u
            .host
            .as_deref()
            .map(|h| format!(" (host {h})"))
            .unwrap_or_default();
        let scheme = if u.url.tls { "https" } else { "http" };
        let auth = match u.auth {
            config::UpstreamAuth::OAuth if u.scopes.is_empty() => "oauth".to_string(),
            config::UpstreamAuth::OAuth => format!("oauth, scopes {}", u.scopes),
            config::UpstreamAuth::None => "public".to_string(),
        };
        let _ = writeln!(
            w,
            "    {:<28} -> {scheme}://{}{}  [{}] {auth}{host}",
            c.server.public_url.join(u.path.as_str()),
            u.url.authority,
            u.url.rewrite(""),
            u.name,
        );
    }
    if !c.policy.rules.is_empty() || !c.policy.scope_requirements.is_empty() {
        let _ = writeln!(
            w,
            "  policies    {} rule(s), {} group(s), {} tool scope requirement(s)",
            c.policy.rules.len(),
            c.policy.groups.len(),
            c.policy.scope_requirements.len()
        );
    }
    let _ = writeln!(w, "  providers   {}", c.providers.len());
    for p in &c.providers {
        let what = match &p.kind {
            config::ProviderKind::Oidc(o) => format!("oidc, issuer {}", o.issuer),
            config::ProviderKind::GitHub(_) => "github".to_string(),
            config::ProviderKind::Local { users } => format!("local, {} user(s)", users.len()),
        };
        let _ = writeln!(w, "    {:<16} {what}  \"{}\"", p.id, p.display_name);
    }
    let _ = writeln!(w, "  scopes      {}", c.scopes.len());
    for sc in &c.scopes {
        let _ = writeln!(w, "    {:<16} {}", sc.name, sc.description);
    }
    let _ = writeln!(w, "  clients     {}", c.clients.len());
    for cl in &c.clients {
        let kind = if cl.secret.is_some() {
            "confidential"
        } else {
            "public"
        };
        let trusted = if cl.trusted { ", trusted" } else { "" };
        let _ = writeln!(
            w,
            "    {:<16} {kind}{trusted}, redirects {}",
            cl.client_id,
            cl.redirect_uris
                .iter()
                .map(|u| u.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    out
}
