//! A real PostgreSQL server for tests: `initdb` in a temporary directory, then `postgres`
//! listening only on a unix socket in that directory (no TCP port, so no port races).
//! Self-contained (only `std` and `tempfile`): integration tests reach it as
//! `common::postgres`, library unit tests include it with
//! `#[path = "../../tests/common/postgres.rs"] mod postgres;`.
//!
//! - [`PgServer::start`] gives a private server the test may stop and restart.
//! - [`shared_url`] gives a fresh, empty database: on the server named by
//!   `AUTHGATE_TEST_POSTGRES` (tests/run.sh starts one for the whole run with tests/pg.sh),
//!   or else on one private server this process starts once and keeps until it exits.
//!
//! The binaries are Debian's `postgresql` package: `initdb` on PATH, else the highest
//! `/usr/lib/postgresql/*/bin`. `initdb` and `postgres` refuse to run as root, so as root
//! they run as the `postgres` system user (or `nobody`) through `setpriv`.
//!
//! Each server runs under a small bash supervisor whose stdin is a pipe this process holds.
//! A line on it (`INT`) stops the server (fast shutdown: clients are disconnected); the end
//! of the pipe, which comes when the `PgServer` is dropped or when this process exits in
//! any way, even killed, stops it at once (`QUIT`) and removes its directory. So no server
//! outlives its test process.
//!
//! Nothing is skipped: when a server cannot start, the test panics saying what failed, how
//! to fix it, and the tail of the server's log.
#![allow(dead_code)]

use std::collections::hash_map::RandomState;
use std::fs;
use std::hash::BuildHasher;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

/// How long starting, stopping or one `psql` may take.
const PG_DEADLINE: Duration = Duration::from_secs(30);
/// The pause between two looks while waiting.
const POLL: Duration = Duration::from_millis(20);
/// The port only names the socket file (`.s.PGSQL.5432`); nothing listens on TCP (except
/// with [`PgServer::start_tls`], on a port of its own).
const PORT: &str = "5432";
/// Names the server to use instead of starting one: `host=<socket dir> user=postgres`.
pub const ENV_SERVER: &str = "AUTHGATE_TEST_POSTGRES";
const INSTALL: &str = "install Debian's postgresql package: apt-get install -y postgresql";

/// Runs the server's command (the arguments after the cleanup and data directories) and
/// stops it on a line read from stdin (a signal name: `INT` fast, `QUIT` immediate), or
/// immediately on the end of stdin, then also removing the cleanup directory. Exits when
/// the server does, with its status.
const SUPERVISOR: &str = r#"
cleanup=$1 data=$2
shift 2
exec 3<&0 </dev/null
"$@" 3<&- &
pg=$!
(
  if IFS= read -r sig <&3 && [ -n "$sig" ]; then code=0; else sig=QUIT code=3; fi
  pid=$pg
  if [ -r "$data/postmaster.pid" ]; then read -r pid <"$data/postmaster.pid" || pid=$pg; fi
  kill -"$sig" "$pid" 2>/dev/null || kill -"$sig" "$pg" 2>/dev/null
  exit "$code"
) &
reader=$!
exec 3<&-
wait -n
if kill -0 "$reader" 2>/dev/null; then
  echo "supervisor: postgres exited by itself" >&2
  kill "$reader" 2>/dev/null
  wait "$pg"
  exit
fi
wait "$reader"
why=$?
wait "$pg"
status=$?
if [ "$why" = 3 ]; then rm -rf -- "$cleanup"; fi
exit "$status"
"#;

/// A PostgreSQL server of this test's own, on a unix socket in a temporary directory.
/// Dropping it stops the server at once and removes the directory.
pub struct PgServer {
    bin: PathBuf,
    /// The socket directory; also holds `data/` and `postgres.log`.
    dir: PathBuf,
    data: PathBuf,
    log: PathBuf,
    run_as: Option<RunAs>,
    /// The port: names the socket file and, with TLS, the TCP port on 127.0.0.1.
    port: String,
    /// Settings added to the server's command line (TLS).
    extra: Vec<String>,
    /// The supervisor while the server runs; its stdin is the stop line.
    supervisor: Option<Child>,
    /// Last, so the server is stopped before the directory goes.
    tmp: tempfile::TempDir,
}

/// The unprivileged user the server runs as when this process is root.
#[derive(Clone, Debug)]
struct RunAs {
    name: String,
    uid: u32,
    gid: u32,
}

impl PgServer {
    /// Initialises a cluster in a new temporary directory and starts its server; returns
    /// once it accepts connections. Panics, saying why and how to fix it, if it cannot.
    pub fn start() -> PgServer {
        Self::start_with(None)
    }

