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
