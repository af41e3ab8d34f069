//! Gateway configs for tests, built instead of written out: `[server]` on the gateway's
//! reserved address and its own data directory, then the sections a test adds.

/// A hash of "pw" (argon2id), for local users in tests.
pub const PW_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$DUHBPC8bI2eomb8McOKneQ$XYPGuJkvCqK/VSrBrX8sEFknCnaQbf7lWBlJni7ylNo";

#[derive(Default, Clone)]
pub struct TestConfig {
    server: Vec<String>,
    auth: Vec<String>,
    sections: Vec<String>,
}

impl TestConfig {
    pub fn new() -> Self {
        Self::default()
    }

    /// A line in `[server]` (listen, public_url and data_dir are always there).
    pub fn server(mut self, line: &str) -> Self {
        self.server.push(line.to_string());
        self
    }

    /// A line in `[auth]`.
    pub fn auth(mut self, line: &str) -> Self {
        self.auth.push(line.to_string());
        self
    }

    pub fn scope(self, name: &str) -> Self {
        self.raw(&format!(
            "[[scope]]\nname = \"{name}\"\ndescription = \"Use {name}\""
        ))
    }

    /// An `[[upstream]]` with `extra` lines (`auth = "none"`, `scopes = [...]`, ...).
    pub fn upstream(self, name: &str, path: &str, url: &str, extra: &str) -> Self {
        self.raw(&format!(
            "[[upstream]]\nname = \"{name}\"\npath = \"{path}\"\nurl = \"{url}\"\n{extra}"
        ))
    }

    /// A public route (`auth = "none"`).
    pub fn public(self, name: &str, path: &str, url: &str) -> Self {
        self.upstream(name, path, url, "auth = \"none\"")
    }

    /// A local provider `local` with `alice` (password "pw") and `extra` lines for her.
    pub fn alice(self, extra: &str) -> Self {
        self.raw(&format!(
            "[[provider]]\nid = \"local\"\nkind = \"local\"\n\n[[provider.users]]\nusername = \"alice\"\npassword_hash = \"{PW_HASH}\"\n{extra}"
        ))
    }

    /// Any other section, as TOML.
    pub fn raw(mut self, toml: &str) -> Self {
        self.sections.push(toml.to_string());
        self
    }

    /// The TOML text, with `{addr}` and `{data}` for the harness to fill in.
    pub fn build(&self) -> String {
        // AUTHGATE_TEST_BACKEND=postgres: the same suite on a shared PostgreSQL store (one
        // database per test process; tests/run.sh runs the OAuth suites this way too).
        let postgres = std::env::var("AUTHGATE_TEST_BACKEND").is_ok_and(|b| b == "postgres")
            && !self.sections.iter().any(|s| s.starts_with("[store]"));
        let mut this = self.clone();
        if postgres {
            if !this.auth.iter().any(|l| l.starts_with("session_key")) {
                this.auth
                    .push("session_key = \"cG9zdGdyZXMtc3VpdGUta2V5LTAxMjM0NTY3ODkwMTI=\"".into());
            }
            this.sections.push(format!(
                "[store]\nkind = \"postgres\"\nurl = \"{}\"\npool_size = 4",
                process_database()
            ));
        }
        this.text()
    }

    fn text(&self) -> String {
        let mut text = String::from(
            "[server]\nlisten = [\"{addr}\"]\npublic_url = \"http://{addr}\"\ndata_dir = \"{data}\"\n",
        );
        for line in &self.server {
            text.push_str(line);
            text.push('\n');
        }
        if !self.auth.is_empty() {
            text.push_str("\n[auth]\n");
            for line in &self.auth {
                text.push_str(line);
                text.push('\n');
            }
        }
        for section in &self.sections {
            text.push('\n');
            text.push_str(section);
            text.push('\n');
        }
        text
    }
}

/// The database of this test process when the suite runs on PostgreSQL
/// (`AUTHGATE_TEST_BACKEND=postgres`).
pub fn backend_database() -> Option<&'static str> {
    std::env::var("AUTHGATE_TEST_BACKEND")
        .is_ok_and(|b| b == "postgres")
        .then(process_database)
}

/// This test process's PostgreSQL database (one per process: a gateway restarted in a test
/// finds its store again).
fn process_database() -> &'static str {
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URL.get_or_init(super::postgres::shared_url)
}
