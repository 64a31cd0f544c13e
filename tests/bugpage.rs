//! Landing from the bug page: signing in as a Bugzilla account (API key checked with
//! Bugzilla 5.2's `valid_login` or 5.3's `whoami`), the `/bugs/{id}` page and its Land
//! form (same request as a tag, refused for the same reasons, CSRF and cross-site forms
//! refused), bug data shown as text, restricted bugs not shown, and the Bugzilla
//! extension's client (`contrib/bugzilla`) run for real against the service.

mod common;

use std::process::Command;
use std::time::Duration;

use autoland::simulator::bugzilla::{Flavor, NewAttachment, NewBug, Simulator};
use common::bugzilla::{AUTOLAND, autoland_comments, new_bug, simulator, three_parts};
use common::{Change, Env, Options};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);

fn env_with(url: &str) -> Env {
    Env::new(Options {
        bugzilla: Some(url.to_owned()),
        ..Options::default()
    })
}

/// A browser without redirects, cookies handled by hand.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(LIMIT)
        .build()
        .unwrap()
}

/// Posts the sign-in form `fields`, with an extra header if given.
async fn post_login(
    base: &str,
    fields: &[(&str, &str)],
    header: Option<(&str, &str)>,
) -> reqwest::Response {
    let mut request = browser().post(format!("{base}/login")).form(fields);
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    request.send().await.unwrap()
}

/// Signs in on `/login` with a Bugzilla API key (and login); the status, the session
/// cookie (if one was set) and the page's text.
async fn sign_in(base: &str, key: &str, login: Option<&str>) -> (u16, Option<String>, String) {
    let mut form = vec![("api_key", key), ("next", "/")];
    if let Some(login) = login {
        form.push(("login", login));
    }
    let response = post_login(base, &form, None).await;
    let status = response.status().as_u16();
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    (status, cookie, response.text().await.unwrap())
}

