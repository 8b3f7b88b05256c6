//! `epai serve` as a child process, so the memory figures are the server's alone.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout};

const BANNER: &str = "EPAI is serving on http://";

pub struct ServerProcess {
    child: Child,
    pid: u32,
    address: SocketAddr,
    // Kept open so the server never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl ServerProcess {
    /// Starts this same binary as `epai serve` on a free loopback port, rate limits off, and
    /// waits until it listens.
    pub async fn start(database_url: &str, pool_size: usize) -> anyhow::Result<Self> {
        let executable = std::env::current_exe().context("cannot find the epai binary")?;
        let mut child = tokio::process::Command::new(executable)
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("EPAI_LISTEN", "127.0.0.1:0")
            .env("EPAI_RATE_LIMIT_PER_KEY", "0")
            .env("EPAI_RATE_LIMIT_PER_IP", "0")
            .env("EPAI_DB_POOL_SIZE", pool_size.to_string())
            .env("EPAI_LOG", "warn")
            .env_remove("EPAI_REDIS_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start epai serve")?;
        let pid = child.id().context("epai serve exited at once")?;
        let mut stdout = BufReader::new(child.stdout.take().context("no stdout pipe")?);
        let address = tokio::time::timeout(Duration::from_secs(60), read_address(&mut stdout))
            .await
            .context("epai serve did not start listening within 60 s")??;
        Ok(Self {
            child,
            pid,
            address,
            _stdout: stdout,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// SIGTERM, then waits for the graceful shutdown (which stores everything accepted).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let pid = i32::try_from(self.pid).context("process id out of range")?;
        kill(Pid::from_raw(pid), Signal::SIGTERM).context("cannot signal epai serve")?;
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .context("epai serve did not stop within 30 s of SIGTERM")??;
        anyhow::ensure!(status.success(), "epai serve exited with {status}");
        Ok(())
    }
}

async fn read_address(stdout: &mut BufReader<ChildStdout>) -> anyhow::Result<SocketAddr> {
    let mut line = String::new();
    loop {
        line.clear();
        anyhow::ensure!(
            stdout.read_line(&mut line).await? > 0,
            "epai serve exited before listening (its log is above)"
        );
        if let Some(rest) = line.trim().strip_prefix(BANNER) {
            let address = rest.split_whitespace().next().unwrap_or_default();
            return address
                .parse()
                .with_context(|| format!("unexpected listen address {address:?}"));
        }
    }
}
