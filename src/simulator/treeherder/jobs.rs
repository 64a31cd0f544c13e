//! The job endpoints (`treeherder/webapp/api/jobs.py`, `job_log_url.py`):
//!
//! - `GET /api/project/<project>/jobs/` (`JobsProjectViewSet.list`, what
//!   `TreeherderClient.get_jobs` reads): `offset`/`count` slicing (count at most 2000,
//!   default 10), dicts or, with `return_type=list`, lists plus `job_property_names`, and
//!   `meta` {repository, offset, count};
//! - `GET /api/project/<project>/jobs/<id>/` (`retrieve`), which adds the job's `logs`;
//! - `GET /api/jobs/` (`JobsViewSet.list`): every repository, `JobFilter` filters, pages of
//!   `JobPagination`, each job a list of the values named by `job_property_names`;
//! - `GET /api/project/<project>/job-log-url/?job_id=N` (`JobLogUrlViewSet.list`) and
//!   `.../job-log-url/<id>/`.

use chrono::NaiveDateTime;
use serde::Serialize;
use serde_json::{Value, json};

use super::pagination::paginate;
use super::state::{Job, OPTION_COLLECTION_HASH, PLATFORM_OPTION, State, isoformat, now_seconds};
use super::wire::{Ctx, QueryParams, Reply, number_filter, py_int};

/// `MAX_JOBS_COUNT` of `JobsProjectViewSet.list`.
const MAX_JOBS_COUNT: i64 = 2000;

/// `JobsViewSet._output_field_names`: what each value of an `/api/jobs/` row is.
const JOB_PROPERTY_NAMES: [&str; 18] = [
    "failure_classification_id",
    "id",
    "job_group_name",
    "job_group_symbol",
    "job_type_name",
    "job_type_symbol",
    "last_modified",
    "platform",
    "push_id",
    "push_revision",
    "result",
    "signature",
    "state",
    "tier",
    "task_id",
    "retry_id",
    "duration",
    "platform_option",
];

/// A JSON value whose objects keep their keys in order (`serde_json::Value` sorts them).
enum Node {
    Value(Value),
    Object(Object),
    Objects(Vec<Object>),
}

