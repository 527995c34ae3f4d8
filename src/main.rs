//! The `coffer` command: parses arguments, sets up logging and the runtime, runs the command
//! (see [`cli`]) and maps its outcome to an exit code: 0 success, 1 error (message and a
//! `hint:` line on stderr), 2 bad usage (from clap), 3 backup stored but some databases failed.

mod cli;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

fn main() -> ExitCode {
    no_core_dumps();
    let args = match cli::config::apply_job(std::env::args_os().collect()) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(hint) = e.hint() {
                eprintln!("hint: {hint}");
            }
            return ExitCode::FAILURE;
        }
    };
    let matches = cli::Cli::command().get_matches_from(args);
    let parsed = match cli::Cli::from_arg_matches(&matches) {
        Ok(parsed) => parsed,
        Err(e) => e.exit(),
    };
    init_logging(parsed.log_format);
    let metrics_file = parsed.metrics_file.clone();
    let command = matches.subcommand_name().unwrap_or("coffer").to_string();
    let started = std::time::Instant::now();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(cli::run(parsed, &matches));
    if let Some(path) = metrics_file {
        let success = matches!(&result, Ok(code) if *code == ExitCode::SUCCESS);
        let seconds = started.elapsed().as_secs_f64();
        if let Err(e) = cli::metrics::write(&path, &command, seconds, success) {
            eprintln!("error: {e}");
            if let Some(hint) = e.hint() {
                eprintln!("hint: {hint}");
            }
        }
    }
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(hint) = e.hint() {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: cli::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("COFFER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,coffer=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match format {
        cli::LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        cli::LogFormat::Json => builder.json().with_current_span(false).init(),
    }
}

/// A core dump of coffer would hold the repository key and whatever passphrase or database
/// password it read: switch them off for this process before anything secret is read. On
/// Linux the process is also made non-dumpable, which keeps other processes of the same user
/// from attaching to it (ptrace) or reading its memory and `/proc/<pid>/environ`.
fn no_core_dumps() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_DUMPABLE takes plain integers and touches no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        eprintln!("warning: could not make this process non-dumpable");
    }
    let none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit only reads the struct passed by reference; failure leaves the limit as
    // it was, which is reported and not fatal.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &none) } != 0 {
        eprintln!("warning: could not switch off core dumps for this process");
    }
}
