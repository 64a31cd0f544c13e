//! `autoland demo`: the first-run experience. Creates a sample project (a `central`
//! repository with a little code and its tests, an empty `try` repository, a CI command),
//! starts the service on it, submits two requests through the real API — one that passes
//! try and lands, one whose change breaks a test — prints their progress until both are
//! finished, then keeps serving.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::client::{ApiClient, event_line};
use crate::config::{
    AuthMode, BugzillaConfig, Config, RepoConfig, RepoKind, TokenConfig, hash_token, new_token,
};
use crate::request::Stage;
use crate::service;
use crate::simulator::bugzilla::{Flavor, NewAttachment, NewBug, NewFlag, Simulator};

const MARKER: &str = ".autoland-demo";

const CALC: &str = "#!/bin/sh\n# A tiny calculator library.\nadd() { echo $(($1 + $2)); }\nsub() { echo $(($1 - $2)); }\n";
const TESTS: &str = "#!/bin/sh\n# The project's test suite: the CI command runs it on every try push.\nset -e\n. ./calc.sh\ncheck() { if [ \"$2\" != \"$3\" ]; then echo \"FAIL: $1: expected $3, got $2\"; exit 1; fi; echo \"ok: $1\"; }\ncheck 'add 2 3' \"$(add 2 3)\" 5\ncheck 'sub 7 2' \"$(sub 7 2)\" 5\nfor t in tests/*.sh; do [ -f \"$t\" ] && . \"$t\"; done\necho 'all tests passed'\n";

/// Runs the demo in `dir`, serving on `listen`; with `exit`, returns once both requests
/// are finished.
pub async fn run(dir: &Path, listen: SocketAddr, exit: bool) -> anyhow::Result<()> {
    prepare_dir(dir)?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    println!("Autoland demo");
    println!("=============");
    println!("Autoland lands patches for people: it checks the author's commit permission,");
    println!("applies the patches on the tip of the repository, pushes them to a try repository,");
    println!("runs the tests there, and only when they pass lands them on the real repository.\n");

    let central = dir.join("repos/central.git");
    let try_repo = dir.join("repos/try.git");
    let scratch = dir.join("scratch");
    create_sample_project(&central, &try_repo, &scratch)?;
    println!("1. Sample project in {}:", dir.display());
    println!("   repos/central.git   the main repository: calc.sh and its tests (test.sh)");
    println!("   repos/try.git       the try repository; every push there runs `sh test.sh`");
    println!("   users               alice@example.com holds scm_level_3 (may land on central)\n");

    let token = new_token();
    let (sim, bugzilla_url) = start_bugzilla(&dir).await?;
    let mut config = demo_config(&dir, listen, &central, &try_repo, &token)?;
    config.bugzilla = Some(BugzillaConfig {
        url: bugzilla_url.clone(),
        api_key_env: None,
        api_key_file: Some(dir.join("bugzilla-key")),
        auth: AuthMode::Auto,
        poll: true,
        poll_interval_seconds: 1,
        poll_overlap_seconds: 5,
        timeout_seconds: 10,
        retry_max_seconds: 5,
    });
    config.validate()?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {listen}; is something else using it? (try --listen 127.0.0.1:0)"
            )
        })?;
    config.public_url = Some(format!("http://{}", listener.local_addr()?));
    let ctx = Arc::new(
        service::context(config)
            .await
            .context("cannot start the demo service")?,
    );
    let service = service::start(ctx, listener).await?;
    let base = format!("http://{}", service.addr);
    println!("2. The service is running: API at {base}\n");

    let client = ApiClient::new(&base, Some(&token))?;
    let good = make_patches(
        &scratch,
        &[
            (
                "Alice <alice@example.com>",
                "Add mul() to the calculator",
                "calc.sh",
                "mul() { echo $(($1 * $2)); }\n",
                None,
            ),
            (
                "Alice <alice@example.com>",
                "Test mul()",
                "tests/mul.sh",
                "check 'mul 3 4' \"$(mul 3 4)\" 12\n",
                None,
            ),
        ],
    )?;
    let bad = make_patches(
        &scratch,
        &[(
            "Alice <alice@example.com>",
            "Make sub() faster (breaks it)",
            "calc.sh",
            "",
            Some((
                "sub() { echo $(($1 - $2)); }",
                "sub() { echo $(($1 + $2)); }",
            )),
        )],
    )?;
    let first = submit(&client, good, &["try", "central"], "Add multiplication").await?;
    println!("3. Submitted request {first}: two patches (git format-patch) to try, then central.");
    let second = submit(&client, bad, &["try", "central"], "A broken change").await?;
    println!(
        "   Submitted request {second}: one patch that breaks a test, to try, then central.\n"
    );
    println!("4. Progress (each line is a durable event in the request's history):");

    let outcome = follow(&client, &[first, second]).await?;
    println!("\n5. Outcome:");
    for (id, stage, failure) in &outcome {
        match stage {
            Stage::Landed => println!("   request {id}: LANDED on central"),
            _ => println!(
                "   request {id}: {stage} ({})",
                failure.as_deref().unwrap_or("-")
            ),
        }
    }
    let log = git_output(&central, &["log", "--format=   %h %an: %s", "-5", "main"])?;
    println!("\n   central's history now:\n{log}");

    let bug = bugzilla_flow(&sim, &client, &scratch, &bugzilla_url).await?;

    println!("\n7. Autoland keeps serving at {base}. Try it:");
    println!("   export AUTOLAND_URL={base} AUTOLAND_TOKEN={token}");
    println!("   cargo run --release -- request list --all");
    println!("   cargo run --release -- request show {first}");
    println!("   curl -s {base}/api/requests/{second} | python3 -m json.tool");
    println!(
        "   Logs of the CI runs: {}",
        dir.join("data/logs").display()
    );
    println!(
        "   Land from the bug page: {base}/bugs/{bug} (sign in on {base}/login with Alice's \
         Bugzilla API key {DEMO_ALICE_KEY})"
    );
    if exit {
        service.stop().await;
        return Ok(());
    }
    println!("\nPress Ctrl-C to stop.");
    let shutdown = service.shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        shutdown.cancel();
    });
    service.wait().await;
    Ok(())
}

