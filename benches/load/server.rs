//! The server under test as a child process: started fresh per run, pinned to its own core, and
//! observed through `/proc` (resident memory, CPU time), which is what survives a noisy machine.

use std::fs;
use std::io;
use std::net::{SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// What the server holds and has spent at one instant, from `/proc/PID/status` and `stat`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcSample {
    pub rss_kib: u64,
    /// utime + stime of the whole process, in microseconds.
    pub cpu_us: u64,
    /// utime alone: the time spent in the server's own code (the rest is the kernel's, mostly
    /// in its socket calls).
    pub user_us: u64,
    /// Times the process blocked (for a server: `epoll_wait` that had to sleep).
    pub voluntary_switches: u64,
    /// Time its main thread was runnable but waiting for a CPU (`/proc/PID/schedstat`), in µs:
    /// on a shared machine this is how long other work held the core.
    pub runqueue_wait_us: u64,
}

pub fn sample(pid: u32) -> io::Result<ProcSample> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = labelled_number(&status, "VmRSS:")
        .ok_or_else(|| io::Error::other("no VmRSS in /proc/PID/status"))?;
    let voluntary_switches = labelled_number(&status, "voluntary_ctxt_switches:").unwrap_or(0);
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let (user_ticks, system_ticks) =
        cpu_ticks_from_stat(&stat).ok_or_else(|| io::Error::other("unparsable /proc/PID/stat"))?;
    let ticks_to_us = |ticks: u64| ticks * 1_000_000 / clock_ticks_per_second();
    let schedstat = fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap_or_default();
    let runqueue_wait_ns: u64 = schedstat
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .unwrap_or(0);
    Ok(ProcSample {
        rss_kib,
        runqueue_wait_us: runqueue_wait_ns / 1000,
        cpu_us: ticks_to_us(user_ticks + system_ticks),
        user_us: ticks_to_us(user_ticks),
        voluntary_switches,
    })
}

/// The number after `label` on the line that starts with it (`VmRSS:   1234 kB` gives 1234).
fn labelled_number(text: &str, label: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
}

/// utime and stime (fields 14 and 15) of a `/proc/PID/stat` line. The command name in field 2
/// may hold spaces and parentheses, so counting starts after its last `)`.
fn cpu_ticks_from_stat(stat: &str) -> Option<(u64, u64)> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

/// Pins the calling thread (the generator is single-threaded) to `cpu`.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_SET writes inside it; sched_setaffinity reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Sets the nice value of the calling process and of its scheduler autogroup. With
/// `sched_autogroup_enabled`, nice only ranks tasks within one session's group and groups share
/// the CPU equally, so a per-process nice alone would not lift the benchmark above compilers
/// started from other sessions. The server, started from here, shares the group.
pub fn set_nice(nice: i32) -> io::Result<()> {
    // SAFETY: setpriority has no memory-safety preconditions.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let autogroup = std::path::Path::new("/proc/self/autogroup");
    if autogroup.exists() {
        fs::write(autogroup, nice.to_string())?;
    }
    Ok(())
}

/// Puts the calling thread under SCHED_FIFO at `priority`; processes it starts inherit the policy.
/// On a machine shared with compilers this is the only way latency percentiles measure the
/// server rather than the scheduler. The kernel's RT throttling still leaves other work 5%.
pub fn set_realtime(priority: i32) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: `param` outlives the call; pid 0 is the calling thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The release server binary: next to the bench executable's directory (`target/release/`),
/// as `cargo bench` builds benches into `target/release/deps/`.
pub fn default_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?;
    let candidate = profile_dir.join("emotibot");
    candidate.is_file().then_some(candidate)
}

/// A running server; killed when dropped.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddrV4,
    pub log_path: PathBuf,
}

impl ServerProcess {
    /// Starts `binary` with `args` plus `--listen 127.0.0.1:PORT` on a free port, pinned to
    /// `cpu` with `taskset`, and waits until it accepts connections.
    /// A non-zero `nice` is applied with `nice -n` (inherited through `taskset`'s exec).
    /// `wrapper` (e.g. valgrind) goes between `taskset` and the binary.
    pub fn start(
        binary: &Path,
        args: &[String],
        cpu: Option<usize>,
        nice: i32,
        wrapper: &[String],
    ) -> io::Result<Self> {
        let port = free_port()?;
        let addr = SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port);
        let log_path = std::env::temp_dir().join(format!("emotibot-load-server-{port}.log"));
        let log = fs::File::create(&log_path)?;
        // `nice`, `taskset` and valgrind all run what follows in the same process, so the
        // child's pid is the server's.
        let mut launcher: Vec<String> = Vec::new();
        if nice != 0 {
            launcher.extend(["nice".into(), "-n".into(), nice.to_string()]);
        }
        if let Some(cpu) = cpu {
            launcher.extend(["taskset".into(), "-c".into(), cpu.to_string()]);
        }
        launcher.extend(wrapper.iter().cloned());
        let mut command = match launcher.split_first() {
            Some((program, launcher_args)) => {
                let mut command = Command::new(program);
                command.args(launcher_args).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        command
            .args(args)
            .arg("--listen")
            .arg(addr.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = command.spawn()?;
        let mut server = ServerProcess {
            child,
            addr,
            log_path,
        };
        server.wait_until_listening(Duration::from_secs(10))?;
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_until_listening(&mut self, patience: Duration) -> io::Result<()> {
        let give_up_at = Instant::now() + patience;
        loop {
            if let Some(status) = self.child.try_wait()? {
                let log = fs::read_to_string(&self.log_path).unwrap_or_default();
                return Err(io::Error::other(format!(
                    "server exited with {status} before listening; its output:\n{log}"
                )));
            }
            if TcpStream::connect(self.addr).is_ok() {
                return Ok(());
            }
            if Instant::now() >= give_up_at {
                return Err(io::Error::other(format!(
                    "server not listening on {} after {patience:?}",
                    self.addr
                )));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's stdout and stderr so far, for error reports.
    pub fn log_tail(&self, max_bytes: usize) -> String {
        let log = fs::read_to_string(&self.log_path).unwrap_or_default();
        let start = log.len().saturating_sub(max_bytes);
        let start = (start..log.len())
            .find(|&index| log.is_char_boundary(index))
            .unwrap_or(log.len());
        log[start..].to_string()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.log_path);
    }
}

fn free_port() -> io::Result<u16> {
    // The port is released before the server binds it; a collision within that window only makes
    // the start fail loudly.
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub mod checks {
    use super::*;

    pub fn stat_cpu_ticks_skip_command_names_with_spaces() {
        let stat = "4242 (emoti bot) S 1 4242 4242 0 -1 4194560 300 0 0 0 1250 375 0 0 20 0 1 0 99 1000 200";
        assert_eq!(cpu_ticks_from_stat(stat), Some((1250, 375)));
        assert_eq!(cpu_ticks_from_stat("4242 (x) S 1"), None);
    }

    pub fn labelled_numbers_come_from_their_own_line() {
        let status = "Name:\tx\nVmRSS:\t  2048 kB\nvoluntary_ctxt_switches:\t7\nnonvoluntary_ctxt_switches:\t9\n";
        assert_eq!(labelled_number(status, "VmRSS:"), Some(2048));
        assert_eq!(labelled_number(status, "voluntary_ctxt_switches:"), Some(7));
        assert_eq!(labelled_number(status, "VmSwap:"), None);
    }

    pub fn sample_reads_this_process() {
        let own = sample(std::process::id()).unwrap();
        assert!(own.rss_kib > 0);
    }
}
