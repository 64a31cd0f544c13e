-- Core schema: requests and their patches, destinations, append-only events,
-- CI runs, module heartbeats and the outbox of reports. Times are milliseconds since
-- the epoch (BIGINT) so SQLite and PostgreSQL share every query.

CREATE TABLE requests (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    uid              TEXT    NOT NULL UNIQUE,
    source           TEXT    NOT NULL,
    bug              BIGINT,
    requester        TEXT    NOT NULL,
    try_repo         TEXT    NOT NULL,
    base_repo        TEXT    NOT NULL,
    try_syntax       TEXT,
    stage            TEXT    NOT NULL,
    failure          TEXT,
    failure_detail   TEXT,
    try_base         TEXT,
    try_revision     TEXT,
    attempts         BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT  NOT NULL,
    lease_owner      TEXT,
    lease_until      BIGINT,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL
);
CREATE INDEX requests_stage ON requests (stage, next_attempt_at);

CREATE TABLE patches (
    request_id   BIGINT NOT NULL REFERENCES requests (id),
    position     BIGINT NOT NULL,
    name         TEXT   NOT NULL,
    format       TEXT   NOT NULL,
    author       TEXT   NOT NULL,
    submitter    TEXT,
    date_seconds BIGINT,
    date_offset  BIGINT,
    message      TEXT   NOT NULL,
    diff         TEXT   NOT NULL,
    PRIMARY KEY (request_id, position)
);

CREATE TABLE patch_files (
    request_id BIGINT NOT NULL,
    position   BIGINT NOT NULL,
    path       TEXT   NOT NULL,
    PRIMARY KEY (request_id, position, path)
);

CREATE TABLE patch_reviews (
    request_id BIGINT NOT NULL,
    position   BIGINT NOT NULL,
    reviewer   TEXT   NOT NULL,
    kind       TEXT   NOT NULL,
    PRIMARY KEY (request_id, position, reviewer, kind)
);

CREATE TABLE request_destinations (
    request_id      BIGINT NOT NULL REFERENCES requests (id),
    position        BIGINT NOT NULL,
    repo            TEXT   NOT NULL,
    attempt_base    TEXT,
    landed_revision TEXT,
    PRIMARY KEY (request_id, position)
);

CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id BIGINT  NOT NULL REFERENCES requests (id),
    at         BIGINT  NOT NULL,
    kind       TEXT    NOT NULL,
    from_stage TEXT,
    to_stage   TEXT,
    actor      TEXT    NOT NULL,
    detail     TEXT    NOT NULL
);
CREATE INDEX events_request ON events (request_id, id);

CREATE TABLE ci_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id  BIGINT  NOT NULL REFERENCES requests (id),
    repo        TEXT    NOT NULL,
    revision    TEXT    NOT NULL,
    ref_name    TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    attempts    BIGINT  NOT NULL DEFAULT 0,
    exit_code   BIGINT,
    summary     TEXT,
    log_path    TEXT,
    created_at  BIGINT  NOT NULL,
    started_at  BIGINT,
    finished_at BIGINT
);
CREATE INDEX ci_runs_state ON ci_runs (state);

CREATE TABLE heartbeats (
    module     TEXT   NOT NULL,
    instance   TEXT   NOT NULL,
    host       TEXT   NOT NULL,
    pid        BIGINT NOT NULL,
    state      TEXT   NOT NULL,
    detail     TEXT   NOT NULL,
    restarts   BIGINT NOT NULL DEFAULT 0,
    started_at BIGINT NOT NULL,
    beat_at    BIGINT NOT NULL,
    PRIMARY KEY (module, instance)
);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id      BIGINT  NOT NULL REFERENCES requests (id),
    bug             BIGINT  NOT NULL,
    kind            TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    attempts        BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    attempted_at    BIGINT,
    last_error      TEXT,
    sent_at         BIGINT,
    abandoned_at    BIGINT
);
CREATE INDEX outbox_pending ON outbox (bug, id);

-- Attachments a request named explicitly (`[autoland-try:1001,1002]`), in order.
CREATE TABLE request_attachments (
    request_id    BIGINT NOT NULL REFERENCES requests (id),
    position      BIGINT NOT NULL,
    attachment_id BIGINT NOT NULL,
    PRIMARY KEY (request_id, position)
);

-- Repositories an operator closed: landings on them wait until they reopen.
CREATE TABLE repository_state (
    repo       TEXT   PRIMARY KEY,
    closed     BIGINT NOT NULL,
    reason     TEXT   NOT NULL,
    changed_by TEXT   NOT NULL,
    changed_at BIGINT NOT NULL
);

-- Operator controls of modules: a paused module is stopped until resumed; raising
-- kick_seq restarts it. `module` is a module name or a group ("pusher": every pusher).
CREATE TABLE module_controls (
    module     TEXT   PRIMARY KEY,
    paused     BIGINT NOT NULL,
    kick_seq   BIGINT NOT NULL,
    changed_by TEXT   NOT NULL,
    changed_at BIGINT NOT NULL
);

-- Every operator action (retry, cancel, close/reopen, pause/resume/kick) with who did it.
CREATE TABLE operator_actions (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     BIGINT  NOT NULL,
    actor  TEXT    NOT NULL,
    action TEXT    NOT NULL,
    target TEXT    NOT NULL,
    detail TEXT    NOT NULL
);

-- Small named values a tracker keeps between polls (the poll cursor).
CREATE TABLE tracker_state (
    name       TEXT   PRIMARY KEY,
    value      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);
