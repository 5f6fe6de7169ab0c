//! EmotiBot load generator (issue 6): `cargo bench --bench load -- SCENARIO [options]`.
//!
//! Starts the release server itself (fresh per run, pinned to one core with `taskset`) or targets
//! `--url`, drives thousands of WebSocket connections from one mio loop pinned to another core,
//! mints tokens with the server's secret, and prints a table (median of `--runs` runs) plus one
//! JSON line. `--peer tokio|floor|scoring-floor|echo` (repeatable; `--tokio` for `--peer
//! tokio`) interleaves other servers with it run by run, so their figures and the ratios come
//! from the same time slot. Run without arguments (as `cargo test --all-targets` does) it checks its own parsing
//! and arithmetic and exits.

#[path = "load/callgrind.rs"]
mod callgrind;
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
#[path = "load/floor_server.rs"]
mod floor_server;
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
#[path = "load/tokio_server.rs"]
mod tokio_server;
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
    /// Run the server under `valgrind --tool=callgrind` and report its user-space instructions
    /// per unit of work in the window (stable on a noisy machine; the run is slow and its CPU and
    /// latency figures are meaningless).
    #[arg(long)]
    callgrind: bool,
    /// Target the floor instead of EmotiBot: a minimal mio server in this executable with fixed
    /// replies, no JWT, no JSON, no scoring (see `load/floor_server.rs`).
    #[arg(long, conflicts_with = "echo")]
    floor: bool,
    /// Internal: be the floor server (started by `--floor` on the server's core).
    #[arg(long, hide = true)]
    serve_floor: bool,
    /// Internal: with `--serve-floor`, score each message's text (the `scoring-floor` peer).
    #[arg(long, hide = true)]
    floor_scores: bool,
    /// Also measure this server, interleaved with the main one run by run (repeatable): `tokio`
    /// (the tokio-tungstenite peer in this executable, see `load/tokio_server.rs`), `floor`,
    /// `scoring-floor` (the floor plus EmotiBot's scorer on every message), `echo`. The table and JSON line gain each peer's figures and the ratios main/peer.
    #[arg(long = "peer", value_enum)]
    peers: Vec<Peer>,
    /// Shorthand for `--peer tokio`.
    #[arg(long)]
    tokio: bool,
    /// Also measure this EmotiBot binary (e.g. a build of an earlier commit) as the peer
    /// `baseline`, with the main server's settings, interleaved with it run by run: a change's
    /// effect as paired ratios, with the machine's drift shared by both. Chat scenarios only.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Internal: be the tokio-tungstenite peer (started by `--peer tokio` on the server's core).
    #[arg(long, hide = true)]
    serve_tokio: bool,
    /// Internal: the floor or tokio server's listen address.
    #[arg(long, hide = true)]
    listen: Option<SocketAddrV4>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Peer {
    Tokio,
    Floor,
    /// The floor scoring each message's text with EmotiBot's scorer (and nothing else more).
    ScoringFloor,
    Echo,
}

impl Peer {
    fn kind(self) -> ServerKind {
        match self {
            Peer::Tokio => ServerKind::Tokio,
            Peer::Floor => ServerKind::Floor,
            Peer::ScoringFloor => ServerKind::ScoringFloor,
            Peer::Echo => ServerKind::Echo,
        }
    }
}

/// Which server the generator talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ServerKind {
    /// EmotiBot's chat protocol at `/ws`: `ready` after auth, `emotion` answers.
    Chat,
    /// EmotiBot's `--echo` endpoint at `/echo`: every frame comes back.
    Echo,
    /// The generator's own minimal server.
    Floor,
    /// The floor, scoring every message's text as EmotiBot does (the reply is the floor's): what
    /// the scorer costs in a server, with the caches a server's other work leaves it.
    ScoringFloor,
    /// The generator's tokio-tungstenite server, doing EmotiBot's `--bot off` work.
    Tokio,
    /// [`ServerKind::Chat`] served by the `--baseline` binary.
    Baseline,
}

