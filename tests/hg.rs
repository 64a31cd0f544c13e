//! What only Mercurial has: its command server dying mid-job, and `hg export` headers.
//! (The landing and crash scenarios run on hg too: tests/landing.rs, tests/crash.rs.)

mod common;

use std::time::Duration;

use common::{Env, Kind, Options, hg};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_command_server_is_restarted_and_the_job_completes() {
    let env = Env::new(Options {
        kind: Kind::Hg,
        ..Options::default()
    });
    // On Autoland's first push, the hook finds the command server among its ancestors and
    // kills it.
    let marker = env.path().join("server-killed");
    env.hg_pre_push_hook(
        "kill",
        &format!(
            "#!/bin/sh\n[ -e '{m}' ] && exit 0\ntouch '{m}'\np=$PPID\n\
             while [ \"$p\" -gt 1 ]; do\n\
               if tr '\\0' ' ' < /proc/$p/cmdline | grep -q cmdserver; then kill -9 $p; exit 0; fi\n\
               p=$(awk '{{print $4}}' /proc/$p/stat)\n\
             done\nexit 0\n",
            m = marker.display()
        ),
    );

    let running = env.start().await;
    let id = env
        .submit_one(
            &running.api,
            "Survives a dead command server",
            "src/survivor.txt",
            "alive\n",
        )
        .await;
    let detail = running.api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    assert!(marker.exists(), "the command server was killed");
    let retried = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "retry_scheduled");
    assert!(retried, "the interrupted step was retried: {detail:#}");
    let uid = detail["request"]["uid"].as_str().unwrap();
    assert_eq!(env.commits_with_trailer(&env.try_repo, uid), 1);
    assert_eq!(env.commits_with_trailer(&env.central, uid), 1);
    running.service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hg_export_lands_with_its_user_and_date_and_try_carries_the_syntax() {
    let env = Env::new(Options {
        kind: Kind::Hg,
        ..Options::default()
    });
    let export = "# HG changeset patch\n\
                  # User Hg Person <hgp@example.com>\n\
                  # Date 1700000000 -3600\n\
                  #      Tue Nov 14 23:13:20 2023 +0100\n\
                  # Node ID 1111111111111111111111111111111111111111\n\
                  # Parent  2222222222222222222222222222222222222222\n\
                  Bug 5 - Exported from hg\n\
                  \n\
                  diff --git a/src/exported.txt b/src/exported.txt\n\
                  new file mode 100644\n\
                  --- /dev/null\n\
                  +++ b/src/exported.txt\n\
                  @@ -0,0 +1,1 @@\n\
                  +exported\n";
    let running = env.start().await;
    let id = running
        .api
        .submit(
            &[],
            &["try", "central"],
            json!({
                "try_syntax": "-b o -p linux64",
                "patches": [{ "name": "exported.patch", "content": export, "reviewers": ["alice@example.com"] }],
            }),
        )
        .await;
    let detail = running.api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    let landed = hg(
        &env.central,
        &[
            "log",
            "-r",
            "tip",
            "-T",
            "{author}|{date|hgdate}|{desc|firstline}",
        ],
    );
    assert_eq!(
        landed,
        "Hg Person <hgp@example.com>|1700000000 -3600|Bug 5 - Exported from hg"
    );
    let try_tip = env.try_tip_message();
    assert!(try_tip.starts_with("try: -b o -p linux64"), "{try_tip}");
    running.service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repositories_served_over_http_land_too() {
    let env = Env::new(Options {
        kind: Kind::Hg,
        http: true,
        ..Options::default()
    });
    let running = env.start().await;
    let id = env
        .submit_one(&running.api, "Over HTTP", "src/http.txt", "http\n")
        .await;
    let detail = running.api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    assert_eq!(env.central_log()[0].1, "Over HTTP");
    let uid = detail["request"]["uid"].as_str().unwrap();
    assert_eq!(env.commits_with_trailer(&env.try_repo, uid), 1);
    running.service.stop().await;
}
