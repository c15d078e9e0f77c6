-- Operators can cancel a job (asu-builder cancel, DELETE /api/v1/build/{hash}):
-- a fifth status, 'cancelled'. SQLite cannot change a CHECK constraint in
-- place, so build_jobs is rebuilt with the same columns, rows and ids.

CREATE TABLE build_jobs_new (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    request_hash        TEXT NOT NULL REFERENCES build_requests(request_hash) ON DELETE CASCADE,
    status              TEXT NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    imagebuilder_status TEXT NOT NULL DEFAULT 'queued',
    attempts            INTEGER NOT NULL DEFAULT 0,
    max_attempts        INTEGER NOT NULL DEFAULT 3,
    worker_id           TEXT,
    lease_expires_at    INTEGER,
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

INSERT INTO build_jobs_new (id, request_hash, status, imagebuilder_status, attempts,
    max_attempts, worker_id, lease_expires_at, not_before, enqueued_at, enqueued_ms,
    started_at, finished_at, expires_at, detail, stdout, stderr, build_cmd)
SELECT id, request_hash, status, imagebuilder_status, attempts,
    max_attempts, worker_id, lease_expires_at, not_before, enqueued_at, enqueued_ms,
    started_at, finished_at, expires_at, detail, stdout, stderr, build_cmd
FROM build_jobs;

DROP TABLE build_jobs;
ALTER TABLE build_jobs_new RENAME TO build_jobs;

-- At most one active job per request: concurrent identical POSTs collapse here.
CREATE UNIQUE INDEX build_jobs_one_active ON build_jobs(request_hash)
    WHERE status IN ('pending', 'running');
CREATE INDEX build_jobs_status ON build_jobs(status, id);
CREATE INDEX build_jobs_hash ON build_jobs(request_hash, id);
