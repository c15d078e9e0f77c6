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
            "stats_state"
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
