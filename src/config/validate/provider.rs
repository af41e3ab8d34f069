//! `[[provider]]`: who people sign in with. OIDC issuers (and the Google and Microsoft
//! presets), GitHub, and local users with argon2 hashes. Each is resolved once into the
//! settings its login code needs, callback URL included.

use std::time::Duration;

use toml::Spanned;

use super::Validator;
use crate::config::file::{ProviderKindName, ProviderSection, UserSection};
use crate::config::model::{
    GitHubSettings, LocalUser, OidcSettings, Provider, ProviderKind, PublicUrl,
};
use crate::vocab::{is_loopback_host, Secret, UpstreamName};

const DEFAULT_REVERIFY: Duration = Duration::from_secs(3600);

impl<E: Fn(&str) -> Option<String>> Validator<'_, E> {
    pub(super) fn providers(
        &mut self,
        sections: &[Spanned<ProviderSection>],
        public_url: Option<&PublicUrl>,
    ) -> Vec<Provider> {
        let mut out: Vec<Provider> = Vec::new();
        for (i, section) in sections.iter().enumerate() {
            let p = section.get_ref();
            let key = |k: &str| format!("provider[{i}].{k}");
            let at = section.span();
            let Some(raw_id) = self.present(&p.id, &key("id"), at.clone()) else {
                continue;
            };
            // Provider ids follow the upstream name rules: they appear in URLs and user ids.
            let Some(id) = self.parsed(raw_id, &key("id"), |s| {
                UpstreamName::parse(s).map(|n| n.as_str().to_string())
            }) else {
                continue;
            };
            if id == crate::policy::KEY_PROVIDER {
                self.src.push(
                    raw_id.span(),
                    key("id"),
                    "`key` is reserved: API keys stand for the people `key:<name>`",
                );
                continue;
            }
            if out.iter().any(|o| o.id == id) {
                self.src.push(
                    raw_id.span(),
                    key("id"),
                    format!("provider `{id}` is defined twice"),
                );
                continue;
            }
            let Some(kind_name) = p.kind.as_ref().map(|k| *k.get_ref()) else {
                self.src.push(at, key("kind"), "is required");
                continue;
            };
            let redirect_uri = public_url
                .map(|u| u.join(&format!("/callback/{id}")))
                .unwrap_or_default();
            let kind = match kind_name {
                ProviderKindName::Oidc | ProviderKindName::Google | ProviderKindName::Microsoft => {
                    self.oidc(p, i, kind_name, &at, redirect_uri)
                }
                ProviderKindName::Github => self.github(p, i, &at, redirect_uri),
                ProviderKindName::Local => self.local(p, i, &at),
            };
            let oidc_like = matches!(
                kind_name,
                ProviderKindName::Oidc | ProviderKindName::Google | ProviderKindName::Microsoft
            );
            if let (Some(v), false) = (&p.groups_claim, oidc_like) {
                self.src.push(
                    v.span(),
                    key("groups_claim"),
                    "only OIDC providers (oidc, google, microsoft) have claims",
                );
            }
            if p.teams && kind_name != ProviderKindName::Github {
                self.src
                    .push(at.clone(), key("teams"), "only GitHub providers have teams");
            }
            let Some(kind) = kind else { continue };
            let default_name = match kind_name {
                ProviderKindName::Oidc => "Single sign-on",
                ProviderKindName::Google => "Google",
                ProviderKindName::Microsoft => "Microsoft",
                ProviderKindName::Github => "GitHub",
                ProviderKindName::Local => "Local account",
            };
            let display_name = self
                .opt_text(&p.display_name, &key("display_name"))
                .unwrap_or_else(|| default_name.to_string());
            let reverify_every = p.reverify_every.as_ref().map(|_| {
                self.duration(&p.reverify_every, &key("reverify_every"), DEFAULT_REVERIFY)
            });
            out.push(Provider {
                id,
                display_name,
                kind,
                reverify_every,
            });
        }
        out
    }

    fn oidc(
        &mut self,
        p: &ProviderSection,
        i: usize,
        kind: ProviderKindName,
        at: &std::ops::Range<usize>,
        redirect_uri: String,
    ) -> Option<ProviderKind> {
        let key = |k: &str| format!("provider[{i}].{k}");
        let issuer = match kind {
            ProviderKindName::Google => Some("https://accounts.google.com".to_string()),
            ProviderKindName::Microsoft => self
                .required(
                    &p.tenant,
                    &key("tenant"),
                    at.clone(),
                    "for kind = \"microsoft\" (your directory's tenant id)",
                )
                .map(|t| format!("https://login.microsoftonline.com/{t}/v2.0")),
            _ => match &p.issuer {
                None => {
                    self.src
                        .push(at.clone(), key("issuer"), "is required for kind = \"oidc\"");
                    None
                }
                Some(v) => self.parsed(v, &key("issuer"), issuer),
            },
        };
        let client_id = self.required(
            &p.client_id,
            &key("client_id"),
            at.clone(),
            "for OIDC providers",
        );
        let client_secret = self.required(
            &p.client_secret,
            &key("client_secret"),
            at.clone(),
            "for OIDC providers (use \"${ENV_VAR}\")",
        );
        let scopes = match &p.scopes {
            Some(list) => self.parsed_list(list, &key("scopes"), |s| Ok(s.to_string())),
            None => vec!["openid".into(), "email".into(), "profile".into()],
        };
        let groups_claim = match &p.groups_claim {
            Some(v) => self.parsed(v, &key("groups_claim"), |s| {
                let s = s.trim();
                if s.is_empty() || s.split('.').any(str::is_empty) {
                    return Err(
                        "must be a claim name or a dotted path (e.g. \"realm_access.roles\")"
                            .into(),
                    );
                }
                Ok(s.to_string())
            })?,
            None => "groups".into(),
        };
        Some(ProviderKind::Oidc(OidcSettings {
            issuer: issuer?,
            client_id: client_id?,
            client_secret: Secret::new(client_secret?),
            scopes,
            redirect_uri,
            groups_claim,
        }))
    }

    fn github(
        &mut self,
        p: &ProviderSection,
        i: usize,
        at: &std::ops::Range<usize>,
        redirect_uri: String,
    ) -> Option<ProviderKind> {
        let key = |k: &str| format!("provider[{i}].{k}");
        let client_id = self.required(&p.client_id, &key("client_id"), at.clone(), "for GitHub");
        let client_secret = self.required(
            &p.client_secret,
            &key("client_secret"),
            at.clone(),
            "for GitHub (use \"${ENV_VAR}\")",
        );
        Some(ProviderKind::GitHub(GitHubSettings {
            client_id: client_id?,
            client_secret: Secret::new(client_secret?),
            redirect_uri,
            teams: p.teams,
        }))
    }

    fn local(
        &mut self,
        p: &ProviderSection,
        i: usize,
        at: &std::ops::Range<usize>,
    ) -> Option<ProviderKind> {
        if p.users.is_empty() {
            self.src.push(
                at.clone(),
                format!("provider[{i}].users"),
                "a local provider needs at least one [[provider.users]]",
            );
        }
        let mut users: Vec<LocalUser> = Vec::new();
        for (j, user) in p.users.iter().enumerate() {
            if let Some(u) = self.user(user, i, j, &users) {
                users.push(u);
            }
        }
        Some(ProviderKind::Local { users })
    }

    fn user(
        &mut self,
        user: &Spanned<UserSection>,
        i: usize,
        j: usize,
        seen: &[LocalUser],
    ) -> Option<LocalUser> {
        let u = user.get_ref();
        let k = |f: &str| format!("provider[{i}].users[{j}].{f}");
        let raw_user = self.present(&u.username, &k("username"), user.span());
        let raw_hash = self.present(&u.password_hash, &k("password_hash"), user.span());
        let (raw_user, raw_hash) = (raw_user?, raw_hash?);
        let username = self.text(raw_user, &k("username"))?;
        if username.is_empty() || seen.iter().any(|x| x.username == username) {
            self.src.push(
                raw_user.span(),
                k("username"),
                "must be non-empty and unique",
            );
            return None;
        }
        let password_hash = self.parsed(raw_hash, &k("password_hash"), |h| {
            argon2::password_hash::PasswordHash::new(h)
                .map(|_| Secret::new(h.to_string()))
                .map_err(|_| {
                    "not an argon2 PHC hash; create one with `authgate hash-password`".to_string()
                })
        })?;
        Some(LocalUser {
            username,
            password_hash,
            email: self.opt_text(&u.email, &k("email")),
            name: self.opt_text(&u.name, &k("name")),
            groups: self.parsed_list(&u.groups, &k("groups"), |g| Ok(g.to_string())),
        })
    }
}

/// An issuer URL: https, or http on a loopback host (a local IdP in development and tests).
/// Kept without a trailing slash.
fn issuer(s: &str) -> Result<String, String> {
    match url::Url::parse(s) {
        Ok(u)
            if u.scheme() == "https"
                || (u.scheme() == "http" && u.host().as_ref().is_some_and(is_loopback_host)) =>
        {
            Ok(s.trim_end_matches('/').to_string())
        }
        _ => Err("must be an https URL (http only on a loopback host)".into()),
    }
}
