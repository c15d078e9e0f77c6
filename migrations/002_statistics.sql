-- Statistics rollups, maintained by the statistics writer thread in the same
-- transaction as the raw events they summarise, so no endpoint reads raw
-- events. Days are UTC days since 1970-01-01, hours UTC hours since the
-- epoch. Rows from before this migration stay in build_stats (pruned with
-- stats_retention_days) and are not rolled up: they were counted under
-- different rules (a 400 used to count as a cache miss).

-- Failure detail of `failure` events (the text the client saw).
ALTER TABLE build_stats ADD COLUMN detail TEXT;

-- The full breakdown: per day × version × target × client × diff_packages.
CREATE TABLE stats_daily (
    day            INTEGER NOT NULL,
    version        TEXT NOT NULL,
    target         TEXT NOT NULL,
    client         TEXT NOT NULL,
    diff_packages  INTEGER NOT NULL,
    requests       INTEGER NOT NULL DEFAULT 0,
    cache_hits     INTEGER NOT NULL DEFAULT 0,
    cache_misses   INTEGER NOT NULL DEFAULT 0,
    successes      INTEGER NOT NULL DEFAULT 0,
    failures       INTEGER NOT NULL DEFAULT 0,
    -- Sum of build durations of successes and failures, seconds.
    build_seconds  REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (day, version, target, client, diff_packages)
) WITHOUT ROWID;

-- The same counters without target and client: small enough (days ×
-- versions × 2) that every day/week/version endpoint sums it in a
-- millisecond whatever the number of targets and clients.
CREATE TABLE stats_daily_version (
    day            INTEGER NOT NULL,
    version        TEXT NOT NULL,
    diff_packages  INTEGER NOT NULL,
    requests       INTEGER NOT NULL DEFAULT 0,
    cache_hits     INTEGER NOT NULL DEFAULT 0,
    cache_misses   INTEGER NOT NULL DEFAULT 0,
    successes      INTEGER NOT NULL DEFAULT 0,
    failures       INTEGER NOT NULL DEFAULT 0,
    build_seconds  REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (day, version, diff_packages)
) WITHOUT ROWID;

-- Per hour, for the "last 24 hours" figures.
CREATE TABLE stats_hourly (
    hour           INTEGER PRIMARY KEY,
    requests       INTEGER NOT NULL DEFAULT 0,
    cache_hits     INTEGER NOT NULL DEFAULT 0,
    cache_misses   INTEGER NOT NULL DEFAULT 0,
    successes      INTEGER NOT NULL DEFAULT 0,
    failures       INTEGER NOT NULL DEFAULT 0,
    rejected       INTEGER NOT NULL DEFAULT 0
);

-- POSTs that were not build requests (422, 400, 529, 502/503/504) by status.
CREATE TABLE stats_daily_rejected (
    day            INTEGER NOT NULL,
    status         INTEGER NOT NULL,
    count          INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, status)
) WITHOUT ROWID;

-- Requested extra packages (neither default nor profile packages) of the
-- POSTs that started a build, per day × branch × package.
CREATE TABLE stats_packages_daily (
    day            INTEGER NOT NULL,
    branch         TEXT NOT NULL,
    package        TEXT NOT NULL,
    count          INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, branch, package)
) WITHOUT ROWID;

-- The last 30 days of stats_packages_daily summed per branch × package,
-- rebuilt by the writer when the UTC day changes, so top-packages sorts a
-- few thousand rows instead of summing a month of daily rows.
CREATE TABLE stats_packages_recent (
    branch         TEXT NOT NULL,
    package        TEXT NOT NULL,
    count          INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (branch, package)
) WITHOUT ROWID;

-- Recent build failures for /api/v1/build-errors, capped by the writer.
CREATE TABLE stats_errors (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    ts             INTEGER NOT NULL,
    version        TEXT NOT NULL,
    target         TEXT NOT NULL,
    profile        TEXT NOT NULL,
    detail         TEXT NOT NULL
);
-- Newest first without sorting the whole log.
CREATE INDEX stats_errors_ts ON stats_errors(ts);

-- Small writer state: `packages_recent_day` (the day stats_packages_recent
-- was built for).
CREATE TABLE stats_state (
    key            TEXT PRIMARY KEY,
    value          INTEGER NOT NULL
);
