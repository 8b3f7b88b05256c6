//! The private PostgreSQL cluster behind `epai serve` when no `DATABASE_URL` is given.
//!
//! The cluster lives in `<data dir>/pgdata`, is created with the installed server binaries
//! (`initdb`, `pg_ctl`), listens only on a Unix socket in a directory only its owner can enter,
//! and runs as an unprivileged OS user when EPAI runs as root (PostgreSQL refuses root).
//!
//! One process owns a data directory at a time, through an exclusive lock on
//! `<data dir>/epai.lock`: the owner starts the cluster (or adopts one left running by a killed
//! owner) and stops it when done. Other commands on the same directory, such as `epai migrate`
//! while `epai serve` runs, attach to the running cluster without starting or stopping it.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::connect::{APP_ROLE, DatabaseTarget};

/// The superuser `initdb` creates; only migrations use it.
const ADMIN_USER: &str = "postgres";
/// The database EPAI keeps its tables in.
const DATABASE: &str = "epai";
/// Only the socket file name depends on it: the cluster listens on no TCP port.
const PORT: u16 = 5432;
/// Unix socket paths are limited to 107 bytes; longer data dirs get their socket under /tmp.
const MAX_SOCKET_PATH: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "no PostgreSQL server binaries found (looked for initdb, pg_ctl and postgres in: {searched}). \
         Install the PostgreSQL server: `apt-get install postgresql` (Debian, Ubuntu), \
         `dnf install postgresql-server` (Fedora, RHEL), `brew install postgresql@16` (macOS); \
         or point EPAI_PG_BINDIR at the directory holding them; \
         or set DATABASE_URL to use an existing server"
    )]
    NoServerBinaries { searched: String },
    #[error(
        "{dir} is in use by another epai process ({holder}); stop it or use another --data-dir"
    )]
    InUse { dir: PathBuf, holder: String },
    #[error(
        "running as root, but PostgreSQL must run as an unprivileged user and none of {tried} \
         exists; create one or name it with EPAI_PG_USER"
    )]
    NoUnprivilegedUser { tried: String },
    #[error(
        "{pgdata} holds a PostgreSQL {found} cluster but the server binaries in {bindir} are \
         version {installed}; install PostgreSQL {found} or move the directory away"
    )]
    VersionMismatch {
        pgdata: PathBuf,
        found: String,
        installed: String,
        bindir: PathBuf,
    },
    #[error("{0} exists and is not empty, but is not a PostgreSQL data directory")]
    NotADataDirectory(PathBuf),
    #[error("{command} failed: {detail}")]
    Command { command: String, detail: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> EmbeddedError + '_ {
    move |source| EmbeddedError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A directory holding `initdb`, `pg_ctl` and `postgres`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerBinaries {
    pub bindir: PathBuf,
    /// Major version, as `initdb` writes it to `PG_VERSION` (e.g. "15").
    pub major_version: String,
}

impl ServerBinaries {
    /// Finds the server binaries: `explicit` if given (and then only there), else the first
    /// complete directory among `candidates`.
    pub fn locate(explicit: Option<&Path>, candidates: &[PathBuf]) -> Result<Self, EmbeddedError> {
        let search: Vec<PathBuf> = match explicit {
            Some(dir) => vec![dir.to_owned()],
            None => candidates.to_vec(),
        };
        let bindir = search
            .iter()
            .find(|dir| {
                ["initdb", "pg_ctl", "postgres"]
                    .iter()
                    .all(|b| is_executable(&dir.join(b)))
            })
            .ok_or_else(|| EmbeddedError::NoServerBinaries {
                searched: if search.is_empty() {
                    "nowhere: no candidate directories".into()
                } else {
                    search
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            })?
            .clone();
        let output = run(Command::new(bindir.join("postgres")).arg("--version"))?;
        let major_version = parse_major_version(&String::from_utf8_lossy(&output.stdout))
            .ok_or_else(|| EmbeddedError::Command {
                command: format!("{} --version", bindir.join("postgres").display()),
                detail: "unrecognised version output".into(),
            })?;
        Ok(Self {
            bindir,
            major_version,
        })
    }

    /// Where distributions install the server: `pg_config --bindir`, Debian's per-version
    /// directories (newest first), then the usual prefixes of other systems.
    pub fn default_candidates() -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
            && out.status.success()
        {
            let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if !dir.is_empty() {
                dirs.push(PathBuf::from(dir));
            }
        }
        let mut debian: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
                Some((version, entry.path().join("bin")))
            })
            .collect();
        debian.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
        dirs.extend(debian.into_iter().map(|(_, dir)| dir));
        for fixed in [
            "/usr/local/pgsql/bin",
            "/opt/homebrew/bin",
            "/usr/local/bin",
            "/usr/bin",
        ] {
            dirs.push(PathBuf::from(fixed));
        }
        dirs
    }
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// "postgres (PostgreSQL) 15.19 (Debian 15.19-0+deb12u1)" → "15"; "9.6.24" → "9.6".
fn parse_major_version(version_output: &str) -> Option<String> {
    let number = version_output
        .split_whitespace()
        .find(|word| word.starts_with(|c: char| c.is_ascii_digit()))?;
    let mut parts = number.split('.');
    let major = parts.next()?;
    if major.parse::<u32>().ok()? < 10 {
        Some(format!("{major}.{}", parts.next()?))
    } else {
        Some(major.to_owned())
    }
}

