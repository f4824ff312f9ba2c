//! Fault rows that crash a process: `ipguard serve` SIGKILLed while polling a deploy, and
//! PostgreSQL crash-restarted during a burst of notifications.

use super::*;

// ---------------------------------------------------------------------------------------
// SIGKILL while polling

/// `ipguard serve` as a child process, its output in a file; killed if the test panics.
struct Process {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Process {
    fn spawn(org: &Org, log: &Path) -> Process {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // A file, not a pipe: nobody reads while the test waits, and a full pipe would block.
        let out = std::fs::File::create(log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ipguard"))
            .arg("serve")
            .env_clear()
            .envs(org.vars.iter().map(|(k, v)| (*k, v.as_str())))
            .env("PORT", port.to_string())
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("start ipguard serve");
        Process {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log: log.to_owned(),
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The runs `/status` reports, newest first; empty while the process is not serving.
    async fn runs(&self) -> Vec<serde_json::Value> {
        let Ok(response) = http()
            .get(format!("{}/status", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
        else {
            return Vec::new();
        };
        if response.status() != 200 {
            return Vec::new();
        }
        let status: serde_json::Value = response.json().await.unwrap();
        status["runs"].as_array().cloned().unwrap_or_default()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal}");
    }

    async fn wait(mut self) -> std::process::ExitStatus {
        let waited = tokio::task::spawn_blocking(move || self.child.wait());
        tokio::time::timeout(Duration::from_secs(30), waited)
            .await
            .expect("the process exits within Heroku's 30 s")
            .unwrap()
            .unwrap()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real process is SIGKILLed while it polls a deploy that does not finish; the deploy
/// then succeeds while nothing watches. A new process on the same SQLite database resumes
/// polling that deploy (no second deploy) and records the run `remediated`.
#[tokio::test]
async fn fault_sigkill_while_polling_then_restart_resumes_the_same_deploy() {
    let org = Org::start(&[]).await;
    org.sim.set_faults(Faults {
        deploy_outcome: DeployOutcome::Stuck,
        ..Faults::default()
    });
    let logs = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let first = Process::spawn(&org, &logs.path().join("first.log"));
    wait_until(
        "the first process submits a deploy and polls it",
        Duration::from_secs(20),
        async || org.sim.count("deploy") == 1 && org.sim.count("checkDeployStatus") >= 2,
    )
    .await;
    let deploy_id = org.sim.deploys()[0].id.clone();
    let runs = first.runs().await;
    assert_eq!(runs[0]["deploy_id"], deploy_id.as_str(), "{runs:#?}");
    assert!(runs[0]["outcome"].is_null(), "still polling: {runs:#?}");
    first.signal("-KILL");
    let exit = first.wait().await;
    assert!(!exit.success(), "killed: {exit:?}");
    let polls_before = org.sim.count("checkDeployStatus");

    // Salesforce finishes the deploy while no ipguard runs.
    org.sim.set_faults(Faults::default());
    let restarted = Instant::now();
    let second = Process::spawn(&org, &logs.path().join("second.log"));
    // The dead process's lease (30 s in production timing) must expire before the new one
    // may reconcile: SIGKILL gave it no chance to let go.
    let mut runs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(50);
    while !runs
        .iter()
        .any(|r: &serde_json::Value| r["outcome"] == "remediated")
    {
        assert!(
            Instant::now() < deadline,
            "never resumed: {runs:#?}\n{}",
            second.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        runs = second.runs().await;
    }
    let resumed_after = restarted.elapsed();
    assert_eq!(org.sim.count("deploy"), 1, "resumed, never redeployed");
    let run = runs.iter().find(|r| r["outcome"] == "remediated").unwrap();
    assert_eq!(run["deploy_id"], deploy_id.as_str(), "{run:#}");
    assert!(
        org.sim.count("checkDeployStatus") > polls_before,
        "the second process polled"
    );
    assert!(
        second
            .logs()
            .contains("resuming a deploy submitted before a restart"),
        "{}",
        second.logs()
    );
    assert_eq!(org.sim.login_ip_ranges("Standard").unwrap(), desired());
    assert_eq!(org.sim.login_ip_ranges("Admin").unwrap(), desired());
    let calls = org.sim.calls().len();
    second.signal("-TERM");
    let second_log = second.log.clone();
    let exit = second.wait().await;
    assert!(
        exit.success(),
        "SIGTERM stops cleanly: {exit:?}\n{}",
        std::fs::read_to_string(second_log).unwrap_or_default()
    );
    eprintln!(
        "fault matrix, SIGKILL while polling: 1 deploy {deploy_id}, resumed and remediated \
         {:.1} s after the restart (lease expiry included), {calls} calls, {:.1} s in all; {:?}",
        resumed_after.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        tally(&org)
    );
}

// ---------------------------------------------------------------------------------------
// PostgreSQL crash-restarted during a burst

/// A PostgreSQL cluster of this test's own in a temp dir, so it can be crashed without
/// disturbing the shared server other tests use. Stopped and removed on drop, also after a
/// panic.
struct PrivateCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// Run the server tools as `postgres` (they refuse to run as root).
    as_postgres: bool,
}

impl PrivateCluster {
    /// `None` (skipped, loudly) where PostgreSQL tests are off; panics where they are on and
    /// the server binaries cannot be found.
    fn start() -> Option<PrivateCluster> {
        if std::env::var(ipguard::store::testing::PG_ENV).is_err() {
            eprintln!(
                "SKIPPED: PostgreSQL crash test not run; set {} (it starts a private cluster)",
                ipguard::store::testing::PG_ENV
            );
            return None;
        }
        let bin = find_pg_bin().expect(
            "PostgreSQL server binaries (initdb, pg_ctl) not found via pg_config --bindir or \
             /usr/lib/postgresql/*/bin",
        );
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = PrivateCluster {
            dir,
            bin,
            port,
            as_postgres,
        };
        if as_postgres {
            run(Command::new("chown").args(["postgres:postgres", &cluster.path(".")]));
        }
        cluster.tool(
            "initdb",
            &[
                "-D",
                &cluster.path("data"),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
            ],
        );
        cluster.pg_ctl(&["start"]);
        Some(cluster)
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A server tool of this cluster's installation, as the user that may run it.
    fn command(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn tool(&self, name: &str, args: &[&str]) -> std::process::Output {
        run(self.command(name).args(args))
    }

    /// `pg_ctl` on this cluster; `start` listens on 127.0.0.1 only, socket in the temp dir.
    fn pg_ctl(&self, args: &[&str]) -> std::process::Output {
        // fsync off: a crash of the server process (not of the machine) loses nothing the
        // kernel was handed, and the test machine's disk is slow.
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.path(".")
        );
        let (data, log) = (self.path("data"), self.path("server.log"));
        let mut all = vec!["-D", &data, "-l", &log, "-w", "-t", "30", "-o", &options];
        all.extend_from_slice(args);
        self.tool("pg_ctl", &all)
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let data = self.path("data");
        let stopped = self
            .command("pg_ctl")
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
        if !stopped.is_ok_and(|o| o.status.success()) {
            eprintln!("warning: could not stop the private PostgreSQL cluster in {data}");
        }
        // The TempDir field removes the directory after this.
    }
}

fn run(command: &mut Command) -> std::process::Output {
    let output = command.output().expect("run a PostgreSQL tool");
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn find_pg_bin() -> Option<PathBuf> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_tools(&dir) {
            return Some(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, dir)| has_tools(dir))
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir)
}

/// What the burst's clients saw.
#[derive(Default)]
struct BurstLog {
    /// Notification ids whose request got HTTP 200 with the ACK envelope.
    acked: Vec<String>,
    /// (status, body) of every refusal.
    nacks: Vec<(u16, String)>,
    /// Requests that got no response at all.
    transport_errors: Vec<String>,
}

/// A burst of outbound messages while the private PostgreSQL server is crash-restarted
/// (`pg_ctl stop -m immediate`, a second down, start with WAL recovery). A refusal is a NACK
/// Salesforce would retry, so clients retry until ACKed. Every ACKed notification must be in
/// the store afterwards, every refusal must be a 503 `soapenv:Server` fault (docs/contract.md §3), and the
/// service must recover (`/readyz` 200, a drift remediated) without a restart of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_postgres_crash_restart_during_a_burst_loses_no_acked_notification() {
    const MESSAGES: usize = 2000;
    const CLIENTS: usize = 64;
    let Some(cluster) = PrivateCluster::start() else {
        return;
    };
    let cluster = Arc::new(cluster);
    let mut org = Org::start(&[]).await;
    org.vars.insert("DATABASE_URL", cluster.url());
    let app = org.serve().await;
    app.wait_for_runs(Duration::from_secs(15), |r| {
        r.iter().any(|run| run.outcome.is_some())
    })
    .await;
    org.sim.clear_calls();

    let client = http();
    let url = app.url("/salesforce/outbound-messages");
    let org_id = org.sim.org_id();
    let bodies: Arc<Vec<(String, String)>> = Arc::new(
        (0..MESSAGES)
            .map(|i| {
                let id = notification_id(10_000 + i);
                let body = org
                    .sim
                    .outbound_message_body(&org_id, std::slice::from_ref(&id));
                (id, body)
            })
            .collect(),
    );
    let log = Arc::new(std::sync::Mutex::new(BurstLog::default()));
    let acked = Arc::new(AtomicUsize::new(0));

    // The crash: once a fifth of the burst is ACKed, stop at once, stay down a second, start.
    let restarter = {
        let (cluster, acked) = (cluster.clone(), acked.clone());
        tokio::spawn(async move {
            while acked.load(Ordering::SeqCst) < MESSAGES / 5 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let at_crash = acked.load(Ordering::SeqCst);
            let c = cluster.clone();
            tokio::task::spawn_blocking(move || c.pg_ctl(&["-m", "immediate", "stop"]))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
            let c = cluster.clone();
            tokio::task::spawn_blocking(move || c.pg_ctl(&["start"]))
                .await
                .unwrap();
            (at_crash, acked.load(Ordering::SeqCst))
        })
    };

    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..CLIENTS {
        let (client, url, bodies, log, acked) = (
            client.clone(),
            url.clone(),
            bodies.clone(),
            log.clone(),
            acked.clone(),
        );
        tasks.spawn(async move {
            for (id, body) in bodies.iter().skip(worker).step_by(CLIENTS) {
                // Salesforce's retry queue, scaled down: 50 ms doubling to 1 s.
                let mut backoff = Duration::from_millis(50);
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    assert!(Instant::now() < deadline, "{id} was never ACKed");
                    let sent = client
                        .post(&url)
                        .header("Content-Type", "text/xml; charset=utf-8")
                        .timeout(Duration::from_secs(30))
                        .body(body.clone())
                        .send()
                        .await;
                    match sent {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let text = response.text().await.unwrap_or_default();
                            if status == 200 && text.contains("<Ack>true</Ack>") {
                                log.lock().unwrap().acked.push(id.clone());
                                acked.fetch_add(1, Ordering::SeqCst);
                                break;
                            }
                            log.lock().unwrap().nacks.push((status, text));
                        }
                        Err(e) => log.lock().unwrap().transport_errors.push(e.to_string()),
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
    let burst = started.elapsed();
    let (at_crash, after_restart) = restarter.await.unwrap();
    assert!(
        at_crash < MESSAGES / 2 && after_restart < MESSAGES,
        "the crash fell mid-burst: {at_crash} ACKed when it began, {after_restart} when the \
         server was back"
    );

    let log = std::mem::take(&mut *log.lock().unwrap());
    assert_eq!(
        log.acked.len(),
        MESSAGES,
        "every message was ACKed in the end"
    );
    assert!(
        log.transport_errors.is_empty(),
        "the service itself never went away: {:?}",
        log.transport_errors
    );
    for (status, body) in &log.nacks {
        assert_eq!(*status, 503, "{body}");
        assert!(
            body.contains("<faultcode>soapenv:Server</faultcode>"),
            "a refusal is a SOAP Server fault: {body}"
        );
    }
    // The store's readiness comes back by itself; stale pool connections must not linger.
    let client = http();
    let mut ready = None;
    let ready_deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < ready_deadline {
        let status = client
            .get(app.url("/readyz"))
            .send()
            .await
            .map(|r| r.status().as_u16());
        if let Ok(200) = status {
            ready = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready.is_some(), "/readyz never answered 200 again");
    let deliveries: Vec<Delivery> = log
        .acked
        .iter()
        .map(|id| Delivery {
            source: DeliverySource::OutboundMessage,
            key: id.clone(),
        })
        .collect();
    let lost = app
        .service
        .store
        .unrecorded_deliveries(&deliveries)
        .await
        .expect("the store answers after the restart");
    assert!(lost.is_empty(), "ACKed but lost: {lost:?}");

    // The LISTEN connection is back: a hint another instance records wakes a waiter here
    // (an org of its own, so the controller's waits and wake-ups do not interfere).
    let other = ipguard::store::Store::connect(&ipguard::config::DatabaseUrl::Postgres {
        url: cluster.url().into(),
    })
    .await
    .expect("a second instance connects");
    let listen_org = "00Dlistencheck";
    let waiter = {
        let store = app.service.store.clone();
        tokio::spawn(async move {
            store
                .wait_for_hint(listen_org, Duration::from_secs(15))
                .await;
            Instant::now()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let enqueued = Instant::now();
    other
        .enqueue_hint(&ipguard::store::NewHint {
            org_id: listen_org.to_owned(),
            trigger: ipguard::trigger::Trigger::Admin,
            detail: None,
        })
        .await
        .unwrap();
    let woken = waiter.await.unwrap();
    assert!(
        woken >= enqueued && woken - enqueued < Duration::from_secs(5),
        "the hint's NOTIFY woke the waiter ({:?} after the hint)",
        woken.checked_duration_since(enqueued)
    );
    other.close().await;

    // The controller works on the restarted server too: a drift is remediated.
    org.sim
        .set_login_ip_ranges("Standard", vec![range("192.0.2.7", "192.0.2.7")]);
    let report = org
        .sim
        .send_outbound_message(&url, &[notification_id(1)], SendRetry::default())
        .await;
    assert!(report.delivered, "{report:?}");
    wait_until(
        "the drift after the crash is remediated",
        Duration::from_secs(20),
        async || {
            org.sim
                .login_ip_ranges("Standard")
                .is_some_and(|r| r.contains(&desired()[0]))
        },
    )
    .await;
    eprintln!(
        "fault matrix, PostgreSQL crash-restart mid-burst: {MESSAGES} messages from {CLIENTS} \
         clients ACKed in {:.1} s; crash after {at_crash} ACKs, server back after \
         {after_restart}; {} NACKs (503 soapenv:Server), 0 lost; {} Salesforce calls",
        burst.as_secs_f64(),
        log.nacks.len(),
        salesforce_calls(&org),
    );
    app.service.stop().await;
}
