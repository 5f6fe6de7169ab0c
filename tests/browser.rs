//! Real-browser tests of the web client: starts the `emotibot` binary (a DEV MODE server and one
//! with a configured secret) and runs the Playwright scenarios in `tests/browser/run.mjs` in
//! Debian's headless Chromium. Also runs the client's own unit tests (`node --test`).
//!
//! Needs `/usr/bin/chromium`, `node` and `tests/browser/node_modules` (`tests/browser/setup.sh`
//! installs them). When they are missing the tests say so loudly and pass, except under `CI=true`,
//! where a missing browser is a failure.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const CHROMIUM: &str = "/usr/bin/chromium";
const SERVER_BINARY: &str = env!("CARGO_BIN_EXE_emotibot");
const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
/// The whole scenario run must finish well within this; it normally takes under a minute.
const SCENARIO_DEADLINE: Duration = Duration::from_secs(180);
const SECRET: &str = "browser-test-secret-0123456789abcdef";

#[test]
fn browser_scenarios() {
    let browser_dir = Path::new(MANIFEST_DIR).join("tests/browser");
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).exists() {
        missing.push(CHROMIUM.to_string());
    }
    let driver_installed = ["playwright-core", "axe-core"]
        .iter()
        .all(|package| browser_dir.join("node_modules").join(package).exists());
    if !driver_installed {
        missing.push("tests/browser/node_modules (npm ci)".to_string());
    }
    if !node_available() {
        missing.push("node".to_string());
    }
    if !missing.is_empty() {
        skip_or_fail("browser scenarios", &missing);
        return;
    }

    let dev_port = free_port();
    let dev_url = format!("http://127.0.0.1:{dev_port}");
    let dev_args = vec![
        "--listen".to_string(),
        format!("127.0.0.1:{dev_port}"),
        "--typing-timeout-ms".to_string(),
        "2000".to_string(),
        "--bot-reply-delay-ms".to_string(),
        "700".to_string(),
        // Short, so the frozen-server scenario sees the heartbeat act within seconds.
        "--ping-interval-ms".to_string(),
        "3000".to_string(),
        // The DEV MODE warning is expected here; errors still show.
        "--log".to_string(),
        "error".to_string(),
    ];
    let dev_server = ServerGuard::start(&dev_args, dev_port);

    let secret_port = free_port();
    let secret_url = format!("http://127.0.0.1:{secret_port}");
    let secret_args = vec![
        "--listen".to_string(),
        format!("127.0.0.1:{secret_port}"),
        "--jwt-secret".to_string(),
        SECRET.to_string(),
        "--log".to_string(),
        "error".to_string(),
    ];
    let _secret_server = ServerGuard::start(&secret_args, secret_port);
    let secret_token = mint_token("sam", "Sam");

    let screenshots = Path::new(MANIFEST_DIR).join("target/screenshots");
    let dev_args_json = serde_json::to_string(&dev_args).expect("strings serialize");
    let mut command = Command::new("node");
    command
        .current_dir(MANIFEST_DIR)
        .arg(browser_dir.join("run.mjs"))
        .args(["--bin", SERVER_BINARY])
        .args(["--dev-url", &dev_url])
        .args(["--dev-pid", &dev_server.pid().to_string()])
        .args(["--dev-args", &dev_args_json])
        .args(["--secret-url", &secret_url])
        .args(["--secret-token", &secret_token])
        .arg("--screenshots")
        .arg(&screenshots);
    if let Ok(only) = std::env::var("EMOTIBOT_BROWSER_ONLY") {
        command.args(["--only", &only]);
    }
    // The scenario lines are shown even when the test passes: they are the evidence.
    let passed = run_echoing(command, SCENARIO_DEADLINE, Echo::Always);
    assert!(passed, "browser scenarios failed (output above)");
}

#[test]
fn client_unit_tests() {
    if !node_available() {
        skip_or_fail("client unit tests", &["node".to_string()]);
        return;
    }
    let mut command = Command::new("node");
    command.current_dir(MANIFEST_DIR).args([
        "--test",
        "--test-reporter=spec",
        "tests/browser/websocket.test.mjs",
    ]);
    let passed = run_echoing(command, Duration::from_secs(60), Echo::OnFailure);
    assert!(passed, "client unit tests failed (output above)");
}

fn node_available() -> bool {
    Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn skip_or_fail(what: &str, missing: &[String]) {
    let list = missing.join(", ");
    if std::env::var("CI").is_ok_and(|value| value == "true") {
        panic!("{what}: missing {list}; CI must install them (tests/browser/setup.sh)");
    }
    // Straight to the stderr handle: eprintln! output of a passing test is swallowed by the
    // harness, and this notice must be seen.
    let rule = "=".repeat(78);
    let notice = format!(
        "\n{rule}\n  SKIPPED: {what}: missing {list}.\n  \
         Run tests/browser/setup.sh to install Chromium and the test driver.\n{rule}\n\n"
    );
    let _ = std::io::stderr().write_all(notice.as_bytes());
}

/// A port nobody listens on right now (the server binds it a moment later).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// An HS256 token for the server started with `--jwt-secret SECRET`, valid for an hour.
fn mint_token(sub: &str, name: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let claims = serde_json::json!({ "sub": sub, "name": name, "iat": now, "exp": now + 3600 });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("HS256 encoding of a JSON object")
}

/// A server process that is killed when the test ends, however it ends.
struct ServerGuard {
    child: Child,
}

impl ServerGuard {
    fn start(args: &[String], port: u16) -> ServerGuard {
        let child = Command::new(SERVER_BINARY)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the emotibot binary");
        let mut guard = ServerGuard { child };
        guard.wait_listening(port);
        guard
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_listening(&mut self, port: u16) {
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("emotibot exited during startup: {status}");
            }
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!("emotibot did not listen on {address} within 10 s");
    }
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where a child's output goes.
#[derive(Clone, Copy)]
enum Echo {
    /// Straight to stderr, past the harness's capture.
    Always,
    /// Through println!, which the harness shows only for failing tests (or with --nocapture).
    OnFailure,
}

/// Runs `command`, echoing its output line by line, and kills it if it outlives `deadline`.
/// True when it exited successfully.
fn run_echoing(mut command: Command, deadline: Duration, echo: Echo) -> bool {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node");
    let echo_out = child
        .stdout
        .take()
        .map(|out| thread::spawn(move || echo_lines(out, echo)));
    let echo_err = child
        .stderr
        .take()
        .map(|err| thread::spawn(move || echo_lines(err, echo)));
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() > deadline => {
                println!("killing the test driver after {} s", deadline.as_secs());
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => thread::sleep(Duration::from_millis(50)),
            Err(err) => panic!("waiting for node: {err}"),
        }
    };
    for echo in [echo_out, echo_err].into_iter().flatten() {
        let _ = echo.join();
    }
    status.is_some_and(|status| status.success())
}

fn echo_lines(stream: impl Read, echo: Echo) {
    for line in BufReader::new(stream).lines().map_while(Result::ok) {
        match echo {
            Echo::Always => {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
            Echo::OnFailure => println!("{line}"),
        }
    }
}