async fn get_page(
    base: &str,
    path: &str,
    cookie: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = browser().get(format!("{base}{path}"));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

/// The CSRF token in a page's forms.
fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("the page has a form with a CSRF token");
    let rest = &html[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// Presses Land: the form as the page sends it.
async fn land(
    base: &str,
    bug: i64,
    cookie: &str,
    fields: &[(&str, String)],
    origin: Option<&str>,
) -> (u16, String) {
    let mut request = browser()
        .post(format!("{base}/bugs/{bug}/land"))
        .header("cookie", cookie)
        .form(fields);
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// A new bug with three independent patches (see `three_parts`).
fn bug_with_three_patches(sim: &Simulator, env: &Env, summary: &str) -> (i64, Vec<i64>) {
    let bug = new_bug(sim, summary);
    (
        bug,
        three_parts(sim, env, bug, |n| format!("part{n}.patch")),
    )
}

#[tokio::test]
async fn people_sign_in_with_their_bugzilla_api_key_on_5_3_and_on_5_2() {
    let (sim, url) = simulator(Flavor::V53).await;
    sim.add_api_key("alice-key", "alice@example.com");
    let env = env_with(&url);
    let running = env.start().await;
    let base = running.api.base.clone();

    // 5.3 / BMO: whoami says whose the key is.
    let (status, cookie, _) = sign_in(&base, "alice-key", None).await;
    assert_eq!(status, 303);
    let alice = cookie.expect("a session cookie");
    let bug = new_bug(&sim, "Signed in");
    let (_, _, alice_page) = get_page(&base, &format!("/bugs/{bug}"), Some(&alice)).await;
    assert!(
        alice_page
            .contains("Signed in as <strong id=\"viewer\">alice@example.com</strong> (Alice)"),
        "{alice_page}"
    );
    // A wrong key is refused with Bugzilla's verdict, and no session starts.
    let (status, cookie, html) = sign_in(&base, "not-a-key", None).await;
    assert_eq!((status, cookie), (401, None));
    assert!(
        html.contains("Bugzilla does not accept this API key"),
        "{html}"
    );
    // A login that is not the key's owner is refused.
    let (status, _, html) = sign_in(&base, "alice-key", Some("bob@example.com")).await;
    assert_eq!(status, 401);
    assert!(
        html.contains("does not belong to the Bugzilla account bob@example.com"),
        "{html}"
    );

    // 5.2: no whoami; valid_login confirms the login given with the key. (A Bugzilla of
    // its own: Autoland asks a server's version once.)
    let (sim52, url52) = simulator(Flavor::V52).await;
    sim52.add_api_key("alice-key", "alice@example.com");
    let env52 = env_with(&url52);
    let running52 = env52.start().await;
    let base52 = running52.api.base.clone();
    let (status, cookie, html) = sign_in(&base52, "alice-key", None).await;
    assert_eq!((status, cookie), (401, None));
    assert!(
        html.contains("enter your Bugzilla login (email) too"),
        "{html}"
    );
    let (status, _, html) = sign_in(&base52, "alice-key", Some("bob@example.com")).await;
    assert_eq!(status, 401);
    assert!(
        html.contains("does not belong to the Bugzilla account bob@example.com"),
        "{html}"
    );
    let (status, cookie, _) = sign_in(&base52, "alice-key", Some("alice@example.com")).await;
    assert_eq!(status, 303);
    let bug52 = new_bug(&sim52, "Signed in on 5.2");
    let (_, _, html) = get_page(&base52, &format!("/bugs/{bug52}"), cookie.as_deref()).await;
    assert!(
        html.contains("alice@example.com</strong> (Alice)"),
        "{html}"
    );
    // On 5.2 the key went as a parameter (5.2 ignores the header); Autoland kept only the
    // login: the key is in no page.
    let log = sim52.request_log();
    let checks: Vec<_> = log
        .iter()
        .filter(|r| r.path == "/rest/valid_login")
        .collect();
    assert!(
        !checks.is_empty() && checks.iter().all(|r| r.auth == "param"),
        "{log:?}"
    );
    assert!(!html.contains("alice-key"));
    running52.service.stop().await;

    // Operator tokens keep working; a Bugzilla session does not operate.
    let operator = [("token", "test-token-operator")];
    let response = post_login(&base, &operator, None).await;
    assert_eq!(response.status().as_u16(), 303);
    let set = response.headers()["set-cookie"].to_str().unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && !set.contains("Secure"),
        "{set}"
    );
    // Behind a proxy that terminates TLS, the cookie is for HTTPS only.
    let response = post_login(&base, &operator, Some(("x-forwarded-proto", "https"))).await;
    assert!(
        response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );
    // A sign-in form posted from another site is refused (no login CSRF).
    let response = post_login(&base, &operator, Some(("origin", "https://evil.example"))).await;
    assert_eq!(response.status().as_u16(), 403);
    assert!(response.headers().get("set-cookie").is_none());
    // After signing in, only paths of this site: no open redirect.
    let response = post_login(
        &base,
        &[
            ("token", "test-token-operator"),
            ("next", "//evil.example/x"),
        ],
        None,
    )
    .await;
    assert_eq!(response.headers()["location"], "/");
    let (_, _, status_html) = get_page(&base, "/", Some(&alice)).await;
    assert!(
        !status_html.contains("/ops/modules/"),
        "operator buttons shown to a Bugzilla session"
    );
    let response = browser()
        .post(format!("{base}/ops/modules/pusher/pause"))
        .header("cookie", &alice)
        .form(&[("csrf", csrf_of(&alice_page))])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("may land bugs but not operate")
    );
    running.service.stop().await;
}

#[tokio::test]
async fn two_of_three_patches_land_from_the_page_as_from_a_tag() {
    let (sim, url) = simulator(Flavor::V53).await;
    sim.add_api_key("alice-key", "alice@example.com");
    let env = env_with(&url);
    let running = env.start().await;
    let base = running.api.base.clone();
    let (bug, ids) = bug_with_three_patches(&sim, &env, "Three parts");
    let (_, cookie, _) = sign_in(&base, "alice-key", None).await;
    let cookie = cookie.unwrap();
    let (status, _, html) = get_page(&base, &format!("/bugs/{bug}"), Some(&cookie)).await;
    assert_eq!(status, 200);
    for id in &ids {
        assert!(
            html.contains(&format!("value=\"{id}\"")),
            "attachment {id} offered: {html}"
        );
    }
    assert!(html.contains("review+ by carol@example.com"));
    let csrf = csrf_of(&html);
    let fields = vec![
        ("csrf", csrf.clone()),
        ("attachment", ids[0].to_string()),
        ("attachment", ids[2].to_string()),
        ("destination", "try".to_owned()),
        ("destination", "central".to_owned()),
        ("try_syntax", "-b o -p all".to_owned()),
    ];
    let (status, body) = land(&base, bug, &cookie, &fields, Some(&base)).await;
    assert_eq!(status, 303, "{body}");

    let (_, bugs) = running.api.get(&format!("/api/bugs/{bug}")).await;
    let id = bugs["requests"][0]["id"]
        .as_i64()
        .expect("a request for the bug");
    let detail = running.api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    assert_eq!(detail["request"]["requester"], "alice@example.com");
    assert_eq!(detail["request"]["source"], "bugzilla");
    assert_eq!(detail["request"]["try_syntax"], "-b o -p all");
    let names: Vec<&str> = detail["patches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            format!("attachment {}: Part 1", ids[0]),
            format!("attachment {}: Part 3", ids[2])
        ]
    );
    let log = env.central_log();
    assert!(
        log.iter().any(|(_, s)| s.contains("Part 1"))
            && log.iter().any(|(_, s)| s.contains("Part 3")),
        "{log:?}"
    );
    assert!(!log.iter().any(|(_, s)| s.contains("Part 2")), "{log:?}");
    // The same comments as for a tagged request.
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let comments = autoland_comments(&sim, bug);
        if comments
            .iter()
            .any(|c| c.contains("Autoland landed request"))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no landing comment: {comments:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The page and the API mark what landed.
    let (_, bugs) = running.api.get(&format!("/api/bugs/{bug}")).await;
    assert_eq!(
        bugs["landed_attachments"],
        serde_json::json!([ids[0], ids[2]])
    );
    assert_eq!(
        bugs["requests"][0]["attachments"],
        serde_json::json!([ids[0], ids[2]])
    );
    let (_, _, html) = get_page(&base, &format!("/bugs/{bug}"), Some(&cookie)).await;
    assert_eq!(html.matches("class=\"landed-mark\"").count(), 2, "{html}");
    running.service.stop().await;
}

#[tokio::test]
async fn the_page_refuses_what_autoland_would_refuse_and_forged_forms() {
    let (sim, url) = simulator(Flavor::V53).await;
    sim.add_api_key("bob-key", "bob@example.com");
    let env = env_with(&url);
    let running = env.start().await;
    let base = running.api.base.clone();
    let (bug, ids) = bug_with_three_patches(&sim, &env, "Not for Bob");
    let (_, cookie, _) = sign_in(&base, "bob-key", None).await;
    let cookie = cookie.unwrap();
    let (_, _, html) = get_page(&base, &format!("/bugs/{bug}"), Some(&cookie)).await;
    // Bob holds scm_level_1: the page says he lacks central's level before he tries.
    assert!(
        html.contains("<span class=\"no\">you do not have it</span>"),
        "{html}"
    );
    let csrf = csrf_of(&html);
    let central = vec![
        ("csrf", csrf.clone()),
        ("attachment", ids[0].to_string()),
        ("destination", "central".to_owned()),
    ];
    let (status, body) = land(&base, bug, &cookie, &central, None).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("the requester bob@example.com (holds scm_level_1 (static table)) does not hold scm_level_3, required by `central`"),
        "{body}"
    );
    // Try alone is his to ask (the patches are Alice's, reviewed by Carol).
    // Forged or stale forms and cross-site posts are refused before anything happens.
    let mut forged = central.clone();
    forged[0].1 = "0".repeat(64);
    assert_eq!(land(&base, bug, &cookie, &forged, None).await.0, 403);
    let (status, body) = land(&base, bug, &cookie, &central, Some("http://evil.example")).await;
    assert_eq!(status, 403);
    assert!(body.contains("another site"), "{body}");
    let response = browser()
        .post(format!("{base}/bugs/{bug}/land"))
        .form(&central)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert!(
        response.text().await.unwrap().contains("sign in first"),
        "a form without a session is told to sign in"
    );
    // The same attachment twice is refused, as the tag grammar would not have it.
    let twice = vec![
        ("csrf", csrf.clone()),
        ("attachment", ids[0].to_string()),
        ("attachment", ids[0].to_string()),
        ("destination", "try".to_owned()),
    ];
    let (status, body) = land(&base, bug, &cookie, &twice, None).await;
    assert_eq!(status, 400);
    assert!(
        body.contains(&format!("attachment {} is named twice", ids[0])),
        "{body}"
    );
    // An attachment that is not one of the bug's current patches.
    let other = vec![
        ("csrf", csrf.clone()),
        ("attachment", "999999".to_owned()),
        ("destination", "try".to_owned()),
    ];
    let (status, body) = land(&base, bug, &cookie, &other, None).await;
    assert_eq!(status, 400);
    assert!(
        body.contains("attachment 999999 is not a current patch"),
        "{body}"
    );
    let (_, list) = running.api.get("/api/requests?all=true").await;
    assert_eq!(
        list["requests"].as_array().unwrap().len(),
        0,
        "nothing was created: {list}"
    );

    // What he may do, he may: try only.
    let try_only = vec![
        ("csrf", csrf),
        ("attachment", ids[1].to_string()),
        ("destination", "try".to_owned()),
    ];
    let (status, body) = land(&base, bug, &cookie, &try_only, None).await;
    assert_eq!(status, 303, "{body}");
    let (_, bugs) = running.api.get(&format!("/api/bugs/{bug}")).await;
    assert_eq!(bugs["requests"][0]["requester"], "bob@example.com");
    assert_eq!(bugs["requests"][0]["destinations"], serde_json::json!([]));
    running.service.stop().await;
}

