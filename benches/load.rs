//! EmotiBot load generator (issue 6): `cargo bench --bench load -- SCENARIO [options]`.
//!
//! Starts the release server itself (fresh per run, pinned to one core with `taskset`) or targets
//! `--url`, drives thousands of WebSocket connections from one mio loop pinned to another core,
//! mints tokens with the server's secret, and prints a table (median of `--runs` runs) plus one
//! JSON line. Run without arguments (as `cargo test --all-targets` does) it checks its own parsing
//! and arithmetic and exits.

#[path = "load/churn.rs"]
mod churn;
#[path = "load/closed_loop.rs"]
mod closed_loop;
#[path = "load/dialer.rs"]
mod dialer;
#[path = "load/driver.rs"]
mod driver;
#[path = "load/fanout.rs"]
mod fanout;
#[path = "load/idle.rs"]
mod idle;
#[path = "load/measure.rs"]
mod measure;
#[path = "load/open_loop.rs"]
mod open_loop;
#[path = "load/server.rs"]
mod server;
#[path = "load/stats.rs"]
mod stats;
#[path = "load/syscalls.rs"]
mod syscalls;
#[path = "load/texts.rs"]
mod texts;
#[path = "load/tokens.rs"]
mod tokens;
#[path = "load/wire.rs"]
mod wire;

use clap::{Parser, ValueEnum};
use driver::{Driver, Target};
use measure::Figures;
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// N authenticated connections held open: RSS per connection, connect+auth rate and p99.
    Idle,
    /// Closed loop against the chat server: msgs/s, round trip, server CPU per message.
    Chat,
    /// The chat load against `--echo` (no JSON, no scoring): this reactor's floor.
    Echo,
    /// M members in one shared room: deliveries/s, delivery latency, CPU per delivery.
    Fanout,
    /// A fixed offered rate (open loop) for honest latency percentiles.
    Open,
    /// Connect, auth, one message, close, repeatedly: connections/s and RSS after.
    Churn,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Switch {
    On,
    Off,
}

