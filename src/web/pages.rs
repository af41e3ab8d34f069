//! The HTML pages people see: askama templates (compile-time checked, HTML-escaped) under
//! `templates/`, one struct per page.

use askama::Template;

use super::Reply;

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub title: &'a str,
    pub message: &'a str,
}

pub struct ProviderLink {
    pub href: String,
    pub name: String,
}

#[derive(Template)]
#[template(path = "chooser.html")]
pub struct ChooserPage<'a> {
    pub client_name: &'a str,
    pub providers: Vec<ProviderLink>,
}

#[derive(Template)]
#[template(path = "local_login.html")]
pub struct LocalLoginPage<'a> {
    pub action: &'a str,
    pub flow: &'a str,
    pub client_name: &'a str,
    pub username: &'a str,
    pub error: Option<&'a str>,
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
}

/// Renders a page into a reply; a template error (a bug) becomes a plain 500.
pub fn render(status: u16, page: &impl Template) -> Reply {
    match page.render() {
        Ok(html) => Reply::html(status, html),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            Reply::error(500, "server_error", "page rendering failed")
        }
    }
}

pub fn error(status: u16, title: &str, message: &str) -> Reply {
    render(status, &ErrorPage { title, message })
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
            providers: vec![ProviderLink {
                href: "/login/corp?flow=x".into(),
                name: "Corp".into(),
            }],
        }
        .render()
        .unwrap();
        assert!(
            chooser.contains("class=\"provider\" href=\"/login/corp?flow=x\""),
            "{chooser}"
        );
        let login = LocalLoginPage {
            action: "/login/local",
            flow: "F",
            client_name: "X",
            username: "",
            error: Some("Wrong username or password"),
        }
        .render()
        .unwrap();
        assert!(login.contains("name=\"password\"") && login.contains("Wrong username"));
    }
}
