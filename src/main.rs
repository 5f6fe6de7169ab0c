//! The `emotibot` command: `serve` (the default), `analyze`, `eval` and `token`.

use clap::Parser;
use emotibot::config::{AnalyzeFormat, Cli, Command};
use emotibot::emotion::cli::{self as emotion_cli, OutputFormat};
use std::io::{self, BufReader};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => {
            // --help and --version
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            // One line that names the flag; `--help` has the rest.
            let rendered = err.to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            eprintln!("{first} (see `emotibot --help`)");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        None => emotibot::server::serve(cli.serve),
        Some(Command::Serve(args)) => emotibot::server::serve(args),
        Some(Command::Analyze(args)) => analyze(args),
        Some(Command::Eval(args)) => emotion_cli::eval(&args.file, io::stdout().lock())
            .map(|_| ())
            .map_err(|e| format!("eval {}: {e}", args.file.display())),
        Some(Command::Token(args)) => token(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("emotibot: {message}");
            ExitCode::FAILURE
        }
    }
}

fn analyze(args: emotibot::config::AnalyzeArgs) -> Result<(), String> {
    let format = match args.format {
        AnalyzeFormat::Json => OutputFormat::Json,
        AnalyzeFormat::Label => OutputFormat::Label,
    };
    let stdout = io::stdout().lock();
    match &args.file {
        Some(path) => {
            let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
            emotion_cli::analyze(BufReader::new(file), stdout, format)
        }
        None => emotion_cli::analyze(io::stdin().lock(), stdout, format),
    }
    .map_err(|e| format!("analyze: {e}"))
}

fn token(args: emotibot::config::TokenArgs) -> Result<(), String> {
    let config = emotibot::server::auth_config(&args.jwt)?.ok_or(
        "no secret configured: pass --jwt-secret, --jwt-secret-file or set EMOTIBOT_JWT_SECRET",
    )?;
    let authenticator = emotibot::chat::auth::Authenticator::new(config)?;
    let now_s = emotibot::server::unix_ms() / 1000;
    let token = authenticator.mint(&args.sub, args.name.as_deref(), args.ttl, now_s)?;
    println!("{token}");
    Ok(())
}
