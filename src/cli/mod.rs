//! The command line: `run` serves, `check` validates a config without touching anything,
//! the admin commands talk to a running gateway's admin API, and the store commands work on
//! a stopped gateway's store.

mod admin;
mod check;
mod login;
mod offline;
mod policy;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config;
use crate::logging::{self, LogFormat};

#[derive(Debug, Parser)]
#[command(name = "authgate", version, about = "An auth gateway for MCP servers")]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "AUTHGATE_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the gateway.
    Run {
        /// The TOML config file.
        #[arg(long, short, env = "AUTHGATE_CONFIG")]
        config: PathBuf,
        /// Take over the listening sockets of the running authgate (binary upgrade): start the
        /// new binary with this flag, then send SIGQUIT to the old process.
        #[arg(long)]
        upgrade: bool,
    },
    /// Validate a config file and print what it would serve; exits non-zero on any error.
    Check {
        #[arg(long, short, env = "AUTHGATE_CONFIG")]
        config: PathBuf,
    },
    /// Hash a password for a local user: reads one line from standard input, prints an
    /// argon2 hash for `password_hash`.
    HashPassword,
    /// Make the running gateway re-read its config (like SIGHUP); prints what changed, or
    /// every error (the running config then stays).
    Reload(admin::Connection),
    /// What the last attempts of a client (or a client address) to connect got through, and
    /// where each stopped.
    Diagnose {
        #[command(flatten)]
        connection: admin::Connection,
        /// A client id (a registered client, or a metadata document URL).
        #[arg(long, conflicts_with = "ip")]
        client: Option<String>,
        /// A client's address (for attempts that never got as far as a client id).
        #[arg(long)]
        ip: Option<std::net::IpAddr>,
    },
    /// Administer a running gateway through its admin API (`[admin]` in the config).
    Admin {
        #[command(flatten)]
        connection: admin::Connection,
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
    /// Migrate a stopped gateway's store to this version's schema (a backup is made first).
    Migrate {
        #[arg(long, short, env = "AUTHGATE_CONFIG")]
        config: PathBuf,
        /// Only say what would change.
        #[arg(long)]
        dry_run: bool,
    },
    /// Copy a stopped gateway's embedded store into a new, empty PostgreSQL store (the step
    /// from one process to replicas). Nothing is changed in the source.
    MigrateStore {
        /// The stopped gateway's config (its data_dir holds the redb store; its auth.session_key
        /// must be the replicas' too).
        #[arg(long, short, env = "AUTHGATE_CONFIG")]
        config: PathBuf,
        /// The PostgreSQL connection string (better from the environment: it holds a password).
        #[arg(long, env = "AUTHGATE_MIGRATE_TO", hide_env_values = true)]
        to: String,
        /// The schema to fill (as the replicas' store.schema).
        #[arg(long, default_value = "authgate")]
        schema: String,
    },
    /// Put a backup (from `authgate admin backup`) in place of a stopped gateway's store;
    /// the store it replaces is kept beside it.
    Restore {
        #[arg(long, short, env = "AUTHGATE_CONFIG")]
        config: PathBuf,
        /// The backup file.
        backup: PathBuf,
    },
    /// Print the JSON schema of the config file (for editors: taplo, Even Better TOML).
    Schema,
    /// API keys on a stopped gateway's store (a running one: `authgate admin keys`).
    Keys {
        #[arg(long, short, env = "AUTHGATE_CONFIG")]
        config: PathBuf,
        #[command(subcommand)]
        command: admin::KeysCommand,
    },
    /// Seal everything the store keeps sealed (connected accounts, upstream registrations,
    /// signing keys) again with auth.session_key, on a stopped gateway's store: the step of a
    /// key rotation after listing the old key in auth.previous_session_keys.
    RotateKey {
        #[arg(long, short, env = "AUTHGATE_CONFIG")]
        config: PathBuf,
    },
    /// Sign in to an MCP server behind authgate from the terminal (browser, PKCE, a loopback
    /// redirect); tokens are kept per server URL in a file only you can read.
    Login(login::LoginArgs),
    /// Print a valid access token for a server URL (refreshed first when near expiry), for
    /// scripts: curl -H "Authorization: Bearer $(authgate token URL)".
    Token(login::TokenArgs),
    /// Revoke the tokens of a server URL and forget them.
    Logout(login::TokenArgs),
    /// Explain and test the policies of a config (nothing runs, nothing is contacted).
    Policy {
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check::check(&config),
        Command::HashPassword => hash_password(),
        Command::Run { config, upgrade } => run(&config, cli.log_format, upgrade),
        Command::Reload(connection) => admin::reload(&connection),
        Command::Diagnose {
            connection,
            client,
            ip,
        } => admin::diagnose(&connection, client.as_deref(), ip),
        Command::Admin {
            connection,
            command,
        } => admin::run(&connection, command),
        Command::Migrate { config, dry_run } => offline::migrate(&config, dry_run),
        Command::Restore { config, backup } => offline::restore(&config, &backup),
        Command::MigrateStore { config, to, schema } => offline::migrate_store(&config, to, schema),
        Command::Schema => offline::schema(),
        Command::Keys { config, command } => offline::keys(&config, &command),
        Command::RotateKey { config } => offline::rotate_key(&config),
        Command::Policy { command } => policy::run(command),
        Command::Login(args) => login::login(&args),
        Command::Token(args) => login::token(&args),
        Command::Logout(args) => login::logout(&args),
    }
}

/// Runs one command's async work (HTTP calls, store operations) on a runtime of its own.
fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(f)
}

fn run(path: &std::path::Path, format: LogFormat, upgrade: bool) -> ExitCode {
    let config = match config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            let _ = logging::init(format, None);
            for e in &errors.0 {
                tracing::error!("{e}");
            }
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = logging::init(format, config.audit.file.as_deref()) {
        let _ = logging::init(format, None);
        let file = config
            .audit
            .file
            .as_deref()
            .unwrap_or(std::path::Path::new("-"));
        tracing::error!("audit.file {}: {e}", file.display());
        return ExitCode::FAILURE;
    }
    match crate::server::run(config, upgrade) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn hash_password() -> ExitCode {
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprint!("Password (input is shown; pipe it in to avoid that): ");
    }
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() {
        eprintln!("could not read a password from standard input");
        return ExitCode::FAILURE;
    }
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        eprintln!("the password is empty");
        return ExitCode::FAILURE;
    }
    println!("{}", crate::login::local::hash_password(password));
    ExitCode::SUCCESS
}