#[derive(Parser, Debug)]
#[command(
    name = "load",
    about = "EmotiBot load generator: cargo bench --bench load -- SCENARIO [options]"
)]
struct Options {
    scenario: Option<Scenario>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
    /// Target a running server (`ws://127.0.0.1:8080/ws`) instead of starting one; its secret
    /// must be `--secret`. Without `--server-pid` no CPU or RSS figures are reported.
    #[arg(long)]
    url: Option<String>,
    /// With `--url`: the server's pid, to read its CPU time and RSS from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The server binary (default: `emotibot` in the bench executable's profile directory, i.e.
    /// `target/release/emotibot`; build it with `cargo build --release`).
    #[arg(long)]
    server: Option<PathBuf>,
    /// Extra argument for the started server (repeatable), e.g. `--server-arg=--foo`.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Start the server with `--echo` (the floor: no JWT, no JSON, no scoring) for any scenario.
    #[arg(long)]
    echo: bool,
    /// HS256 secret the started server gets with `--jwt-secret` and tokens are minted with.
    #[arg(long, default_value = "emotibot-load-generator-secret")]
    secret: String,
    /// Runs per scenario, each against a fresh server; the table shows the median.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Connections (idle: 19000; chat/echo/open: 100; churn: parallel slots, 64).
    #[arg(long)]
    connections: Option<usize>,
    /// Messages in flight per connection (chat/echo) or posts per sender (fanout).
    #[arg(long, default_value_t = 4)]
    in_flight: usize,
    /// Room members for `fanout` (the spec asks for 100 and 10000).
    #[arg(long, default_value_t = 100)]
    members: usize,
    /// Members of the room that post (`fanout`).
    #[arg(long, default_value_t = 1)]
    senders: usize,
    /// Offered messages per second (`open`).
    #[arg(long, default_value_t = 20_000.0)]
    rate: f64,
    /// The bot (`--bot on` is the product default; `off` is the work the peers do).
    #[arg(long, value_enum, default_value = "on")]
    bot: Switch,
    /// Passed to the server as `--bot-reply-delay-ms` when set.
    #[arg(long)]
    bot_reply_delay_ms: Option<u64>,
    /// Seconds of load before the measured window.
    #[arg(long, default_value_t = 2.0)]
    warmup_s: f64,
    /// Seconds in the measured window.
    #[arg(long, default_value_t = 8.0)]
    duration_s: f64,
    /// Seconds `idle` holds its connections before reading RSS; `churn` settles as long.
    #[arg(long, default_value_t = 1.0)]
    hold_s: f64,
    /// Handshakes in flight while dialling a population.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Distinct users cycled through by `churn`. The server keeps each user's private-room
    /// history (last 100 events, 2 minutes), so RSS only settles once the warm-up has filled
    /// every user's history: 100 users do within the default 2 s warm-up; 1000 need ~10 s.
    #[arg(long, default_value_t = 100)]
    users: usize,
    /// Source addresses 127.0.0.1..=127.0.0.N the connections are spread over.
    #[arg(long, default_value_t = 20)]
    source_addrs: u8,
    /// Core for the server (`taskset -c`).
    #[arg(long, default_value_t = 0)]
    server_cpu: usize,
    /// Core for the generator.
    #[arg(long, default_value_t = 1)]
    client_cpu: usize,
    /// Do not pin either process.
    #[arg(long)]
    no_pin: bool,
    /// Count the server's syscalls in the measured window with `perf stat` (tracepoint counters,
    /// no ptrace; costs the server a little CPU, so compare CPU figures from runs without it).
    #[arg(long)]
    syscalls: bool,
    /// Run generator and server under SCHED_FIFO (priority 10; needs root). Other work on the
    /// machine then cannot delay either, so latency percentiles are the server's; it also takes
    /// the two cores from everyone else (up to the kernel's 95% RT limit) for the run.
    #[arg(long)]
    realtime: bool,
    /// Nice value for both server and generator (e.g. -10 on a machine shared with compilers, so
    /// latency percentiles measure the server rather than the scheduler). Needs root below 0.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    nice: i32,
}

impl Options {
    fn server_is_echo(&self) -> bool {
        self.echo || self.scenario == Some(Scenario::Echo)
    }

    fn connections(&self, scenario: Scenario) -> usize {
        self.connections.unwrap_or(match scenario {
            Scenario::Idle => 19_000,
            Scenario::Churn => 64,
            Scenario::Chat | Scenario::Echo | Scenario::Open => 100,
            Scenario::Fanout => self.members,
        })
    }

    fn users_needed(&self, scenario: Scenario) -> usize {
        match scenario {
            Scenario::Churn => self.users.max(1),
            Scenario::Fanout => self.members.max(2),
            _ => self.connections(scenario),
        }
    }

    fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup_s.max(0.0))
    }

    fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration_s.max(0.1))
    }

    /// The server's command line after the binary (and before `--listen`).
    fn server_command(&self) -> Vec<String> {
        let mut args: Vec<String> = vec!["serve".into()];
        if self.server_is_echo() {
            args.push("--echo".into());
        }
        args.extend(
            [
                "--jwt-secret",
                &self.secret,
                "--msg-rate",
                "0",
                "--max-conns-per-ip",
                "0",
                "--bot",
                match self.bot {
                    Switch::On => "on",
                    Switch::Off => "off",
                },
            ]
            .map(String::from),
        );
        if let Some(delay) = self.bot_reply_delay_ms {
            args.push("--bot-reply-delay-ms".into());
            args.push(delay.to_string());
        }
        args.extend(self.server_args.iter().cloned());
        args
    }
}

