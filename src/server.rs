//! Builds a running server from the `serve` configuration: the JWT authenticator (or DEV MODE),
//! the chat core, the router, the listener and the shutdown signal pipe, then hands them to the
//! reactor.

use crate::chat::auth::{AuthConfig, Authenticator, KeyConfig};
use crate::chat::{ChatConfig, ChatCore};
use crate::config::{self, JwtAlgorithm, JwtArgs, LogLevel, ServeArgs, Switch};
use crate::http::router::{Router, RouterConfig, StaticSource};
use crate::logging::{self, Level};
use crate::reactor::{Reactor, ReactorConfig};
use crate::{log_info, log_warn};
use std::io::Write;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// How long shutdown waits for WebSocket close replies.
const SHUTDOWN_GRACE_MS: u64 = 3_000;

/// The key configuration the JWT flags describe; `None` when none is given.
pub fn auth_config(jwt: &JwtArgs) -> Result<Option<AuthConfig>, String> {
    let given = [
        jwt.jwt_secret.is_some(),
        jwt.jwt_secret_file.is_some(),
        jwt.jwt_public_key.is_some(),
    ];
    if given.iter().filter(|&&g| g).count() > 1 {
        return Err(
            "--jwt-secret, --jwt-secret-file and --jwt-public-key exclude each other: pass one"
                .into(),
        );
    }
    let key = if let Some(secret) = &jwt.jwt_secret {
        KeyConfig::Hs256(secret.as_bytes().to_vec())
    } else if let Some(path) = &jwt.jwt_secret_file {
        let text = std::fs::read(path)
            .map_err(|e| format!("--jwt-secret-file {}: {e}", path.display()))?;
        let secret = text.strip_suffix(b"\n").unwrap_or(&text);
        let secret = secret.strip_suffix(b"\r").unwrap_or(secret);
        KeyConfig::Hs256(secret.to_vec())
    } else if let Some(path) = &jwt.jwt_public_key {
        let pem =
            std::fs::read(path).map_err(|e| format!("--jwt-public-key {}: {e}", path.display()))?;
        let algorithm = match jwt.jwt_algorithm {
            JwtAlgorithm::Rs256 => jsonwebtoken::Algorithm::RS256,
            JwtAlgorithm::Es256 => jsonwebtoken::Algorithm::ES256,
        };
        KeyConfig::PublicKeyPem { algorithm, pem }
    } else {
        return Ok(None);
    };
    if let KeyConfig::Hs256(secret) = &key {
        if secret.len() < 16 {
            return Err("the JWT secret must be at least 16 bytes".into());
        }
    }
    Ok(Some(AuthConfig {
        key,
        issuer: jwt.jwt_issuer.clone(),
        audience: jwt.jwt_audience.clone(),
    }))
}