impl ServerKind {
    fn name(self) -> &'static str {
        match self {
            ServerKind::Chat => "chat",
            ServerKind::Echo => "echo",
            ServerKind::Floor => "floor",
            ServerKind::ScoringFloor => "scoring-floor",
            ServerKind::Tokio => "tokio",
            ServerKind::Baseline => "baseline",
        }
    }

    fn waits_for_ready(self) -> bool {
        matches!(
            self,
            ServerKind::Chat | ServerKind::Tokio | ServerKind::Baseline
        )
    }

    /// Whether any text frame answers a message (rather than only `emotion`).
    fn answers_are_echoes(self) -> bool {
        matches!(
            self,
            ServerKind::Echo | ServerKind::Floor | ServerKind::ScoringFloor
        )
    }

    /// Whether this executable serves it (rather than the EmotiBot binary).
    fn is_built_in(self) -> bool {
        matches!(
            self,
            ServerKind::Floor | ServerKind::ScoringFloor | ServerKind::Tokio
        )
    }

    fn path(self) -> &'static str {
        match self {
            ServerKind::Chat | ServerKind::Tokio | ServerKind::Baseline => "/ws",
            // The server's echo endpoint lives next to the chat one.
            ServerKind::Echo => "/echo",
            ServerKind::Floor | ServerKind::ScoringFloor => "/floor",
        }
    }
}

impl Options {
    fn server_kind(&self) -> ServerKind {
        if self.floor {
            ServerKind::Floor
        } else if self.echo || self.scenario == Some(Scenario::Echo) {
            ServerKind::Echo
        } else {
            ServerKind::Chat
        }
    }

    /// The main server, then each distinct peer, in the order given.
    fn servers(&self) -> Vec<ServerKind> {
        let mut servers = vec![self.server_kind()];
        let peers = self.peers.iter().map(|peer| peer.kind());
        let named = self.tokio.then_some(ServerKind::Tokio);
        let baseline = self.baseline.is_some().then_some(ServerKind::Baseline);
        for kind in peers.chain(named).chain(baseline) {
            if !servers.contains(&kind) {
                servers.push(kind);
            }
        }
        servers
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

    /// The command line of server `kind` after the binary (and before `--listen`).
    fn server_command(&self, kind: ServerKind) -> Vec<String> {
        match kind {
            ServerKind::Floor => return vec!["--serve-floor".into()],
            ServerKind::ScoringFloor => {
                return vec!["--serve-floor".into(), "--floor-scores".into()]
            }
            ServerKind::Tokio => {
                return vec![
                    "--serve-tokio".into(),
                    "--secret".into(),
                    self.secret.clone(),
                ]
            }
            ServerKind::Chat | ServerKind::Echo | ServerKind::Baseline => {}
        }
        let mut args: Vec<String> = vec!["serve".into()];
        if kind == ServerKind::Echo {
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
    if options.serve_floor {
        let listen = options
            .listen
            .unwrap_or_else(|| driver::loopback_addr(8080));
        return match floor_server::serve(listen, options.floor_scores) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("floor server: {error}");
                ExitCode::FAILURE
            }
        };
    }
    if options.serve_tokio {
        let listen = options
            .listen
            .unwrap_or_else(|| driver::loopback_addr(8080));
        return match tokio_server::serve(listen.into(), &options.secret) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("tokio server: {error}");
                ExitCode::FAILURE
            }
        };
    }
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

/// One server's runs in one invocation.
struct ServerRuns {
    kind: ServerKind,
    runs: Vec<Figures>,
    notes: Vec<String>,
}

