//! `PushViewSet` (`treeherder/webapp/api/push.py`): `GET /api/project/<project>/push/`
//! and `GET /api/project/<project>/push/<id>/`, with `PushSerializer` and
//! `CommitSerializer` (`serializers.py`) for the push objects.

use serde::Serialize;

use super::state::{Push, State};
use super::wire::{OrderedMap, QueryParams, Reply, py_int};

/// `max_push_count` of `PushViewSet.list`.
const MAX_PUSH_COUNT: i64 = 1000;

/// The parameters `list` moves from `filter_params` to `meta`, in its order.
const META_PARAMS: [&str; 6] = [
    "fromchange",
    "tochange",
    "startdate",
    "enddate",
    "revision",
    "commit_revision",
];

/// `CommitSerializer`.
#[derive(Serialize)]
struct CommitOut<'a> {
    result_set_id: i64,
    repository_id: i64,
    revision: &'a str,
    author: &'a str,
    comments: &'a str,
}

/// `PushSerializer`: the fields in its `Meta.fields` order.
#[derive(Serialize)]
struct PushOut<'a> {
    id: i64,
    revision: &'a str,
    author: &'a str,
    /// The newest 20 commits, newest first (`commits.order_by('-id')[:20]`).
    revisions: Vec<CommitOut<'a>>,
    revision_count: usize,
    push_timestamp: i64,
    repository_id: i64,
}

fn push_out(push: &Push) -> PushOut<'_> {
    PushOut {
        id: push.id,
        revision: &push.revision,
        author: &push.author,
        revisions: push
            .commits
            .iter()
            .rev()
            .take(20)
            .map(|c| CommitOut {
                result_set_id: push.id,
                repository_id: push.repository_id,
                revision: &c.revision,
                author: &c.author,
                comments: &c.comments,
            })
            .collect(),
        revision_count: push.commits.len(),
        push_timestamp: push.time,
        repository_id: push.repository_id,
    }
}

/// The `meta` of the list: the moved parameters, then `count`, `repository` and what is
/// left of the query (`filter_params`, a `QueryDict`, so each key shows its last value).
struct Meta {
    moved: Vec<(&'static str, String)>,
    count: usize,
    repository: String,
    filter_params: OrderedMap,
}

impl Serialize for Meta {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.moved.len() + 3))?;
        for (k, v) in &self.moved {
            map.serialize_entry(k, v)?;
        }
        map.serialize_entry("count", &self.count)?;
        map.serialize_entry("repository", &self.repository)?;
        map.serialize_entry("filter_params", &self.filter_params)?;
        map.end()
    }
}

#[derive(Serialize)]
struct ListOut<'a> {
    meta: Meta,
    results: Vec<PushOut<'a>>,
}

/// `MultiValueDict.update` with one new value: appended to the key's list (so it becomes
/// the value shown) or a new key at the end.
fn update(filter: &mut Vec<(String, String)>, key: &str, value: String) {
    match filter.iter_mut().find(|(k, _)| k == key) {
        Some(entry) => entry.1 = value,
        None => filter.push((key.to_owned(), value)),
    }
}

