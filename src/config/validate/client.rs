//! `[[scope]]` and `[[client]]` (pre-registered OAuth clients), and the scope lists other
//! sections name.

use toml::Spanned;

use super::Validator;
use crate::config::file::{ClientSection, ScopeSection, Text};
use crate::config::model::{Client, ScopeDef, Upstream};
use crate::vocab::{check_display_name, ClientId, RedirectUri, Scope, ScopeSet, SecretHash};

impl<E: Fn(&str) -> Option<String>> Validator<'_, E> {
    pub(super) fn scopes(&mut self, sections: &[Spanned<ScopeSection>]) -> Vec<ScopeDef> {
        let mut out: Vec<ScopeDef> = Vec::new();
        for (i, section) in sections.iter().enumerate() {
            let s = section.get_ref();
            let key = format!("scope[{i}].name");
            let Some(raw) = self.present(&s.name, &key, section.span()) else {
                continue;
            };
            let Some(name) = self.parsed(raw, &key, Scope::parse) else {
                continue;
            };
            if out.iter().any(|d| d.name == name) {
                self.src
                    .push(raw.span(), key, format!("scope `{name}` is defined twice"));
                continue;
            }
            let description = self
                .opt_text(&s.description, &format!("scope[{i}].description"))
                .unwrap_or_else(|| name.to_string());
            out.push(ScopeDef { name, description });
        }
        out
    }

    /// Checks that every listed scope is defined in a [[scope]].
    pub(super) fn scope_list(
        &mut self,
        list: &[Text],
        key: &str,
        defined: &[ScopeDef],
    ) -> ScopeSet {
        self.parsed_list(list, key, |n| {
            match defined.iter().find(|d| d.name.as_str() == n) {
                Some(d) => Ok(d.name.clone()),
                None => Err(format!("scope `{n}` is not defined in any [[scope]]")),
            }
        })
        .into_iter()
        .collect()
    }

    pub(super) fn clients(
        &mut self,
        sections: &[Spanned<ClientSection>],
        scopes: &[ScopeDef],
        upstreams: &[Upstream],
    ) -> Vec<Client> {
        let mut out: Vec<Client> = Vec::new();
        for (i, section) in sections.iter().enumerate() {
            let c = section.get_ref();
            let key = |k: &str| format!("client[{i}].{k}");
            let raw_id = self.present(&c.client_id, &key("client_id"), section.span());
            if c.redirect_uris.is_none() {
                self.src.push(
                    section.span(),
                    key("redirect_uris"),
                    "is required (at least one redirect URI)",
                );
            }
            let (Some(raw_id), Some(raw_uris)) = (raw_id, c.redirect_uris.as_ref()) else {
                continue;
            };
            let Some(client_id) = self.parsed(raw_id, &key("client_id"), |s| {
                if s.is_empty() || s.len() > 255 || !s.bytes().all(|b| b.is_ascii_graphic()) {
                    Err("must be 1 to 255 printable ASCII characters".into())
                } else {
                    Ok(ClientId::new(s))
                }
            }) else {
                continue;
            };
            if out.iter().any(|o| o.client_id == client_id) {
                self.src.push(
                    raw_id.span(),
                    key("client_id"),
                    format!("client `{client_id}` is defined twice"),
                );
                continue;
            }
            let secret = self
                .opt_text(&c.secret, &key("secret"))
                .map(|s| SecretHash::of(&s));
            if raw_uris.get_ref().is_empty() {
                self.src.push(
                    raw_uris.span(),
                    key("redirect_uris"),
                    "must list at least one redirect URI",
                );
            }
            // Pre-registered clients may use custom schemes: the operator vouches for them.
            let redirect_uris = self.parsed_list(raw_uris.get_ref(), &key("redirect_uris"), |s| {
                RedirectUri::parse_registered(s, true)
            });
            let client_scopes = c
                .scopes
                .as_ref()
                .map(|l| self.scope_list(l, &key("scopes"), scopes));
            let client_upstreams = c.upstreams.as_ref().map(|l| {
                self.parsed_list(l, &key("upstreams"), |s| {
                    match upstreams.iter().find(|u| u.name.as_str() == s) {
                        Some(u) => Ok(u.name.clone()),
                        None => Err(format!("no upstream is named `{s}`")),
                    }
                })
            });
            let name = match &c.name {
                Some(n) => self.parsed(n, &key("name"), |n| {
                    check_display_name(n).map(|()| n.to_string())
                }),
                None => Some(client_id.to_string()),
            };
            let Some(name) = name else { continue };
            out.push(Client {
                client_id,
                name,
                secret,
                redirect_uris,
                scopes: client_scopes,
                upstreams: client_upstreams,
                trusted: c.trusted,
            });
        }
        out
    }
}
