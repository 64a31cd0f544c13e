-- The sheriff (issue 14): every push seen on a destination tested after landing, what
-- its tip's CI said, and the backouts made of Autoland's own landings.
CREATE TABLE sheriff_pushes (
    id         BIGSERIAL PRIMARY KEY,
    repo       TEXT   NOT NULL,
    -- The destination's tip after this push, and before it.
    tip        TEXT   NOT NULL,
    base       TEXT,
    -- Its commits, oldest first, separated by spaces.
    commits    TEXT   NOT NULL,
    -- landing (Autoland's, request_id set), outside (someone else's), backout (Autoland's
    -- backout, backout_id set), baseline (the tip when watching began).
    kind       TEXT   NOT NULL,
    request_id BIGINT REFERENCES requests (id),
    backout_id BIGINT,
    -- NULL (not known), green, red (failed twice), intermittent (failed, then passed).
    verdict    TEXT,
    -- This push is the first whose tip failed: the culprit of a red tip.
    culprit    BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    judged_at  BIGINT,
    UNIQUE (repo, tip)
);
CREATE INDEX sheriff_pushes_repo ON sheriff_pushes (repo, id);

CREATE TABLE sheriff_backouts (
    id          BIGSERIAL PRIMARY KEY,
    repo        TEXT   NOT NULL,
    push_id     BIGINT NOT NULL UNIQUE REFERENCES sheriff_pushes (id),
    request_id  BIGINT NOT NULL REFERENCES requests (id),
    -- pending (recorded; the backout commit may be on its way), landed, conflict.
    state       TEXT   NOT NULL,
    jobs        TEXT   NOT NULL,
    -- The tip the last attempt started from (its push is looked for after it).
    attempt_base TEXT,
    revision    TEXT,
    detail      TEXT,
    created_at  BIGINT NOT NULL,
    finished_at BIGINT
);

-- A post-landing CI run names the push whose tip it tests.
ALTER TABLE ci_runs ADD COLUMN push_id BIGINT;
-- The sheriff reads a push's runs at every look.
CREATE INDEX ci_runs_push ON ci_runs (push_id);
