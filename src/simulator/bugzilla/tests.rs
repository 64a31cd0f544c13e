//! HTTP-level tests of the Bugzilla simulator: a real server on 127.0.0.1 and reqwest.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use super::*;

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com"; // an insider
const CAROL: &str = "carol@example.com";

struct Env {
    sim: Simulator,
    base: String,
    http: reqwest::Client,
}

async fn env(flavor: Flavor) -> Env {
    let sim = Simulator::new(flavor);
    sim.add_user(ALICE, "Alice", false);
    sim.add_user(BOB, "Bob Insider", true);
    sim.add_user(CAROL, "Carol", false);
    sim.add_api_key("alice-key", ALICE);
    sim.add_api_key("bob-key", BOB);
    sim.add_api_key("carol-key", CAROL);
    let base = sim.start().await.expect("the simulator starts");
    Env {
        sim,
        base,
        http: reqwest::Client::new(),
    }
}

fn bug(summary: &str, whiteboard: &str) -> NewBug {
    NewBug {
        summary: summary.to_owned(),
        whiteboard: whiteboard.to_owned(),
        creator: ALICE.to_owned(),
        private: false,
    }
}

fn patch(creator: &str) -> NewAttachment {
    NewAttachment {
        file_name: "fix.patch".to_owned(),
        summary: "Fix the crash".to_owned(),
        content_type: "text/x-patch".to_owned(),
        data: b"diff --git a/x b/x\n".to_vec(),
        is_patch: true,
        creator: creator.to_owned(),
        flags: vec![NewFlag {
            name: "review".to_owned(),
            status: "+".to_owned(),
            setter: BOB.to_owned(),
            requestee: Some(BOB.to_owned()),
        }],
        ..NewAttachment::default()
    }
}

impl Env {
    /// Sends a request; the body is parsed as JSON, or kept as a string when it is not JSON.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        header_key: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(key) = header_key {
            request = request.header("X-BUGZILLA-API-KEY", key);
        }
        let response = request.send().await.expect("the request is answered");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(Method::GET, path, None, None).await
    }

    async fn search_ids(&self, query: &str) -> Vec<i64> {
        let (status, body) = self.get(&format!("/rest/bug?{query}")).await;
        assert_eq!(status, 200, "{query}: {body}");
        body["bugs"]
            .as_array()
            .expect("a bug list")
            .iter()
            .map(|b| b["id"].as_i64().expect("an id"))
            .collect()
    }

    fn last_log(&self) -> LoggedRequest {
        self.sim.request_log().pop().expect("a logged request")
    }
}

fn code_number(error: &Value) -> i64 {
    match &error["code"] {
        Value::Number(n) => n.as_i64().unwrap_or_default(),
        Value::String(s) => s.parse().unwrap_or_default(),
        _ => 0,
    }
}

fn assert_error(status: u16, body: &Value, want_status: u16, want_code: i64) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"], json!(true), "{body}");
    assert_eq!(code_number(body), want_code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(body["documentation"].is_string());
}

