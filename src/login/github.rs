//! Login with GitHub: OAuth 2 (not OIDC) with PKCE through the `oauth2` crate, then the
//! user and their primary verified email from GitHub's API.

use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use serde::Deserialize;

use super::LoginError;
use crate::config::GitHubSettings;
use crate::vocab::{Identity, Secret};

const AUTHORIZE: &str = "https://github.com/login/oauth/authorize";
const TOKEN: &str = "https://github.com/login/oauth/access_token";
const API: &str = "https://api.github.com";

pub struct Start {
    pub url: String,
    pub state: Secret,
    pub pkce_verifier: Secret,
}

fn client(
    s: &GitHubSettings,
) -> Result<
    BasicClient<
        oauth2::EndpointSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointSet,
    >,
    LoginError,
> {
    let bad = |e: oauth2::url::ParseError| LoginError::Provider(e.to_string());
    Ok(BasicClient::new(ClientId::new(s.client_id.clone()))
        .set_client_secret(ClientSecret::new(s.client_secret.expose().clone()))
        .set_auth_uri(AuthUrl::new(AUTHORIZE.into()).map_err(bad)?)
        .set_token_uri(TokenUrl::new(TOKEN.into()).map_err(bad)?)
        .set_redirect_uri(RedirectUrl::new(s.redirect_uri.clone()).map_err(bad)?))
}

pub fn start(s: &GitHubSettings) -> Result<Start, LoginError> {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let client = client(s)?;
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("read:user".into()))
        .add_scope(Scope::new("user:email".into()));
    if s.teams {
        request = request.add_scope(Scope::new("read:org".into()));
    }
    let (url, state) = request.set_pkce_challenge(challenge).url();
    Ok(Start {
        url: url.to_string(),
        state: Secret::new(state.secret().clone()),
        pkce_verifier: Secret::new(verifier.secret().clone()),
    })
}

#[derive(Deserialize)]
struct User {
    id: u64,
    login: String,
    name: Option<String>,
}

#[derive(Deserialize)]
struct Email {
    email: String,
    primary: bool,
    verified: bool,
}

pub async fn finish(
    http: &reqwest::Client,
    provider_id: &str,
    s: &GitHubSettings,
    code: &str,
    pkce_verifier: &Secret,
) -> Result<(Identity, Option<String>), LoginError> {
    let token = client(s)?
        .exchange_code(AuthorizationCode::new(code.to_string()))
        .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.expose().clone()))
        .request_async(http)
        .await
        .map_err(|e| LoginError::Refused(format!("GitHub code exchange failed: {e}")))?;
    let bearer = format!("Bearer {}", token.access_token().secret());
    let get = |path: &str| {
        http.get(format!("{API}{path}"))
            .header("authorization", &bearer)
            .header("accept", "application/vnd.github+json")
            .header("user-agent", "authgate")
    };
    let user: User = get("/user")
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| LoginError::Provider(format!("GitHub /user: {e}")))?
        .json()
        .await
        .map_err(|e| LoginError::Provider(format!("GitHub /user: {e}")))?;
    let emails: Vec<Email> = match get("/user/emails")
        .send()
        .await
        .and_then(|r| r.error_for_status())
    {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(e) => {
            tracing::warn!(error = %e, "GitHub /user/emails failed; continuing without email");
            Vec::new()
        }
    };
    // Teams decide policies (deny rules too): a person whose teams cannot be read is not
    // signed in without them.
    let groups = match s.teams {
        true => {
            let orgs: Vec<Org> = pages(&get, "/user/orgs").await?;
            let teams: Vec<Team> = pages(&get, "/user/teams").await?;
            groups_of(orgs, teams)
        }
        false => Vec::new(),
    };
    let identity = Identity {
        provider: provider_id.to_string(),
        subject: user.id.to_string(),
        email: primary_verified(&emails),
        name: user.name.or(Some(user.login)),
        groups,
    };
    Ok((identity, Some(token.access_token().secret().clone())))
}

#[derive(Deserialize)]
struct Org {
    login: String,
}

#[derive(Deserialize)]
struct Team {
    slug: String,
    organization: Org,
}