#[tokio::test]
async fn bug_data_is_shown_as_text_and_restricted_bugs_not_at_all() {
    let (sim, url) = simulator(Flavor::V52).await;
    let env = env_with(&url);
    let running = env.start().await;
    let base = running.api.base.clone();
    let bug = sim.create_bug(NewBug {
        summary: "<script>alert('summary')</script> crash".to_owned(),
        whiteboard: String::new(),
        creator: "alice@example.com".to_owned(),
        private: false,
    });
    sim.add_attachment(
        bug,
        NewAttachment {
            file_name: "<img src=x onerror=alert(1)>.patch".to_owned(),
            summary: "\"><script>alert('attachment')</script>".to_owned(),
            content_type: "text/plain".to_owned(),
            data: b"diff --git a/x b/x\n".to_vec(),
            is_patch: true,
            is_obsolete: false,
            is_private: false,
            creator: "mallory\"<b>@example.com".to_owned(),
            flags: Vec::new(),
        },
    );
    let (status, headers, html) = get_page(&base, &format!("/bugs/{bug}"), None).await;
    assert_eq!(status, 200);
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(!html.contains("<img src=x"), "{html}");
    assert!(!html.contains("\"><script>"), "{html}");
    // Every character that could open markup or leave an attribute is an entity.
    assert!(
        html.contains("&#60;script&#62;alert(&#39;summary&#39;)&#60;/script&#62; crash"),
        "{html}"
    );
    assert!(
        html.contains("&#60;img src=x onerror=alert(1)&#62;.patch"),
        "{html}"
    );
    assert!(
        html.contains("mallory&#34;&#60;b&#62;@example.com"),
        "{html}"
    );
    // Only Autoland's own script may run; no page may be framed.
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["cache-control"], "no-store");
    // Reloading (or a visitor looping) does not cost Autoland's Bugzilla account a call
    // each time: the page's read is kept a few seconds.
    let reads = |sim: &Simulator| {
        sim.request_log()
            .iter()
            .filter(|r| r.path == format!("/rest/bug/{bug}"))
            .count()
    };
    let before = reads(&sim);
    for _ in 0..5 {
        assert_eq!(get_page(&base, &format!("/bugs/{bug}"), None).await.0, 200);
    }
    assert_eq!(
        reads(&sim),
        before,
        "the bug was read again within the cache's lifetime"
    );
    // Not signed in: no Land button, a way to sign in.
    assert!(!html.contains("id=\"land-button\""));
    assert!(html.contains(&format!("href=\"/login?next=/bugs/{bug}\"")));

    // A bug restricted to a group shows nothing of itself, even though Autoland's account
    // (an insider here) can read it.
    sim.add_user(AUTOLAND, "Autoland", true);
    let secret = sim.create_bug(NewBug {
        summary: "Secret vulnerability".to_owned(),
        whiteboard: String::new(),
        creator: "alice@example.com".to_owned(),
        private: true,
    });
    sim.add_api_key("alice-key", "alice@example.com");
    let (_, cookie, _) = sign_in(&base, "alice-key", Some("alice@example.com")).await;
    let cookie = cookie.expect("signed in");
    let (status, _, html) = get_page(&base, &format!("/bugs/{secret}"), Some(&cookie)).await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"restricted\""), "{html}");
    assert!(!html.contains("Secret vulnerability"), "{html}");
    // Nor can it be landed from the page (its people land it from Bugzilla).
    let (_, _, public) = get_page(&base, &format!("/bugs/{bug}"), Some(&cookie)).await;
    let fields = vec![
        ("csrf", csrf_of(&public)),
        ("destination", "try".to_owned()),
    ];
    let (status, body) = land(&base, secret, &cookie, &fields, None).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("is restricted (insiders)"), "{body}");
    assert!(!body.contains("Secret vulnerability"), "{body}");
    // Bad bug numbers are a clear error.
    let (status, _, body) = get_page(&base, "/bugs/x1", None).await;
    assert_eq!(status, 400);
    assert!(body.contains("is not a bug number"), "{body}");
    running.service.stop().await;
}