/// Where and as whom to run the cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    pub data_dir: PathBuf,
    /// `EPAI_PG_BINDIR`: use only this directory for the server binaries.
    pub bindir: Option<PathBuf>,
    /// Directories searched when `bindir` is not given.
    pub candidates: Vec<PathBuf>,
    /// `EPAI_PG_USER`: the OS user to run PostgreSQL as when EPAI runs as root.
    pub os_user: Option<String>,
}

impl ClusterOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            bindir: None,
            candidates: ServerBinaries::default_candidates(),
            os_user: None,
        }
    }
}

/// A running embedded cluster. Dropping an owning handle stops the cluster.
#[derive(Debug)]
pub struct EmbeddedCluster {
    pgdata: PathBuf,
    socket_dir: PathBuf,
    binaries: ServerBinaries,
    run_as: Option<(u32, u32)>,
    /// Held while this process owns the data directory.
    owner_lock: Option<File>,
    stopped: bool,
}

impl EmbeddedCluster {
    /// Takes ownership of the data directory and starts (or initialises, or adopts) its cluster.
    /// Fails with [`EmbeddedError::InUse`] when another process owns it.
    pub fn start(options: &ClusterOptions) -> Result<Self, EmbeddedError> {
        Self::open(options, false)
    }

    /// Like [`start`](Self::start), but when another process owns the directory, connects to
    /// the cluster it runs instead of failing. An attached handle never stops the cluster.
    pub fn start_or_attach(options: &ClusterOptions) -> Result<Self, EmbeddedError> {
        Self::open(options, true)
    }

    fn open(options: &ClusterOptions, may_attach: bool) -> Result<Self, EmbeddedError> {
        let binaries = ServerBinaries::locate(options.bindir.as_deref(), &options.candidates)?;
        let run_as = unprivileged_user(options.os_user.as_deref())?;
        fs::create_dir_all(&options.data_dir).map_err(io_err(&options.data_dir))?;
        let data_dir = fs::canonicalize(&options.data_dir).map_err(io_err(&options.data_dir))?;
        let pgdata = data_dir.join("pgdata");
        let socket_dir = socket_dir_for(&data_dir);
        let mut cluster = Self {
            pgdata,
            socket_dir,
            binaries,
            run_as,
            owner_lock: None,
            stopped: false,
        };

        let lock_path = data_dir.join("epai.lock");
        let mut lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) if !may_attach => {
                return Err(EmbeddedError::InUse {
                    dir: data_dir,
                    holder: lock_holder(&lock_path),
                });
            }
            Err(TryLockError::WouldBlock) => {
                tracing::info!(data_dir = %data_dir.display(), "attaching to the cluster another epai process runs");
                return Ok(cluster);
            }
            Err(TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
        lock.set_len(0).map_err(io_err(&lock_path))?;
        lock.rewind().map_err(io_err(&lock_path))?;
        write!(lock, "pid {}", std::process::id()).map_err(io_err(&lock_path))?;
        cluster.owner_lock = Some(lock);

        if let Some((uid, _)) = run_as {
            grant_traversal(&data_dir, uid)?;
        }
        cluster.initialise_if_needed()?;
        cluster.write_settings()?;
        cluster.prepare_socket_dir()?;
        if cluster.is_running()? {
            tracing::info!(pgdata = %cluster.pgdata.display(), "adopting a cluster left running by an earlier epai process");
        } else {
            cluster.pg_ctl_start()?;
        }
        Ok(cluster)
    }