    /// [`start`](Self::start), also listening on 127.0.0.1 (a free port) with TLS only over
    /// TCP (`hostssl`), presenting `cert`/`key` (PEM); [`tls_url`](Self::tls_url) reaches it.
    pub fn start_tls(cert: &Path, key: &Path) -> PgServer {
        Self::start_with(Some((cert, key)))
    }

    /// A connection string over TCP and TLS (`sslmode=require`) to `database`, with the
    /// host name `localhost` for the certificate check.
    pub fn tls_url(&self, database: &str) -> String {
        format!(
            "host=localhost port={} user=postgres dbname={database} sslmode=require",
            self.port
        )
    }

    fn start_with(tls: Option<(&Path, &Path)>) -> PgServer {
        let bin = bin_dir();
        let run_as = if is_root() { Some(run_as_user()) } else { None };
        let tmp = temp_dir(run_as.is_some());
        let dir = tmp.path().to_path_buf();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("postgres: chmod 0755 {}: {e}", dir.display()));
        if let Some(user) = &run_as {
            std::os::unix::fs::chown(&dir, Some(user.uid), Some(user.gid)).unwrap_or_else(|e| {
                panic!("postgres: chown {} to {}: {e}", dir.display(), user.name)
            });
        }
        let data = dir.join("data");
        let log = dir.join("postgres.log");

        let mut initdb = as_user(run_as.as_ref(), &bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"])
            .arg("--no-sync")
            .current_dir(&dir)
            .stdin(Stdio::null());
        clear_pg_env(&mut initdb);
        let out = run_with_deadline(initdb, "initdb");
        if !out.status.success() {
            panic!(
                "postgres: initdb failed ({}) for {}{}\n--- initdb output ---\n{}{}\n\
                 To fix: {INSTALL}; as root the server runs as the `postgres` user (or \
                 `nobody`), which must be able to write {}.",
                out.status,
                data.display(),
                run_as
                    .as_ref()
                    .map(|u| format!(" as user {}", u.name))
                    .unwrap_or_default(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                dir.display(),
            );
        }

        let mut port = PORT.to_string();
        let mut extra = Vec::new();
        if let Some((cert, key)) = tls {
            // Only over TCP, and only with TLS: a plain TCP connection is refused.
            for (from, name) in [(cert, "server.crt"), (key, "server.key")] {
                let to = data.join(name);
                fs::copy(from, &to)
                    .unwrap_or_else(|e| panic!("postgres: copying {}: {e}", from.display()));
                fs::set_permissions(&to, fs::Permissions::from_mode(0o600)).unwrap();
                if let Some(user) = &run_as {
                    std::os::unix::fs::chown(&to, Some(user.uid), Some(user.gid)).unwrap();
                }
            }
            let hba = data.join("pg_hba.conf");
            fs::write(
                &hba,
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
            )
            .unwrap();
            port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port().to_string())
                .unwrap();
            for setting in [
                "ssl=on",
                "ssl_cert_file=server.crt",
                "ssl_key_file=server.key",
                "listen_addresses=127.0.0.1",
            ] {
                extra.extend(["-c".to_string(), setting.to_string()]);
            }
        }
        let mut server = PgServer {
            bin,
            dir,
            data,
            log,
            run_as,
            port,
            extra,
            supervisor: None,
            tmp,
        };
        server.spawn();
        server
    }

