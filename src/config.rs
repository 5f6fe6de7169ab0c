//! Command-line and environment configuration.
//!
//! Every `serve` flag has an `EMOTIBOT_*` environment twin; flags win over the environment.
//! `serve` is also what runs when no subcommand is given.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "emotibot",
    version,
    about = "EmotiBot: a real-time, emotion-aware chat server",
    args_conflicts_with_subcommands = true,
    after_help = "With no subcommand, `emotibot` runs `serve` with the flags given."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the chat server (the default).
    Serve(ServeArgs),
    /// Score texts for emotion: one text per input line, one result per output line.
    Analyze(AnalyzeArgs),
    /// Evaluate the scorer on a labelled file (`text<TAB>label` lines).
    Eval(EvalArgs),
    /// Mint an HS256 token with the configured secret (for operators and scripts).
    Token(TokenArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum JwtAlgorithm {
    Rs256,
    Es256,
}

/// Where tokens are checked against: shared by `serve` and `token`.
#[derive(Debug, Clone, Args)]
pub struct JwtArgs {
    /// HS256 secret for JWTs. Without any secret or key the server runs in DEV MODE.
    #[arg(
        long,
        env = "EMOTIBOT_JWT_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub jwt_secret: Option<String>,
    /// Read the HS256 secret from a file (trailing newline ignored).
    #[arg(long, env = "EMOTIBOT_JWT_SECRET_FILE", value_name = "FILE")]
    pub jwt_secret_file: Option<PathBuf>,
    /// Verify RS256/ES256 tokens with this PEM public key instead of a shared secret.
    #[arg(long, env = "EMOTIBOT_JWT_PUBLIC_KEY", value_name = "FILE")]
    pub jwt_public_key: Option<PathBuf>,
    /// Algorithm of --jwt-public-key.
    #[arg(
        long,
        env = "EMOTIBOT_JWT_ALGORITHM",
        value_enum,
        default_value = "rs256"
    )]
    pub jwt_algorithm: JwtAlgorithm,
    /// Require this `iss` claim.
    #[arg(long, env = "EMOTIBOT_JWT_ISSUER", value_name = "ISS")]
    pub jwt_issuer: Option<String>,
    /// Require this `aud` claim.
    #[arg(long, env = "EMOTIBOT_JWT_AUDIENCE", value_name = "AUD")]
    pub jwt_audience: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(
        long,
        env = "EMOTIBOT_LISTEN",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    pub listen: SocketAddr,
    /// Serve the web client from this directory instead of the copy embedded in the binary.
    #[arg(long, env = "EMOTIBOT_STATIC_DIR", value_name = "DIR")]
    pub static_dir: Option<PathBuf>,
    /// Origin allowed to open WebSockets (repeatable; env: comma-separated). Default: the
    /// request's own host, so cross-site pages cannot open sockets.
    #[arg(
        long = "allowed-origin",
        env = "EMOTIBOT_ALLOWED_ORIGIN",
        value_delimiter = ',',
        value_name = "ORIGIN"
    )]
    pub allowed_origins: Vec<String>,
    /// Length of the kernel's queue of accepted-but-not-yet-taken connections. A burst of
    /// reconnects larger than the queue makes the kernel drop SYNs, and each dropped client waits
    /// a full second for its retransmit; the kernel caps it at `net.core.somaxconn`.
    #[arg(
        long,
        env = "EMOTIBOT_LISTEN_BACKLOG",
        default_value_t = 1024,
        value_name = "N"
    )]
    pub listen_backlog: u32,
    /// Most simultaneous connections. Default: the open-file limit minus a reserve of 100.
    #[arg(long, env = "EMOTIBOT_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Largest WebSocket message accepted (bytes); larger ones close with 1009.
    #[arg(long, env = "EMOTIBOT_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024, value_name = "BYTES")]
    pub max_message_bytes: usize,
    /// Time allowed for an HTTP request head (and between keep-alive requests).
    #[arg(
        long,
        env = "EMOTIBOT_HANDSHAKE_TIMEOUT_MS",
        default_value_t = 10_000,
        value_name = "MS"
    )]
    pub handshake_timeout_ms: u64,
    /// The server pings a WebSocket that has been quiet this long.
    #[arg(
        long,
        env = "EMOTIBOT_PING_INTERVAL_MS",
        default_value_t = 25_000,
        value_name = "MS"
    )]
    pub ping_interval_ms: u64,
    /// A WebSocket from which nothing at all (frames or pongs) arrived for this long is closed.
    #[arg(
        long,
        env = "EMOTIBOT_IDLE_TIMEOUT_MS",
        default_value_t = 60_000,
        value_name = "MS"
    )]
    pub idle_timeout_ms: u64,
    /// Log level.
    #[arg(long, env = "EMOTIBOT_LOG", value_enum, default_value = "info")]
    pub log: LogLevel,
    /// Testing aid: upgrades at /echo echo every message back (used for conformance runs).
    #[arg(long, env = "EMOTIBOT_ECHO")]
    pub echo: bool,
    #[command(flatten)]
    pub jwt: JwtArgs,
    /// The bot that answers messages in private rooms.
    #[arg(long, env = "EMOTIBOT_BOT", value_enum, default_value = "on")]
    pub bot: Switch,
    /// Delay before the bot replies.
    #[arg(
        long,
        env = "EMOTIBOT_BOT_REPLY_DELAY_MS",
        default_value_t = 700,
        value_name = "MS"
    )]
    pub bot_reply_delay_ms: u64,
    /// A typing indicator clears after this long without a refresh.
    #[arg(
        long,
        env = "EMOTIBOT_TYPING_TIMEOUT_MS",
        default_value_t = 2_000,
        value_name = "MS"
    )]
    pub typing_timeout_ms: u64,
    /// Messages per second per connection (token bucket rate; 0 = unlimited).
    #[arg(
        long,
        env = "EMOTIBOT_MSG_RATE",
        default_value_t = 20,
        value_name = "N"
    )]
    pub msg_rate: u32,
    /// Token bucket size for --msg-rate.
    #[arg(
        long,
        env = "EMOTIBOT_MSG_BURST",
        default_value_t = 40,
        value_name = "N"
    )]
    pub msg_burst: u32,
    /// Longest chat message, in characters.
    #[arg(
        long,
        env = "EMOTIBOT_MAX_TEXT_CHARS",
        default_value_t = 4000,
        value_name = "N"
    )]
    pub max_text_chars: usize,
    /// Most connections from one IP address (0 = unlimited).
    #[arg(
        long,
        env = "EMOTIBOT_MAX_CONNS_PER_IP",
        default_value_t = 256,
        value_name = "N"
    )]
    pub max_conns_per_ip: u32,
    /// Most rooms one connection may be in (its private room included).
    #[arg(
        long,
        env = "EMOTIBOT_MAX_ROOMS_PER_CONN",
        default_value_t = 32,
        value_name = "N"
    )]
    pub max_rooms_per_conn: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AnalyzeFormat {
    Json,
    Label,
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Read texts from this file instead of standard input.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Output: a JSON object per line, or just the dominant label.
    #[arg(long, value_enum, default_value = "json")]
    pub format: AnalyzeFormat,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A file of `text<TAB>label` lines, labels among anger, disgust, fear, joy, sadness,
    /// surprise, neutral.
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The user id (`sub` claim).
    #[arg(long)]
    pub sub: String,
    /// Optional display name (`name` claim).
    #[arg(long)]
    pub name: Option<String>,
    /// Lifetime, e.g. `90s`, `30m`, `1h`, `7d` (plain numbers are seconds).
    #[arg(long, default_value = "1h", value_parser = parse_duration_secs)]
    pub ttl: u64,
    #[command(flatten)]
    pub jwt: JwtArgs,
}