    /// Whether this handle owns the cluster (and so stops it on drop).
    pub fn is_owner(&self) -> bool {
        self.owner_lock.is_some()
    }

    pub fn pgdata(&self) -> &Path {
        &self.pgdata
    }

    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// Connection settings: migrations as the cluster superuser, the pool as `epai_app`.
    pub fn target(&self) -> DatabaseTarget {
        let base = |user: &str, dbname: &str| {
            let mut config = tokio_postgres::Config::new();
            config
                .host_path(&self.socket_dir)
                .port(PORT)
                .user(user)
                .dbname(dbname)
                .application_name("epai");
            config
        };
        DatabaseTarget::from_configs(base(ADMIN_USER, DATABASE), base(APP_ROLE, DATABASE))
    }

    /// Creates the `epai` database inside the cluster unless it exists.
    pub async fn ensure_database(&self) -> Result<(), crate::StoreError> {
        let mut config = self.target().admin_config().clone();
        config.dbname("postgres");
        let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
        let driver = tokio::spawn(connection);
        let exists = client
            .query_opt(
                crate::queries::named_query!("schema/database_exists"),
                &[&DATABASE],
            )
            .await?
            .is_some();
        if !exists {
            let created = client
                .batch_execute(crate::queries::named_query!("schema/create_database"))
                .await
                .map_err(crate::StoreError::from);
            match created {
                // Another command created it in the meantime.
                Ok(()) | Err(crate::StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        drop(client);
        let _ = driver.await;
        Ok(())
    }

    /// Stops the cluster if this handle owns it; waits until PostgreSQL has exited.
    pub fn stop(mut self) -> Result<(), EmbeddedError> {
        self.stop_owned()
    }

    fn stop_owned(&mut self) -> Result<(), EmbeddedError> {
        if self.owner_lock.is_none() || self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let result = if self.is_running()? {
            self.pg_ctl(["stop", "-m", "fast", "-w", "-t", "60", "-s"])
                .map(|_| ())
        } else {
            Ok(())
        };
        self.owner_lock = None;
        result
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.binaries.bindir.join(program));
        command.env("LC_ALL", "C").env("TZ", "UTC");
        if let Some(parent) = self.pgdata.parent() {
            command.current_dir(parent);
        }
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid).gid(gid);
        }
        command
    }

