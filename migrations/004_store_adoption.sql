-- Sharing a store with another server, and adopting the builds found in it.

-- Store directories this service published itself: a build renamed into
-- store/<bin_dir>. The janitor deletes a directory when the last result
-- using it expires, and only when it is listed here; a directory that was
-- adopted (found complete, built by someone else or before our database
-- was reset) is left alone, whatever becomes of its results.
CREATE TABLE store_published (
    bin_dir       TEXT PRIMARY KEY,
    published_at  INTEGER NOT NULL
) WITHOUT ROWID;
-- Every result so far came from our own builds.
INSERT OR IGNORE INTO store_published (bin_dir, published_at)
    SELECT bin_dir, max(finished_at) FROM build_results GROUP BY bin_dir;

-- A request whose profile is an alias of one already answered resolves to
-- the same bin_dir: found through this index, without reading the store.
CREATE INDEX build_results_bin_dir ON build_results(bin_dir, expires_at);

-- `adopted` is a third answer to a build request, beside cache-hit and
-- cache-miss: requests = cache_hits + cache_misses + adopted.
ALTER TABLE stats_daily ADD COLUMN adopted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE stats_daily_version ADD COLUMN adopted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE stats_hourly ADD COLUMN adopted INTEGER NOT NULL DEFAULT 0;
