//! Tests of the Treeherder simulator: the shapes and the paging edges over real HTTP
//! (reqwest against the server on 127.0.0.1), and the helpers that mimic Python.

use serde_json::{Value, json};

use super::control::Simulator;
use super::pagination::{remove_query_param, replace_query_param};
use super::types::{Error, Fault, JobResult, JobSpec, JobState, NewCommit, NewPush};
use super::wire::{QueryParams, number_filter, py_int, quote_plus};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
const ALICE: &str = "alice@example.com";
/// What `thclient` 5.0.0 sends.
const CLIENT_UA: &str = "treeherder-pyclient/5.0.0";
const CLIENT_ACCEPT: &str = "application/json; version=1.0";

struct Answer {
    status: u16,
    content_type: String,
    text: String,
    json: Value,
}

async fn start() -> Simulator {
    Simulator::start().await.expect("the simulator starts")
}

/// A GET as `thclient` sends it.
async fn get(sim: &Simulator, path: &str) -> Answer {
    send(
        sim,
        reqwest::Method::GET,
        path,
        Some(CLIENT_UA),
        Some(CLIENT_ACCEPT),
    )
    .await
}

async fn send(
    sim: &Simulator,
    method: reqwest::Method,
    path: &str,
    user_agent: Option<&str>,
    accept: Option<&str>,
) -> Answer {
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", sim.url()));
    if let Some(agent) = user_agent {
        request = request.header("User-Agent", agent);
    }
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    let response = request.send().await.expect("the simulator answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.expect("a body");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        content_type,
        text,
        json,
    }
}

fn job(n: usize) -> JobSpec {
    JobSpec::new(
        &format!("test-linux1804-64/opt-mochitest-{n}"),
        &format!("M{n}"),
        "linux1804-64",
    )
}

/// A push on "try" with `jobs` pending jobs; its id.
fn push_with_jobs(sim: &Simulator, revision: &str, jobs: usize) -> i64 {
    let push = sim.add_push("try", revision, ALICE).expect("a push");
    for n in 0..jobs {
        sim.add_job(push, job(n)).expect("a job");
    }
    push
}

fn keys(object: &Value) -> Vec<String> {
    object
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// The keys of the first object in `text` after `marker`, in the order written.
fn written_keys(text: &str, marker: &str) -> Vec<String> {
    let start = text.find(marker).expect("marker present") + marker.len();
    let mut depth = 0;
    let mut keys = Vec::new();
    let bytes = text.as_bytes();
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                if depth == 1 {
                    break;
                }
                depth -= 1;
            }
            b'"' => {
                let end = text[i + 1..].find('"').expect("closing quote") + i + 1;
                if depth == 1 && bytes.get(end + 1) == Some(&b':') {
                    keys.push(text[i + 1..end].to_owned());
                }
                i = end;
            }
            _ => {}
        }
        i += 1;
    }
    keys
}

// ----- pushes -----