    fn pg_ctl<I, S>(&self, args: I) -> Result<Output, EmbeddedError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.command("pg_ctl");
        command.args(args).arg("-D").arg(&self.pgdata);
        run(&mut command)
    }

    /// Whether the cluster's postmaster is alive. A `postmaster.pid` left by a killed server is
    /// removed once no process works in the data directory any more, so PostgreSQL can start;
    /// a zombie postmaster (killed, not yet reaped) counts as dead.
    fn is_running(&self) -> Result<bool, EmbeddedError> {
        let pid_file = self.pgdata.join("postmaster.pid");
        let Some(pid) = fs::read_to_string(&pid_file)
            .ok()
            .and_then(|text| text.lines().next()?.trim().parse::<u32>().ok())
        else {
            return Ok(false);
        };
        if !Path::new("/proc/self").exists() {
            // Without /proc, trust pg_ctl (0: running; 3: not running).
            let mut command = self.command("pg_ctl");
            command.arg("status").arg("-D").arg(&self.pgdata);
            let output = command.output().map_err(|e| EmbeddedError::Command {
                command: describe(&command),
                detail: e.to_string(),
            })?;
            return Ok(output.status.code() == Some(0));
        }
        if works_in(pid, &self.pgdata) {
            return Ok(true);
        }
        // The postmaster is gone; its children notice and exit within moments.
        let deadline = Instant::now() + Duration::from_secs(30);
        while processes_working_in(&self.pgdata).next().is_some() {
            if Instant::now() > deadline {
                return Err(EmbeddedError::Command {
                    command: "waiting for the processes of a dead PostgreSQL server".into(),
                    detail: format!("they still work in {}", self.pgdata.display()),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        tracing::warn!(
            pid,
            "removing postmaster.pid of a PostgreSQL server that was killed"
        );
        // The socket directory belongs to this cluster alone, so its lock file is stale too.
        let socket = self.socket_dir.join(format!(".s.PGSQL.{PORT}"));
        for stale in [
            pid_file,
            socket.with_extension(format!("{PORT}.lock")),
            socket,
        ] {
            match fs::remove_file(&stale) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&stale)(e)),
            }
        }
        Ok(false)
    }

    fn initialise_if_needed(&self) -> Result<(), EmbeddedError> {
        let version_file = self.pgdata.join("PG_VERSION");
        if version_file.exists() {
            let found = fs::read_to_string(&version_file)
                .map_err(io_err(&version_file))?
                .trim()
                .to_owned();
            if found != self.binaries.major_version {
                return Err(EmbeddedError::VersionMismatch {
                    pgdata: self.pgdata.clone(),
                    found,
                    installed: self.binaries.major_version.clone(),
                    bindir: self.binaries.bindir.clone(),
                });
            }
            return Ok(());
        }
        if self.pgdata.exists()
            && fs::read_dir(&self.pgdata)
                .map_err(io_err(&self.pgdata))?
                .next()
                .is_some()
        {
            return Err(EmbeddedError::NotADataDirectory(self.pgdata.clone()));
        }
        fs::create_dir_all(&self.pgdata).map_err(io_err(&self.pgdata))?;
        self.hand_over(&self.pgdata)?;
        tracing::info!(pgdata = %self.pgdata.display(), version = %self.binaries.major_version, "initialising a new PostgreSQL cluster");
        let mut initdb = self.command("initdb");
        initdb.arg("-D").arg(&self.pgdata).args([
            "-U",
            ADMIN_USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
        ]);
        run(&mut initdb)?;
        let conf = self.pgdata.join("postgresql.conf");
        let mut file = OpenOptions::new()
            .append(true)
            .open(&conf)
            .map_err(io_err(&conf))?;
        writeln!(
            file,
            "\n# Settings written by epai at every start.\ninclude_if_exists = 'epai.conf'"
        )
        .map_err(io_err(&conf))?;
        Ok(())
    }

    fn write_settings(&self) -> Result<(), EmbeddedError> {
        let path = self.pgdata.join("epai.conf");
        let socket_dir = self.socket_dir.display().to_string().replace('\'', "''");
        let settings = format!(
            "# Rewritten by epai at every start; edit postgresql.conf for your own settings.\n\
             listen_addresses = ''\n\
             port = {PORT}\n\
             unix_socket_directories = '{socket_dir}'\n\
             unix_socket_permissions = 0700\n\
             max_connections = 100\n\
             timezone = 'UTC'\n\
             log_timezone = 'UTC'\n"
        );
        fs::write(&path, settings).map_err(io_err(&path))?;
        self.hand_over(&path)
    }

    fn prepare_socket_dir(&self) -> Result<(), EmbeddedError> {
        fs::create_dir_all(&self.socket_dir).map_err(io_err(&self.socket_dir))?;
        fs::set_permissions(&self.socket_dir, fs::Permissions::from_mode(0o700))
            .map_err(io_err(&self.socket_dir))?;
        self.hand_over(&self.socket_dir)
    }

    fn pg_ctl_start(&self) -> Result<(), EmbeddedError> {
        let log = self.pgdata.join("postgres.log");
        let result = self.pg_ctl([
            OsStr::new("start"),
            OsStr::new("-w"),
            OsStr::new("-t"),
            OsStr::new("60"),
            OsStr::new("-s"),
            OsStr::new("-l"),
            log.as_os_str(),
        ]);
        result.map(|_| ()).map_err(|err| match err {
            EmbeddedError::Command { command, detail } => EmbeddedError::Command {
                command,
                detail: format!(
                    "{detail}\nlast lines of {}:\n{}",
                    log.display(),
                    tail(&log, 15)
                ),
            },
            other => other,
        })
    }

    /// Gives a path to the OS user PostgreSQL runs as (no-op when not running as root).
    fn hand_over(&self, path: &Path) -> Result<(), EmbeddedError> {
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(io_err(path))?;
        }
        Ok(())
    }
}

impl Drop for EmbeddedCluster {
    fn drop(&mut self) {
        if let Err(e) = self.stop_owned() {
            tracing::error!(error = %e, "could not stop the embedded PostgreSQL cluster");
        }
    }
}

/// `None` when not root; otherwise the uid/gid of `requested`, or of `postgres`, or `nobody`.
fn unprivileged_user(requested: Option<&str>) -> Result<Option<(u32, u32)>, EmbeddedError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let names: Vec<&str> = match requested {
        Some(name) => vec![name],
        None => vec!["postgres", "nobody"],
    };
    for name in &names {
        if let Ok(Some(user)) = nix::unistd::User::from_name(name)
            && !user.uid.is_root()
        {
            return Ok(Some((user.uid.as_raw(), user.gid.as_raw())));
        }
    }
    Err(EmbeddedError::NoUnprivilegedUser {
        tried: names.join(", "),
    })
}