#[tokio::test]
async fn version_and_whoami_per_flavor() {
    let old = env(Flavor::V52).await;
    assert_eq!(
        old.get("/rest/version").await,
        (200, json!({"version": "5.2"}))
    );
    let (status, body) = old.get("/rest/whoami?api_key=alice-key").await;
    assert_error(status, &body, 404, 32614);
    assert_eq!(
        body["message"],
        json!("A REST API resource was not found for 'GET /whoami'.")
    );

    let new = env(Flavor::V53).await;
    assert_eq!(
        new.get("/rest/version").await,
        (200, json!({"version": "5.3.3"}))
    );
    let (status, body) = new
        .send(Method::GET, "/rest/whoami", None, Some("bob-key"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["name"], json!(BOB));
    assert_eq!(body["login"], json!(BOB));
    assert_eq!(body["real_name"], json!("Bob Insider"));
    assert!(body["id"].is_i64());
    let (status, body) = new.get("/rest/whoami").await;
    assert_error(status, &body, 401, 410);
}

#[tokio::test]
async fn the_header_is_ignored_on_52_and_accepted_on_53() {
    for flavor in [Flavor::V52, Flavor::V53] {
        let env = env(flavor).await;
        let id = env.sim.create_bug(bug("Crash", ""));
        // Reading a public bug works either way.
        let (status, _) = env
            .send(
                Method::GET,
                &format!("/rest/bug/{id}"),
                None,
                Some("alice-key"),
            )
            .await;
        assert_eq!(status, 200);

        let (status, body) = env
            .send(
                Method::PUT,
                &format!("/rest/bug/{id}"),
                Some(json!({"whiteboard": "[autoland]"})),
                Some("alice-key"),
            )
            .await;
        match flavor {
            Flavor::V52 => {
                assert_error(status, &body, 401, 410);
                assert_eq!(env.last_log().auth, "none");
                assert_eq!(env.sim.whiteboard(id).as_deref(), Some(""));
            }
            Flavor::V53 => {
                assert_eq!(status, 200, "{body}");
                assert_eq!(env.last_log().auth, "header");
                assert_eq!(env.sim.whiteboard(id).as_deref(), Some("[autoland]"));
            }
        }
    }
}

#[tokio::test]
async fn the_api_key_parameter_and_body_field_work_on_both() {
    for flavor in [Flavor::V52, Flavor::V53] {
        let env = env(flavor).await;
        let id = env.sim.create_bug(bug("Crash", ""));
        let (status, body) = env
            .send(
                Method::PUT,
                &format!("/rest/bug/{id}?api_key=alice-key"),
                Some(json!({"whiteboard": "[a]"})),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(env.last_log().auth, "param");

        let (status, body) = env
            .send(
                Method::POST,
                &format!("/rest/bug/{id}/comment"),
                Some(json!({"comment": "Landed.", "api_key": "alice-key"})),
                None,
            )
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(env.last_log().auth, "body");

        let (status, _) = env
            .get(&format!("/rest/bug/{id}?Bugzilla_api_key=alice-key"))
            .await;
        assert_eq!(status, 200);
        assert_eq!(env.last_log().auth, "param");
    }
}

#[tokio::test]
async fn an_invalid_key_is_code_306_typed_per_flavor() {
    let old = env(Flavor::V52).await;
    let (status, body) = old.get("/rest/bug?api_key=nope").await;
    assert_error(status, &body, 400, 306);
    assert_eq!(body["code"], json!(306));
    assert_eq!(
        body["message"],
        json!("The API key you specified is invalid. Please check that you typed it correctly.")
    );

    let new = env(Flavor::V53).await;
    let (status, body) = new.send(Method::GET, "/rest/bug", None, Some("nope")).await;
    assert_error(status, &body, 400, 306);
    assert_eq!(body["code"], json!("306"));

    // The InvalidKey fault refuses good keys too, but not anonymous requests.
    new.sim.set_fault(Fault::InvalidKey);
    let (status, body) = new.get("/rest/bug?api_key=alice-key").await;
    assert_error(status, &body, 400, 306);
    assert_eq!(new.get("/rest/bug").await.0, 200);
}

#[tokio::test]
async fn attachment_booleans_are_integers_on_52_and_booleans_on_53() {
    let env = env(Flavor::V52).await;
    let id = env.sim.create_bug(bug("Crash", ""));
    let aid = env.sim.add_attachment(id, patch(ALICE));
    assert_eq!(aid, 1001);

    let (status, body) = env.get(&format!("/rest/bug/{id}/attachment")).await;
    assert_eq!(status, 200);
    let a = &body["bugs"][id.to_string()][0];
    assert_eq!(a["is_patch"], json!(1));
    assert_eq!(a["is_obsolete"], json!(0));
    assert_eq!(a["is_private"], json!(0));
    assert_eq!(a["summary"], json!("Fix the crash"));
    assert_eq!(a["size"], json!(19));
    assert_eq!(a["data"], json!("ZGlmZiAtLWdpdCBhL3ggYi94Cg=="));
    assert_eq!(a["creator"], json!(ALICE));
    let flag = &a["flags"][0];
    assert_eq!(flag["name"], json!("review"));
    assert_eq!(flag["type_id"], json!(1));
    assert_eq!(flag["status"], json!("+"));
    assert_eq!(flag["setter"], json!(BOB));
    assert_eq!(flag["requestee"], json!(BOB));
    assert_eq!(body["attachments"], json!({}));

    env.sim.set_flavor(Flavor::V53);
    env.sim.set_obsolete(aid, true);
    let (status, body) = env.get(&format!("/rest/bug/attachment/{aid}")).await;
    assert_eq!(status, 200);
    let a = &body["attachments"][aid.to_string()];
    assert_eq!(a["is_patch"], json!(true));
    assert_eq!(a["is_obsolete"], json!(true));
    assert_eq!(a["is_private"], json!(false));
    assert_eq!(body["bugs"], json!({}));

    // The content type alone does not make a patch.
    let plain = env.sim.add_attachment(
        id,
        NewAttachment {
            is_patch: false,
            flags: Vec::new(),
            ..patch(ALICE)
        },
    );
    let (_, body) = env.get(&format!("/rest/bug/attachment/{plain}")).await;
    assert_eq!(
        body["attachments"][plain.to_string()]["is_patch"],
        json!(false)
    );
    assert_eq!(body["attachments"][plain.to_string()]["flags"], json!([]));
}

#[tokio::test]
async fn attachments_respect_privacy_and_unknown_ids() {
    let env = env(Flavor::V52).await;
    let id = env.sim.create_bug(bug("Crash", ""));
    let public = env.sim.add_attachment(id, patch(ALICE));
    let private = env.sim.add_attachment(
        id,
        NewAttachment {
            is_private: true,
            ..patch(ALICE)
        },
    );
    let listed = |body: &Value| -> Vec<i64> {
        body["bugs"][id.to_string()]
            .as_array()
            .map(|l| l.iter().filter_map(|a| a["id"].as_i64()).collect())
            .unwrap_or_default()
    };
    let path = format!("/rest/bug/{id}/attachment");
    assert_eq!(listed(&env.get(&path).await.1), vec![public]);
    assert_eq!(
        listed(&env.get(&format!("{path}?api_key=carol-key")).await.1),
        vec![public]
    );
    assert_eq!(
        listed(&env.get(&format!("{path}?api_key=alice-key")).await.1),
        vec![public, private]
    );
    assert_eq!(
        listed(&env.get(&format!("{path}?api_key=bob-key")).await.1),
        vec![public, private]
    );

    let (status, body) = env.get(&format!("/rest/bug/attachment/{private}")).await;
    assert_error(status, &body, 401, 304);
    let (status, _) = env
        .get(&format!("/rest/bug/attachment/{private}?api_key=bob-key"))
        .await;
    assert_eq!(status, 200);

    // Bugzilla skips attachment ids that do not exist.
    assert_eq!(
        env.get("/rest/bug/attachment/99999").await,
        (200, json!({"attachments": {}, "bugs": {}}))
    );
    let (status, body) = env.get("/rest/bug/attachment/x").await;
    assert_error(status, &body, 400, 52);
}

#[tokio::test]
async fn whiteboard_search_finds_exactly_the_tagged_bugs() {
    let env = env(Flavor::V52).await;
    let mut tagged = Vec::new();
    for n in 0..40 {
        let whiteboard = match n % 5 {
            0 => "[autoland-try]",
            1 => "[Autoland-Try] [other]",
            2 => "autoland without brackets",
            3 => "[landed]",
            _ => "",
        };
        let id = env
            .sim
            .create_bug(bug(&format!("Bug number {n}"), whiteboard));
        if n % 5 < 2 {
            tagged.push(id);
        }
    }
    assert_eq!(env.search_ids("whiteboard=%5Bautoland").await, tagged);
    assert_eq!(
        env.search_ids("whiteboard=%5Bautoland&status_whiteboard_type=substring")
            .await,
        tagged
    );
    assert_eq!(
        env.search_ids("whiteboard=%5Bautoland-try%5D&include_fields=id")
            .await,
        tagged
    );
    assert_eq!(
        env.search_ids("whiteboard=%5Bnothing").await,
        Vec::<i64>::new()
    );
    assert_eq!(
        env.get("/rest/bug?whiteboard=%5Bnothing").await,
        (200, json!({"bugs": []}))
    );
}

#[tokio::test]
async fn whiteboard_type_is_ignored_and_status_whiteboard_type_honoured() {
    let env = env(Flavor::V52).await;
    let forward = env.sim.create_bug(bug("a", "autoland try"));
    let backward = env.sim.create_bug(bug("b", "try autoland"));
    env.sim.create_bug(bug("c", "autoland"));

    // Default allwordssubstr: both words, any order; whiteboard_type changes nothing.
    assert_eq!(
        env.search_ids("whiteboard=autoland+try").await,
        vec![forward, backward]
    );
    assert_eq!(
        env.search_ids("whiteboard=autoland+try&whiteboard_type=substring")
            .await,
        vec![forward, backward]
    );
    assert_eq!(
        env.search_ids("whiteboard=autoland+try&status_whiteboard_type=substring")
            .await,
        vec![forward]
    );
    assert_eq!(
        env.search_ids("whiteboard=AUTOLAND+TRY&status_whiteboard_type=casesubstring")
            .await,
        Vec::<i64>::new()
    );
    assert_eq!(
        env.search_ids("whiteboard=autoland+try&status_whiteboard_type=exact")
            .await,
        vec![forward]
    );
    assert_eq!(
        env.search_ids("whiteboard=autoland+try&status_whiteboard_type=anywordssubstr")
            .await
            .len(),
        3
    );
    // Repeating whiteboard= ANDs the values.
    assert_eq!(
        env.search_ids("whiteboard=autoland&whiteboard=try").await,
        vec![forward, backward]
    );
    assert_eq!(
        env.search_ids("whiteboard=autoland&whiteboard=nothing")
            .await,
        Vec::<i64>::new()
    );
    let (status, body) = env
        .get("/rest/bug?whiteboard=x&status_whiteboard_type=regexp")
        .await;
    assert_error(status, &body, 400, 1);
}

#[tokio::test]
async fn boolean_charts_are_anded() {
    let env = env(Flavor::V53).await;
    let first = env.sim.create_bug(bug("Crash in parser", "[autoland-try]"));
    let second = env.sim.create_bug(bug("Skip me", "[autoland-try]"));
    env.sim.create_bug(bug("Crash elsewhere", "[landed]"));
    assert_eq!(
        env.search_ids("f1=status_whiteboard&o1=substring&v1=%5Bautoland")
            .await,
        vec![first, second]
    );
    assert_eq!(
        env.search_ids(
            "f1=status_whiteboard&o1=substring&v1=%5Bautoland&f2=short_desc&o2=notsubstring&v2=skip"
        )
        .await,
        vec![first]
    );
    assert_eq!(
        env.search_ids(
            "f1=short_desc&o1=casesubstring&v1=Crash&f2=status_whiteboard&o2=equals&v2=%5Blanded%5D"
        )
        .await,
        vec![3]
    );
    assert_eq!(
        env.search_ids("f1=status_whiteboard&o1=substring&v1=%5Bautoland&n1=1")
            .await,
        vec![3]
    );
    let (status, body) = env.get("/rest/bug?f1=whiteboard&o1=substring&v1=x").await;
    assert_error(status, &body, 400, 108);
}

#[tokio::test]
async fn last_change_time_returns_bugs_changed_at_or_after() {
    let env = env(Flavor::V52).await;
    let first = env.sim.create_bug(bug("one", ""));
    let second = env.sim.create_bug(bug("two", ""));
    env.sim.advance_clock(Duration::from_secs(3600));
    let mark = env.sim.now();
    env.sim.set_whiteboard(first, "[autoland-try]", ALICE);
    let changed = env.sim.last_change_time(first).expect("a bug");
    assert!(changed > mark);

    assert_eq!(
        env.search_ids(&format!("last_change_time={mark}")).await,
        vec![first]
    );
    // At the exact time counts.
    assert_eq!(
        env.search_ids(&format!("last_change_time={changed}")).await,
        vec![first]
    );
    assert_eq!(
        env.search_ids("last_change_time=2000-01-01T00:00:00Z")
            .await,
        vec![first, second]
    );
    let (status, body) = env.get("/rest/bug?last_change_time=yesterday-ish").await;
    assert_error(status, &body, 400, 56);

    // The bug's own last_change_time follows its changes.
    let (_, body) = env.get(&format!("/rest/bug/{first}")).await;
    assert_eq!(body["bugs"][0]["last_change_time"], json!(changed));
}

#[tokio::test]
async fn limit_and_offset() {
    let env = env(Flavor::V52).await;
    for n in 0..5 {
        env.sim.create_bug(bug(&format!("bug {n}"), ""));
    }
    let (status, body) = env.get("/rest/bug?offset=2").await;
    assert_error(status, &body, 400, 50);
    assert_eq!(env.search_ids("limit=2&offset=1").await, vec![2, 3]);
    assert_eq!(env.search_ids("limit=2").await, vec![1, 2]);
    assert_eq!(env.search_ids("limit=0&offset=3").await.len(), 5);
    assert_eq!(env.search_ids("id=4,2&id=5").await, vec![2, 4, 5]);
}

#[tokio::test]
async fn include_and_exclude_fields() {
    let env = env(Flavor::V52).await;
    let id = env.sim.create_bug(bug("Crash", "[autoland-try]"));
    env.sim.add_attachment(id, patch(ALICE));

    let (_, body) = env
        .get(&format!("/rest/bug/{id}/attachment?exclude_fields=data"))
        .await;
    let a = body["bugs"][id.to_string()][0]
        .as_object()
        .expect("an attachment");
    assert!(!a.contains_key("data"));
    for key in [
        "id",
        "bug_id",
        "file_name",
        "is_patch",
        "size",
        "flags",
        "creator",
    ] {
        assert!(a.contains_key(key), "{key}");
    }

    let (_, body) = env
        .get("/rest/bug?whiteboard=autoland&include_fields=id,whiteboard")
        .await;
    assert_eq!(
        body,
        json!({"bugs": [{"id": id, "whiteboard": "[autoland-try]"}]})
    );
    // id is not forced in; exclude applies after include.
    let (_, body) = env
        .get(&format!(
            "/rest/bug/{id}?include_fields=summary&include_fields=id&exclude_fields=id"
        ))
        .await;
    assert_eq!(body["bugs"], json!([{"summary": "Crash"}]));
    let (_, body) = env
        .get(&format!("/rest/bug/{id}/comment?include_fields=text"))
        .await;
    assert_eq!(
        body["bugs"][id.to_string()]["comments"][0],
        json!({"text": "Crash"})
    );
}

#[tokio::test]
async fn private_bugs_are_only_for_insiders_and_their_creator() {
    let env = env(Flavor::V52).await;
    let public = env.sim.create_bug(bug("Public", "[autoland-try]"));
    let private = env.sim.create_bug(NewBug {
        private: true,
        ..bug("Secret", "[autoland-try]")
    });
    let path = format!("/rest/bug/{private}");

    let (status, body) = env.get(&path).await;
    assert_error(status, &body, 401, 102);
    let (status, body) = env.get(&format!("{path}?api_key=carol-key")).await;
    assert_error(status, &body, 401, 102);
    assert_eq!(
        body["message"],
        json!(format!("You are not authorized to access bug #{private}."))
    );
    for key in ["bob-key", "alice-key"] {
        let (status, body) = env.get(&format!("{path}?api_key={key}")).await;
        assert_eq!(status, 200, "{key}");
        assert_eq!(body["bugs"][0]["summary"], json!("Secret"));
        assert_eq!(body["faults"], json!([]));
    }
    for (sub, want) in [("comment", 401), ("history", 401), ("attachment", 401)] {
        assert_eq!(env.get(&format!("{path}/{sub}")).await.0, want, "{sub}");
    }

    assert_eq!(env.search_ids("whiteboard=autoland").await, vec![public]);
    assert_eq!(
        env.search_ids("whiteboard=autoland&api_key=carol-key")
            .await,
        vec![public]
    );
    assert_eq!(
        env.search_ids("whiteboard=autoland&api_key=bob-key").await,
        vec![public, private]
    );
    let (status, body) = env
        .send(
            Method::PUT,
            &format!("{path}?api_key=carol-key"),
            Some(json!({"whiteboard": "x"})),
            None,
        )
        .await;
    assert_error(status, &body, 401, 102);
}

#[tokio::test]
async fn unknown_bugs_resources_and_bodies() {
    let env = env(Flavor::V53).await;
    let id = env.sim.create_bug(bug("Crash", ""));
    let (status, body) = env.get("/rest/bug/99999").await;
    assert_error(status, &body, 404, 101);
    assert_eq!(body["message"], json!("Bug #99999 does not exist."));
    assert_eq!(body["code"], json!("101"));

    let (status, body) = env.get("/rest/bug/x").await;
    assert_error(status, &body, 400, 100);
    assert_eq!(
        body["message"],
        json!("'x' is not a valid bug number nor an alias to a bug.")
    );

    let (status, body) = env.get("/rest/nothing/here").await;
    assert_error(status, &body, 404, 32614);
    assert_eq!(
        body["message"],
        json!("A REST API resource was not found for 'GET /nothing/here'.")
    );
    let (status, body) = env
        .send(Method::DELETE, &format!("/rest/bug/{id}"), None, None)
        .await;
    assert_error(status, &body, 404, 32614);

    let response = env
        .http
        .put(format!("{}/rest/bug/{id}?api_key=alice-key", env.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(code_number(&body), 32000);
}

#[tokio::test]
async fn put_whiteboard_returns_changes_and_records_history() {
    let env = env(Flavor::V52).await;
    let id = env.sim.create_bug(bug("Crash", "[autoland-try]"));
    let before = env.sim.last_change_time(id).expect("a bug");
    let path = format!("/rest/bug/{id}?api_key=alice-key");

    let (status, body) = env
        .send(
            Method::PUT,
            &path,
            Some(json!({"whiteboard": "[autoland-landed]"})),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let result = &body["bugs"][0];
    assert_eq!(result["id"], json!(id));
    assert_eq!(
        result["changes"],
        json!({"whiteboard": {"added": "[autoland-landed]", "removed": "[autoland-try]"}})
    );
    let changed = result["last_change_time"]
        .as_str()
        .expect("a time")
        .to_owned();
    assert!(changed > before);
    assert_eq!(env.sim.whiteboard(id).as_deref(), Some("[autoland-landed]"));

    // The same value again changes nothing, not even the time.
    let (_, body) = env
        .send(
            Method::PUT,
            &path,
            Some(json!({"whiteboard": "[autoland-landed]"})),
            None,
        )
        .await;
    assert_eq!(body["bugs"][0]["changes"], json!({}));
    assert_eq!(body["bugs"][0]["last_change_time"], json!(changed));

    // A comment can come along; ids in the body override the path.
    let other = env.sim.create_bug(bug("Other", ""));
    let (status, body) = env
        .send(
            Method::PUT,
            &path,
            Some(json!({"ids": [other], "whiteboard": "[x]", "comment": {"body": "Tagged."}})),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["bugs"][0]["id"], json!(other));
    assert_eq!(env.sim.whiteboard(id).as_deref(), Some("[autoland-landed]"));
    assert_eq!(env.sim.whiteboard(other).as_deref(), Some("[x]"));
    assert_eq!(env.sim.comments(other)[1].text, "Tagged.");

    let (status, body) = env.get(&format!("/rest/bug/{id}/history")).await;
    assert_eq!(status, 200);
    let history = &body["bugs"][0];
    assert_eq!(history["id"], json!(id));
    assert_eq!(history["history"].as_array().map(Vec::len), Some(1));
    let entry = &history["history"][0];
    assert_eq!(entry["who"], json!(ALICE));
    assert_eq!(entry["when"], json!(changed));
    assert_eq!(
        entry["changes"],
        json!([{"field_name": "whiteboard", "removed": "[autoland-try]", "added": "[autoland-landed]"}])
    );
    let (_, body) = env
        .get(&format!("/rest/bug/{id}/history?new_since={changed}"))
        .await;
    assert_eq!(body["bugs"][0]["history"], json!([]));

    // Anonymous writes need a login.
    let (status, body) = env
        .send(
            Method::PUT,
            &format!("/rest/bug/{id}"),
            Some(json!({"whiteboard": "x"})),
            None,
        )
        .await;
    assert_error(status, &body, 401, 410);
}

#[tokio::test]
async fn comments_can_be_posted_and_listed() {
    let env = env(Flavor::V53).await;
    let id = env.sim.create_bug(bug("Crash", ""));
    let path = format!("/rest/bug/{id}/comment");

    let (status, body) = env
        .send(
            Method::POST,
            &path,
            Some(json!({"comment": "Pushed to try."})),
            Some("alice-key"),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let comment_id = body["id"].as_i64().expect("a comment id");
    assert_eq!(body, json!({"id": comment_id}));

    let (status, body) = env.get(&path).await;
    assert_eq!(status, 200);
    let comments = body["bugs"][id.to_string()]["comments"]
        .as_array()
        .expect("comments")
        .clone();
    assert_eq!(comments.len(), 2);
    assert_eq!(comments[0]["count"], json!(0));
    assert_eq!(comments[0]["text"], json!("Crash"));
    let posted = &comments[1];
    assert_eq!(posted["id"], json!(comment_id));
    assert_eq!(posted["count"], json!(1));
    assert_eq!(posted["text"], json!("Pushed to try."));
    assert_eq!(posted["creator"], json!(ALICE));
    assert_eq!(posted["attachment_id"], json!(null));
    assert_eq!(posted["is_private"], json!(false));
    assert_eq!(posted["time"], posted["creation_time"]);
    assert_eq!(body["comments"], json!({}));
    assert_eq!(env.sim.comments(id)[1].text, "Pushed to try.");
    assert_eq!(
        env.sim.last_change_time(id).as_deref(),
        posted["time"].as_str()
    );

    let since = comments[0]["time"].as_str().expect("a time");
    let (_, body) = env.get(&format!("{path}?new_since={since}")).await;
    assert_eq!(
        body["bugs"][id.to_string()]["comments"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let (status, body) = env.get(&format!("/rest/bug/comment/{comment_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["comments"][comment_id.to_string()]["text"],
        json!("Pushed to try.")
    );

    let (status, body) = env
        .send(
            Method::POST,
            &path,
            Some(json!({"comment": "   "})),
            Some("alice-key"),
        )
        .await;
    assert_error(status, &body, 400, 50);
    let (status, body) = env
        .send(Method::POST, &path, Some(json!({"comment": "hi"})), None)
        .await;
    assert_error(status, &body, 401, 410);
    let (status, body) = env
        .send(
            Method::POST,
            "/rest/bug/99999/comment",
            Some(json!({"comment": "hi"})),
            Some("alice-key"),
        )
        .await;
    assert_error(status, &body, 404, 101);
}

#[tokio::test]
async fn attachments_add_a_comment_and_obsoleting_is_history() {
    let env = env(Flavor::V52).await;
    let id = env.sim.create_bug(bug("Crash", ""));
    let aid = env.sim.add_attachment(id, patch(ALICE));
    let comments = env.sim.comments(id);
    assert_eq!(comments.len(), 2);
    assert!(
        comments[1]
            .text
            .starts_with(&format!("Created attachment {aid}"))
    );
    let (_, body) = env.get(&format!("/rest/bug/{id}/comment")).await;
    assert_eq!(
        body["bugs"][id.to_string()]["comments"][1]["attachment_id"],
        json!(aid)
    );

    env.sim.set_obsolete(aid, true);
    let (_, body) = env.get(&format!("/rest/bug/{id}/history")).await;
    assert_eq!(
        body["bugs"][0]["history"][0]["changes"][0],
        json!({"field_name": "attachments.isobsolete", "removed": "0", "added": "1", "attachment_id": aid})
    );
}

#[tokio::test]
async fn server_errors_for_n_requests_then_recovery() {
    let env = env(Flavor::V52).await;
    env.sim.set_fault(Fault::ServerError {
        status: 503,
        remaining: Some(2),
    });
    for _ in 0..2 {
        assert_eq!(
            env.get("/rest/version").await,
            (503, json!("Internal Server Error"))
        );
    }
    assert_eq!(env.sim.fault(), Fault::None);
    assert_eq!(env.get("/rest/version").await.0, 200);
    let statuses: Vec<u16> = env.sim.request_log().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![503, 503, 200]);

    env.sim.set_fault(Fault::ServerError {
        status: 500,
        remaining: None,
    });
    for _ in 0..3 {
        assert_eq!(env.get("/rest/bug").await.0, 500);
    }
    env.sim.set_fault(Fault::Slow(Duration::from_millis(300)));
    let started = Instant::now();
    assert_eq!(env.get("/rest/version").await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn the_request_log_redacts_api_keys() {
    let env = env(Flavor::V53).await;
    let id = env.sim.create_bug(bug("Crash", ""));
    env.sim.clear_log();
    env.get(&format!(
        "/rest/bug/{id}?api_key=alice-key&include_fields=id"
    ))
    .await;
    env.send(Method::GET, "/rest/whoami", None, Some("bob-key"))
        .await;
    env.get("/rest/bug?Bugzilla_api_key=nope").await;

    let log = env.sim.request_log();
    assert_eq!(log.len(), 3);
    assert_eq!(log[0].method, "GET");
    assert_eq!(log[0].path, format!("/rest/bug/{id}"));
    assert_eq!(log[0].query, "api_key=REDACTED&include_fields=id");
    assert_eq!(log[0].status, 200);
    assert_eq!(log[0].auth, "param");
    assert_eq!(log[1].auth, "header");
    assert_eq!(log[1].query, "");
    assert_eq!(log[2].query, "Bugzilla_api_key=REDACTED");
    assert_eq!(log[2].status, 400);
    for entry in &log {
        assert!(!entry.query.contains("alice-key") && !entry.query.contains("nope"));
    }
}
