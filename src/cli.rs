//! The command line: `run` serves, `check` validates a config without touching anything.

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
    },
    /// Validate a config file and print what it would serve; exits non-zero on any error.
    Check {
        #[arg(long, short, env = "AUTHGATE_CONFIG")]
        config: PathBuf,
    },
    /// Hash a password for a local user: reads one line from standard input, prints an
    /// argon2 hash for `password_hash`.
    HashPassword,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::HashPassword => hash_password(),
        Command::Run { config } => {
            logging::init(cli.log_format);
            run(&config)
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    match config::load(path) {
        Ok(c) => {
            println!("{}: ok", path.display());
            println!("  public URL  {}", c.server.public_url.as_str());
            let listen: Vec<String> = c.server.listen.iter().map(|a| a.to_string()).collect();
            println!("  listen      {}", listen.join(", "));
            println!("  data dir    {}", c.server.data_dir.display());
            println!("  routes      {}", c.upstreams.len());
            for u in &c.upstreams {
                let host = u
                    .host
                    .as_deref()
                    .map(|h| format!(" (host {h})"))
                    .unwrap_or_default();
                let scheme = if u.url.tls { "https" } else { "http" };
                println!(
                    "    {:<28} -> {scheme}://{}{}  [{}]{host}",
                    c.server.public_url.join(u.path.as_str()),
                    u.url.authority,
                    u.url.rewrite(""),
                    u.name,
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

fn run(path: &std::path::Path) -> ExitCode {
    let config = match config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                tracing::error!("{e}");
            }
            return ExitCode::FAILURE;
        }
    };
    match crate::server::run(config) {
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