fn run_scenario(options: &Options, scenario: Scenario) -> Result<(), BoxError> {
    let servers = options.servers();
    if servers.len() > 1 && options.url.is_some() {
        return Err("--peer compares servers the generator starts itself; drop --url".into());
    }
    if scenario == Scenario::Fanout && servers.contains(&ServerKind::Echo) {
        return Err("the echo server has no rooms: no fanout against it".into());
    }
    if servers.contains(&ServerKind::Baseline) && servers[0] != ServerKind::Chat {
        return Err("--baseline is a chat server: compare it with the chat server".into());
    }
    let tokens = tokens::mint_for_users(&options.secret, options.users_needed(scenario))?;
    let mut results: Vec<ServerRuns> = servers
        .into_iter()
        .map(|kind| ServerRuns {
            kind,
            runs: Vec::new(),
            notes: Vec::new(),
        })
        .collect();
    let server_count = results.len();
    for run in 1..=options.runs.max(1) {
        // Each run starts with the next server in turn, so a drift in the machine's load during
        // the invocation does not always favour the same one.
        for offset in 0..server_count {
            let server = &mut results[(run - 1 + offset) % server_count];
            let (figures, note) = run_once(options, server.kind, scenario, tokens.clone())?;
            let name = server.kind.name();
            eprintln!("load: run {run} {name}: {}", one_line(&figures));
            if let Some(note) = note {
                eprintln!("load: run {run} {name}: {note}");
                server.notes.push(note);
            }
            server.runs.push(figures);
        }
    }
    if options.callgrind {
        callgrind::clean_up();
    }
    report(options, scenario, &results);
    Ok(())
}

