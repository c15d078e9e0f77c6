//! SQLite: opening (WAL, busy timeout, foreign keys), embedded migrations,
//! and the queries every other module uses. Each thread owns its own
//! `Connection`; WAL lets readers run beside the one writer.

pub mod control;
pub mod jobs;
mod migrate;
pub mod results;

pub use migrate::{MIGRATIONS, SCHEMA_VERSION};

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug)]
pub enum DbError {
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// The file was written by a newer asu-builder.
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    Migration {
        version: i64,
        source: rusqlite::Error,
    },
    Sql(rusqlite::Error),
    /// A value could not be put into its stored JSON form.
    Encode(serde_json::Error),
    /// A worker's outcome for a job that is no longer running: an operator
    /// cancelled it meanwhile. Nothing was written.
    NotRunning {
        job_id: i64,
    },
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbError::CreateDir { path, source } => {
                write!(f, "cannot create directory {}: {source}", path.display())
            }
            DbError::Open { path, source } => {
                write!(f, "cannot open database {}: {source}", path.display())
            }
            DbError::TooNew {
                path,
                found,
                supported,
            } => write!(
                f,
                "database {} has schema version {found}, newer than this asu-builder supports ({supported}); upgrade asu-builder or use another database_path",
                path.display()
            ),
            DbError::Migration { version, source } => {
                write!(f, "migration {version:03} failed: {source}")
            }
            DbError::Sql(e) => write!(f, "database error: {e}"),
            DbError::Encode(e) => write!(f, "cannot encode a stored value: {e}"),
            DbError::NotRunning { job_id } => {
                write!(
                    f,
                    "job {job_id} is no longer running (cancelled); outcome not recorded"
                )
            }
        }
    }
}

impl std::error::Error for DbError {}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError::Sql(e)
    }
}

/// Open (creating parent directories) and configure a connection. Does not
/// migrate: call `migrate` once at start-up, then `open` per thread.
pub fn open(path: &Path) -> Result<Connection, DbError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| DbError::CreateDir {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let conn = Connection::open(path).map_err(|source| DbError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // Plans must not depend on bound values: otherwise a statement whose
    // parameter feeds a partial-index check is re-prepared at every new
    // binding, and every poll parsed its SQL anew (`db::jobs` tests this).
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    // WAL: handler reads never wait for the worker's writes.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// Runs `f` in one read transaction, so that its queries see one state of
/// the database. The BEGIN and COMMIT are cached statements: rusqlite's
/// `Transaction` parses them anew each time, which on the request path of
/// every poll cost more than the queries themselves.
pub fn read_snapshot<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    conn.prepare_cached("BEGIN DEFERRED")?.execute([])?;
    let out = f(conn);
    // Nothing was written: COMMIT and ROLLBACK both just end it.
    let end = if out.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = conn.prepare_cached(end).and_then(|mut s| s.execute([]));
    match (out, ended) {
        (Ok(v), Ok(_)) => Ok(v),
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(e.into()),
    }
}

/// Open and bring the schema up to date; the start-up path.
pub fn open_and_migrate(path: &Path) -> Result<Connection, DbError> {
    let mut conn = open(path)?;
    migrate::migrate(&mut conn, path)?;
    Ok(conn)
}

/// Milliseconds since the Unix epoch, the unit of every time column.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
