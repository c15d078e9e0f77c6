//! The command line: the daemon (no subcommand, or `serve`) and the
//! operator commands, which work on the same database as a running daemon
//! (SQLite WAL; short `BEGIN IMMEDIATE` writes) and talk to Podman for a
//! running build's `cancel`. `main` parses and wires; the commands live in
//! `ops` (jobs, job, retry, cancel, purge), `doctor` and `man`.

pub mod doctor;
pub mod man;
pub mod ops;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

pub const ENV_HELP: &str = "\
Every configuration key can be overridden by an environment variable
ASU_<KEY>, e.g. ASU_SERVER_PORT=8081. SIGHUP re-reads the configuration.";

/// asu-builder — OpenWrt Attended SysUpgrade server with builds on Podman
#[derive(Debug, Parser)]
#[command(
    name = "asu-builder",
    version,
    about = "OpenWrt Attended SysUpgrade server with builds on Podman",
    long_about = "OpenWrt Attended SysUpgrade server with builds on Podman.\n\n\
        Without a subcommand it runs the server in the foreground. The other \
        subcommands are operator commands on the server's database; they are \
        safe to run while the server runs.",
    after_help = ENV_HELP
)]
pub struct Cli {
    /// Configuration file (YAML or JSON); default ./config.yaml, then
    /// /etc/asu-builder/config.yaml, if present
    #[arg(short, long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Print the effective configuration and exit
    #[arg(long)]
    pub check_config: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server in the foreground (the default)
    Serve,
    /// List jobs, newest first
    Jobs(JobsArgs),
    /// Show one request: its jobs, output, result and store directory
    Job(HashArg),
    /// Drop a cached failure (or a cancelled job) and queue the request again
    Retry(HashArg),
    /// Cancel a queued or running build; a running build's container is killed
    Cancel(HashArg),
    /// Delete failed and cancelled jobs, or expired results with their store directories
    Purge(PurgeArgs),
    /// Check configuration, database, Podman, network, store disk space and upstream
    Doctor,
    /// Print the man page (roff) to standard output
    #[command(hide = true)]
    Manpage,
}

#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Only jobs with this status (repeatable)
    #[arg(long, value_enum)]
    pub status: Vec<StatusArg>,
    /// At most this many rows
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub limit: u32,
}

#[derive(Debug, Args)]
pub struct HashArg {
    /// Request hash, or a unique prefix of at least 6 hex digits
    pub hash: String,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = true)]
pub struct PurgeArgs {
    /// Failed and cancelled jobs, whatever their failure_ttl_seconds
    #[arg(long)]
    pub failed: bool,
    /// Results and failures past their TTL, with store directories no live result uses
    #[arg(long)]
    pub expired: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusArg {
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl StatusArg {
    pub fn status(self) -> crate::models::JobStatus {
        use crate::models::JobStatus;
        match self {
            StatusArg::Pending => JobStatus::Pending,
            StatusArg::Running => JobStatus::Running,
            StatusArg::Completed => JobStatus::Completed,
            StatusArg::Failed => JobStatus::Failed,
            StatusArg::Cancelled => JobStatus::Cancelled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_daemon_flags_parse_as_before() {
        let c =
            Cli::try_parse_from(["asu-builder", "--config", "x.yaml", "--check-config"]).unwrap();
        assert!(c.check_config && c.command.is_none());
        assert_eq!(c.config.as_deref(), Some(std::path::Path::new("x.yaml")));
        let c = Cli::try_parse_from(["asu-builder", "--config=y.yaml"]).unwrap();
        assert_eq!(c.config.as_deref(), Some(std::path::Path::new("y.yaml")));
        let c =
            Cli::try_parse_from(["asu-builder", "jobs", "-c", "z", "--status", "failed"]).unwrap();
        assert!(matches!(c.command, Some(Command::Jobs(ref j)) if j.status == [StatusArg::Failed]));
        assert!(
            Cli::try_parse_from(["asu-builder", "purge"]).is_err(),
            "purge needs a choice"
        );
        assert!(Cli::try_parse_from(["asu-builder", "--bogus"]).is_err());
    }
}
