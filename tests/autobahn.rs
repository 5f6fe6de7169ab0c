//! WebSocket conformance: the Autobahn TestSuite cases 1.* to 10.* (12.* and 13.* are
//! permessage-deflate, which the server does not offer), run by `kosoku` against `--echo`.
//!
//! `scripts/test` installs kosoku into `.venv`. Without it this test says so loudly and passes,
//! except under `CI=true`, where a missing tool is a failure.

mod common;

use common::TestServer;
use std::path::{Path, PathBuf};
use std::process::Command;

fn find_kosoku() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("EMOTIBOT_KOSOKU") {
        return Some(PathBuf::from(path));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/kosoku");
    if venv.exists() {
        return Some(venv);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("kosoku"))
            .find(|candidate| candidate.exists())
    })
}

#[test]
fn autobahn_cases_1_to_10_pass() {
    let Some(kosoku) = find_kosoku() else {
        let message = "kosoku is not installed: the Autobahn conformance cases did NOT run. \
                       Run scripts/test (or `python3 -m venv .venv && .venv/bin/pip install kosoku`).";
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{message}");
        }
        eprintln!("\n!!!!!!!! {message}\n");
        return;
    };
    let server = TestServer::start(&["--echo", "--max-message-bytes", "16777216"]);
    let reports = Path::new(env!("CARGO_TARGET_TMPDIR")).join("autobahn");
    let _ = std::fs::remove_dir_all(&reports);
    let url = format!("ws://{}/echo", server.addr);
    let output = Command::new(&kosoku)
        .args(["-x", "12.*", "-x", "13.*", "-p", "4", "-o"])
        .arg(&reports)
        .arg(&url)
        .output()
        .expect("run kosoku");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = stdout.lines().rev().take(15).collect();
    eprintln!("kosoku output (last lines):");
    for line in tail.iter().rev() {
        eprintln!("  {line}");
    }

    // Read every case's verdict from the reports, independently of kosoku's exit code.
    let verdicts = read_verdicts(&reports);
    assert!(
        verdicts.len() >= 290,
        "expected the ~300 cases of 1.*-10.*, found {} verdicts\nstdout: {stdout}\nstderr: {stderr}",
        verdicts.len()
    );
    let mut counts = std::collections::BTreeMap::new();
    for (_, behavior) in &verdicts {
        *counts.entry(behavior.as_str()).or_insert(0) += 1;
    }
    eprintln!("autobahn: {} cases: {counts:?}", verdicts.len());
    let failed: Vec<_> = verdicts
        .iter()
        .filter(|(_, b)| !matches!(b.as_str(), "OK" | "NON-STRICT" | "INFORMATIONAL"))
        .collect();
    assert!(failed.is_empty(), "failing cases: {failed:?}");
    assert!(output.status.success(), "kosoku failed: {stderr}");
}

/// (case id, behavior) for every case in the report directory's index.json.
fn read_verdicts(reports: &Path) -> Vec<(String, String)> {
    let Some(index) = find_file(reports, "index.json") else {
        return Vec::new();
    };
    let text = std::fs::read_to_string(index).unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let mut verdicts = Vec::new();
    if let Some(agents) = json.as_object() {
        for cases in agents.values() {
            if let Some(cases) = cases.as_object() {
                for (id, result) in cases {
                    let behavior = result["behavior"].as_str().unwrap_or("MISSING").to_string();
                    verdicts.push((id.clone(), behavior));
                }
            }
        }
    }
    verdicts
}

fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, name) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
    }
    None
}