fn main() -> ExitCode {
    let options = Options::parse();
    let Some(scenario) = options.scenario else {
        if options.bench {
            println!("load: no scenario given; run `cargo bench --bench load -- --help`");
            return ExitCode::SUCCESS;
        }
        return self_checks::run();
    };
    if !options.no_pin {
        if let Err(error) = server::pin_current_thread(options.client_cpu) {
            eprintln!(
                "load: cannot pin the generator to CPU {}: {error}",
                options.client_cpu
            );
        }
    }
    if options.realtime {
        if let Err(error) = server::set_realtime(10) {
            eprintln!("load: cannot switch to SCHED_FIFO: {error}");
        }
    }
    if options.nice != 0 {
        if let Err(error) = server::set_nice(options.nice) {
            eprintln!("load: cannot set nice {}: {error}", options.nice);
        }
    }
    match run_scenario(&options, scenario) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("load: {error}");
            ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error>;

fn run_scenario(options: &Options, scenario: Scenario) -> Result<(), BoxError> {
    let tokens = tokens::mint_for_users(&options.secret, options.users_needed(scenario))?;
    let mut runs: Vec<Figures> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    for run in 1..=options.runs.max(1) {
        let (figures, note) = run_once(options, scenario, tokens.clone())?;
        eprintln!("load: run {run}: {}", one_line(&figures));
        if let Some(note) = note {
            eprintln!("load: run {run}: {note}");
            notes.push(note);
        }
        runs.push(figures);
    }
    report(options, scenario, &runs, &notes);
    Ok(())
}

/// One run against a fresh server (or the `--url` one); the second value is the first anomaly
/// seen (an error frame, a lost connection), worth printing.
fn run_once(
    options: &Options,
    scenario: Scenario,
    tokens: Vec<String>,
) -> Result<(Figures, Option<String>), BoxError> {
    let mut started: Option<server::ServerProcess> = None;
    let (target, pid) = match &options.url {
        Some(url) => (
            parse_url(url, !options.server_is_echo())?,
            options.server_pid,
        ),
        None => {
            let binary = match &options.server {
                Some(path) => path.clone(),
                None => server::default_binary().ok_or(
                    "no target/release/emotibot next to the bench; run `cargo build --release` \
                     or pass --server PATH",
                )?,
            };
            let cpu = (!options.no_pin).then_some(options.server_cpu);
            let process = server::ServerProcess::start(
                &binary,
                &options.server_command(),
                cpu,
                options.nice,
            )?;
            let target = Target {
                addr: process.addr,
                // The server's echo endpoint lives next to the chat one.
                path: if options.server_is_echo() {
                    "/echo"
                } else {
                    "/ws"
                }
                .into(),
                waits_for_ready: !options.server_is_echo(),
            };
            let pid = process.pid();
            started = Some(process);
            (target, Some(pid))
        }
    };
    let probe = measure::Probe {
        pid,
        count_syscalls: options.syscalls,
    };
    let mut driver = Driver::new(target, tokens, options.source_addrs)?;
    let answers_are_echoes = options.server_is_echo();
    let safety_net =
        Instant::now() + options.warmup() + options.duration() + Duration::from_secs(90);
    let connections = options.connections(scenario);
    let outcome = match scenario {
        Scenario::Idle => {
            let params = idle::IdleParams {
                connections,
                connect_concurrency: options.connect_concurrency,
                hold: Duration::from_secs_f64(options.hold_s.max(0.0)),
            };
            (idle::run(&mut driver, pid, &params)?, None)
        }
        Scenario::Chat | Scenario::Echo => {
            let params = closed_loop::ClosedLoopParams {
                connections,
                in_flight: options.in_flight,
                connect_concurrency: options.connect_concurrency,
                answers_are_echoes,
                warmup: options.warmup(),
                duration: options.duration(),
            };
            let mut workload = closed_loop::ClosedLoop::new(&params, probe);
            driver.run(&mut workload, safety_net)?;
            let note = workload.first_error().map(str::to_owned);
            (workload.figures(&driver.io), note)
        }
        Scenario::Fanout => {
            let params = fanout::FanoutParams {
                members: options.members,
                senders: options.senders,
                in_flight: options.in_flight,
                connect_concurrency: options.connect_concurrency,
                warmup: options.warmup(),
                duration: options.duration(),
            };
            let mut workload = fanout::Fanout::new(&params, probe, Instant::now());
            driver.run(&mut workload, safety_net)?;
            let note = workload.first_error().map(str::to_owned);
            (workload.figures(), note)
        }
        Scenario::Open => {
            let params = open_loop::OpenLoopParams {
                connections,
                rate_per_s: options.rate,
                connect_concurrency: options.connect_concurrency,
                answers_are_echoes,
                warmup: options.warmup(),
                duration: options.duration(),
            };
            let mut workload = open_loop::OpenLoop::new(&params, probe);
            driver.run(&mut workload, safety_net)?;
            let note = workload.first_error().map(str::to_owned);
            (workload.figures(), note)
        }
        Scenario::Churn => {
            let params = churn::ChurnParams {
                concurrency: connections,
                users: options.users,
                answers_are_echoes,
                warmup: options.warmup(),
                duration: options.duration(),
            };
            let settle = Duration::from_secs_f64(options.hold_s.max(0.0));
            churn::run(&mut driver, probe, &params, settle)?
        }
    };
    let (mut figures, mut note) = outcome;
    let losses = driver.io.losses;
    if losses.total() > 0 {
        figures.add("connections_lost_total", losses.total() as f64);
        note.get_or_insert_with(|| format!("connection losses: {losses:?}"));
        if let Some(process) = &started {
            eprintln!("load: server output (tail):\n{}", process.log_tail(2000));
        }
    }
    driver.io.close_all();
    Ok((figures, note))
}

/// `ws://HOST:PORT/PATH` with an IPv4 host; other forms are not needed on a benchmark machine.
fn parse_url(url: &str, waits_for_ready: bool) -> Result<Target, BoxError> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or("--url must start with ws://")?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/ws"),
    };
    let addr: SocketAddrV4 = authority
        .parse()
        .map_err(|_| format!("--url needs an IPv4 address and port, got {authority:?}"))?;
    Ok(Target {
        addr,
        path: path.to_string(),
        waits_for_ready,
    })
}