fn random_secret() -> Result<Vec<u8>, String> {
    let mut secret = vec![0u8; 32];
    getrandom::fill(&mut secret)
        .map_err(|e| format!("no randomness for the DEV MODE secret: {e}"))?;
    Ok(secret)
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Runs the server until SIGTERM or SIGINT.
pub fn serve(args: ServeArgs) -> Result<(), String> {
    logging::set_max_level(match args.log {
        LogLevel::Error => Level::Error,
        LogLevel::Warn => Level::Warn,
        LogLevel::Info => Level::Info,
        LogLevel::Debug => Level::Debug,
    });
    let (auth, dev_mode) = match auth_config(&args.jwt)? {
        Some(config) => (config, false),
        None => (
            AuthConfig {
                key: KeyConfig::Hs256(random_secret()?),
                issuer: args.jwt.jwt_issuer.clone(),
                audience: args.jwt.jwt_audience.clone(),
            },
            true,
        ),
    };
    let authenticator = Authenticator::new(auth)?;
    let chat_config = ChatConfig {
        typing_timeout_ms: args.typing_timeout_ms,
        bot: args.bot == Switch::On,
        bot_reply_delay_ms: args.bot_reply_delay_ms,
        msg_rate: args.msg_rate,
        msg_burst: args.msg_burst,
        max_text_chars: args.max_text_chars,
        max_rooms_per_conn: args.max_rooms_per_conn,
        ping_interval_ms: args.ping_interval_ms,
        ..ChatConfig::default()
    };
    let clock = Instant::now();
    let unix_ms_at_zero = unix_ms();
    let chat = ChatCore::new(chat_config, authenticator, unix_ms_at_zero);
    let router = Router::new(RouterConfig {
        static_source: match &args.static_dir {
            Some(dir) => StaticSource::Dir(dir.clone()),
            None => StaticSource::Embedded,
        },
        allowed_origins: args.allowed_origins.clone(),
        echo: args.echo,
    });
    let listener = mio::net::TcpListener::bind(args.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    set_listen_backlog(&listener, args.listen_backlog)
        .map_err(|e| format!("cannot set the listen backlog on {}: {e}", args.listen))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    let signals = shutdown_pipe()?;
    let max_connections = args.max_connections.unwrap_or_else(|| {
        config::open_file_limit()
            .map(|limit| limit.saturating_sub(config::FD_RESERVE).max(16))
            .unwrap_or(1024)
    });
    let reactor_config = ReactorConfig {
        max_connections,
        max_message_bytes: args.max_message_bytes,
        handshake_timeout_ms: args.handshake_timeout_ms,
        ping_interval_ms: args.ping_interval_ms,
        idle_timeout_ms: args.idle_timeout_ms,
        max_conns_per_ip: args.max_conns_per_ip,
        dev_mode,
        typing_timeout_ms: args.typing_timeout_ms,
        shutdown_grace_ms: SHUTDOWN_GRACE_MS,
        output_limits: Default::default(),
    };
    let reactor = Reactor::new(
        listener,
        Some(signals),
        router,
        chat,
        reactor_config,
        clock,
        unix_ms_at_zero,
    )
    .map_err(|e| format!("cannot start the event loop: {e}"))?;

    // The first line on stdout is the address: scripts and tests read it (e.g. with port 0).
    println!("EmotiBot listening on http://{local}");
    let _ = std::io::stdout().flush();
    if dev_mode {
        log_warn!(
            "DEV MODE: no --jwt-secret, --jwt-secret-file or --jwt-public-key given. Tokens are signed \
             with a random secret and anyone can get one from POST /api/dev/token. Do not expose \
             this server."
        );
    }
    log_info!(
        "max {max_connections} connections, bot {}, echo {}",
        if args.bot == Switch::On { "on" } else { "off" },
        if args.echo { "on (/echo)" } else { "off" }
    );
    reactor.run().map_err(|e| format!("event loop failed: {e}"))
}

/// A pipe whose read end becomes readable on SIGTERM or SIGINT.
/// mio listens with the standard library's backlog of 128: with a few hundred clients
/// reconnecting at once (a deploy, a network blip) the queue overflows while the loop is busy
/// with one turn's handshakes, and every SYN the kernel drops costs its client a one-second
/// retransmit. Calling `listen` again on a listening socket resizes its queue (Linux).
pub fn set_listen_backlog(listener: &mio::net::TcpListener, backlog: u32) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
    // SAFETY: `listen` on a valid socket descriptor owned by `listener`, no pointers involved.
    if unsafe { libc::listen(listener.as_raw_fd(), backlog) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn shutdown_pipe() -> Result<mio::net::UnixStream, String> {
    let (reader, writer) =
        std::os::unix::net::UnixStream::pair().map_err(|e| format!("signal pipe: {e}"))?;
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        let writer = writer
            .try_clone()
            .map_err(|e| format!("signal pipe: {e}"))?;
        signal_hook::low_level::pipe::register(signal, writer)
            .map_err(|e| format!("signal handler: {e}"))?;
    }
    reader
        .set_nonblocking(true)
        .map_err(|e| format!("signal pipe: {e}"))?;
    Ok(mio::net::UnixStream::from_std(reader))
}

#[cfg(test)]
mod tests {
    use super::set_listen_backlog;
    use std::net::TcpStream;
    use std::time::Duration;

    /// Connections the kernel completes for a listener nobody accepts on: each connect either
    /// lands in the accept queue at once or, with the queue full, has its SYN dropped and times
    /// out.
    fn connects_completed_without_accepting(backlog: Option<u32>, attempts: usize) -> usize {
        let listener = mio::net::TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        if let Some(backlog) = backlog {
            set_listen_backlog(&listener, backlog).unwrap();
        }
        let addr = listener.local_addr().unwrap();
        let mut held = Vec::new();
        for _ in 0..attempts {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(stream) => held.push(stream),
                Err(_) => break,
            }
        }
        held.len()
    }

    #[test]
    fn a_burst_of_connects_larger_than_mios_default_queue_is_not_dropped() {
        // mio's default queue of 128 drops the burst's tail: the reason the backlog is set.
        assert!(connects_completed_without_accepting(None, 300) < 300);
        assert_eq!(connects_completed_without_accepting(Some(1024), 300), 300);
    }
}