    /// The socket directory: libpq's `host`.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// The directory with the PostgreSQL binaries this server runs.
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// A connection string for `database`, in the key/value form tokio-postgres's
    /// `Config::from_str` and libpq read: `host=<socket dir> port=5432 user=postgres
    /// dbname=<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("{} dbname={database}", self.base_url())
    }

    /// [`url`](Self::url) without `dbname`: the form of `AUTHGATE_TEST_POSTGRES`.
    pub fn base_url(&self) -> String {
        format!(
            "host={} port={} user=postgres",
            self.dir.display(),
            self.port
        )
    }

    /// Creates the database `name` (owned by `postgres`).
    pub fn create_database(&self, name: &str) {
        self.psql(
            "postgres",
            &format!("CREATE DATABASE {}", quote_ident(name)),
        );
    }

    /// Runs `sql` (one or more statements) in `database` with psql, unaligned and tuples
    /// only: `select 1+1` gives "2\n". Panics with psql's stderr if anything fails.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        self.try_psql(database, sql)
            .unwrap_or_else(|e| panic!("{e}\n--- server log (tail) ---\n{}", self.log_tail()))
    }

    /// [`psql`](Self::psql), with its failure (e.g. the server is stopped) as `Err`.
    pub fn try_psql(&self, database: &str, sql: &str) -> Result<String, String> {
        run_psql(&self.bin.join("psql"), &self.url(database), sql)
    }

    /// Whether the server was started and not stopped (it may still have died by itself).
    pub fn is_running(&self) -> bool {
        self.supervisor.is_some()
    }

    /// Stops the server (fast shutdown: open connections are closed at once) and waits
    /// until it has exited. The data stays for [`restart`](Self::restart).
    pub fn stop(&mut self) {
        let Some(mut supervisor) = self.supervisor.take() else {
            return;
        };
        if let Some(mut stdin) = supervisor.stdin.take() {
            // Fails only if the supervisor is gone already, which the wait below sees.
            let _ = stdin.write_all(b"INT\n");
        }
        if wait_deadline(&mut supervisor, PG_DEADLINE).is_none() {
            let _ = supervisor.kill();
            let _ = supervisor.wait();
            self.kill_postmaster();
            panic!(
                "postgres: the server did not stop within {PG_DEADLINE:?}; killed it\n\
                 --- server log (tail) ---\n{}",
                self.log_tail()
            );
        }
    }

    /// Starts the server again on the same data and socket directory (stopping it first if
    /// it runs); returns once it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        tail(&self.log(), 40)
    }

    /// Starts the server under its supervisor and waits until it accepts connections.
    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("postgres: open {}: {e}", self.log.display()));
        let offset = log.metadata().map(|m| m.len()).unwrap_or(0);
        let log_err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("postgres: dup {}: {e}", self.log.display()));
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(SUPERVISOR)
            .arg("postgres-supervisor")
            .arg(&self.dir)
            .arg(&self.data);
        if let Some(user) = &self.run_as {
            cmd.args(run_as_prefix(user));
        }
        cmd.arg(self.bin.join("postgres"))
            .arg("-D")
            .arg(&self.data)
            .arg("-k")
            .arg(&self.dir)
            .args(["-p", &self.port])
            .args(["-c", "listen_addresses="])
            .args(["-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off"])
            .args(["-c", "max_connections=200"])
            // Later settings win: TLS's listen_addresses replaces the one above.
            .args(&self.extra)
            .current_dir(&self.dir)
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log_err);
        clear_pg_env(&mut cmd);
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("postgres: cannot run bash to start the server: {e}. {INSTALL}")
        });
        self.supervisor = Some(child);
        self.wait_ready(offset);
    }

    /// Waits until the socket exists and the server answers (pg_isready, or else its
    /// "ready to accept connections" line written after `offset` in the log).
    fn wait_ready(&mut self, offset: u64) {
        let start = Instant::now();
        let socket = self.dir.join(format!(".s.PGSQL.{}", self.port));
        let pg_isready = self.bin.join("pg_isready");
        let pg_isready = pg_isready.is_file().then_some(pg_isready);
        loop {
            let exited = match self.supervisor.as_mut().map(|c| c.try_wait()) {
                Some(Ok(Some(status))) => Some(status.to_string()),
                Some(Ok(None)) => None,
                Some(Err(e)) => Some(e.to_string()),
                None => Some("not started".into()),
            };
            if let Some(status) = exited {
                self.supervisor = None;
                panic!(
                    "postgres: the server exited while starting ({status})\n\
                     --- server log (tail) ---\n{}\nTo fix: {INSTALL}; the log above says \
                     what it did not like.",
                    self.log_tail()
                );
            }
            if socket.exists() && self.answers(pg_isready.as_deref(), offset) {
                return;
            }
            if start.elapsed() > PG_DEADLINE {
                let log = self.log_tail();
                self.stop_now();
                panic!(
                    "postgres: the server did not accept connections on {} within \
                     {PG_DEADLINE:?}\n--- server log (tail) ---\n{log}",
                    socket.display()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    fn answers(&self, pg_isready: Option<&Path>, offset: u64) -> bool {
        match pg_isready {
            Some(pg_isready) => {
                let mut cmd = Command::new(pg_isready);
                cmd.arg("-q")
                    .arg("-h")
                    .arg(&self.dir)
                    .args([
                        "-p", &self.port, "-U", "postgres", "-d", "postgres", "-t", "5",
                    ])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                clear_pg_env(&mut cmd);
                cmd.status().is_ok_and(|s| s.success())
            }
            None => {
                let log = fs::read(&self.log).unwrap_or_default();
                let new = log.get(offset as usize..).unwrap_or_default();
                String::from_utf8_lossy(new).contains("ready to accept connections")
            }
        }
    }

    /// Stops the server immediately (the end of the supervisor's stdin: `QUIT`, and the
    /// directory removed); never panics.
    fn stop_now(&mut self) {
        let Some(mut supervisor) = self.supervisor.take() else {
            return;
        };
        drop(supervisor.stdin.take());
        if wait_deadline(&mut supervisor, PG_DEADLINE).is_none() {
            let _ = supervisor.kill();
            let _ = supervisor.wait();
            self.kill_postmaster();
        }
    }

    /// SIGKILL to the postmaster named in `postmaster.pid`: the last resort.
    fn kill_postmaster(&self) {
        let pid = fs::read_to_string(self.data.join("postmaster.pid")).unwrap_or_default();
        if let Some(pid) = pid.lines().next().filter(|p| p.parse::<u32>().is_ok()) {
            let _ = Command::new("kill")
                .args(["-KILL", pid])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop_now();
        // Then `tmp` drops, removing the directory if the supervisor has not.
    }
}

/// The connection string of a fresh, empty database (`t_<pid>_<n>_<random>`) for this
/// test: on the server `AUTHGATE_TEST_POSTGRES` names (a key/value base such as
/// `host=/tmp/x user=postgres`, with or without `dbname`), or else on a private server
/// started on first use and kept until this process exits.
pub fn shared_url() -> String {
    static SHARED: OnceLock<PgServer> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random = RandomState::new().hash_one((SystemTime::now(), n)) as u32;
    let name = format!("t_{}_{n}_{random:08x}", std::process::id());
    match std::env::var(ENV_SERVER) {
        Ok(base) if !base.trim().is_empty() => {
            let base = without_dbname(&base);
            psql_url(
                &format!("{base} dbname=postgres"),
                &format!("CREATE DATABASE {}", quote_ident(&name)),
            );
            format!("{base} dbname={name}")
        }
        _ => {
            let server = SHARED.get_or_init(PgServer::start);
            server.create_database(&name);
            server.url(&name)
        }
    }
}

/// Runs `sql` with psql against a key/value connection string (as [`shared_url`] gives);
/// returns its unaligned, tuples-only output. Panics with psql's stderr on failure.
pub fn psql_url(url: &str, sql: &str) -> String {
    try_psql_url(url, sql).unwrap_or_else(|e| panic!("{e}"))
}

/// [`psql_url`], with its failure as `Err`.
pub fn try_psql_url(url: &str, sql: &str) -> Result<String, String> {
    run_psql(&psql_binary(), url, sql)
}

fn run_psql(psql: &Path, url: &str, sql: &str) -> Result<String, String> {
    let mut cmd = Command::new(psql);
    cmd.args([
        "-X",
        "-A",
        "-t",
        "-q",
        "-w",
        "-v",
        "ON_ERROR_STOP=1",
        "-f",
        "-",
    ])
    .args(["-d", url])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    clear_pg_env(&mut cmd);
    cmd.env("PGCONNECT_TIMEOUT", "10");
    let mut child = cmd.spawn().map_err(|e| {
        format!(
            "psql: cannot run {}: {e}. To fix: {INSTALL} (or postgresql-client)",
            psql.display()
        )
    })?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let sql_owned = sql.to_owned();
    // A thread writes, so a large script cannot deadlock against a large result.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(sql_owned.as_bytes());
    });
    let out = child
        .wait_with_output()
        .map_err(|e| format!("psql: waiting for it: {e}"))?;
    let _ = writer.join();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "psql failed ({}) on `{url}` running:\n{sql}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The directory holding initdb, postgres, psql: that of `initdb` on PATH (symlinks
/// resolved), else the highest `/usr/lib/postgresql/<version>/bin`.
fn bin_dir() -> PathBuf {
    try_bin_dir().unwrap_or_else(|| {
        panic!(
            "postgres: no PostgreSQL server binaries: no `initdb` on PATH and none in \
             /usr/lib/postgresql/*/bin. To fix: {INSTALL}"
        )
    })
}

fn try_bin_dir() -> Option<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(initdb) = find_on_path("initdb") {
        if let Some(dir) = fs::canonicalize(&initdb)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
        {
            if has_server(&dir) {
                return Some(dir);
            }
        }
    }
    let mut versions: Vec<(Vec<u64>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.to_owned();
            let key = version
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<Vec<u64>>>()?;
            let bin = entry.path().join("bin");
            has_server(&bin).then_some((key, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// psql from the server's binaries, else the one on PATH.
fn psql_binary() -> PathBuf {
    if let Some(psql) = try_bin_dir()
        .map(|dir| dir.join("psql"))
        .filter(|p| p.is_file())
    {
        return psql;
    }
    find_on_path("psql").unwrap_or_else(|| {
        panic!("postgres: no `psql` in the PostgreSQL binaries nor on PATH. To fix: {INSTALL}")
    })
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// Whether this process's effective uid is 0 (from /proc, else `id -u`).
fn is_root() -> bool {
    if let Ok(status) = fs::read_to_string("/proc/self/status") {
        if let Some(line) = status.lines().find(|l| l.starts_with("Uid:")) {
            if let Some(euid) = line.split_whitespace().nth(2) {
                return euid == "0";
            }
        }
    }
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `postgres` if that user exists, else `nobody`.
fn run_as_user() -> RunAs {
    let id = |flag: &str, name: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, name]).output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    for name in ["postgres", "nobody"] {
        if let (Some(uid), Some(gid)) = (id("-u", name), id("-g", name)) {
            if uid != 0 {
                return RunAs {
                    name: name.to_owned(),
                    uid,
                    gid,
                };
            }
        }
    }
    panic!(
        "postgres: running as root, and there is neither a `postgres` nor a `nobody` user to \
         run initdb and postgres as (they refuse root). To fix: {INSTALL} (it adds the \
         `postgres` user)"
    )
}

/// The command words that run what follows as `user`: setpriv execs it (so the server's
/// pid is the one started), runuser where there is no setpriv.
fn run_as_prefix(user: &RunAs) -> Vec<String> {
    if let Some(setpriv) = find_on_path("setpriv") {
        vec![
            setpriv.display().to_string(),
            format!("--reuid={}", user.uid),
            format!("--regid={}", user.gid),
            "--clear-groups".to_owned(),
            "--".to_owned(),
        ]
    } else if let Some(runuser) = find_on_path("runuser") {
        vec![
            runuser.display().to_string(),
            "-u".to_owned(),
            user.name.clone(),
            "--".to_owned(),
        ]
    } else {
        panic!(
            "postgres: running as root, and neither `setpriv` nor `runuser` (util-linux) is \
             there to run initdb and postgres as `{}`. To fix: apt-get install -y util-linux",
            user.name
        )
    }
}

fn as_user(user: Option<&RunAs>, program: &Path) -> Command {
    match user {
        None => Command::new(program),
        Some(user) => {
            let prefix = run_as_prefix(user);
            let mut cmd = Command::new(&prefix[0]);
            cmd.args(&prefix[1..]).arg(program);
            cmd
        }
    }
}

/// A new temporary directory whose socket path fits a unix socket address (108 bytes)
/// and, when the server runs as another user, whose parents that user can pass through;
/// else one in /tmp.
fn temp_dir(other_user: bool) -> tempfile::TempDir {
    let base = std::env::temp_dir();
    let reachable = !other_user
        || base
            .ancestors()
            .all(|dir| fs::metadata(dir).is_ok_and(|m| m.mode() & 0o001 != 0));
    let base = if reachable && base.as_os_str().len() < 60 {
        base
    } else {
        PathBuf::from("/tmp")
    };
    tempfile::Builder::new()
        .prefix("authgate-pg.")
        .tempdir_in(&base)
        .unwrap_or_else(|e| {
            panic!(
                "postgres: cannot create a directory in {}: {e}",
                base.display()
            )
        })
}

/// Runs `cmd` to completion within [`PG_DEADLINE`], its output captured; panics if it
/// cannot be run or hangs.
fn run_with_deadline(mut cmd: Command, what: &str) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("postgres: cannot run {what}: {e}. To fix: {INSTALL}"));
    // Drain both pipes on threads so a chatty command cannot block on a full pipe.
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut buf);
        buf
    });
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut buf);
        buf
    });
    let status = match wait_deadline(&mut child, PG_DEADLINE) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "postgres: {what} did not finish within {PG_DEADLINE:?}; killed it. Output:\n{}{}",
                String::from_utf8_lossy(&out_thread.join().unwrap_or_default()),
                String::from_utf8_lossy(&err_thread.join().unwrap_or_default()),
            );
        }
    };
    Output {
        status,
        stdout: out_thread.join().unwrap_or_default(),
        stderr: err_thread.join().unwrap_or_default(),
    }
}

fn wait_deadline(child: &mut Child, deadline: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if start.elapsed() < deadline => std::thread::sleep(POLL),
            Ok(None) => return None,
            Err(e) => panic!("postgres: waiting for a child process: {e}"),
        }
    }
}

/// libpq's environment (PGHOST, PGPORT, PGOPTIONS, ...) would change what the commands
/// connect to; every connection here is spelled out.
fn clear_pg_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
}

fn without_dbname(base: &str) -> String {
    base.split_whitespace()
        .filter(|word| !word.starts_with("dbname="))
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
