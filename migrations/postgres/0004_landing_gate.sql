-- The landing gate (issue 13): candidates, the requests each holds, each lane's window.
CREATE TABLE gate_candidates (
    id          BIGSERIAL PRIMARY KEY,
    repo        TEXT    NOT NULL,
    lane        TEXT    NOT NULL,
    parent_id   BIGINT  REFERENCES gate_candidates (id),
    state       TEXT    NOT NULL,
    base        TEXT,
    revision    TEXT,
    run_id      BIGINT,
    landed_on   TEXT,
    detail      TEXT,
    created_at  BIGINT  NOT NULL,
    finished_at BIGINT
);
CREATE INDEX gate_candidates_open ON gate_candidates (repo, state);

CREATE TABLE gate_members (
    candidate_id BIGINT NOT NULL REFERENCES gate_candidates (id),
    request_id   BIGINT NOT NULL REFERENCES requests (id),
    position     BIGINT NOT NULL,
    -- 1: a request of a candidate below, tested together with this one; 0: its own.
    ahead        BIGINT NOT NULL,
    head         TEXT,
    PRIMARY KEY (candidate_id, request_id)
);
CREATE INDEX gate_members_request ON gate_members (request_id);

CREATE TABLE gate_lanes (
    repo        TEXT   NOT NULL,
    lane        TEXT   NOT NULL,
    window_size BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (repo, lane)
);

-- A candidate's CI run is filed under its last request and names the candidate.
ALTER TABLE ci_runs ADD COLUMN candidate_id BIGINT;
-- An operator's "move to the front of the gate".
ALTER TABLE requests ADD COLUMN gate_priority BIGINT NOT NULL DEFAULT 0;