/// The extension's Perl compiles against stubs of the Bugzilla interfaces it uses.
#[test]
fn the_bugzilla_extension_compiles() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/bugzilla");
    let output = Command::new("bash")
        .arg("t/compile.sh")
        .current_dir(&dir)
        .output()
        .expect("bash runs");
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The extension's HTTP client, run for real: it reads the bug's status from Autoland's
/// API and submits with the service token on behalf of the logged-in user; a wrong token
/// is refused with a message that does not echo it.
#[tokio::test]
async fn the_extensions_client_submits_for_the_logged_in_user() {
    let (sim, url) = simulator(Flavor::V53).await;
    let env = env_with(&url);
    let running = env.start().await;
    let base = running.api.base.clone();
    let (bug, _) = bug_with_three_patches(&sim, &env, "From the extension");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/bugzilla");
    let run = |args: Vec<String>| {
        let dir = dir.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                Command::new("perl")
                    .arg("t/client.pl")
                    .args(&args)
                    .current_dir(&dir)
                    .output()
                    .expect("perl runs")
            })
            .await
            .unwrap()
        }
    };
    // The token the extension's README recommends: `service = "bugs"`.
    let output = run(vec![
        base.clone(),
        "test-token-bugs".into(),
        bug.to_string(),
        "carol@example.com".into(),
        "try".into(),
        "central".into(),
    ])
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: Value = serde_json::from_slice(&output.stdout).expect("client.pl prints JSON");
    assert_eq!(answer["status"]["bug"], bug, "{answer}");
    assert!(answer["status"]["destinations"].as_array().unwrap().len() >= 2);
    let id = answer["submitted"]["id"].as_i64().expect("an id");
    let detail = running.api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    assert_eq!(detail["request"]["requester"], "carol@example.com");

    let output = run(vec!["--bad-token".into(), base.clone(), bug.to_string()]).await;
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(text.contains("not valid"), "{text}");
    assert!(!text.contains("wrong"), "the token is echoed: {text}");

    // That token names requesters only for bugs: it cannot submit made-up patches as
    // someone else, nor cancel an API request of someone else.
    let bugs_only = common::Api::new(&base, "test-token-bugs");
    let patches = env.patches(&[Change {
        author: "Carol <carol@example.com>",
        subject: "Made up",
        files: &[("src/made-up.txt", "x\n")],
    }]);
    let (status, answer) = bugs_only
        .post(
            "/api/requests",
            &serde_json::json!({"patches": [{"content": patches[0]}], "destinations": ["try", "central"], "requester": "carol@example.com"}),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("only in requests for a bug"),
        "{answer}"
    );
    let api_request = running
        .api
        .submit(&patches, &["try"], serde_json::json!({}))
        .await;
    let (status, _) = bugs_only
        .post(
            &format!("/api/requests/{api_request}/cancel"),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 403);
    running.service.stop().await;
}