/// Organisations as `org` and teams as `org/team`, the names policies use.
fn groups_of(orgs: Vec<Org>, teams: Vec<Team>) -> Vec<String> {
    let mut groups: Vec<String> = orgs.into_iter().map(|o| o.login).collect();
    for t in teams {
        if !groups.contains(&t.organization.login) {
            groups.push(t.organization.login.clone());
        }
        groups.push(format!("{}/{}", t.organization.login, t.slug));
    }
    groups
}

/// Every page of a GitHub list (100 a page, at most 10 pages).
async fn pages<T: serde::de::DeserializeOwned>(
    get: &impl Fn(&str) -> reqwest::RequestBuilder,
    path: &str,
) -> Result<Vec<T>, LoginError> {
    let mut all = Vec::new();
    for page in 1..=10 {
        let fail = |e: reqwest::Error| {
            LoginError::Provider(format!("GitHub {path} (teams = true needs read:org): {e}"))
        };
        let batch: Vec<T> = get(&format!("{path}?per_page=100&page={page}"))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(fail)?
            .json()
            .await
            .map_err(fail)?;
        let last = batch.len() < 100;
        all.extend(batch);
        if last {
            break;
        }
    }
    Ok(all)
}

/// Re-checks the person with the access token kept from their login (GitHub OAuth App
/// tokens do not expire): 401 means the authorization was revoked.
pub async fn reverify(http: &reqwest::Client, access_token: &str) -> Result<(), LoginError> {
    let r = http
        .get(format!("{API}/user"))
        .header("authorization", format!("Bearer {access_token}"))
        .header("accept", "application/vnd.github+json")
        .header("user-agent", "authgate")
        .send()
        .await
        .map_err(|e| LoginError::Provider(format!("GitHub /user: {e}")))?;
    match r.status().as_u16() {
        200..=299 => Ok(()),
        401 => Err(LoginError::Refused(
            "GitHub no longer accepts the authorization".into(),
        )),
        s => Err(LoginError::Provider(format!("GitHub /user answered {s}"))),
    }
}

/// The primary email, only if GitHub has verified it.
fn primary_verified(emails: &[Email]) -> Option<String> {
    emails
        .iter()
        .find(|e| e.primary && e.verified)
        .map(|e| e.email.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_primary_verified_email_counts() {
        let list: Vec<Email> = serde_json::from_str(
            r#"[{"email":"a@x","primary":false,"verified":true},{"email":"b@x","primary":true,"verified":false}]"#,
        )
        .unwrap();
        assert_eq!(primary_verified(&list), None);
        let list: Vec<Email> =
            serde_json::from_str(r#"[{"email":"c@x","primary":true,"verified":true}]"#).unwrap();
        assert_eq!(primary_verified(&list).as_deref(), Some("c@x"));
    }

    #[test]
    fn start_uses_pkce_and_state() {
        let settings = GitHubSettings {
            client_id: "cid".into(),
            client_secret: Secret::new("secret".into()),
            redirect_uri: "https://gw.example/callback/github".into(),
            teams: false,
        };
        let s = start(&settings).unwrap();
        assert!(s.url.starts_with(AUTHORIZE));
        assert!(s.url.contains("code_challenge_method=S256"));
        assert!(s.url.contains(&format!("state={}", s.state.expose())));
        assert!(!s.url.contains("secret"));
        assert!(!s.url.contains("read%3Aorg"));
        let teams = GitHubSettings {
            teams: true,
            ..settings
        };
        assert!(start(&teams).unwrap().url.contains("read%3Aorg"));
    }

    #[test]
    fn orgs_and_teams_become_groups() {
        // The shapes GitHub's /user/orgs and /user/teams answer (fields trimmed).
        let orgs: Vec<Org> =
            serde_json::from_str(r#"[{"login":"acme","id":1},{"login":"oss","id":2}]"#).unwrap();
        let teams: Vec<Team> = serde_json::from_str(
            r#"[{"slug":"platform","name":"Platform","organization":{"login":"acme"}},{"slug":"red","organization":{"login":"hidden-org"}}]"#,
        )
        .unwrap();
        assert_eq!(
            groups_of(orgs, teams),
            [
                "acme",
                "oss",
                "acme/platform",
                "hidden-org",
                "hidden-org/red"
            ]
        );
    }
}
