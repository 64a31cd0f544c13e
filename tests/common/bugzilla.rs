//! The Bugzilla simulator set up as the tests use it: Autoland's account and key, Alice
//! and Bob, and bugs with reviewed patch attachments.

use autoland::simulator::bugzilla::{Flavor, NewAttachment, NewBug, NewFlag, Simulator};

/// Autoland's Bugzilla account.
pub const AUTOLAND: &str = "autoland@example.com";

/// A running simulator with Autoland (key `autoland-key`), Alice and Bob; and its URL.
pub async fn simulator(flavor: Flavor) -> (Simulator, String) {
    let sim = Simulator::new(flavor);
    sim.add_user(AUTOLAND, "Autoland", false);
    sim.add_user("alice@example.com", "Alice", false);
    sim.add_user("bob@example.com", "Bob", false);
    sim.add_api_key("autoland-key", AUTOLAND);
    let url = sim.start().await.expect("simulator starts");
    (sim, url)
}

/// Attaches `patch` to `bug` as Alice, with Alice's review+.
pub fn attach(sim: &Simulator, bug: i64, name: &str, patch: &str, obsolete: bool) -> i64 {
    sim.add_attachment(
        bug,
        NewAttachment {
            file_name: name.to_owned(),
            summary: format!("patch {name}"),
            content_type: "text/plain".to_owned(),
            data: patch.as_bytes().to_vec(),
            is_patch: true,
            is_obsolete: obsolete,
            is_private: false,
            creator: "alice@example.com".to_owned(),
            flags: vec![NewFlag {
                name: "review".to_owned(),
                status: "+".to_owned(),
                setter: "alice@example.com".to_owned(),
                requestee: None,
            }],
        },
    )
}

/// A new public bug filed by Alice.
pub fn new_bug(sim: &Simulator, summary: &str) -> i64 {
    sim.create_bug(NewBug {
        summary: summary.to_owned(),
        whiteboard: String::new(),
        creator: "alice@example.com".to_owned(),
        private: false,
    })
}

/// Comments Autoland wrote on a bug.
pub fn autoland_comments(sim: &Simulator, bug: i64) -> Vec<String> {
    sim.comments(bug)
        .into_iter()
        .filter(|c| c.creator == AUTOLAND)
        .map(|c| c.text)
        .collect()
}

/// Attaches three independent patches to `bug` (part N writes `src/partN.txt`, made on
/// central's tip), each attached by Alice with Carol's review+, named `file_name(N)`;
/// returns their ids.
pub fn three_parts(
    sim: &Simulator,
    env: &super::Env,
    bug: i64,
    file_name: impl Fn(usize) -> String,
) -> Vec<i64> {
    (1..=3)
        .map(|n| {
            let file = format!("src/part{n}.txt");
            let subject = format!("Bug {bug} - Part {n}");
            let content = format!("part {n}\n");
            let patch = env.patches(&[super::Change {
                author: "Alice <alice@example.com>",
                subject: &subject,
                files: &[(&file, &content)],
            }]);
            sim.add_attachment(
                bug,
                NewAttachment {
                    file_name: file_name(n),
                    summary: format!("Part {n}"),
                    content_type: "text/plain".to_owned(),
                    data: patch[0].as_bytes().to_vec(),
                    is_patch: true,
                    is_obsolete: false,
                    is_private: false,
                    creator: "alice@example.com".to_owned(),
                    flags: vec![NewFlag {
                        name: "review".to_owned(),
                        status: "+".to_owned(),
                        setter: "carol@example.com".to_owned(),
                        requestee: None,
                    }],
                },
            )
        })
        .collect()
}

/// The id of the request the Bugzilla poller made for `bug`, once it exists.
pub async fn request_for_bug(api: &super::Api, bug: i64) -> i64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let (_, list) = api.get("/api/requests?all=true").await;
        if let Some(r) = list["requests"]
            .as_array()
            .and_then(|l| l.iter().find(|r| r["bug"] == bug))
        {
            return r["id"].as_i64().unwrap_or_default();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no request for bug {bug}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Waits until the request ended and every report of it was delivered (or given up).
pub async fn wait_reports_delivered(
    api: &super::Api,
    id: i64,
    limit: std::time::Duration,
) -> serde_json::Value {
    api.wait_for(id, limit, |d| {
        let reports = d["reports"].as_array().unwrap();
        d["request"]["stage"]
            .as_str()
            .is_some_and(|s| ["landed", "failed", "cancelled"].contains(&s))
            && !reports.is_empty()
            && reports
                .iter()
                .all(|r| r["sent_at"].is_number() || r["abandoned_at"].is_number())
    })
    .await
}
