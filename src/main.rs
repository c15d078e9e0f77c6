//! asu-builder daemon: parse the command line, load the configuration, set
//! up logging, start the service, wait for SIGTERM/SIGINT, shut down.

use asu_builder::config::{self, Config};
use asu_builder::container::podman::Podman;
use asu_builder::{allocator, app, db, descriptors};
use simplelog::{ColorChoice, ConfigBuilder, LevelFilter, TermLogger, TerminalMode};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

const USAGE: &str = "\
asu-builder — OpenWrt Attended SysUpgrade server with builds on Podman

Usage: asu-builder [--config PATH] [--check-config]

Options:
  --config PATH    configuration file (YAML or JSON); default ./config.yaml,
                   then /etc/asu-builder/config.yaml, if present
  --check-config   print the effective configuration and exit
  --version        print the version and exit
  -h, --help       print this help and exit

Every key can be overridden by an environment variable ASU_<KEY>,
e.g. ASU_SERVER_PORT=8081.";

/// Running builds get this long to finish at shutdown before they are
/// aborted and requeued.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

struct Args {
    config: Option<PathBuf>,
    check_config: bool,
}

enum Cli {
    Run(Args),
    Exit(ExitCode),
}

fn parse_args() -> Cli {
    let mut args = Args {
        config: None,
        check_config: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--version" | "-V" => {
                println!("asu-builder {}", env!("CARGO_PKG_VERSION"));
                return Cli::Exit(ExitCode::SUCCESS);
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                return Cli::Exit(ExitCode::SUCCESS);
            }
            "--check-config" => args.check_config = true,
            "--config" | "-c" => match it.next() {
                Some(p) => args.config = Some(PathBuf::from(p)),
                None => {
                    eprintln!("asu-builder: --config needs a path");
                    return Cli::Exit(ExitCode::from(2));
                }
            },
            other => match other.strip_prefix("--config=") {
                Some(p) => args.config = Some(PathBuf::from(p)),
                None => {
                    eprintln!("asu-builder: unknown argument {other:?}\n\n{USAGE}");
                    return Cli::Exit(ExitCode::from(2));
                }
            },
        }
    }
    Cli::Run(args)
}

fn init_logging(config: &Config) {
    let level = match config.log_level.to_ascii_lowercase().as_str() {
        "error" => LevelFilter::Error,
        "warn" | "warning" => LevelFilter::Warn,
        "debug" => LevelFilter::Debug,
        "trace" => LevelFilter::Trace,
        _ => LevelFilter::Info,
    };
    let log_config = ConfigBuilder::new()
        .set_target_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off)
        .set_time_format_rfc3339()
        .build();
    let _ = TermLogger::init(level, log_config, TerminalMode::Stderr, ColorChoice::Never);
}

fn main() -> ExitCode {
    let started = Instant::now();
    allocator::tune();
    let args = match parse_args() {
        Cli::Run(a) => a,
        Cli::Exit(code) => return code,
    };
    let (config, source) = match config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        print!("{}", config::render_effective(&config));
        return ExitCode::SUCCESS;
    }
    init_logging(&config);

    let mut signals = match signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ]) {
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
    if let Some(sig) = signals.forever().next() {
        log::info!("signal {sig} received: shutting down");
    }
    app.shutdown(SHUTDOWN_GRACE);
    log::info!("stopped");
    ExitCode::SUCCESS
}