#[tokio::test]
async fn push_list_by_revision_has_the_real_shape() {
    let sim = start().await;
    let other = sim.add_push("try", &"f".repeat(40), ALICE).unwrap();
    let id = sim
        .add_push_with(
            "try",
            NewPush {
                revision: SHA.to_owned(),
                author: ALICE.to_owned(),
                commits: vec![
                    NewCommit {
                        revision: "a".repeat(40),
                        author: "Alice <alice@example.com>".to_owned(),
                        comments: "Bug 1 - first".to_owned(),
                    },
                    NewCommit {
                        revision: SHA.to_owned(),
                        author: "Alice <alice@example.com>".to_owned(),
                        comments: "Bug 1 - second".to_owned(),
                    },
                ],
            },
        )
        .unwrap();
    assert_eq!((other, id), (1, 2));

    let a = get(&sim, &format!("/api/project/try/push/?revision={SHA}")).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.content_type, CLIENT_ACCEPT,
        "the accepted media type is echoed"
    );
    assert_eq!(
        a.json["meta"],
        json!({
            "revision": SHA,
            "count": 1,
            "repository": "try",
            "filter_params": {"revisions_long_revision": SHA},
        })
    );
    assert_eq!(
        written_keys(&a.text, "\"meta\":"),
        ["revision", "count", "repository", "filter_params"]
    );
    let push = &a.json["results"][0];
    assert_eq!(
        written_keys(&a.text, "\"results\":["),
        [
            "id",
            "revision",
            "author",
            "revisions",
            "revision_count",
            "push_timestamp",
            "repository_id"
        ]
    );
    assert_eq!(push["id"], id);
    assert_eq!(push["revision"], SHA);
    assert_eq!(push["author"], ALICE);
    assert_eq!(push["revision_count"], 2);
    assert_eq!(push["repository_id"], 1);
    assert!(push["push_timestamp"].as_i64().unwrap() > 1_600_000_000);
    assert_eq!(
        push["revisions"],
        json!([
            {"result_set_id": id, "repository_id": 1, "revision": SHA,
             "author": "Alice <alice@example.com>", "comments": "Bug 1 - second"},
            {"result_set_id": id, "repository_id": 1, "revision": "a".repeat(40),
             "author": "Alice <alice@example.com>", "comments": "Bug 1 - first"},
        ]),
        "newest commit first"
    );

    // A short revision is a prefix; its filter key says so.
    let a = get(&sim, "/api/project/try/push/?revision=0123456").await;
    assert_eq!(a.json["results"][0]["id"], id);
    assert_eq!(
        a.json["meta"]["filter_params"],
        json!({"revisions_short_revision": "0123456"})
    );

    // No match: empty results, count 0.
    let a = get(
        &sim,
        &format!("/api/project/try/push/?revision={}", "e".repeat(40)),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json["results"], json!([]));
    assert_eq!(a.json["meta"]["count"], 0);

    // The detail view.
    let a = get(&sim, &format!("/api/project/try/push/{id}/")).await;
    assert_eq!(a.json["revision"], SHA);
    let a = get(&sim, "/api/project/try/push/99/").await;
    assert_eq!(
        (a.status, a.json.clone()),
        (404, json!("No push with id: 99"))
    );
}