/// Parses `90`, `90s`, `30m`, `1h`, `7d` into seconds.
pub fn parse_duration_secs(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, "s"),
    };
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 90s, 30m, 1h or 7d"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}` (use s, m, h or d)"
            ))
        }
    };
    value
        .checked_mul(scale)
        .filter(|&secs| secs > 0)
        .ok_or_else(|| format!("`{text}` is out of range"))
}

/// The process's open-file soft limit, if it can be read.
pub fn open_file_limit() -> Option<usize> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own and has no other effect.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (rc == 0).then(|| usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX))
}

/// File descriptors kept back from `--max-connections`' default for the listener, the poll
/// instance, the signal pipe, logs and a short-lived rejection socket.
pub const FD_RESERVE: usize = 100;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_secs("90"), Ok(90));
        assert_eq!(parse_duration_secs("90s"), Ok(90));
        assert_eq!(parse_duration_secs("30m"), Ok(1800));
        assert_eq!(parse_duration_secs("1h"), Ok(3600));
        assert_eq!(parse_duration_secs("7d"), Ok(604_800));
        assert!(parse_duration_secs("0").is_err());
        assert!(parse_duration_secs("1y").is_err());
        assert!(parse_duration_secs("h").is_err());
        assert!(parse_duration_secs("99999999999999999999d").is_err());
    }

    #[test]
    fn serve_is_the_default_and_flags_parse() {
        let cli =
            Cli::try_parse_from(["emotibot", "--listen", "127.0.0.1:9000", "--echo"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.listen.port(), 9000);
        assert!(cli.serve.echo);
        assert_eq!(cli.serve.max_message_bytes, 65536);

        let cli = Cli::try_parse_from([
            "emotibot",
            "serve",
            "--allowed-origin",
            "https://a.example",
            "--allowed-origin",
            "https://b.example",
            "--bot",
            "off",
        ])
        .unwrap();
        match cli.command {
            Some(Command::Serve(args)) => {
                assert_eq!(args.allowed_origins.len(), 2);
                assert_eq!(args.bot, Switch::Off);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn bad_values_name_the_flag() {
        let err = Cli::try_parse_from(["emotibot", "--listen", "nowhere"]).unwrap_err();
        assert!(err.to_string().contains("--listen"), "{err}");
        let err = Cli::try_parse_from(["emotibot", "--ping-interval-ms", "soon"]).unwrap_err();
        assert!(err.to_string().contains("--ping-interval-ms"), "{err}");
    }
}
