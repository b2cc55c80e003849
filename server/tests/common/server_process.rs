//! The real `server` binary as a child process: started, killed with SIGKILL or stopped with
//! SIGTERM, and started again on the same port with the same database.

use std::{
    fs::{File, OpenOptions},
    net::SocketAddr,
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::process::{Child, Command};

/// How long a start may take before the harness gives up.
const START_WITHIN: Duration = Duration::from_secs(60);

pub(crate) struct ServerProcess {
    child: Option<Child>,
    addr: SocketAddr,
    env: Vec<(String, String)>,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts the server on `addr` with `env`, its output appended to `log`.
    pub(crate) async fn start(addr: SocketAddr, env: Vec<(String, String)>, log: PathBuf) -> Self {
        let mut process = Self {
            child: None,
            addr,
            env,
            log,
        };
        process.spawn().await;
        process
    }

    async fn spawn(&mut self) {
        let log = || -> File {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)
                .expect("server log")
        };
        let child = Command::new(env!("CARGO_BIN_EXE_server"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("LEPTOS_SITE_ADDR", self.addr.to_string())
            .stdin(Stdio::null())
            .stdout(log())
            .stderr(log())
            .kill_on_drop(true)
            .spawn()
            .expect("start the server binary");
        self.child = Some(child);
        self.wait_until_serving().await;
    }

    async fn wait_until_serving(&mut self) {
        let started = Instant::now();
        let url = format!("http://{}/readyz", self.addr);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        loop {
            if let Ok(response) = http.get(&url).send().await
                && response.status().is_success()
            {
                return;
            }
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "the server exited at start-up ({status}):\n{}",
                    self.log_tail(30)
                );
            }
            assert!(
                started.elapsed() < START_WITHIN,
                "the server did not start within {START_WITHIN:?}:\n{}",
                self.log_tail(30)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Where it listens.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `kill -9`, then a fresh start.
    pub(crate) async fn kill_and_restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().expect("SIGKILL");
            child.wait().await.expect("reap the server");
        }
        self.spawn().await;
    }

    /// SIGTERM, waits for the process to exit, then starts it again. Returns how long the
    /// graceful shutdown took; fails if it did not end within `bound`.
    pub(crate) async fn terminate_and_restart(&mut self, bound: Duration) -> Duration {
        let mut child = self.child.take().expect("running");
        let pid = child.id().expect("pid");
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let exit = tokio::time::timeout(bound, child.wait())
            .await
            .unwrap_or_else(|_| panic!("the server did not stop within {bound:?} of SIGTERM"))
            .expect("reap the server");
        let took = started.elapsed();
        assert!(exit.success(), "graceful shutdown ended with {exit}");
        self.spawn().await;
        took
    }

    /// Everything the server has written so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines the server wrote, for a failure report.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        let text = self.log();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// A port nothing listens on, for the server to take (and take again after each restart).
/// It is chosen below the kernel's range for outgoing connections, so that none of the
/// clients' own connections can be holding it when the server comes back.
pub(crate) fn free_port() -> SocketAddr {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let low = 10_000.min(ephemeral_start / 2);
    for _ in 0..1_000 {
        let port = fastrand::u16(low..ephemeral_start);
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            return listener.local_addr().expect("address");
        }
    }
    panic!("no free port below {ephemeral_start}");
}
