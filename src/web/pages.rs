//! The HTML pages people see: askama templates (compile-time checked, HTML-escaped) under
//! `templates/`, one struct per page.

use askama::Template;

use super::Reply;

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub title: &'a str,
    /// What happened.
    pub message: &'a str,
    /// What to do about it.
    pub advice: &'a str,
}

/// One sign-in button of the chooser: a GET form to `/login/<provider>`.
pub struct ProviderButton {
    pub action: String,
    pub name: String,
}

#[derive(Template)]
#[template(path = "chooser.html")]
pub struct ChooserPage<'a> {
    pub client_name: &'a str,
    pub flow: &'a str,
    pub providers: Vec<ProviderButton>,
}

#[derive(Template)]
#[template(path = "local_login.html")]
pub struct LocalLoginPage<'a> {
    pub action: &'a str,
    pub flow: &'a str,
    pub client_name: &'a str,
    pub username: &'a str,
    pub error: Option<&'a str>,
    pub csrf: &'a str,
}

/// One upstream on a person's connected accounts page.
pub struct ConnectionRow {
    pub upstream: String,
    pub connected_as: Option<String>,
    /// When, as a UTC date.
    pub since: String,
}

#[derive(Template)]
#[template(path = "connections.html")]
pub struct ConnectionsPage<'a> {
    pub user: &'a str,
    pub rows: Vec<ConnectionRow>,
    pub csrf: &'a str,
    /// What was just done, if anything.
    pub done: Option<String>,
}

pub struct ScopeLine {
    pub name: String,
    pub description: String,
}

#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage<'a> {
    pub client_name: &'a str,
    pub client_id: &'a str,
    pub redirect_host: &'a str,
    pub loopback_redirect: bool,
    pub user: &'a str,
    pub upstream: &'a str,
    pub resource: &'a str,
    pub scopes: Vec<ScopeLine>,
    pub flow: &'a str,
    pub csrf: &'a str,
    /// The person allowed this client before: a short "continue?" page instead.
    pub remembered: bool,
}

/// Renders a page into a reply; a template error (a bug) becomes a plain 500.
pub fn render(status: u16, page: &impl Template) -> Reply {
    match page.render() {
        Ok(html) => Reply::html(status, html),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            Reply::error(
                crate::vocab::ErrorCode::ServerError,
                "page rendering failed",
            )
        }
    }
}

/// What most error pages advise: the connection starts at the application, not here.
pub const START_AGAIN: &str =
    "You can close this window and start the connection again from your application.";

/// An error page with the usual advice ([`START_AGAIN`]).
pub fn error(status: u16, title: &str, message: &str) -> Reply {
    error_with(status, title, message, START_AGAIN)
}

pub fn error_with(status: u16, title: &str, message: &str, advice: &str) -> Reply {
    render(
        status,
        &ErrorPage {
            title,
            message,
            advice,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consent_escapes_client_supplied_text() {
        let page = ConsentPage {
            client_name: "<script>alert(1)</script>",
            client_id: "c\"1",
            redirect_host: "127.0.0.1",
            loopback_redirect: true,
            user: "alice",
            upstream: "everything",
            resource: "http://127.0.0.1:8080/mcp",
            scopes: vec![ScopeLine {
                name: "mcp:tools".into(),
                description: "Use <b>tools</b>".into(),
            }],
            flow: "F",
            csrf: "C",
            remembered: false,
        };
        let html = page.render().unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"),
            "{html}"
        );
        assert!(html.contains("name=\"decision\" value=\"approve\""));
        assert!(html.contains("name=\"csrf\" value=\"C\""));
        assert!(html.contains("127.0.0.1"));
        assert!(
            html.to_lowercase().contains("loopback"),
            "warns about loopback redirects"
        );
    }

    #[test]
    fn pages_render() {
        let r = error(400, "Bad <request>", "Unknown client");
        let body = String::from_utf8(r.body.to_vec()).unwrap();
        assert!(body.contains("Unknown client") && !body.contains("<request>"));
        let chooser = ChooserPage {
            client_name: "Inspector",
            flow: "F&1",
            providers: vec![ProviderButton {
                action: "/login/corp".into(),
                name: "Corp".into(),
            }],
        }
        .render()
        .unwrap();
        assert!(
            chooser.contains("<form method=\"get\" action=\"/login/corp\">"),
            "{chooser}"
        );
        assert!(
            chooser.contains("value=\"F&#38;1\"") || chooser.contains("value=\"F&amp;1\""),
            "{chooser}"
        );
        assert!(
            chooser.contains("<button class=\"primary provider\" type=\"submit\">Corp</button>"),
            "{chooser}"
        );
        let login = LocalLoginPage {
            action: "/login/local",
            flow: "F",
            client_name: "X",
            username: "",
            error: Some("Wrong username or password"),
            csrf: "T",
        }
        .render()
        .unwrap();
        assert!(login.contains("name=\"password\"") && login.contains("Wrong username"));
        assert!(login.contains("name=\"csrf\" value=\"T\""));
    }
}