/// A Bugzilla simulator with Autoland's account and the demo's developers.
async fn start_bugzilla(dir: &Path) -> anyhow::Result<(Simulator, String)> {
    let sim = Simulator::new(Flavor::V53);
    sim.add_user("autoland@example.com", "Autoland", false);
    sim.add_user("alice@example.com", "Alice", false);
    sim.add_user("bob@example.com", "Bob", false);
    let key = new_token();
    sim.add_api_key(&key, "autoland@example.com");
    // Alice's own key, to sign in on the bug page (Bugzilla's Preferences → API Keys).
    sim.add_api_key(DEMO_ALICE_KEY, "alice@example.com");
    std::fs::write(dir.join("bugzilla-key"), format!("{key}\n"))?;
    let url = sim
        .start()
        .await
        .context("cannot start the Bugzilla simulator")?;
    Ok((sim, url))
}

/// Step 6: a developer attaches patches to a bug and tags it; Autoland does the rest.
/// The demo Bugzilla's API key of Alice (scm_level_3), printed for the bug page.
const DEMO_ALICE_KEY: &str = "alice-demo-api-key";

async fn bugzilla_flow(
    sim: &Simulator,
    client: &ApiClient,
    scratch: &Path,
    url: &str,
) -> anyhow::Result<i64> {
    println!("\n6. The Bugzilla way (a simulated Bugzilla 5.3 at {url}):");
    let patches = make_patches(
        scratch,
        &[
            (
                "Bob <bob@example.com>",
                "Bug 1 - Add div() to the calculator",
                "calc.sh",
                "div() { echo $(($1 / $2)); }\n",
                None,
            ),
            (
                "Bob <bob@example.com>",
                "Bug 1 - Test div()",
                "tests/div.sh",
                "check 'div 8 2' \"$(div 8 2)\" 4\n",
                None,
            ),
        ],
    )?;
    let bug = sim.create_bug(NewBug {
        summary: "Add division to the calculator".to_owned(),
        whiteboard: String::new(),
        creator: "bob@example.com".to_owned(),
        private: false,
    });
    for (name, content) in &patches {
        sim.add_attachment(
            bug,
            NewAttachment {
                file_name: name.clone(),
                summary: name.clone(),
                content_type: "text/plain".to_owned(),
                data: content.as_bytes().to_vec(),
                is_patch: true,
                is_obsolete: false,
                is_private: false,
                creator: "bob@example.com".to_owned(),
                flags: vec![NewFlag {
                    name: "review".to_owned(),
                    status: "+".to_owned(),
                    setter: "alice@example.com".to_owned(),
                    requestee: None,
                }],
            },
        );
    }
    sim.set_whiteboard(bug, "[calc] [autoland-central]", "alice@example.com");
    println!(
        "   Bob (no commit level) attached two patches to bug {bug}; Alice (scm_level_3) gave them"
    );
    println!("   review+ and put [autoland-central] on the whiteboard: try first, then central.");
    println!("   Autoland polls Bugzilla every second and finds it:");
    let id = loop {
        let list = client.get("/api/requests?all=true").await?;
        if let Some(id) = list["requests"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["bug"] == bug)
            .and_then(|r| r["id"].as_i64())
        {
            break id;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let outcome = follow(client, &[id]).await?;
    if let Some((_, stage, failure)) = outcome.first() {
        println!(
            "   request {id}: {stage}{}",
            failure
                .as_deref()
                .map(|f| format!(" ({f})"))
                .unwrap_or_default()
        );
    }
    // The comments go out through the outbox, a moment after the state changes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while sim.whiteboard(bug).is_some_and(|w| w.contains("[autoland"))
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "\n   What bug {bug} shows now (whiteboard: {:?}):",
        sim.whiteboard(bug).unwrap_or_default()
    );
    for comment in sim
        .comments(bug)
        .into_iter()
        .filter(|c| c.creator == "autoland@example.com")
    {
        println!("   ---- comment by Autoland ----");
        for line in comment.text.lines() {
            println!("   | {line}");
        }
    }
    Ok(bug)
}

fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        if dir.join(MARKER).exists() {
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("cannot remove the earlier demo in {}", dir.display()))?;
        } else if std::fs::read_dir(dir)?.next().is_some() {
            bail!(
                "{} exists and is not an Autoland demo directory; choose another with --dir",
                dir.display()
            );
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(
        dir.join(MARKER),
        "created by `autoland demo`; removed by the next run\n",
    )?;
    Ok(())
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    git_output(dir, args).map(|_| ())
}

