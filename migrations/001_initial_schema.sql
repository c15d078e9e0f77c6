-- asu-builder initial schema. Times are Unix milliseconds (INTEGER) unless
-- the column name says otherwise; `enqueued_at` keeps the ISO text clients see.

CREATE TABLE build_requests (
    request_hash   TEXT PRIMARY KEY,
    -- The request after validation, exactly as echoed back in `request`.
    request_json   TEXT NOT NULL,
    -- Store directory: hash recomputed after the profile was resolved.
    bin_dir        TEXT NOT NULL,
    version        TEXT NOT NULL,
    target         TEXT NOT NULL,
    profile        TEXT NOT NULL,
    diff_packages  INTEGER NOT NULL,
    client         TEXT NOT NULL,
    created_at     INTEGER NOT NULL
);

CREATE TABLE build_jobs (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    request_hash        TEXT NOT NULL REFERENCES build_requests(request_hash) ON DELETE CASCADE,
    status              TEXT NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed')),
    imagebuilder_status TEXT NOT NULL DEFAULT 'queued',
    attempts            INTEGER NOT NULL DEFAULT 0,
    max_attempts        INTEGER NOT NULL DEFAULT 3,
    worker_id           TEXT,
    lease_expires_at    INTEGER,
    -- Retry backoff: a pending job is not claimed before this time.
    not_before          INTEGER NOT NULL DEFAULT 0,
    enqueued_at         TEXT NOT NULL,
    enqueued_ms         INTEGER NOT NULL,
    started_at          INTEGER,
    finished_at         INTEGER,
    expires_at          INTEGER,
    detail              TEXT,
    stdout              TEXT,
    stderr              TEXT,
    build_cmd           TEXT
);

-- At most one active job per request: concurrent identical POSTs collapse here.
CREATE UNIQUE INDEX build_jobs_one_active ON build_jobs(request_hash)
    WHERE status IN ('pending', 'running');
CREATE INDEX build_jobs_status ON build_jobs(status, id);
CREATE INDEX build_jobs_hash ON build_jobs(request_hash, id);

CREATE TABLE build_results (
    request_hash   TEXT PRIMARY KEY REFERENCES build_requests(request_hash) ON DELETE CASCADE,
    bin_dir        TEXT NOT NULL,
    -- Exactly the body GET /api/v1/build/{hash} returns with 200.
    result_json    TEXT NOT NULL,
    build_duration REAL NOT NULL,
    finished_at    INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL
);
CREATE INDEX build_results_expires ON build_results(expires_at);

-- One row per event: request, cache-hit, cache-miss, success, failure.
CREATE TABLE build_stats (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    event          TEXT NOT NULL,
    ts             INTEGER NOT NULL,
    request_hash   TEXT,
    version        TEXT,
    target         TEXT,
    profile        TEXT,
    client         TEXT,
    diff_packages  INTEGER,
    -- JSON list of the requested packages.
    packages       TEXT,
    duration       REAL
);
CREATE INDEX build_stats_event_ts ON build_stats(event, ts);

CREATE TABLE metadata_cache (
    url            TEXT PRIMARY KEY,
    status         INTEGER NOT NULL,
    body           BLOB NOT NULL,
    etag           TEXT,
    last_modified  TEXT,
    fetched_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL
);
