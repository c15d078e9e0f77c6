//! Embedded migrations, applied once each and recorded in `PRAGMA user_version`.

use super::DbError;
use rusqlite::Connection;
use std::path::Path;

/// (version, SQL) in order; version N is applied when user_version < N.
pub const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/001_initial_schema.sql")),
    (2, include_str!("../../migrations/002_statistics.sql")),
    (3, include_str!("../../migrations/003_cancelled_jobs.sql")),
    (4, include_str!("../../migrations/004_store_adoption.sql")),
];

pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

pub fn migrate(conn: &mut Connection, path: &Path) -> Result<(), DbError> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(DbError::TooNew {
            path: path.to_path_buf(),
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    for &(version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        // IMMEDIATE: two processes starting on one file cannot both apply it.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|source| DbError::Migration { version, source })?;
        let seen: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if seen >= version {
            continue;
        }
        tx.execute_batch(sql)
            .map_err(|source| DbError::Migration { version, source })?;
        tx.pragma_update(None, "user_version", version)
            .map_err(|source| DbError::Migration { version, source })?;
        tx.commit()
            .map_err(|source| DbError::Migration { version, source })?;
        log::info!("applied database migration {version:03}");
    }
    Ok(())
}