fn git_output(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Demo Setup")
        .env("GIT_AUTHOR_EMAIL", "setup@example.com")
        .env("GIT_COMMITTER_NAME", "Demo Setup")
        .env("GIT_COMMITTER_EMAIL", "setup@example.com")
        .output()
        .context("cannot run git: is it installed?")?;
    if !out.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
}

fn create_sample_project(central: &Path, try_repo: &Path, scratch: &Path) -> anyhow::Result<()> {
    for bare in [central, try_repo] {
        std::fs::create_dir_all(bare)?;
        git(
            bare,
            &["init", "--quiet", "--bare", "--initial-branch=main"],
        )?;
    }
    std::fs::create_dir_all(scratch)?;
    let central_url = central.to_string_lossy().into_owned();
    git(scratch, &["clone", "--quiet", &central_url, "work"])?;
    let work = scratch.join("work");
    git(&work, &["checkout", "--quiet", "-b", "main"])?;
    std::fs::write(work.join("calc.sh"), CALC)?;
    std::fs::write(work.join("test.sh"), TESTS)?;
    std::fs::create_dir_all(work.join("tests"))?;
    std::fs::write(work.join("tests/.keep"), "")?;
    std::fs::write(
        work.join("README"),
        "A sample project for the Autoland demo.\n",
    )?;
    git(&work, &["add", "."])?;
    git(
        &work,
        &["commit", "--quiet", "-m", "Initial calculator with tests"],
    )?;
    git(&work, &["push", "--quiet", "origin", "main"])?;
    Ok(())
}

type PatchSpec<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    Option<(&'a str, &'a str)>,
);