/// PostgreSQL (as `uid`) must be able to walk down to its data directory. Directories such as
/// `/root` or a `mktemp -d` folder are closed to other users: add search permission (`o+x`,
/// which lists nothing) where it is missing, and say so.
fn grant_traversal(data_dir: &Path, uid: u32) -> Result<(), EmbeddedError> {
    for dir in data_dir.ancestors() {
        let meta = fs::metadata(dir).map_err(io_err(dir))?;
        let mode = meta.permissions().mode();
        let searchable = mode & 0o001 != 0 || (meta.uid() == uid && mode & 0o100 != 0);
        if !searchable {
            fs::set_permissions(dir, fs::Permissions::from_mode(mode | 0o001))
                .map_err(io_err(dir))?;
            tracing::warn!(dir = %dir.display(), "added search permission (o+x) so the unprivileged PostgreSQL user can reach its data directory");
        }
    }
    Ok(())
}

/// Live (not zombie) process `pid` has `dir` as its working directory, as every PostgreSQL
/// server process has its data directory.
fn works_in(pid: u32, dir: &Path) -> bool {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let alive = fs::read_to_string(proc_dir.join("stat")).is_ok_and(|stat| {
        // The state follows the parenthesised command name: "123 (postgres) S ...".
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    });
    alive && fs::read_link(proc_dir.join("cwd")).is_ok_and(|cwd| cwd == dir)
}

fn processes_working_in(dir: &Path) -> impl Iterator<Item = u32> + '_ {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(move |pid| works_in(*pid, dir))
}

fn socket_dir_for(data_dir: &Path) -> PathBuf {
    let local = data_dir.join("run");
    let socket_file_len = local.as_os_str().len() + "/.s.PGSQL.5432".len();
    if socket_file_len <= MAX_SOCKET_PATH {
        return local;
    }
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data_dir.hash(&mut hasher);
    PathBuf::from(format!("/tmp/epai-{:016x}", hasher.finish()))
}

fn lock_holder(lock_path: &Path) -> String {
    let mut text = String::new();
    match File::open(lock_path).and_then(|mut f| f.read_to_string(&mut text)) {
        Ok(_) if !text.trim().is_empty() => text.trim().to_owned(),
        _ => "unknown pid".into(),
    }
}

fn describe(command: &Command) -> String {
    let mut text = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

fn run(command: &mut Command) -> Result<Output, EmbeddedError> {
    let output = command.output().map_err(|e| EmbeddedError::Command {
        command: describe(command),
        detail: e.to_string(),
    })?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(EmbeddedError::Command {
            command: describe(command),
            detail: format!(
                "{}\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        })
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn major_versions_are_read_from_version_output() {
        assert_eq!(
            parse_major_version("postgres (PostgreSQL) 15.19 (Debian 15.19-0+deb12u1)").as_deref(),
            Some("15")
        );
        assert_eq!(
            parse_major_version("postgres (PostgreSQL) 9.6.24").as_deref(),
            Some("9.6")
        );
        assert_eq!(parse_major_version("no digits"), None);
    }

    #[test]
    fn missing_binaries_name_the_package_to_install() {
        let empty = tempfile::tempdir().unwrap();
        let err = ServerBinaries::locate(None, &[empty.path().to_owned()]).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, EmbeddedError::NoServerBinaries { .. }));
        assert!(message.contains("apt-get install postgresql"), "{message}");
        assert!(message.contains(&empty.path().display().to_string()));
        assert!(message.contains("DATABASE_URL"));
    }

    #[test]
    fn an_explicit_bindir_is_the_only_place_searched() {
        let empty = tempfile::tempdir().unwrap();
        let installed = ServerBinaries::default_candidates();
        let err = ServerBinaries::locate(Some(empty.path()), &installed).unwrap_err();
        assert!(matches!(err, EmbeddedError::NoServerBinaries { .. }));
    }

    #[test]
    fn long_data_dirs_get_a_short_socket_dir() {
        let short = socket_dir_for(Path::new("/srv/epai"));
        assert_eq!(short, PathBuf::from("/srv/epai/run"));
        let long = socket_dir_for(&PathBuf::from(format!("/srv/{}", "d".repeat(120))));
        assert!(long.starts_with("/tmp"));
        assert!(long.as_os_str().len() + 14 <= MAX_SOCKET_PATH);
    }
}
