-- Decisions on record (issue 15): for each repository a request was authorized for, whose
-- level counted, what they held, from which source (the static table, an LDAP group) and
-- when it was looked up.
CREATE TABLE permission_decisions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id BIGINT NOT NULL REFERENCES requests (id),
    repo       TEXT   NOT NULL,
    level      TEXT   NOT NULL,
    role       TEXT   NOT NULL,
    identity   TEXT   NOT NULL,
    holds      TEXT   NOT NULL,
    source     TEXT   NOT NULL,
    decided_at BIGINT NOT NULL
);
CREATE INDEX permission_decisions_request ON permission_decisions (request_id);