fn get<'f>(filter: &'f [(String, String)], key: &str) -> Option<&'f str> {
    filter
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// `GET /api/project/<project>/push/`.
pub(super) fn list(state: &State, project: &str, query: &QueryParams) -> Reply {
    let mut filter = query.items();
    let mut moved = Vec::new();
    for param in META_PARAMS {
        if let Some(value) = query.get(param).filter(|v| !v.is_empty()) {
            filter.retain(|(k, _)| k != param);
            moved.push((param, value.to_owned()));
        }
    }
    if query.get("all_repos").is_some_and(|v| !v.is_empty()) {
        return Reply::not_simulated("the all_repos parameter of the push list");
    }
    let Some(repository) = state.project(project) else {
        return Reply::detail(404, &format!("No project with name {project}"));
    };
    if get(&filter, "search").is_some() {
        return Reply::not_simulated("the search parameter of the push list");
    }
    let mut pushes: Vec<&Push> = state
        .pushes
        .values()
        .filter(|p| p.repository_id == repository.id)
        .collect();
    for (param, value) in &moved {
        match *param {
            "revision" => {
                // "revision must be the tip revision of the push itself"
                if value.chars().count() < 40 {
                    pushes.retain(|p| p.revision.starts_with(value.as_str()));
                } else {
                    pushes.retain(|p| p.revision == *value);
                }
                let key = if value.chars().count() == 40 {
                    "revisions_long_revision"
                } else {
                    "revisions_short_revision"
                };
                update(&mut filter, key, value.clone());
            }
            other => {
                return Reply::not_simulated(&format!("the {other} parameter of the push list"));
            }
        }
    }
    for param in [
        "push_timestamp__lt",
        "push_timestamp__lte",
        "push_timestamp__gt",
        "push_timestamp__gte",
    ] {
        let Some(text) = get(&filter, param) else {
            continue;
        };
        let Ok(bound) = text.trim().parse::<f64>() else {
            return Reply::detail(400, &format!("Invalid timestamp specified for {param}"));
        };
        if !bound.is_finite() {
            // datetime.fromtimestamp(inf) raises OverflowError.
            return Reply::server_error();
        }
        pushes.retain(|p| {
            let time = p.time as f64;
            match param {
                "push_timestamp__lt" => time < bound,
                "push_timestamp__lte" => time <= bound,
                "push_timestamp__gt" => time > bound,
                _ => time >= bound,
            }
        });
    }
    for param in ["id__lt", "id__lte", "id__gt", "id__gte", "id"] {
        let value = match filter.iter().find(|(k, _)| k == param) {
            None => 0,
            Some((_, text)) => match py_int(text) {
                Some(n) => n,
                None => {
                    return Reply::detail(400, &format!("Invalid timestamp specified for {param}"));
                }
            },
        };
        if value != 0 {
            pushes.retain(|p| match param {
                "id__lt" => p.id < value,
                "id__lte" => p.id <= value,
                "id__gt" => p.id > value,
                "id__gte" => p.id >= value,
                _ => p.id == value,
            });
        }
    }
    if let Some(id_in) = get(&filter, "id__in") {
        let ids: Option<Vec<i64>> = id_in.split(',').map(py_int).collect();
        let Some(ids) = ids else {
            return Reply::detail(400, "Invalid id__in specification");
        };
        pushes.retain(|p| ids.contains(&p.id));
    }
    if let Some(author) = get(&filter, "author") {
        match author.strip_prefix('-') {
            Some(excluded) => {
                let excluded = excluded.to_lowercase();
                pushes.retain(|p| p.author.to_lowercase() != excluded);
            }
            None => {
                let author = author.to_lowercase();
                pushes.retain(|p| p.author.to_lowercase() == author);
            }
        }
    }
    if let Some(part) = get(&filter, "author_contains") {
        let part = part.to_lowercase();
        pushes.retain(|p| p.author.to_lowercase().contains(&part));
    }
    if filter
        .iter()
        .rev()
        .find(|(k, _)| k == "hide_reviewbot_pushes")
        .is_some_and(|(_, v)| v == "true")
    {
        pushes.retain(|p| p.author != "reviewbot");
    }
    let count = match filter.iter().find(|(k, _)| k == "count") {
        None => 10,
        Some((_, text)) => match py_int(text) {
            Some(n) => n,
            None => return Reply::detail(400, "Valid count value required"),
        },
    };
    if count > MAX_PUSH_COUNT {
        return Reply::detail(
            400,
            &format!("Specified count exceeds api limit: {MAX_PUSH_COUNT}"),
        );
    }
    if count < 1 {
        return Reply::detail(
            400,
            &format!("count requires a positive integer, not: {count}"),
        );
    }
    // order_by("-time"), then the first `count`.
    pushes.sort_by(|a, b| b.time.cmp(&a.time).then(b.id.cmp(&a.id)));
    pushes.truncate(count as usize);
    let results: Vec<PushOut> = pushes.into_iter().map(push_out).collect();
    Reply::json(
        200,
        &ListOut {
            meta: Meta {
                moved,
                count: results.len(),
                repository: project.to_owned(),
                filter_params: OrderedMap(filter),
            },
            results,
        },
    )
}

/// `GET /api/project/<project>/push/<id>/`.
pub(super) fn retrieve(state: &State, project: &str, pk: &str) -> Reply {
    let Some(id) = py_int(pk) else {
        // Push.objects.get(id="abc") raises ValueError: a 500.
        return Reply::server_error();
    };
    let push = state.pushes.get(&id).filter(|p| {
        state
            .project_by_id(p.repository_id)
            .is_some_and(|r| r.name == project)
    });
    match push {
        Some(push) => Reply::json(200, &push_out(push)),
        None => Reply::json_string(404, &format!("No push with id: {pk}")),
    }
}
