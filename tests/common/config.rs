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
