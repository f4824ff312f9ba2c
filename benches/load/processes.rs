//! The processes a run measures: `ipguard serve` (the release binary) and the ceiling server.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::CEILING_FLAG;

/// A child process killed on drop, with its resident memory readable from /proc.
pub(crate) struct Server {
    child: Child,
    pub(crate) base: String,
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// (VmRSS, VmHWM) in MiB: resident now, and the peak so far.
    pub(crate) fn memory(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/<pid>/status (Linux)");
        let kib = |field: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
    }

    /// SIGTERM, as Heroku stops a dyno; returns how long the process took to exit.
    pub(crate) fn terminate(mut self) -> Duration {
        let started = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let _ = self.child.wait();
        started.elapsed()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Starts `ipguard serve` and returns it with the time from spawn to `/readyz` answering 200.
pub(crate) async fn start_ipguard(
    vars: &HashMap<&'static str, String>,
    http: &reqwest::Client,
) -> (Server, Duration) {
    let port = free_port();
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_ipguard"))
        .arg("serve")
        .env_clear()
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .env("PORT", port.to_string())
        .envs(
            ["RUST_LOG", "TOKIO_WORKER_THREADS"]
                .into_iter()
                .filter_map(|k| std::env::var(k).ok().map(|v| (k, v))),
        )
        // logs as in production (info, one line a request), written to a pipe nobody reads
        // would block: discard them instead
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ipguard binary starts");
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let ready = wait_ready(http, &server.base).await;
    (server, ready.duration_since(started))
}

async fn wait_ready(http: &reqwest::Client, base: &str) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if ok {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "{base} never became ready");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// This benchmark binary again, serving the empty handler (see [`serve_ceiling`]).
pub(crate) async fn start_ceiling(http: &reqwest::Client) -> Server {
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .arg(CEILING_FLAG)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ceiling server starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ceiling port");
    let port: u16 = line.trim().parse().expect("ceiling port");
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    wait_ready(http, &server.base).await;
    server
}

/// The ceiling: actix-web with its default worker count (as `ipguard serve`), reading each
/// body (up to ipguard's 2 MiB) and answering 200 with nothing.
pub(crate) fn serve_ceiling() -> std::io::Result<()> {
    actix_web::rt::System::new().block_on(async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        println!("{}", listener.local_addr()?.port());
        actix_web::HttpServer::new(|| {
            actix_web::App::new()
                .app_data(actix_web::web::PayloadConfig::new(2 * 1024 * 1024))
                .default_service(actix_web::web::to(|_body: actix_web::web::Bytes| async {
                    actix_web::HttpResponse::Ok().finish()
                }))
        })
        .listen(listener)?
        .run()
        .await
    })
}
