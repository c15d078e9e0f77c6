//! asu-builder: parse the command line; run an operator command, or load
//! the configuration, set up logging, start the service, re-read the
//! configuration on SIGHUP, and shut down on SIGTERM/SIGINT.

use asu_builder::cli::{self, Cli, Command};
use asu_builder::config::{self, Config, ConfigSource, LiveConfig};
use asu_builder::container::podman::Podman;
use asu_builder::{allocator, app, db, descriptors};
use clap::Parser;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use simplelog::{ColorChoice, ConfigBuilder, LevelFilter, TermLogger, TerminalMode};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Running builds get this long to finish at shutdown before they are
/// aborted and requeued.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

fn level_of(config: &Config) -> LevelFilter {
    match config.log_level.to_ascii_lowercase().as_str() {
        "error" => LevelFilter::Error,
        "warn" | "warning" => LevelFilter::Warn,
        "debug" => LevelFilter::Debug,
        "trace" => LevelFilter::Trace,
        _ => LevelFilter::Info,
    }
}

/// Logs go to stderr. Under systemd (`JOURNAL_STREAM` set) the journal
/// stamps each line itself, so ours carry none. The logger passes
/// everything; `log::set_max_level` filters, so SIGHUP can change it.
fn init_logging(config: &Config) {
    let mut builder = ConfigBuilder::new();
    builder
        .set_target_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.set_time_level(LevelFilter::Off);
    } else {
        builder.set_time_format_rfc3339();
    }
    let _ = TermLogger::init(
        LevelFilter::Trace,
        builder.build(),
        TerminalMode::Stderr,
        ColorChoice::Never,
    );
    log::set_max_level(level_of(config));
}

fn main() -> ExitCode {
    let started = Instant::now();
    allocator::tune();
    let cli = Cli::parse();
    match &cli.command {
        None | Some(Command::Serve) => serve(&cli, started),
        Some(Command::Manpage) => match cli::man::render(&mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("asu-builder: {e}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Doctor) => {
            let checks = cli::doctor::run(&config::load(cli.config.as_deref()));
            for c in &checks {
                println!("{c}");
            }
            if checks.iter().all(|c| c.ok) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Some(command) => operator(&cli, command),
    }
}

/// `jobs`, `job`, `retry`, `cancel`, `purge`. Warnings (a container Podman
/// would not kill) go to stderr, without timestamps: a terminal reads them.
fn operator(cli: &Cli, command: &Command) -> ExitCode {
    let quiet = ConfigBuilder::new()
        .set_time_level(LevelFilter::Off)
        .set_target_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off)
        .build();
    let _ = TermLogger::init(
        LevelFilter::Warn,
        quiet,
        TerminalMode::Stderr,
        ColorChoice::Never,
    );
    let config = match config::load(cli.config.as_deref()) {
        Ok((c, _)) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Jobs(a) => cli::ops::jobs(&config, a),
        Command::Job(a) => cli::ops::job(&config, a),
        Command::Retry(a) => cli::ops::retry(&config, a),
        Command::Cancel(a) => cli::ops::cancel(&config, a),
        Command::Purge(a) => cli::ops::purge(&config, a),
        Command::Serve | Command::Doctor | Command::Manpage => return ExitCode::from(2),
    };
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("asu-builder: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(cli: &Cli, started: Instant) -> ExitCode {
    let (config, source) = match config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if cli.check_config {
        print!("{}", config::render_effective(&config));
        return ExitCode::SUCCESS;
    }
    init_logging(&config);

    let mut signals = match signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("asu-builder: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    match descriptors::raise_nofile_limit() {
        Ok(limit) => log::info!(
            "descriptor limit: {} (hard {})",
            limit.soft.map_or("unlimited".into(), |n| n.to_string()),
            limit.hard.map_or("unlimited".into(), |n| n.to_string())
        ),
        Err(e) => log::warn!("cannot raise the descriptor limit: {e}"),
    }
    // An exec session (a build step) may take as long as the build may.
    let exec_limit = Duration::from_secs(config.job_timeout_seconds) + Duration::from_secs(60);
    let runtime =
        Arc::new(Podman::new(&config.container_socket_path).with_exec_timeout(exec_limit));
    let workers = config.worker_concurrent;
    let db_path = config.database_path.clone();
    let app = match app::start(config, runtime) {
        Ok(a) => a,
        Err(e) => {
            log::error!("{e}");
            eprintln!("asu-builder: {e}");
            return ExitCode::FAILURE;
        }
    };
    log::info!(
        "asu-builder {} listening on http://{} (config: {source}, database: {}, schema {}, {workers} workers) — ready in {:.1} ms",
        env!("CARGO_PKG_VERSION"),
        app.addr(),
        db_path.display(),
        db::SCHEMA_VERSION,
        started.elapsed().as_secs_f64() * 1000.0
    );
    for sig in signals.forever() {
        if sig == SIGHUP {
            reload(cli.config.as_deref(), &source, app.live());
            continue;
        }
        log::info!("signal {sig} received: shutting down");
        break;
    }
    app.shutdown(SHUTDOWN_GRACE);
    log::info!("stopped");
    ExitCode::SUCCESS
}

/// SIGHUP: load the configuration as at start-up (the same file, the
/// environment) and apply what may change live.
fn reload(explicit: Option<&Path>, started_from: &ConfigSource, live: &LiveConfig) {
    // The file the server started with, even if another would be found now.
    let file = explicit.or(started_from.file());
    let loaded = match file {
        Some(path) => config::load(Some(path)),
        None => config::load(None),
    };
    let (config, _) = match loaded {
        Ok(c) => c,
        Err(e) => {
            log::error!("reload (SIGHUP): {e}; the running configuration stays");
            return;
        }
    };
    let report = live.reload(&config);
    log::set_max_level(level_of(&live.get()));
    if report.applied.is_empty() && report.need_restart.is_empty() {
        log::info!("reload (SIGHUP): nothing changed");
    }
    for change in &report.applied {
        log::info!("reload (SIGHUP): {change}");
    }
    if !report.need_restart.is_empty() {
        log::warn!(
            "reload (SIGHUP): changed but only applied at a restart: {}",
            report.need_restart.join(", ")
        );
    }
}