/// One run against a fresh server (or the `--url` one); the second value is the first anomaly
/// seen (an error frame, a lost connection), worth printing.
fn run_once(
    options: &Options,
    kind: ServerKind,
    scenario: Scenario,
    tokens: Vec<String>,
) -> Result<(Figures, Option<String>), BoxError> {
    let mut started: Option<server::ServerProcess> = None;
    let (target, pid) = match &options.url {
        Some(url) => (parse_url(url, kind.waits_for_ready())?, options.server_pid),
        None => {
            let binary = match &options.server {
                _ if kind.is_built_in() => std::env::current_exe()?,
                _ if kind == ServerKind::Baseline => options.baseline.clone().unwrap_or_default(),
                Some(path) => path.clone(),
                None => server::default_binary().ok_or(
                    "no target/release/emotibot next to the bench; run `cargo build --release` \
                     or pass --server PATH",
                )?,
            };
            let cpu = (!options.no_pin).then_some(options.server_cpu);
            let wrapper = if options.callgrind {
                callgrind::wrapper()?
            } else {
                Vec::new()
            };
            let process = server::ServerProcess::start(
                &binary,
                &options.server_command(kind),
                cpu,
                options.nice,
                &wrapper,
            )?;
            let target = Target {
                addr: process.addr,
                path: kind.path().into(),
                waits_for_ready: kind.waits_for_ready(),
            };
            let pid = process.pid();
            started = Some(process);
            (target, Some(pid))
        }
    };
    let probe = measure::Probe {
        pid,
        count_syscalls: options.syscalls,
        count_instructions: options.callgrind,
    };
    let mut driver = Driver::new(target, tokens, options.source_addrs)?;
    let answers_are_echoes = kind.answers_are_echoes();
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

/// Median, min and max of each figure over runs, in the first run's order.
fn summarize(runs: &[Figures]) -> Vec<(String, f64, f64, f64)> {
    let names: Vec<String> = runs
        .first()
        .map(|figures| figures.0.iter().map(|(name, _)| name.clone()).collect())
        .unwrap_or_default();
    names
        .into_iter()
        .map(|name| {
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
            (name, median, min, max)
        })
        .collect()
}

fn json_medians(summary: &[(String, f64, f64, f64)]) -> serde_json::Map<String, serde_json::Value> {
    summary
        .iter()
        .map(|(name, median, _, _)| (name.clone(), json_number(*median)))
        .collect()
}

fn json_number(value: f64) -> serde_json::Value {
    serde_json::Number::from_f64(value)
        .map(serde_json::Value::Number)
        .unwrap_or(serde_json::Value::Null)
}

/// `main / peer` for every figure both have, where the peer's is a usable divisor.
fn ratios(
    main: &[(String, f64, f64, f64)],
    peer: &[(String, f64, f64, f64)],
) -> Vec<(String, f64)> {
    main.iter()
        .filter_map(|(name, median, _, _)| {
            let (_, peer_median, _, _) = peer.iter().find(|(other, ..)| other == name)?;
            let ratio = median / peer_median;
            (ratio.is_finite() && *peer_median != 0.0).then(|| (name.clone(), ratio))
        })
        .collect()
}

/// The figures a paired comparison is reported for, what the targets are set on: the server's
/// CPU per unit of work (`server_cpu_us_per_msg`, `_per_delivery`, ...), and its user-space
/// part (`server_user_us_per_msg`, ...): the server's own code, without the kernel time that
/// dominates the total and most of its noise.
const PAIRED_FIGURE_PREFIXES: [&str; 2] = ["server_cpu_us_per_", "server_user_us_per_"];

/// The scenario's CPU figures, each with `main / peer` of it run by run: run `i` of each server
/// comes one after the other in time (see [`run_scenario`]), so a drift in the machine's load
/// over the invocation touches both sides of a pair alike. Empty without such figures.
fn paired_ratios(main: &[Figures], peer: &[Figures]) -> Vec<(String, Vec<f64>)> {
    let Some(first) = main.first() else {
        return Vec::new();
    };
    let values = |runs: &[Figures], name: &str| -> Vec<f64> {
        runs.iter()
            .map(|figures| {
                figures
                    .0
                    .iter()
                    .find(|(other, _)| other == name)
                    .map_or(f64::NAN, |(_, value)| *value)
            })
            .collect()
    };
    first
        .0
        .iter()
        .map(|(name, _)| name)
        .filter(|name| PAIRED_FIGURE_PREFIXES.iter().any(|p| name.starts_with(p)))
        .map(|name| {
            let ratios = stats::pair_ratios(&values(main, name), &values(peer, name));
            (name.clone(), ratios)
        })
        .collect()
}

/// The human tables (median, min, max over runs, one per server; with peers, a side-by-side
/// table of medians and the ratios main/peer) and one JSON line with the medians.
fn report(options: &Options, scenario: Scenario, results: &[ServerRuns]) {
    let Some((main, peers)) = results.split_first() else {
        return;
    };
    let server_names: Vec<&str> = results.iter().map(|server| server.kind.name()).collect();
    let bot = match options.bot {
        Switch::On => "on",
        Switch::Off => "off",
    };
    println!();
    println!(
        "scenario {scenario:?} | server {} | bot {bot} | {} run(s), median shown | \
         server CPU {} / load CPU {}{}",
        server_names.join(" vs "),
        main.runs.len(),
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
    let summaries: Vec<Vec<(String, f64, f64, f64)>> = results
        .iter()
        .map(|server| summarize(&server.runs))
        .collect();
    for (server, summary) in results.iter().zip(&summaries) {
        if !peers.is_empty() {
            println!("server {}", server.kind.name());
        }
        println!(
            "{:<30} {:>12} {:>12} {:>12}",
            "figure", "median", "min", "max"
        );
        for (name, median, min, max) in summary {
            println!(
                "{name:<30} {:>12} {:>12} {:>12}",
                format_value(*median),
                format_value(*min),
                format_value(*max)
            );
        }
    }
    let main_summary = &summaries[0];
    let peer_ratios: Vec<(String, Vec<(String, f64)>)> = peers
        .iter()
        .zip(&summaries[1..])
        .map(|(peer, summary)| {
            let label = format!("{}/{}", main.kind.name(), peer.kind.name());
            (label, ratios(main_summary, summary))
        })
        .collect();
    if !peers.is_empty() {
        println!("medians side by side");
        let mut header = format!("{:<30}", "figure");
        for name in &server_names {
            header.push_str(&format!(" {name:>12}"));
        }
        for (label, _) in &peer_ratios {
            header.push_str(&format!(" {label:>12}"));
        }
        println!("{header}");
        for (name, median, _, _) in main_summary {
            let mut line = format!("{name:<30} {:>12}", format_value(*median));
            for summary in &summaries[1..] {
                let value = summary
                    .iter()
                    .find(|(other, ..)| other == name)
                    .map_or(f64::NAN, |(_, median, _, _)| *median);
                line.push_str(&format!(" {:>12}", format_value(value)));
            }
            for (_, ratios) in &peer_ratios {
                let ratio = ratios
                    .iter()
                    .find(|(other, _)| other == name)
                    .map_or(f64::NAN, |(_, ratio)| *ratio);
                line.push_str(&format!(" {:>12}", format_value(ratio)));
            }
            println!("{line}");
        }
        for peer in peers {
            for (figure, paired) in paired_ratios(&main.runs, &peer.runs) {
                let listed: Vec<String> =
                    paired.iter().map(|ratio| format!("{ratio:.3}")).collect();
                println!(
                    "{figure} {}/{} run by run: {} (median {})",
                    main.kind.name(),
                    peer.kind.name(),
                    listed.join(" "),
                    format_value(stats::median(&paired)),
                );
            }
        }
    }
    let mut json = serde_json::json!({
        "scenario": format!("{scenario:?}").to_lowercase(),
        "realtime": options.realtime,
        "nice": options.nice,
        "server": main.kind.name(),
        "bot": bot,
        "runs": main.runs.len(),
        "connections": options.connections(scenario),
        "in_flight": options.in_flight,
        "members": options.members,
        "senders": options.senders,
        "rate": options.rate,
        "warmup_s": options.warmup_s,
        "duration_s": options.duration_s,
        "median": json_medians(main_summary),
        "notes": main.notes,
    });
    if !peers.is_empty() {
        let peer_json: serde_json::Map<String, serde_json::Value> = peers
            .iter()
            .zip(&summaries[1..])
            .map(|(peer, summary)| {
                let value = serde_json::json!({
                    "median": json_medians(summary),
                    "notes": peer.notes,
                });
                (peer.kind.name().to_string(), value)
            })
            .collect();
        let ratio_json: serde_json::Map<String, serde_json::Value> = peer_ratios
            .iter()
            .map(|(label, ratios)| {
                let figures: serde_json::Map<String, serde_json::Value> = ratios
                    .iter()
                    .map(|(name, ratio)| (name.clone(), json_number(*ratio)))
                    .collect();
                (label.clone(), serde_json::Value::Object(figures))
            })
            .collect();
        let paired_json: serde_json::Map<String, serde_json::Value> = peers
            .iter()
            .map(|peer| {
                let label = format!("{}/{}", main.kind.name(), peer.kind.name());
                let figures: serde_json::Map<String, serde_json::Value> =
                    paired_ratios(&main.runs, &peer.runs)
                        .into_iter()
                        .map(|(figure, paired)| (figure, json_number(stats::median(&paired))))
                        .collect();
                (label, serde_json::Value::Object(figures))
            })
            .collect();
        json["peers"] = serde_json::Value::Object(peer_json);
        json["ratios"] = serde_json::Value::Object(ratio_json);
        json["paired_ratios"] = serde_json::Value::Object(paired_json);
    }
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
        stats::pair_ratios_skip_missing_and_zero_divisors,
        server::stat_cpu_ticks_skip_command_names_with_spaces,
        server::labelled_numbers_come_from_their_own_line,
        server::sample_reads_this_process,
        tokens::minted_tokens_verify_with_the_same_secret,
        texts::lines_are_short_plain_chat_messages,
        measure::chat_message_is_valid_json_with_generator_id,
        measure::window_measures_only_between_its_edges,
        syscalls::perf_csv_counts_are_matched_by_event,
        syscalls::acknowledgement_may_carry_a_nul,
        floor_server::client_frames_are_unmasked_in_place,
        callgrind::totals_come_from_the_summary_line,
        floor_server::server_frames_use_the_shortest_length,
        floor_server::message_text_is_the_text_fields_value,
        cli::parse_url_accepts_ipv4_ws_urls,
        cli::peers_follow_the_main_server_once_each,
        cli::ratios_skip_figures_a_peer_lacks_or_zeroes,
        cli::paired_ratios_cover_total_and_user_cpu,
        tokio_server::tokio_peer_answers_a_message_like_emotibot,
        tokio_server::tokio_peer_refuses_a_token_signed_with_another_secret,
        tokio_server::tokio_peer_delivers_a_room_message_to_the_other_members,
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

        pub fn peers_follow_the_main_server_once_each() {
            use crate::ServerKind::{Baseline, Chat, Echo, Floor, ScoringFloor, Tokio};
            let parse = |args: &[&str]| {
                let options = <crate::Options as clap::Parser>::try_parse_from(args).unwrap();
                options.servers()
            };
            assert_eq!(parse(&["load", "chat"]), [Chat]);
            assert_eq!(parse(&["load", "chat", "--tokio"]), [Chat, Tokio]);
            assert_eq!(
                parse(&["load", "chat", "--peer", "echo", "--peer", "floor", "--tokio"]),
                [Chat, Echo, Floor, Tokio]
            );
            assert_eq!(parse(&["load", "echo", "--peer", "echo"]), [Echo]);
            assert_eq!(
                parse(&["load", "chat", "--peer", "scoring-floor", "--peer", "floor"]),
                [Chat, ScoringFloor, Floor]
            );
            assert_eq!(
                parse(&["load", "chat", "--peer", "tokio", "--tokio"]),
                [Chat, Tokio]
            );
            assert_eq!(
                parse(&[
                    "load",
                    "chat",
                    "--baseline",
                    "old/emotibot",
                    "--peer",
                    "echo"
                ]),
                [Chat, Echo, Baseline]
            );
            // The baseline runs with the main server's arguments.
            let options = <crate::Options as clap::Parser>::try_parse_from([
                "load",
                "chat",
                "--bot",
                "off",
                "--baseline",
                "old/emotibot",
            ])
            .unwrap();
            assert_eq!(
                options.server_command(Baseline),
                options.server_command(Chat)
            );
            let command = <crate::Options as clap::Parser>::try_parse_from(["load", "chat"])
                .unwrap()
                .server_command(Tokio);
            assert_eq!(command[0], "--serve-tokio");
            assert!(command.windows(2).any(|pair| pair[0] == "--secret"));
            let command = <crate::Options as clap::Parser>::try_parse_from(["load", "chat"])
                .unwrap()
                .server_command(ScoringFloor);
            assert_eq!(command, ["--serve-floor", "--floor-scores"]);
        }

        pub fn ratios_skip_figures_a_peer_lacks_or_zeroes() {
            let figure = |name: &str, value: f64| (name.to_string(), value, value, value);
            let main = [
                figure("cpu", 3.0),
                figure("errors", 0.0),
                figure("only_main", 1.0),
            ];
            let peer = [figure("cpu", 6.0), figure("errors", 0.0)];
            assert_eq!(crate::ratios(&main, &peer), [("cpu".to_string(), 0.5)]);
        }

        pub fn paired_ratios_cover_total_and_user_cpu() {
            use crate::measure::Figures;
            let run = |cpu: f64, user: f64| {
                let mut figures = Figures::default();
                figures.add("msgs_per_s", 1000.0);
                figures.add("server_cpu_us_per_msg", cpu);
                figures.add("server_user_us_per_msg", user);
                figures
            };
            let main = [run(2.0, 0.75), run(3.0, 0.5)];
            let peer = [run(1.0, 0.25), run(2.0, 0.5)];
            assert_eq!(
                crate::paired_ratios(&main, &peer),
                [
                    ("server_cpu_us_per_msg".to_string(), vec![2.0, 1.5]),
                    ("server_user_us_per_msg".to_string(), vec![3.0, 1.0]),
                ]
            );
            assert!(crate::paired_ratios(&[], &peer).is_empty());
        }
    }
}
