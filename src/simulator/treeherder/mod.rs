//! A simulator of Treeherder's read-only REST API, for the test suite and `autoland demo`:
//! an in-process axum server on 127.0.0.1 that tests seed with pushes and jobs through
//! [`Simulator`], and that answers what `thclient.TreeherderClient` (treeherder-client
//! 5.0.0) and other clients read.
//!
//! # What it answers, and where the shapes come from
//!
//! Read from mozilla/treeherder (`treeherder/webapp/api/`: `urls.py`, `push.py`,
//! `jobs.py`, `job_log_url.py`, `pagination.py`, `serializers.py`, `utils.py`;
//! `treeherder/model/models.py`; `treeherder/config/settings.py`), Django REST framework
//! and Django:
//!
//! - `GET /api/project/<project>/push/` (`PushViewSet.list`): newest first, `count`
//!   (default 10, 1..=1000), `revision` (the tip: exact when 40 characters, a prefix when
//!   shorter), `id`, `id__lt|lte|gt|gte`, `id__in`, `author` (`-author` excludes),
//!   `author_contains`, `hide_reviewbot_pushes`, `push_timestamp__lt|lte|gt|gte`. Answers
//!   `{"meta": {["revision": ...,] "count", "repository", "filter_params"}, "results":
//!   [push]}`, a push being `{id, revision, author, revisions: [{result_set_id,
//!   repository_id, revision, author, comments}] (newest 20, newest first),
//!   revision_count, push_timestamp, repository_id}`. There is no `offset`, and no
//!   `revision__in` (an unknown parameter, ignored as the real view ignores it). An
//!   unknown project is 404 `{"detail": "No project with name <p>"}`.
//!   `GET .../push/<id>/` answers one push or 404 `"No push with id: <id>"`.
//! - `GET /api/project/<project>/jobs/` (`JobsProjectViewSet.list`, what
//!   `TreeherderClient.get_jobs` calls): `offset` (default 0) and `count` (default 10, at
//!   most 2000: 400 `{"detail": "Specified count exceeds API MAX_JOBS_COUNT value: 2000"}`),
//!   ordered by id; `{"results": [job], "meta": {"repository", "offset", "count"}}`, each
//!   job a dict of the 36 `_property_query_mapping` fields plus `platform_option`
//!   (`return_type=list` gives lists and `job_property_names`). `get_jobs(count=None)`
//!   pages with `count=2000&offset=0,2000,...` until a page has fewer than 2000 jobs.
//!   `GET .../jobs/<id>/` adds `resource_uri`, `logs` [{name, url}], `task_id`,
//!   `retry_id`, `taskcluster_metadata` and `autoclassify_status`.
//! - `GET /api/jobs/` (`JobsViewSet`, the endpoint the Treeherder UI moved to): all
//!   projects, `JobPagination` (`PageNumberPagination`: `page`, page size `count`
//!   defaulting to and capped at 2000), `{"count", "next", "previous", "results",
//!   "job_property_names"}`, each job a list of 18 values in `job_property_names` order
//!   (`duration` in minutes as `Job.get_duration` computes it). `next`/`previous` are
//!   absolute URLs with the query re-encoded and sorted, as `replace_query_param` does;
//!   a page out of range is 404 `{"detail": "Invalid page."}`.
//! - Filters of `JobFilter` on both job lists: `id`, `push_id` (each also `__lt`, `__lte`,
//!   `__gt`, `__gte`), `last_modified` (and its lookups), and exact text: `state`,
//!   `result`, `task_id`, `retry_id`, `job_guid`, `job_type_name`, `job_type_symbol`,
//!   `job_group_name`, `job_group_symbol`, `platform`, `build_platform`,
//!   `build_system_type`, `who`, `reason`, `signature`, `ref_data_name`. The others (`tier`,
//!   `*__in`, the `*_id` reference-data ids, times, the project list's legacy
//!   `result_set_id` and `*_timestamp`) are answered 501.
//!   `push_id` is a `ModelChoiceFilter` on the `push` foreign key, so it validates only
//!   when it names an existing push. A value that does not validate is a 400 on
//!   `/api/jobs/` (`{"push_id": ["Select a valid choice. That choice is not one of the
//!   available choices."]}`) and is *skipped* on the project-bound list, as
//!   `JobFilter(...).qs` skips it: `get_jobs(project, push_id=<no such push>)` reads the
//!   project's jobs, not an empty list. A client must check `push_id` in what it reads.
//! - `GET /api/project/<project>/job-log-url/?job_id=N` (one or more `job_id`):
//!   `[{"id", "job_id", "name": "live_backing_log", "url", "parse_status"}]`; no `job_id`
//!   is 400 `{"detail": "The job_id parameter is mandatory for this endpoint"}`.
//! - Versioning and negotiation: `Accept: application/json; version=1.0` (what the client
//!   sends) or any type JSON satisfies; another version is 406 `{"detail": "Invalid
//!   version in \"Accept\" header."}`, a type JSON cannot satisfy 406 `{"detail": "Could
//!   not satisfy the request Accept header."}`. The answer's `Content-Type` is the
//!   accepted media type, so the client gets `application/json; version=1.0` back.
//! - URLs end with a slash and are not redirected to it (`APPEND_SLASH = False`): without
//!   it, or for any unknown path, Django's HTML 404 page. Writes (POST, PUT, ...) are 403
//!   `{"detail": "Authentication credentials were not provided."}`.
//! - User agents: Treeherder's documentation says API users must send a descriptive
//!   `User-Agent` and that "default scripting User Agents will receive an HTTP 403". What
//!   the server does is Django's `CommonMiddleware` with `DISALLOWED_USER_AGENTS`:
//!   `^Go-http-client/`, `^Go 1.1 package http`, `^libcurl/`, `^Python-urllib/`,
//!   `^python-requests/` get Django's HTML "403 Forbidden" page (the exception's "Forbidden
//!   user agent" is not shown). A request with no `User-Agent` at all is *not* refused
//!   (the middleware only checks a header that is present), so neither is it here; every
//!   request's agent is in [`LoggedRequest::user_agent`] for tests to check that Autoland
//!   identifies itself.
//!
//! Endpoints real Treeherder has but the simulator does not answer (other project-bound
//! and reference-data routes, push health, `OPTIONS`) answer 501 with a plain-text
//! explanation, so that a test using one fails loudly instead of seeing a plausible 404.
//!
//! # Guesses
//!
//! Where the sources do not settle a value, the simulator shows what real Taskcluster
//! jobs show in Treeherder's data: `build_system_type` "taskcluster"; platforms with
//! `os_name` and `architecture` "-"; option collection "opt" (hash
//! `102210fe594ee9b33d82058545b1ed14f4c8206e`); `reason` "scheduled"; `who` the pusher;
//! `failure_classification_id` 1 ("not classified"); `ref_data_name` equal to the 40-hex
//! `signature` (made up from the job's name, symbol, group and platform). Guessed outright:
//! `machine_name` "unknown", empty job type and group descriptions, ungrouped jobs in
//! group "unknown" / "?", `autoclassify_status` "pending", made-up task ids (UUID-v4
//! slugids; `job_guid` is `<uuid>/<retry_id>`), reference-data ids numbered as first seen,
//! and log references appearing when the job completes with `parse_status` "parsed" (the
//! log parser is taken to have run at once). Pending jobs have start and end timestamps 0,
//! running jobs an end timestamp 0 (Treeherder stores missing times as the epoch). Real
//! Treeherder slices the project-bound job list without an ORDER BY; the simulator orders
//! by id. Its Django error pages are Django's defaults (the site is assumed to have no
//! 403/404/500 templates). Not reproduced: gzip, `Vary`, CORS headers, throttling,
//! `ALLOWED_HOSTS`, the push list's `fromchange`/`tochange`/`startdate`/`enddate`/
//! `commit_revision`/`search`/`all_repos` (answered 501).
//!
//! The simulator also serves a job's log when the test gives its text
//! ([`JobSpec::log_text`]) at `/simulator/log/<job id>/live_backing.log`, a path real
//! Treeherder does not have, so that a person following a link in the demo sees a log.

mod control;
mod http;
mod jobs;
mod pagination;
mod push;
mod state;
#[cfg(test)]
mod tests;
mod types;
mod wire;

pub use control::Simulator;
pub use types::{Error, Fault, JobResult, JobSpec, JobState, LoggedRequest, NewCommit, NewPush};
