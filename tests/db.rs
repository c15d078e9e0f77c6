//! Real SQLite files: WAL, the tables, migrations applied once, a
//! newer schema refused.

use asu_builder::db;

#[test]
fn migrations_create_the_tables_in_wal_and_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/builder.db");
    let conn = db::open_and_migrate(&path).expect("first open");
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let mut tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables.sort();
    assert_eq!(
        tables,
        [
            "build_jobs",
            "build_requests",
            "build_results",
            "build_stats",
            "metadata_cache",
            "stats_daily",
            "stats_daily_rejected",
            "stats_daily_version",
            "stats_errors",
            "stats_hourly",
            "stats_packages_daily",
            "stats_packages_recent",
            "stats_state",
            "store_published"
        ]
    );
    conn.execute(
        "INSERT INTO build_stats (event, ts) VALUES ('request', 1)",
        [],
    )
    .unwrap();
    drop(conn);

    // Second start on the same file: nothing re-applied, data kept.
    let conn = db::open_and_migrate(&path).expect("second open");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, db::SCHEMA_VERSION);
    let n: i64 = conn
        .query_row("SELECT count(*) FROM build_stats", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
    let fk: i64 = conn
        .pragma_query_value(None, "foreign_keys", |r| r.get(0))
        .unwrap();
    assert_eq!(fk, 1);
}

#[test]
fn newer_schema_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("builder.db");
    let conn = db::open_and_migrate(&path).unwrap();
    conn.pragma_update(None, "user_version", db::SCHEMA_VERSION + 1)
        .unwrap();
    drop(conn);
    let err = db::open_and_migrate(&path).unwrap_err().to_string();
    assert!(
        err.contains("newer than this asu-builder supports"),
        "{err}"
    );
    assert!(err.contains("builder.db"), "{err}");
}

#[test]
fn unwritable_location_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    // A path below a regular file cannot be created.
    let err = db::open_and_migrate(&file.join("builder.db")).unwrap_err();
    assert!(err.to_string().contains("cannot create directory"), "{err}");
}

/// A database from before store adoption: its results were all built (and
/// published) here, so their directories stay ours to delete on expiry.
#[test]
fn upgrading_marks_existing_results_as_published_here() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("builder.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for (version, sql) in db::MIGRATIONS.iter().filter(|(v, _)| *v <= 2) {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", version).unwrap();
        }
        conn.execute_batch(
            "INSERT INTO build_requests (request_hash, request_json, bin_dir, version, target, \
                profile, diff_packages, client, created_at) \
                VALUES ('h1', '{}', 'b1', '1', 't/s', 'p', 0, 'c', 1); \
             INSERT INTO build_results (request_hash, bin_dir, result_json, build_duration, \
                finished_at, expires_at) VALUES ('h1', 'b1', '{}', 1.0, 5, 10);",
        )
        .unwrap();
    }
    let conn = db::open_and_migrate(&path).unwrap();
    let published: Vec<(String, i64)> = conn
        .prepare("SELECT bin_dir, published_at FROM store_published")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(published, [("b1".to_string(), 5)]);
    let adopted: i64 = conn
        .query_row(
            "SELECT count(*) FROM pragma_table_info('stats_daily') WHERE name = 'adopted'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(adopted, 1);
}