#[tokio::test]
async fn push_list_is_newest_first_ten_by_default_and_checks_count() {
    let sim = start().await;
    for n in 0..12 {
        sim.add_push("try", &format!("{n:040x}"), ALICE).unwrap();
    }
    let a = get(&sim, "/api/project/try/push/").await;
    let ids: Vec<i64> = a.json["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (3..=12).rev().collect::<Vec<i64>>());
    assert_eq!(
        a.json["meta"],
        json!({"count": 10, "repository": "try", "filter_params": {}})
    );

    let a = get(
        &sim,
        "/api/project/try/push/?count=2&author=ALICE@example.com",
    )
    .await;
    assert_eq!(
        a.json["results"].as_array().unwrap().len(),
        2,
        "author is case-insensitive"
    );
    assert_eq!(
        a.json["meta"]["filter_params"],
        json!({"count": "2", "author": "ALICE@example.com"})
    );
    let a = get(&sim, "/api/project/try/push/?id__in=2,5").await;
    assert_eq!(a.json["meta"]["count"], 2);

    for (query, detail) in [
        ("count=0", "count requires a positive integer, not: 0"),
        ("count=1001", "Specified count exceeds api limit: 1000"),
        ("count=ten", "Valid count value required"),
        ("id__lt=x", "Invalid timestamp specified for id__lt"),
        ("id__in=1,x", "Invalid id__in specification"),
    ] {
        let a = get(&sim, &format!("/api/project/try/push/?{query}")).await;
        assert_eq!(
            (a.status, a.json.clone()),
            (400, json!({"detail": detail})),
            "{query}"
        );
    }
    // revision__in is no parameter of the real view: ignored.
    let a = get(&sim, &format!("/api/project/try/push/?revision__in={SHA}")).await;
    assert_eq!(a.json["meta"]["count"], 10);
}

#[tokio::test]
async fn unknown_projects_are_404_as_in_treeherder() {
    let sim = start().await;
    sim.add_project("known").unwrap();
    let a = get(&sim, "/api/project/unknown/push/").await;
    assert_eq!(
        (a.status, a.json.clone()),
        (404, json!({"detail": "No project with name unknown"}))
    );
    let a = get(&sim, "/api/project/unknown/jobs/?push_id=1").await;
    assert_eq!(
        (a.status, a.json.clone()),
        (404, json!({"detail": "No project with name unknown"}))
    );
    // The count check comes before the project lookup.
    let a = get(&sim, "/api/project/unknown/jobs/?count=5000").await;
    assert_eq!(
        (a.status, a.json.clone()),
        (
            400,
            json!({"detail": "Specified count exceeds API MAX_JOBS_COUNT value: 2000"})
        )
    );
    // job-log-url filters by project name and has no 404 of its own.
    let a = get(&sim, "/api/project/unknown/job-log-url/?job_id=1").await;
    assert_eq!((a.status, a.json.clone()), (200, json!([])));
    // A known project with nothing in it.
    let a = get(&sim, "/api/project/known/push/").await;
    assert_eq!((a.status, a.json["results"].clone()), (200, json!([])));
    // A name the URL pattern does not accept never reaches a view.
    let a = get(&sim, "/api/project/no.dots/push/").await;
    assert_eq!(a.status, 404);
    assert!(a.text.contains("<h1>Not Found</h1>"));
    assert!(matches!(
        sim.add_project("no.dots"),
        Err(Error::ProjectName(_))
    ));
}

// ----- the project-bound job list (thclient's get_jobs) -----

#[tokio::test]
async fn project_jobs_have_the_real_fields() {
    let sim = start().await;
    let push = sim.add_push("try", SHA, ALICE).unwrap();
    let id = sim
        .add_job(
            push,
            JobSpec {
                group_name: "Mochitests".to_owned(),
                group_symbol: "M".to_owned(),
                ..job(1)
            },
        )
        .unwrap();
    let a = get(&sim, &format!("/api/project/try/jobs/?push_id={push}")).await;
    assert_eq!(a.status, 200);
    assert_eq!(keys(&a.json), ["meta", "results"]);
    assert_eq!(written_keys(&a.text, ""), ["results", "meta"]);
    assert_eq!(
        a.json["meta"],
        json!({"repository": "try", "offset": 0, "count": 10})
    );
    let fields = written_keys(&a.text, "\"results\":[");
    assert_eq!(fields.len(), 37);
    assert_eq!(
        &fields[..3],
        ["build_architecture", "build_os", "build_platform"]
    );
    assert_eq!(
        &fields[33..],
        ["who", "task_id", "retry_id", "platform_option"]
    );
    let j = &a.json["results"][0];
    assert_eq!(j["id"], id);
    assert_eq!(j["push_id"], push);
    assert_eq!(j["result_set_id"], push);
    assert_eq!(j["job_type_name"], "test-linux1804-64/opt-mochitest-1");
    assert_eq!(j["job_type_symbol"], "M1");
    assert_eq!(j["job_group_name"], "Mochitests");
    assert_eq!(j["job_group_symbol"], "M");
    assert_eq!(j["platform"], "linux1804-64");
    assert_eq!(j["state"], "pending");
    assert_eq!(j["result"], "unknown");
    assert_eq!(j["start_timestamp"], 0);
    assert_eq!(j["end_timestamp"], 0);
    assert_eq!(j["tier"], 1);
    assert_eq!(j["who"], ALICE);
    assert_eq!(j["build_system_type"], "taskcluster");
    assert_eq!(j["platform_option"], "opt");
    assert_eq!(j["retry_id"], 0);
    let task_id = j["task_id"].as_str().unwrap();
    assert_eq!(task_id.len(), 22);
    let guid = j["job_guid"].as_str().unwrap();
    assert!(guid.ends_with("/0") && guid.len() == 38, "{guid}");
    assert_eq!(j["signature"], j["ref_data_name"]);
    let last_modified = j["last_modified"].as_str().unwrap();
    assert!(
        last_modified.len() >= 19 && !last_modified.ends_with('Z'),
        "naive isoformat: {last_modified}"
    );

    sim.update_job(id, JobState::Running, JobResult::Unknown)
        .unwrap();
    let a = get(&sim, &format!("/api/project/try/jobs/?push_id={push}")).await;
    let j = &a.json["results"][0];
    assert_eq!(j["state"], "running");
    assert!(j["start_timestamp"].as_i64().unwrap() > 0);
    assert_eq!(j["end_timestamp"], 0);

    sim.update_job(id, JobState::Completed, JobResult::Testfailed)
        .unwrap();
    let a = get(&sim, &format!("/api/project/try/jobs/?push_id={push}")).await;
    let j = &a.json["results"][0];
    assert_eq!(
        (j["state"].clone(), j["result"].clone()),
        (json!("completed"), json!("testfailed"))
    );
    assert!(j["end_timestamp"].as_i64().unwrap() >= j["start_timestamp"].as_i64().unwrap());

    // return_type=list: lists and the names of their values.
    let a = get(
        &sim,
        &format!("/api/project/try/jobs/?push_id={push}&return_type=list"),
    )
    .await;
    assert_eq!(
        written_keys(&a.text, ""),
        ["results", "job_property_names", "meta"]
    );
    let names = a.json["job_property_names"].as_array().unwrap();
    let row = a.json["results"][0].as_array().unwrap();
    assert_eq!(names.len(), row.len());
    let state = names.iter().position(|n| n == "state").unwrap();
    assert_eq!(row[state], "completed");

    // The detail view, and errors.
    let a = get(&sim, &format!("/api/project/try/jobs/{id}/")).await;
    assert_eq!(
        a.json["resource_uri"],
        format!("/api/project/try/jobs/{id}/")
    );
    assert_eq!(a.json["taskcluster_metadata"]["task_id"], task_id);
    assert_eq!(
        written_keys(&a.text, "\"taskcluster_metadata\":"),
        ["task_id", "retry_id"]
    );
    assert_eq!(a.json["logs"], json!([]));
    let a = get(&sim, "/api/project/try/jobs/999/").await;
    assert_eq!(
        (a.status, a.json.clone()),
        (404, json!("No job with id: 999"))
    );
    assert!(matches!(sim.add_job(99, job(1)), Err(Error::NoPush(99))));
    assert!(matches!(
        sim.update_job(99, JobState::Running, JobResult::Unknown),
        Err(Error::NoJob(99))
    ));
}

#[tokio::test]
async fn project_jobs_page_with_offset_and_count() {
    let sim = start().await;
    let empty = push_with_jobs(&sim, &"0".repeat(40), 0);
    let three = push_with_jobs(&sim, &"3".repeat(40), 3);
    let four = push_with_jobs(&sim, &"4".repeat(40), 4);
    let ids = |a: &Answer| -> Vec<i64> {
        a.json["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_i64().unwrap())
            .collect()
    };

    // An empty push.
    let a = get(
        &sim,
        &format!("/api/project/try/jobs/?push_id={empty}&count=3&offset=0"),
    )
    .await;
    assert_eq!((a.status, ids(&a)), (200, vec![]));
    // Exactly a page: the next offset is empty (where thclient stops).
    let a = get(
        &sim,
        &format!("/api/project/try/jobs/?push_id={three}&count=3&offset=0"),
    )
    .await;
    assert_eq!(ids(&a), [1, 2, 3]);
    let a = get(
        &sim,
        &format!("/api/project/try/jobs/?push_id={three}&count=3&offset=3"),
    )
    .await;
    assert_eq!(ids(&a), Vec::<i64>::new());
    assert_eq!(
        a.json["meta"],
        json!({"repository": "try", "offset": 3, "count": 3})
    );
    // A page and one.
    let a = get(
        &sim,
        &format!("/api/project/try/jobs/?push_id={four}&count=3&offset=0"),
    )
    .await;
    assert_eq!(ids(&a), [4, 5, 6]);
    let a = get(
        &sim,
        &format!("/api/project/try/jobs/?push_id={four}&count=3&offset=3"),
    )
    .await;
    assert_eq!(ids(&a), [7]);
    // Without push_id: the whole project, 10 by default.
    let a = get(&sim, "/api/project/try/jobs/").await;
    assert_eq!(ids(&a), (1..=7).collect::<Vec<i64>>());
    // A push_id that is no push's is skipped by JobFilter(...).qs: the whole project.
    let a = get(&sim, "/api/project/try/jobs/?push_id=abc&count=2").await;
    assert_eq!(ids(&a), [1, 2]);
    let a = get(&sim, "/api/project/try/jobs/?push_id=99&count=2").await;
    assert_eq!(ids(&a), [1, 2]);

    // Text filters of JobFilter; those not simulated say so.
    let a = get(
        &sim,
        "/api/project/try/jobs/?job_type_symbol=M1&state=pending",
    )
    .await;
    assert_eq!(ids(&a), [2, 5]);
    let a = get(&sim, "/api/project/try/jobs/?tier__lt=3").await;
    assert_eq!(a.status, 501);

    let a = get(&sim, "/api/project/try/jobs/?count=2001").await;
    assert_eq!(a.status, 400);
    let a = get(&sim, "/api/project/try/jobs/?offset=x").await;
    assert_eq!(
        (a.status, a.json.clone()),
        (400, json!("Invalid value for offset or count"))
    );
    let a = get(&sim, "/api/project/try/jobs/?offset=-1").await;
    assert_eq!(a.status, 500);
}

// ----- /api/jobs/ (JobPagination) -----

#[tokio::test]
async fn api_jobs_pages_as_job_pagination() {
    let sim = start().await;
    let empty = push_with_jobs(&sim, &"0".repeat(40), 0);
    let a = get(&sim, &format!("/api/jobs/?push_id={empty}")).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        written_keys(&a.text, ""),
        ["count", "next", "previous", "results", "job_property_names"]
    );
    assert_eq!(a.json["count"], 0);
    assert_eq!(a.json["next"], Value::Null);
    assert_eq!(a.json["previous"], Value::Null);
    assert_eq!(a.json["results"], json!([]));
    assert_eq!(a.json["job_property_names"].as_array().unwrap().len(), 18);
    let a = get(&sim, &format!("/api/jobs/?push_id={empty}&page=2")).await;
    assert_eq!(
        (a.status, a.json.clone()),
        (404, json!({"detail": "Invalid page."}))
    );

    // Exactly a (default, 2000-job) page: no next.
    let push = push_with_jobs(&sim, SHA, 2000);
    let a = get(&sim, &format!("/api/jobs/?push_id={push}")).await;
    assert_eq!(a.json["count"], 2000);
    assert_eq!(a.json["results"].as_array().unwrap().len(), 2000);
    assert_eq!(a.json["next"], Value::Null);

    // A page and one.
    sim.add_job(push, job(2000)).unwrap();
    let a = get(&sim, &format!("/api/jobs/?push_id={push}")).await;
    assert_eq!(a.json["count"], 2001);
    let next = format!("{}/api/jobs/?page=2&push_id={push}", sim.url());
    assert_eq!(a.json["next"], next);
    let a = get(&sim, &format!("/api/jobs/?push_id={push}&page=2")).await;
    assert_eq!(a.json["results"].as_array().unwrap().len(), 1);
    assert_eq!(a.json["next"], Value::Null);
    assert_eq!(
        a.json["previous"],
        format!("{}/api/jobs/?push_id={push}", sim.url()),
        "page 1 is the URL without page"
    );

    // count is the page size (capped at 2000); the links keep it, sorted and re-encoded.
    let a = get(
        &sim,
        &format!("/api/jobs/?push_id={push}&count=1000&page=2"),
    )
    .await;
    assert_eq!(
        a.json["next"],
        format!("{}/api/jobs/?count=1000&page=3&push_id={push}", sim.url())
    );
    assert_eq!(
        a.json["previous"],
        format!("{}/api/jobs/?count=1000&push_id={push}", sim.url())
    );
    let a = get(
        &sim,
        &format!("/api/jobs/?push_id={push}&count=1000&page=last"),
    )
    .await;
    assert_eq!(a.json["results"].as_array().unwrap().len(), 1);
    let a = get(&sim, &format!("/api/jobs/?push_id={push}&count=0")).await;
    assert_eq!(
        a.json["results"].as_array().unwrap().len(),
        2000,
        "0 is no page size"
    );

    // Rows follow job_property_names.
    let a = get(&sim, &format!("/api/jobs/?push_id={push}&count=1")).await;
    let names = a.json["job_property_names"].as_array().unwrap();
    let row = a.json["results"][0].as_array().unwrap();
    let value = |name: &str| row[names.iter().position(|n| n == name).unwrap()].clone();
    assert_eq!(value("id"), 1);
    assert_eq!(value("push_id"), push);
    assert_eq!(value("push_revision"), SHA);
    assert_eq!(value("state"), "pending");
    assert_eq!(value("duration"), 1);

    for push_id in ["abc", "99"] {
        let a = get(&sim, &format!("/api/jobs/?push_id={push_id}")).await;
        assert_eq!(
            (a.status, a.json.clone()),
            (
                400,
                json!({"push_id": [
                    "Select a valid choice. That choice is not one of the available choices."
                ]})
            )
        );
    }
    let a = get(&sim, "/api/jobs/?id=x").await;
    assert_eq!(
        (a.status, a.json.clone()),
        (400, json!({"id": ["Enter a number."]}))
    );
}

// ----- logs -----

#[tokio::test]
async fn job_log_urls_appear_when_jobs_complete() {
    let sim = start().await;
    let push = sim.add_push("try", SHA, ALICE).unwrap();
    let external = sim
        .add_job(
            push,
            JobSpec {
                log_url: Some("https://logs.example.com/1/live_backing.log".to_owned()),
                ..job(1)
            },
        )
        .unwrap();
    let hosted = sim
        .add_job(
            push,
            JobSpec {
                state: JobState::Completed,
                result: JobResult::Success,
                log_text: Some("TEST-PASS | all good\n".to_owned()),
                ..job(2)
            },
        )
        .unwrap();

    let a = get(
        &sim,
        &format!("/api/project/try/job-log-url/?job_id={external}"),
    )
    .await;
    assert_eq!(
        (a.status, a.json.clone()),
        (200, json!([])),
        "not yet completed"
    );
    sim.update_job(external, JobState::Completed, JobResult::Busted)
        .unwrap();
    let a = get(
        &sim,
        &format!("/api/project/try/job-log-url/?job_id={external}"),
    )
    .await;
    assert_eq!(
        a.json,
        json!([{
            "id": 1,
            "job_id": external,
            "name": "live_backing_log",
            "url": "https://logs.example.com/1/live_backing.log",
            "parse_status": "parsed",
        }])
    );
    assert_eq!(
        written_keys(&a.text, "["),
        ["id", "job_id", "name", "url", "parse_status"]
    );

    let hosted_url = format!("{}/simulator/log/{hosted}/live_backing.log", sim.url());
    assert_eq!(sim.log_url(hosted).as_deref(), Some(hosted_url.as_str()));
    let a = get(
        &sim,
        &format!("/api/project/try/job-log-url/?job_id={hosted}&job_id={external}"),
    )
    .await;
    assert_eq!(a.json.as_array().unwrap().len(), 2);
    assert_eq!(a.json[1]["url"], hosted_url);
    let log = reqwest::get(&hosted_url).await.unwrap();
    assert_eq!(log.status().as_u16(), 200);
    assert_eq!(log.text().await.unwrap(), "TEST-PASS | all good\n");

    let a = get(&sim, &format!("/api/project/try/jobs/{hosted}/")).await;
    assert_eq!(
        a.json["logs"],
        json!([{"name": "live_backing_log", "url": hosted_url}])
    );
    let a = get(&sim, "/api/project/try/job-log-url/1/").await;
    assert_eq!(a.json["job_id"], external);

    let a = get(&sim, "/api/project/try/job-log-url/").await;
    assert_eq!(
        (a.status, a.json.clone()),
        (
            400,
            json!({"detail": "The job_id parameter is mandatory for this endpoint"})
        )
    );
    let a = get(&sim, "/api/project/try/job-log-url/?job_id=x").await;
    assert_eq!(
        a.json,
        json!({"detail": "The job_id parameter(s) must be integers"})
    );
}

// ----- what every request goes through -----

#[tokio::test]
async fn default_scripting_user_agents_are_refused() {
    let sim = start().await;
    sim.add_project("try").unwrap();
    let path = "/api/project/try/push/";
    for agent in [
        "python-requests/2.31.0",
        "Python-urllib/3.11",
        "libcurl/8.5.0",
        "Go-http-client/1.1",
        "Go 1.1 package http",
    ] {
        let a = send(&sim, reqwest::Method::GET, path, Some(agent), None).await;
        assert_eq!(a.status, 403, "{agent}");
        assert_eq!(a.content_type, "text/html; charset=utf-8");
        assert!(a.text.contains("<h1>403 Forbidden</h1>"), "{}", a.text);
    }
    for agent in [
        Some("curl/8.5.0"),
        Some(CLIENT_UA),
        Some("autoland/0.1"),
        None,
    ] {
        let a = send(&sim, reqwest::Method::GET, path, agent, None).await;
        assert_eq!(a.status, 200, "{agent:?}");
        assert_eq!(a.content_type, "application/json");
    }
    let log = sim.requests();
    assert_eq!(log.len(), 9);
    assert_eq!(log[0].user_agent.as_deref(), Some("python-requests/2.31.0"));
    assert_eq!(log[0].status, 403);
    assert_eq!(log[8].user_agent, None);
    assert_eq!(sim.request_count(path), 9);
    sim.clear_requests();
    assert!(sim.requests().is_empty());
}

#[tokio::test]
async fn accept_versions_slashes_and_methods() {
    let sim = start().await;
    sim.add_project("try").unwrap();
    let path = "/api/project/try/push/";
    let a = send(
        &sim,
        reqwest::Method::GET,
        path,
        None,
        Some("application/json; version=2.0"),
    )
    .await;
    assert_eq!(
        (a.status, a.json.clone()),
        (
            406,
            json!({"detail": "Invalid version in \"Accept\" header."})
        )
    );
    let a = send(&sim, reqwest::Method::GET, path, None, Some("text/html")).await;
    assert_eq!(
        (a.status, a.json.clone()),
        (
            406,
            json!({"detail": "Could not satisfy the request Accept header."})
        )
    );
    let a = send(
        &sim,
        reqwest::Method::GET,
        path,
        None,
        Some("text/html, */*;q=0.8"),
    )
    .await;
    assert_eq!(
        (a.status, a.content_type.as_str()),
        (200, "application/json;q=0.8")
    );

    let a = get(&sim, "/api/project/try/push").await;
    assert_eq!(a.status, 404, "APPEND_SLASH = False");
    assert!(
        a.text
            .contains("The requested resource was not found on this server.")
    );

    let a = send(&sim, reqwest::Method::POST, path, Some(CLIENT_UA), None).await;
    assert_eq!(
        (a.status, a.json.clone()),
        (
            403,
            json!({"detail": "Authentication credentials were not provided."})
        )
    );
    let a = get(&sim, "/api/repository/").await;
    assert_eq!(a.status, 501);
    assert!(a.text.contains("does not simulate"));
}

#[tokio::test]
async fn faults_fail_then_clear() {
    let sim = start().await;
    sim.add_project("try").unwrap();
    sim.set_fault(Fault::ServerError {
        status: 503,
        remaining: Some(1),
    });
    let a = get(&sim, "/api/project/try/push/").await;
    assert_eq!(a.status, 503);
    assert_eq!(sim.fault(), Fault::None);
    let a = get(&sim, "/api/project/try/push/").await;
    assert_eq!(a.status, 200);
    assert_eq!(
        sim.requests().iter().map(|r| r.status).collect::<Vec<_>>(),
        [503, 200]
    );
}

// ----- Python's helpers -----

#[test]
fn python_int_and_numbers() {
    assert_eq!(py_int(" 42 "), Some(42));
    assert_eq!(py_int("+7"), Some(7));
    assert_eq!(py_int("-3"), Some(-3));
    assert_eq!(py_int("1_000"), Some(1000));
    assert_eq!(py_int("1__0"), None);
    assert_eq!(py_int(""), None);
    assert_eq!(py_int("1.0"), None);
    assert_eq!(py_int("99999999999999999999999"), Some(i64::MAX));
    assert_eq!(number_filter(""), Ok(None));
    assert_eq!(number_filter("5"), Ok(Some(Some(5))));
    assert_eq!(number_filter("5.0"), Ok(Some(Some(5))));
    assert_eq!(number_filter("5.5"), Ok(Some(None)));
    assert_eq!(number_filter("abc"), Err(()));
    assert_eq!(number_filter("inf"), Err(()));
}

#[test]
fn query_strings_as_django_and_drf_handle_them() {
    let q = QueryParams::parse("a=1&b=x+y&a=2&flag&c=%E2%9C%93");
    assert_eq!(q.get("a"), Some("2"));
    assert_eq!(q.get_list("a"), ["1", "2"]);
    assert_eq!(q.get("b"), Some("x y"));
    assert_eq!(q.get("flag"), Some(""));
    assert_eq!(q.get("c"), Some("✓"));
    assert_eq!(
        q.items(),
        [
            ("a".to_owned(), "2".to_owned()),
            ("b".to_owned(), "x y".to_owned()),
            ("flag".to_owned(), String::new()),
            ("c".to_owned(), "✓".to_owned()),
        ]
    );
    assert_eq!(quote_plus("a b/~*"), "a+b%2F~%2A");
    assert_eq!(
        replace_query_param("http://h/api/jobs/?push_id=1&count=5&a=x+y", "page", "2"),
        "http://h/api/jobs/?a=x+y&count=5&page=2&push_id=1"
    );
    assert_eq!(
        remove_query_param("http://h/api/jobs/?page=2&push_id=1", "page"),
        "http://h/api/jobs/?push_id=1"
    );
    assert_eq!(
        remove_query_param("http://h/api/jobs/?page=2", "page"),
        "http://h/api/jobs/"
    );
}
