//! Counts the server's syscalls inside the measured window with `perf stat` on syscall
//! tracepoints: in-kernel counters, no ptrace, so the server runs at nearly full speed (unlike
//! `strace -c`). `perf` attaches during the warm-up with its counters disabled and is switched on
//! and off through its control FIFO at the window's edges, so the counts cover the same stretch as
//! the CPU figures. Socket I/O goes through `recvfrom`/`sendto`, which `/proc/PID/io` does not
//! count, hence this.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Syscalls a reactor makes, by tracepoint name; the first is the total of all syscalls.
const TRACEPOINTS: &[(&str, &str)] = &[
    ("all", "raw_syscalls:sys_enter"),
    ("recvfrom", "syscalls:sys_enter_recvfrom"),
    ("sendto", "syscalls:sys_enter_sendto"),
    ("read", "syscalls:sys_enter_read"),
    ("write", "syscalls:sys_enter_write"),
    ("writev", "syscalls:sys_enter_writev"),
    ("sendmsg", "syscalls:sys_enter_sendmsg"),
    ("epoll_wait", "syscalls:sys_enter_epoll_wait"),
    ("epoll_pwait", "syscalls:sys_enter_epoll_pwait"),
    ("epoll_ctl", "syscalls:sys_enter_epoll_ctl"),
    ("accept4", "syscalls:sys_enter_accept4"),
    ("close", "syscalls:sys_enter_close"),
];

pub struct SyscallCounter {
    perf: Child,
    control: File,
    ack: File,
    scratch_dir: PathBuf,
    output: PathBuf,
}

/// How long `perf` may take to attach or to acknowledge a command before counting is abandoned.
const PATIENCE: Duration = Duration::from_secs(5);

impl SyscallCounter {
    /// Starts `perf stat` on `pid` with counting disabled.
    pub fn attach(pid: u32) -> io::Result<Self> {
        let scratch_dir =
            std::env::temp_dir().join(format!("emotibot-load-perf-{}-{pid}", std::process::id()));
        fs::create_dir_all(&scratch_dir)?;
        let control_path = scratch_dir.join("control");
        let ack_path = scratch_dir.join("ack");
        for fifo in [&control_path, &ack_path] {
            let _ = fs::remove_file(fifo);
            make_fifo(fifo)?;
        }
        let output = scratch_dir.join("counts.csv");
        let perf_stderr = File::create(scratch_dir.join("perf-stderr.txt"))?;
        let events: Vec<&str> = TRACEPOINTS.iter().map(|(_, event)| *event).collect();
        let mut perf = Command::new("perf")
            .args(["stat", "-x,", "--delay=-1", "--control"])
            .arg(format!(
                "fifo:{},{}",
                control_path.display(),
                ack_path.display()
            ))
            .arg("-o")
            .arg(&output)
            .arg("-e")
            .arg(events.join(","))
            .arg("-p")
            .arg(pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(perf_stderr)
            .spawn()?;
        // A FIFO opened for writing without a reader fails with ENXIO when non-blocking, so poll
        // until perf has opened its end (or has died).
        let give_up_at = Instant::now() + PATIENCE;
        let control = loop {
            match OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&control_path)
            {
                Ok(file) => break file,
                Err(error) if error.raw_os_error() == Some(libc::ENXIO) => {
                    if perf.try_wait()?.is_some() || Instant::now() >= give_up_at {
                        let _ = perf.kill();
                        return Err(io::Error::other("perf stat did not start"));
                    }
                    thread::sleep(Duration::from_millis(10));
                }
                Err(error) => return Err(error),
            }
        };
        let ack = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&ack_path)?;
        Ok(SyscallCounter {
            perf,
            control,
            ack,
            scratch_dir,
            output,
        })
    }

    pub fn enable(&mut self) -> io::Result<()> {
        self.command(b"enable\n")
    }

    pub fn disable(&mut self) -> io::Result<()> {
        self.command(b"disable\n")
    }

    fn command(&mut self, command: &[u8]) -> io::Result<()> {
        self.control.write_all(command)?;
        let give_up_at = Instant::now() + PATIENCE;
        let mut reply = Vec::new();
        let mut chunk = [0u8; 64];
        // perf answers "ack\n" followed by a NUL byte.
        while !acknowledged(&reply) {
            match self.ack.read(&mut chunk) {
                Ok(read) => reply.extend_from_slice(&chunk[..read]),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Err(error),
            }
            if Instant::now() >= give_up_at {
                let perf_said = fs::read_to_string(self.scratch_dir.join("perf-stderr.txt"))
                    .unwrap_or_default();
                return Err(io::Error::other(format!(
                    "perf stat did not acknowledge {:?}: {perf_said}",
                    String::from_utf8_lossy(command).trim()
                )));
            }
            if !acknowledged(&reply) {
                thread::sleep(Duration::from_micros(200));
            }
        }
        Ok(())
    }

    /// Stops perf and returns `(syscall, count)` for the window.
    pub fn finish(mut self) -> io::Result<Vec<(&'static str, u64)>> {
        // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
        unsafe {
            libc::kill(self.perf.id() as libc::pid_t, libc::SIGINT);
        }
        self.perf.wait()?;
        let counts = fs::read_to_string(&self.output)?;
        Ok(parse_counts(&counts))
    }
}

impl Drop for SyscallCounter {
    fn drop(&mut self) {
        let _ = self.perf.kill();
        let _ = self.perf.wait();
        let _ = fs::remove_dir_all(&self.scratch_dir);
    }
}

fn acknowledged(reply: &[u8]) -> bool {
    reply.windows(4).any(|window| window == b"ack\n")
}

fn make_fifo(path: &std::path::Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::other("path with a NUL byte"))?;
    // SAFETY: c_path is a valid NUL-terminated string for the duration of the call.
    if unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `perf stat -x,` lines are `count,unit,event,...`; "<not counted>" (no syscall of that kind
/// happened while enabled) reads as 0.
fn parse_counts(csv: &str) -> Vec<(&'static str, u64)> {
    TRACEPOINTS
        .iter()
        .map(|(name, event)| {
            let count = csv
                .lines()
                .map(|line| line.split(',').collect::<Vec<_>>())
                .find(|fields| fields.get(2) == Some(event))
                .and_then(|fields| fields[0].parse().ok())
                .unwrap_or(0);
            (*name, count)
        })
        .collect()
}

pub mod checks {
    use super::*;

    pub fn acknowledgement_may_carry_a_nul() {
        assert!(acknowledged(b"ack\n\0"));
        assert!(acknowledged(b"ack\n"));
        assert!(!acknowledged(b"ac"));
    }

    pub fn perf_csv_counts_are_matched_by_event() {
        let csv = "# started on Thu\n\n812,,raw_syscalls:sys_enter,100,100.00,,\n\
                   <not counted>,,syscalls:sys_enter_recvfrom,0,100.00,,\n\
                   400,,syscalls:sys_enter_sendto,100,100.00,,Events disabled\n";
        let counts = parse_counts(csv);
        assert_eq!(counts[0], ("all", 812));
        assert_eq!(counts[1], ("recvfrom", 0));
        assert_eq!(counts[2], ("sendto", 400));
        assert!(counts.iter().skip(3).all(|(_, count)| *count == 0));
    }
}