fn one_line(figures: &Figures) -> String {
    figures
        .0
        .iter()
        .map(|(name, value)| format!("{name}={}", format_value(*value)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn format_value(value: f64) -> String {
    if !value.is_finite() {
        "-".into()
    } else if value.abs() >= 1000.0 || value == value.trunc() {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

/// The human table (median, min, max over runs) and one JSON line with the medians.
fn report(options: &Options, scenario: Scenario, runs: &[Figures], notes: &[String]) {
    let server_kind = if options.server_is_echo() {
        "echo"
    } else {
        "chat"
    };
    let bot = match options.bot {
        Switch::On => "on",
        Switch::Off => "off",
    };
    println!();
    println!(
        "scenario {scenario:?} | server {server_kind} | bot {bot} | {} run(s), median shown | \
         server CPU {} / load CPU {}{}",
        runs.len(),
        if options.no_pin {
            "any".to_string()
        } else {
            options.server_cpu.to_string()
        },
        if options.no_pin {
            "any".to_string()
        } else {
            options.client_cpu.to_string()
        },
        if options.realtime {
            " | SCHED_FIFO"
        } else {
            ""
        },
    );
    println!(
        "{:<30} {:>12} {:>12} {:>12}",
        "figure", "median", "min", "max"
    );
    let mut medians = serde_json::Map::new();
    let names: Vec<String> = runs
        .first()
        .map(|figures| figures.0.iter().map(|(name, _)| name.clone()).collect())
        .unwrap_or_default();
    for name in names {
        let values: Vec<f64> = runs
            .iter()
            .filter_map(|figures| {
                figures
                    .0
                    .iter()
                    .find(|(other, _)| *other == name)
                    .map(|(_, value)| *value)
            })
            .collect();
        let median = stats::median(&values);
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        println!(
            "{name:<30} {:>12} {:>12} {:>12}",
            format_value(median),
            format_value(min),
            format_value(max)
        );
        medians.insert(
            name,
            serde_json::Number::from_f64(median)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
        );
    }
    let json = serde_json::json!({
        "scenario": format!("{scenario:?}").to_lowercase(),
        "realtime": options.realtime,
        "nice": options.nice,
        "server": server_kind,
        "bot": bot,
        "runs": runs.len(),
        "connections": options.connections(scenario),
        "in_flight": options.in_flight,
        "members": options.members,
        "senders": options.senders,
        "rate": options.rate,
        "warmup_s": options.warmup_s,
        "duration_s": options.duration_s,
        "median": medians,
        "notes": notes,
    });
    println!("{json}");
}

/// Checks of the generator's own parsing and arithmetic. `harness = false` benches get no test
/// harness, so `cargo test --all-targets` runs `main` without arguments and lands here.
mod self_checks {
    use std::process::ExitCode;

    /// `(name, function)` pairs from paths, so a check cannot be listed under a wrong name.
    macro_rules! checks {
        ($($module:ident :: $check:ident),* $(,)?) => {
            &[$((concat!(stringify!($module), "::", stringify!($check)), crate::$module::checks::$check)),*]
        };
    }

    const CHECKS: &[(&str, fn())] = checks![
        wire::upgrade_request_is_a_complete_http_head,
        wire::accepted_upgrade_reports_where_frames_start,
        wire::refused_and_wrong_accept_are_told_apart,
        wire::masked_frame_round_trips_through_the_mask,
        wire::masked_frame_uses_extended_lengths,
        wire::decodes_short_and_extended_frames_and_waits_for_partial_ones,
        wire::rejects_masked_and_absurd_frames,
        wire::close_code_defaults_to_no_status,
        wire::string_field_finds_top_level_values_and_skips_lookalikes,
        wire::parse_id_accepts_only_generator_ids,
        stats::quantiles_are_nearest_rank_within_bucket_precision,
        stats::buckets_are_exact_when_small_and_monotonic_everywhere,
        stats::median_of_odd_and_even_counts,
        server::stat_cpu_ticks_skip_command_names_with_spaces,
        server::labelled_numbers_come_from_their_own_line,
        server::sample_reads_this_process,
        tokens::minted_tokens_verify_with_the_same_secret,
        texts::lines_are_short_plain_chat_messages,
        measure::chat_message_is_valid_json_with_generator_id,
        measure::window_measures_only_between_its_edges,
        syscalls::perf_csv_counts_are_matched_by_event,
        syscalls::acknowledgement_may_carry_a_nul,
        cli::parse_url_accepts_ipv4_ws_urls,
    ];

    pub fn run() -> ExitCode {
        let mut failed = 0;
        for (name, check) in CHECKS {
            match std::panic::catch_unwind(check) {
                Ok(()) => println!("check {name} ... ok"),
                Err(_) => {
                    println!("check {name} ... FAILED");
                    failed += 1;
                }
            }
        }
        println!(
            "load self-checks: {} passed, {failed} failed",
            CHECKS.len() - failed
        );
        if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

mod cli {
    pub mod checks {
        pub fn parse_url_accepts_ipv4_ws_urls() {
            let target = crate::parse_url("ws://127.0.0.1:8080/ws", true).unwrap();
            assert_eq!(target.addr.port(), 8080);
            assert_eq!(target.path, "/ws");
            assert!(crate::parse_url("http://127.0.0.1:8080/ws", true).is_err());
            assert!(crate::parse_url("ws://localhost:8080/ws", true).is_err());
            assert_eq!(
                crate::parse_url("ws://127.0.0.1:1", false).unwrap().path,
                "/ws"
            );
        }
    }
}