/// A JSON object whose keys keep their order.
struct Object(Vec<(&'static str, Node)>);

impl Object {
    /// An object of plain values.
    fn of(fields: Vec<(&'static str, Value)>) -> Object {
        Object(
            fields
                .into_iter()
                .map(|(k, v)| (k, Node::Value(v)))
                .collect(),
        )
    }
}

impl Serialize for Node {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Value(value) => value.serialize(serializer),
            Node::Object(object) => object.serialize(serializer),
            Node::Objects(objects) => objects.serialize(serializer),
        }
    }
}

impl Serialize for Object {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// "not classified", the failure classification of every job nobody classified.
const NOT_CLASSIFIED: i64 = 1;

/// `JobProjectSerializer.to_representation`: the job as the project-bound endpoints show
/// it, in the order of `JobsProjectViewSet._property_query_mapping` (without its last two,
/// `task_id` and `retry_id`).
fn project_fields(job: &Job) -> Vec<(&'static str, Value)> {
    vec![
        ("build_architecture", json!("-")),
        ("build_os", json!("-")),
        ("build_platform", json!(job.platform)),
        ("build_platform_id", json!(job.build_platform_id)),
        ("build_system_type", json!("taskcluster")),
        ("end_timestamp", json!(job.end_time)),
        ("failure_classification_id", json!(NOT_CLASSIFIED)),
        ("id", json!(job.id)),
        ("job_group_description", json!("")),
        ("job_group_id", json!(job.job_group_id)),
        ("job_group_name", json!(job.group_name)),
        ("job_group_symbol", json!(job.group_symbol)),
        ("job_guid", json!(job.guid)),
        ("job_type_description", json!("")),
        ("job_type_id", json!(job.job_type_id)),
        ("job_type_name", json!(job.name)),
        ("job_type_symbol", json!(job.symbol)),
        ("last_modified", json!(isoformat(job.last_modified))),
        ("machine_name", json!("unknown")),
        ("machine_platform_architecture", json!("-")),
        ("machine_platform_os", json!("-")),
        ("option_collection_hash", json!(OPTION_COLLECTION_HASH)),
        ("platform", json!(job.platform)),
        ("push_id", json!(job.push_id)),
        ("reason", json!("scheduled")),
        ("ref_data_name", json!(job.signature)),
        ("result", json!(job.result.as_str())),
        ("result_set_id", json!(job.push_id)),
        ("signature", json!(job.signature)),
        ("start_timestamp", json!(job.start_time)),
        ("state", json!(job.state.as_str())),
        ("submit_timestamp", json!(job.submit_time)),
        ("tier", json!(job.tier)),
        ("who", json!(job.who)),
    ]
}

/// A job of the project-bound list: every `_property_query_mapping` value, then
/// `platform_option`.
fn project_list_fields(job: &Job) -> Vec<(&'static str, Value)> {
    let mut fields = project_fields(job);
    fields.push(("task_id", json!(job.task_id)));
    fields.push(("retry_id", json!(job.retry_id)));
    fields.push(("platform_option", json!(PLATFORM_OPTION)));
    fields
}

/// A filter of `JobFilter` the simulator applies.
enum JobCondition {
    PushId(&'static str, Option<i64>),
    Id(&'static str, Option<i64>),
    LastModified(&'static str, NaiveDateTime),
    /// A `CharFilter` (or a char field of `Meta.fields`): exact, case-sensitive.
    Text(&'static str, String),
}

/// The `JobFilter` filters matched as text, and the job's value for each.
const TEXT_FILTERS: [&str; 16] = [
    "state",
    "result",
    "task_id",
    "retry_id",
    "job_guid",
    "job_type_name",
    "job_type_symbol",
    "job_group_name",
    "job_group_symbol",
    "platform",
    "build_platform",
    "build_system_type",
    "who",
    "reason",
    "signature",
    "ref_data_name",
];

fn text_value(job: &Job, key: &str) -> String {
    match key {
        "state" => job.state.as_str().to_owned(),
        "result" => job.result.as_str().to_owned(),
        "task_id" => job.task_id.clone(),
        "retry_id" => job.retry_id.to_string(),
        "job_guid" => job.guid.clone(),
        "job_type_name" => job.name.clone(),
        "job_type_symbol" => job.symbol.clone(),
        "job_group_name" => job.group_name.clone(),
        "job_group_symbol" => job.group_symbol.clone(),
        "platform" | "build_platform" => job.platform.clone(),
        "build_system_type" => "taskcluster".to_owned(),
        "who" => job.who.clone(),
        "reason" => "scheduled".to_owned(),
        _ => job.signature.clone(),
    }
}

/// `JobFilter` filters the simulator does not apply (a request using one is answered
/// 501 rather than silently unfiltered), and the project-bound list's legacy parameters.
const UNSIMULATED_FILTERS: [&str; 17] = [
    "id__in",
    "tier",
    "tier__in",
    "push_id__in",
    "job_guid__in",
    "build_architecture",
    "build_os",
    "build_platform_id",
    "job_group_id",
    "job_type_id",
    "machine_name",
    "machine_platform_architecture",
    "machine_platform_os",
    "option_collection_hash",
    "failure_classification_id",
    "result_set_id",
    "submit_time",
];

/// Whether a query key names a filter the simulator does not apply (with any lookup).
fn unsimulated_filter(key: &str) -> bool {
    let field = key.split("__").next().unwrap_or(key);
    UNSIMULATED_FILTERS.contains(&key)
        || UNSIMULATED_FILTERS.contains(&field)
        || [
            "start_time",
            "end_time",
            "submit_timestamp",
            "start_timestamp",
            "end_timestamp",
        ]
        .contains(&field)
}

fn compare<T: PartialOrd>(lookup: &str, value: T, wanted: T) -> bool {
    match lookup {
        "lt" => value < wanted,
        "lte" => value <= wanted,
        "gt" => value > wanted,
        "gte" => value >= wanted,
        _ => value == wanted,
    }
}

impl JobCondition {
    fn matches(&self, job: &Job) -> bool {
        match self {
            // A non-integral number matches no integer.
            JobCondition::PushId(lookup, wanted) => {
                wanted.is_some_and(|w| compare(lookup, job.push_id, w))
            }
            JobCondition::Id(lookup, wanted) => wanted.is_some_and(|w| compare(lookup, job.id, w)),
            JobCondition::LastModified(lookup, wanted) => {
                compare(lookup, job.last_modified, *wanted)
            }
            JobCondition::Text(key, wanted) => text_value(job, key) == *wanted,
        }
    }
}

/// An ISO 8601 date-time as django-filter's `IsoDateTimeFilter` reads it (Django's
/// `parse_datetime`), as naive UTC (`USE_TZ = False`): `T` or a space between date and
/// time, optional seconds and fraction, an optional `Z` or offset.
pub(super) fn parse_iso(text: &str) -> Option<NaiveDateTime> {
    let text = text.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.naive_utc());
    }
    let naive = text.strip_suffix('Z').unwrap_or(text);
    let formats = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ];
    formats
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(naive, f).ok())
}

/// The lookups of a `JobFilter` field, in the order of the keys naming them below.
const LOOKUPS: [&str; 5] = ["exact", "lt", "lte", "gt", "gte"];

/// The `JobFilter` conditions of a query (each key's last value), and the keys whose value
/// does not validate with django-filter's message. `push_id` (and its lookups) is a
/// `ModelChoiceFilter` (the field is the `push` foreign key): its value must be the id of
/// an existing push, of any project. `id` is a `NumberFilter`, `last_modified` an
/// `IsoDateTimeFilter`.
fn job_filter(
    state: &State,
    query: &QueryParams,
) -> (Vec<JobCondition>, Vec<(&'static str, &'static str)>) {
    let mut conditions = Vec::new();
    let mut invalid = Vec::new();
    let keys: [[&'static str; 5]; 3] = [
        ["id", "id__lt", "id__lte", "id__gt", "id__gte"],
        [
            "push_id",
            "push_id__lt",
            "push_id__lte",
            "push_id__gt",
            "push_id__gte",
        ],
        [
            "last_modified",
            "last_modified__lt",
            "last_modified__lte",
            "last_modified__gt",
            "last_modified__gte",
        ],
    ];
    for (field, names) in keys.iter().enumerate() {
        for (key, lookup) in names.iter().zip(LOOKUPS) {
            let Some(text) = query.get(key).filter(|t| !t.trim().is_empty()) else {
                continue;
            };
            match field {
                0 => match number_filter(text) {
                    Ok(None) => {}
                    Ok(Some(wanted)) => conditions.push(JobCondition::Id(lookup, wanted)),
                    Err(()) => invalid.push((*key, "Enter a number.")),
                },
                1 => match py_int(text).filter(|id| state.pushes.contains_key(id)) {
                    Some(id) => conditions.push(JobCondition::PushId(lookup, Some(id))),
                    None => invalid.push((
                        *key,
                        "Select a valid choice. That choice is not one of the available choices.",
                    )),
                },
                _ => match parse_iso(text) {
                    Some(t) => conditions.push(JobCondition::LastModified(lookup, t)),
                    None => invalid.push((*key, "Enter a valid date/time.")),
                },
            }
        }
    }
    for key in TEXT_FILTERS {
        if let Some(value) = query.get(key).filter(|v| !v.is_empty()) {
            conditions.push(JobCondition::Text(key, value.to_owned()));
        }
    }
    (conditions, invalid)
}

fn refuse_unsimulated(query: &QueryParams) -> Option<Reply> {
    let (key, _) = query
        .pairs()
        .iter()
        .find(|(k, v)| !v.is_empty() && unsimulated_filter(k))?;
    Some(Reply::not_simulated(&format!(
        "the {key} filter of the job lists"
    )))
}

/// `GET /api/project/<project>/jobs/`.
pub(super) fn project_list(state: &State, project: &str, query: &QueryParams) -> Reply {
    if let Some(reply) = refuse_unsimulated(query) {
        return reply;
    }
    // The sanity check of `last_modified*` values (dateutil's parser, far more lenient
    // than this one).
    for (key, value) in query.items() {
        if key.starts_with("last_modified") && parse_iso(&value).is_none() {
            return Reply::json_string(
                400,
                &format!("Invalid date value for `last_modified`: {value}"),
            );
        }
    }
    let offset = query.get("offset").map_or(Some(0), py_int);
    let count = query.get("count").map_or(Some(10), py_int);
    let (Some(offset), Some(count)) = (offset, count) else {
        return Reply::json_string(400, "Invalid value for offset or count");
    };
    let return_type = query.get("return_type").unwrap_or("dict").to_lowercase();
    if count > MAX_JOBS_COUNT {
        return Reply::detail(
            400,
            &format!("Specified count exceeds API MAX_JOBS_COUNT value: {MAX_JOBS_COUNT}"),
        );
    }
    let Some(repository) = state.project(project) else {
        return Reply::detail(404, &format!("No project with name {project}"));
    };
    // job_qs[offset:offset + count]: Django refuses negative bounds, and a stop before the
    // start makes a negative LIMIT the database rejects.
    if offset < 0 || count < 0 {
        return Reply::server_error();
    }
    // JobFilter(...).qs skips the filters whose values do not validate.
    let (conditions, _invalid) = job_filter(state, query);
    let jobs = state
        .jobs
        .values()
        .filter(|j| j.repository_id == repository.id)
        .filter(|j| conditions.iter().all(|c| c.matches(j)))
        .skip(offset as usize)
        .take(count as usize);
    let mut body = Vec::new();
    if return_type == "dict" {
        let results = jobs.map(|j| Object::of(project_list_fields(j))).collect();
        body.push(("results", Node::Objects(results)));
    } else {
        let results: Vec<Vec<Value>> = jobs
            .map(|j| project_list_fields(j).into_iter().map(|(_, v)| v).collect())
            .collect();
        body.push(("results", Node::Value(json!(results))));
        if return_type == "list" {
            let mut names = PROJECT_FIELD_NAMES.to_vec();
            names.extend(["task_id", "retry_id", "platform_option"]);
            body.push(("job_property_names", Node::Value(json!(names))));
        }
    }
    let meta = Object::of(vec![
        ("repository", json!(project)),
        ("offset", json!(offset)),
        ("count", json!(count)),
    ]);
    body.push(("meta", Node::Object(meta)));
    Reply::json(200, &Object(body))
}

/// The keys of [`project_fields`], in order.
const PROJECT_FIELD_NAMES: [&str; 34] = [
    "build_architecture",
    "build_os",
    "build_platform",
    "build_platform_id",
    "build_system_type",
    "end_timestamp",
    "failure_classification_id",
    "id",
    "job_group_description",
    "job_group_id",
    "job_group_name",
    "job_group_symbol",
    "job_guid",
    "job_type_description",
    "job_type_id",
    "job_type_name",
    "job_type_symbol",
    "last_modified",
    "machine_name",
    "machine_platform_architecture",
    "machine_platform_os",
    "option_collection_hash",
    "platform",
    "push_id",
    "reason",
    "ref_data_name",
    "result",
    "result_set_id",
    "signature",
    "start_timestamp",
    "state",
    "submit_timestamp",
    "tier",
    "who",
];

/// `GET /api/project/<project>/jobs/<id>/`.
pub(super) fn project_retrieve(state: &State, project: &str, pk: &str, ctx: &Ctx) -> Reply {
    let Some(id) = py_int(pk) else {
        // Job.objects.get(id="abc") raises ValueError: a 500.
        return Reply::server_error();
    };
    let job = state.jobs.get(&id).filter(|j| {
        state
            .project_by_id(j.repository_id)
            .is_some_and(|r| r.name == project)
    });
    let Some(job) = job else {
        return Reply::json_string(404, &format!("No job with id: {pk}"));
    };
    let mut fields = project_fields(job);
    fields.push((
        "resource_uri",
        json!(format!("/api/project/{project}/jobs/{pk}/")),
    ));
    let logs: Vec<Value> = job
        .visible_log()
        .map(|log| json!({ "name": "live_backing_log", "url": log.url(job.id, ctx.base) }))
        .into_iter()
        .collect();
    fields.push(("logs", json!(logs)));
    fields.push(("platform_option", json!(PLATFORM_OPTION)));
    fields.push(("task_id", json!(job.task_id)));
    fields.push(("retry_id", json!(job.retry_id)));
    let mut object = Object::of(fields);
    // "Keep for backwards compatability"
    object.0.push((
        "taskcluster_metadata",
        Node::Object(Object::of(vec![
            ("task_id", json!(job.task_id)),
            ("retry_id", json!(job.retry_id)),
        ])),
    ));
    object
        .0
        .push(("autoclassify_status", Node::Value(json!("pending"))));
    Reply::json(200, &object)
}

/// `GET /api/jobs/`: `JobFilter`, ordered by id, paged by `JobPagination`.
pub(super) fn list(state: &State, ctx: &Ctx) -> Reply {
    if let Some(reply) = refuse_unsimulated(ctx.query) {
        return reply;
    }
    let (conditions, invalid) = job_filter(state, ctx.query);
    if !invalid.is_empty() {
        let errors = invalid
            .into_iter()
            .map(|(key, message)| (key, json!([message])))
            .collect();
        return Reply::json(400, &Object::of(errors));
    }
    let jobs: Vec<&Job> = state
        .jobs
        .values()
        .filter(|j| conditions.iter().all(|c| c.matches(j)))
        .collect();
    let page = match paginate(&jobs, ctx.query, ctx.absolute_uri) {
        Ok(page) => page,
        Err(reply) => return reply,
    };
    let now = now_seconds();
    let rows: Vec<Value> = page
        .results
        .iter()
        .map(|job| {
            let revision = state
                .pushes
                .get(&job.push_id)
                .map(|p| p.revision.as_str())
                .unwrap_or_default();
            json!([
                NOT_CLASSIFIED,
                job.id,
                job.group_name,
                job.group_symbol,
                job.name,
                job.symbol,
                isoformat(job.last_modified),
                job.platform,
                job.push_id,
                revision,
                job.result.as_str(),
                job.signature,
                job.state.as_str(),
                job.tier,
                job.task_id,
                job.retry_id,
                job.duration_minutes(now),
                PLATFORM_OPTION,
            ])
        })
        .collect();
    Reply::json(
        200,
        &Object::of(vec![
            ("count", json!(page.count)),
            ("next", json!(page.next)),
            ("previous", json!(page.previous)),
            ("results", json!(rows)),
            ("job_property_names", json!(JOB_PROPERTY_NAMES)),
        ]),
    )
}

fn log_object(job: &Job, base: &str) -> Option<Object> {
    let log = job.visible_log()?;
    Some(Object::of(vec![
        ("id", json!(log.id)),
        ("job_id", json!(job.id)),
        ("name", json!("live_backing_log")),
        ("url", json!(log.url(job.id, base))),
        ("parse_status", json!(job.log_parse_status())),
    ]))
}

/// `GET /api/project/<project>/job-log-url/?job_id=N[&job_id=M...]`.
pub(super) fn log_url_list(state: &State, project: &str, ctx: &Ctx) -> Reply {
    let ids = ctx.query.get_list("job_id");
    if ids.is_empty() {
        return Reply::detail(400, "The job_id parameter is mandatory for this endpoint");
    }
    let ids: Option<Vec<i64>> = ids.into_iter().map(py_int).collect();
    let Some(ids) = ids else {
        return Reply::detail(400, "The job_id parameter(s) must be integers");
    };
    let mut logs: Vec<(i64, Object)> = state
        .jobs
        .values()
        .filter(|j| ids.contains(&j.id))
        .filter(|j| {
            state
                .project_by_id(j.repository_id)
                .is_some_and(|r| r.name == project)
        })
        .filter_map(|j| Some((j.visible_log()?.id, log_object(j, ctx.base)?)))
        .collect();
    logs.sort_by_key(|(id, _)| *id);
    let logs: Vec<Object> = logs.into_iter().map(|(_, o)| o).collect();
    Reply::json(200, &logs)
}

/// `GET /api/project/<project>/job-log-url/<id>/`: any project's log by id
/// (`JobLog.objects.get(id=pk)`; a missing one is an unhandled `DoesNotExist`, a 500).
pub(super) fn log_url_retrieve(state: &State, pk: &str, ctx: &Ctx) -> Reply {
    let found = py_int(pk).and_then(|id| {
        state
            .jobs
            .values()
            .find(|j| j.visible_log().is_some_and(|l| l.id == id))
    });
    match found.and_then(|job| log_object(job, ctx.base)) {
        Some(object) => Reply::json(200, &object),
        None => Reply::server_error(),
    }
}