/// Commits changes in the scratch clone and returns them as `git format-patch` output,
/// as a developer would attach them.
fn make_patches(scratch: &Path, specs: &[PatchSpec<'_>]) -> anyhow::Result<Vec<(String, String)>> {
    let work = scratch.join("work");
    git(&work, &["fetch", "--quiet", "origin"])?;
    git(
        &work,
        &["checkout", "--quiet", "--force", "--detach", "origin/main"],
    )?;
    for (author, subject, file, append, replace) in specs {
        let path = work.join(file);
        let mut text = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some((from, to)) = replace {
            text = text.replace(from, to);
        }
        text.push_str(append);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
        git(&work, &["add", "."])?;
        let author_arg = format!("--author={author}");
        git(&work, &["commit", "--quiet", &author_arg, "-m", subject])?;
    }
    let count = format!("-{}", specs.len());
    let out_dir = scratch.join(format!("patches-{}", rand::random::<u32>()));
    let out_text = out_dir.to_string_lossy().into_owned();
    git(&work, &["format-patch", "--quiet", &count, "-o", &out_text])?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&out_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok((name, std::fs::read_to_string(&p)?))
        })
        .collect()
}

async fn submit(
    client: &ApiClient,
    patches: Vec<(String, String)>,
    to: &[&str],
    _what: &str,
) -> anyhow::Result<i64> {
    let patches: Vec<Value> = patches
        .into_iter()
        .map(|(name, content)| json!({ "name": name, "content": content }))
        .collect();
    let created = client
        .post(
            "/api/requests",
            &json!({ "patches": patches, "destinations": to }),
        )
        .await?;
    created["id"]
        .as_i64()
        .context("the server did not return a request id")
}

async fn follow(
    client: &ApiClient,
    ids: &[i64],
) -> anyhow::Result<Vec<(i64, Stage, Option<String>)>> {
    let mut seen = vec![0usize; ids.len()];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let mut done = Vec::new();
        for (index, id) in ids.iter().enumerate() {
            let detail = client.get(&format!("/api/requests/{id}")).await?;
            let events = detail["events"].as_array().cloned().unwrap_or_default();
            for event in events.iter().skip(seen[index]) {
                if event["kind"] == "ci_started"
                    || event["kind"] == "ci_finished"
                    || event["to_stage"].is_string()
                    || event["kind"] == "received"
                {
                    println!("   [request {id}] {}", event_line(event));
                }
            }
            seen[index] = events.len();
            let stage: Stage = serde_json::from_value(detail["request"]["stage"].clone())
                .context("the server returned an unknown stage")?;
            if stage.is_terminal() {
                done.push((
                    *id,
                    stage,
                    detail["request"]["failure"].as_str().map(str::to_owned),
                ));
            }
        }
        if done.len() == ids.len() {
            return Ok(done);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the demo requests did not finish within 5 minutes; see the events above");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn demo_config(
    dir: &Path,
    listen: SocketAddr,
    central: &Path,
    try_repo: &Path,
    token: &str,
) -> anyhow::Result<Config> {
    let mut config = Config {
        listen,
        data_dir: dir.join("data"),
        ..Config::default()
    };
    config.timeouts.poll_interval_ms = 100;
    config.repositories = vec![
        RepoConfig {
            ci_timeout_seconds: 60,
            ..RepoConfig::new(
                "central",
                RepoKind::Git,
                &central.to_string_lossy(),
                "scm_level_3",
            )
        },
        RepoConfig {
            is_try: true,
            base: Some("central".to_owned()),
            ci_command: Some("sh test.sh".to_owned()),
            ci_timeout_seconds: 60,
            ..RepoConfig::new(
                "try",
                RepoKind::Git,
                &try_repo.to_string_lossy(),
                "scm_level_1",
            )
        },
    ];
    config
        .permissions
        .users
        .insert("alice@example.com".to_owned(), "scm_level_3".to_owned());
    config.tokens.push(TokenConfig {
        name: "demo".to_owned(),
        user: "alice@example.com".to_owned(),
        sha256: Some(hash_token(token)),
        env: None,
        service: crate::config::Service::No,
        scope: crate::config::Scope::Operator,
        expires: None,
    });
    config.validate()?;
    Ok(config)
}
