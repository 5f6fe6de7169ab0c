//! Counts the server's user-space instructions inside the measured window by running it under
//! `valgrind --tool=callgrind` (`--callgrind`): the counters are zeroed at the window's start and
//! dumped at its end with `callgrind_control`. Instruction counts do not move with the machine's
//! load, unlike CPU time, so they show the cost of application logic (not of syscalls, which run
//! in the kernel and are not counted) precisely enough to compare commits. The server runs tens
//! of times slower under valgrind, so its CPU and latency figures from such a run mean nothing.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Where callgrind writes its dumps: one directory per generator process.
fn out_dir() -> PathBuf {
    std::env::temp_dir().join(format!("emotibot-load-callgrind-{}", std::process::id()))
}

/// The command line that runs the server under callgrind, to put before the server binary.
pub fn wrapper() -> io::Result<Vec<String>> {
    let dir = out_dir();
    fs::create_dir_all(&dir)?;
    Ok(vec![
        "valgrind".into(),
        "--tool=callgrind".into(),
        format!("--callgrind-out-file={}/out.%p", dir.display()),
    ])
}

fn control(pid: u32, action: &str) -> io::Result<()> {
    let status = Command::new("callgrind_control")
        .arg(action)
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "callgrind_control {action} {pid}: {status}"
        )))
    }
}

/// Resets the server's counters.
pub fn zero(pid: u32) -> io::Result<()> {
    control(pid, "-z")
}

/// Dumps the counters and returns the instructions executed since the last zero.
pub fn dump_instructions(pid: u32) -> io::Result<u64> {
    control(pid, "-d")?;
    // Dumps are numbered `out.PID.1`, `out.PID.2`, ...: the newest is the one just written.
    let prefix = format!("out.{pid}.");
    let newest = fs::read_dir(out_dir())?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let number: u32 = name.strip_prefix(&prefix)?.parse().ok()?;
            Some((number, entry.path()))
        })
        .max_by_key(|(number, _)| *number)
        .ok_or_else(|| io::Error::other("callgrind wrote no dump"))?;
    let dump = fs::read_to_string(newest.1)?;
    total_instructions(&dump).ok_or_else(|| io::Error::other("no totals in the callgrind dump"))
}

/// The `summary:` (or `totals:`) line of a callgrind dump: the first event is `Ir`.
fn total_instructions(dump: &str) -> Option<u64> {
    dump.lines()
        .find_map(|line| {
            line.strip_prefix("summary:")
                .or_else(|| line.strip_prefix("totals:"))
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|count| count.parse().ok())
}

/// Removes this generator's dumps.
pub fn clean_up() {
    let _ = fs::remove_dir_all(out_dir());
}

pub mod checks {
    use super::*;

    pub fn totals_come_from_the_summary_line() {
        let dump = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nfl=(1) a.rs\nfn=(1) main\n\
                    3 40\nsummary: 123456\ntotals: 123456\n";
        assert_eq!(total_instructions(dump), Some(123456));
        assert_eq!(total_instructions("events: Ir\n"), None);
    }
}
