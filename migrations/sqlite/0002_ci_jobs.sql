-- CI adapters (issue 11): which CI tests a run, its jobs, retries and reuse.
ALTER TABLE ci_runs ADD COLUMN ci TEXT NOT NULL DEFAULT 'local';
ALTER TABLE ci_runs ADD COLUMN external_id TEXT;
ALTER TABLE ci_runs ADD COLUMN content_key TEXT;
ALTER TABLE ci_runs ADD COLUMN reused_from BIGINT;
ALTER TABLE ci_runs ADD COLUMN next_check_at BIGINT;
ALTER TABLE ci_runs ADD COLUMN last_change_at BIGINT;
ALTER TABLE ci_runs ADD COLUMN complete_at BIGINT;
CREATE INDEX ci_runs_reuse ON ci_runs (repo, content_key);

CREATE TABLE ci_jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      BIGINT  NOT NULL REFERENCES ci_runs (id),
    name        TEXT    NOT NULL,
    attempt     BIGINT  NOT NULL,
    state       TEXT    NOT NULL,
    result      TEXT,
    raw_result  TEXT,
    external_id TEXT,
    log_url     TEXT,
    duration_ms BIGINT,
    summary     TEXT,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    UNIQUE (run_id, name, attempt)
);
CREATE INDEX ci_jobs_created ON ci_jobs (created_at);

CREATE TABLE webhook_deliveries (
    digest      TEXT   PRIMARY KEY,
    received_at BIGINT NOT NULL
);
