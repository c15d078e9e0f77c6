//! The `metadata_cache` table: upstream answers kept across restarts. Only
//! found documents (200) are stored.

use super::super::http::Validators;
use super::doc::{Content, Doc};
use rusqlite::{Connection, OptionalExtension, params};
use std::sync::Arc;

pub fn load(conn: &Connection, url: &str) -> rusqlite::Result<Option<Doc>> {
    conn.query_row(
        "SELECT body, etag, last_modified, fetched_at, expires_at
         FROM metadata_cache WHERE url = ?1 AND status = 200",
        params![url],
        |r| {
            let validators = Validators {
                etag: r.get(1)?,
                last_modified: r.get(2)?,
            };
            Ok(Doc {
                found: true,
                content: Arc::new(Content::new(r.get(0)?, validators)),
                fetched_at: r.get(3)?,
                expires_at: r.get(4)?,
            })
        },
    )
    .optional()
}

pub fn store(conn: &Connection, url: &str, doc: &Doc) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO metadata_cache
             (url, status, body, etag, last_modified, fetched_at, expires_at)
         VALUES (?1, 200, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(url) DO UPDATE SET
             status = 200, body = excluded.body, etag = excluded.etag,
             last_modified = excluded.last_modified,
             fetched_at = excluded.fetched_at, expires_at = excluded.expires_at",
        params![
            url,
            doc.body(),
            doc.content.validators.etag,
            doc.content.validators.last_modified,
            doc.fetched_at,
            doc.expires_at
        ],
    )?;
    Ok(())
}

/// Delete rows that expired before `cutoff` (Unix milliseconds).
pub fn prune(conn: &Connection, cutoff: i64) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM metadata_cache WHERE expires_at < ?1",
        params![cutoff],
    )
}
