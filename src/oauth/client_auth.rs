//! Client authentication at the token, revocation and introspection endpoints (RFC 6749
//! §2.3): `client_secret_basic`, `client_secret_post`, or `none` for public clients, and the
//! form body those endpoints take.

use super::{Authority, ClientInfo, OAuthError};
use crate::audit;
use crate::config::Config;
use crate::vocab::{ClientId, Secret, SecretHash};
use crate::web::authorization::{credentials, Credentials};
use crate::web::{Params, Request};

/// The body of a token-endpoint-style request: a form, no parameter twice (RFC 6749 §3.2).
pub fn read_form(req: &Request) -> Result<Params, OAuthError> {
    if !req.is_form() {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let form = req.form();
    if let Some(dup) = form.repeated() {
        return Err(OAuthError::invalid_request(format!(
            "`{dup}` was sent more than once"
        )));
    }
    Ok(form)
}

/// The client making the request, authenticated by its secret when it has one.
pub async fn authenticate(
    auth: &Authority,
    config: &Config,
    req: &Request,
    form: &Params,
) -> Result<ClientInfo, OAuthError> {
    let basic = match credentials(&req.headers) {
        Ok(Some(Credentials::Basic { id, secret })) => Some((id, secret)),
        Ok(_) => None,
        Err(_) => return Err(OAuthError::invalid_client("malformed Basic credentials")),
    };
    let (client_id, secret) = match (basic, form.get("client_id")) {
        (Some((id, secret)), form_id) => {
            if form_id.is_some_and(|f| f != id) {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the Basic credentials",
                ));
            }
            (ClientId::new(id), Some(secret))
        }
        (None, Some(id)) => (
            ClientId::new(id),
            form.get("client_secret")
                .map(|s| Secret::new(s.to_string())),
        ),
        (None, None) => {
            return Err(OAuthError::invalid_client(
                "client authentication is required",
            ))
        }
    };
    let client = auth
        .client(config, &client_id)
        .await?
        .ok_or_else(|| OAuthError::invalid_client("unknown client"))?;
    if let Some(expected) = &client.secret {
        let ok = secret.is_some_and(|s| SecretHash::of(s.expose()).ct_eq(expected));
        if !ok {
            audit::refused("client_auth_failed")
                .client(&client_id)
                .remote(req.client_ip)
                .emit();
            return Err(OAuthError::invalid_client("client authentication failed"));
        }
    }
    Ok(client)
}
