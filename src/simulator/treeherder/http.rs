//! The HTTP surface: faults, Django's user-agent block (`CommonMiddleware` with
//! Treeherder's `DISALLOWED_USER_AGENTS`), URL routing (`treeherder/webapp/api/urls.py`,
//! `APPEND_SLASH = False`), Django REST framework's content negotiation and
//! `AcceptHeaderVersioning` (`ALLOWED_VERSIONS = ("1.0",)`), the anonymous-write refusal
//! of `IsAuthenticatedOrReadOnly`, the request log, and the simulator's own log files.
//! Each request is answered under the state lock, after the `Slow` fault's sleep.

use axum::body::Body as HttpBody;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;

use super::jobs;
use super::push;
use super::state::{HOSTED_LOG_PREFIX, Shared, State, lock, valid_project_name};
use super::types::{Fault, LoggedRequest};
use super::wire::{Body, Ctx, QueryParams, Reply, unquote};

// ----- the user agent -----

/// Whether a `User-Agent` matches one of Treeherder's `DISALLOWED_USER_AGENTS` (each a
/// regular expression searched from the start): the defaults of scripting libraries. A
/// request without the header is not checked (`CommonMiddleware` only looks at a present
/// one).
fn disallowed_user_agent(agent: &str) -> bool {
    // re.compile(r"^Go 1.1 package http"): the '.' matches any character but a newline.
    let old_go = agent.strip_prefix("Go 1").is_some_and(|rest| {
        let mut chars = rest.chars();
        chars.next().is_some_and(|c| c != '\n') && chars.as_str().starts_with("1 package http")
    });
    old_go
        || [
            "Go-http-client/",
            "libcurl/",
            "Python-urllib/",
            "python-requests/",
        ]
        .iter()
        .any(|prefix| agent.starts_with(prefix))
}

/// A header as Django sees it in `request.META` (ISO-8859-1 decoded).
fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| v.as_bytes().iter().map(|&b| char::from(b)).collect())
}

// ----- routing -----

/// An endpoint of the simulated API.
enum Route {
    PushList(String),
    PushDetail(String, String),
    ProjectJobs(String),
    ProjectJob(String, String),
    JobLogUrls(String),
    /// Any project's log: the view ignores the project.
    JobLogUrl(String),
    Jobs,
}

/// Where a path leads.
enum Resolved {
    Api(Route),
    /// A real Treeherder endpoint the simulator does not answer.
    NotSimulated(String),
    /// No URL pattern matches: Django's 404 page.
    NoMatch,
}

/// Project-bound routes of `project_bound_router` the simulator does not answer.
const OTHER_PROJECT_ROUTES: [&str; 7] = [
    "hash",
    "investigated-tests",
    "note",
    "classification",
    "bug-job-map",
    "performance",
    "seta",
];

/// Routes of `default_router` and `urlpatterns` the simulator does not answer.
const OTHER_ROUTES: [&str; 20] = [
    "repository",
    "taskclustermetadata",
    "optioncollectionhash",
    "failureclassification",
    "bugzilla-component",
    "user",
    "machineplatforms",
    "performance",
    "bugzilla",
    "auth",
    "changelog",
    "groupsummary",
    "failures",
    "failuresbybug",
    "failurecount",
    "infracompare",
    "perfcompare",
    "csp-report",
    "schema",
    "internal_issue",
];

/// A router detail id: `[^/.]+`.
fn lookup(segment: &str) -> bool {
    !segment.is_empty() && !segment.contains('.')
}

fn resolve(path: &str) -> Resolved {
    let Some(rest) = path.strip_prefix("/api/") else {
        return Resolved::NoMatch;
    };
    if rest.is_empty() {
        return Resolved::NotSimulated("the API root (/api/)".to_owned());
    }
    // Every route ends with a slash (APPEND_SLASH = False: no redirect to it either).
    let Some(rest) = rest.strip_suffix('/') else {
        return Resolved::NoMatch;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let owned = |s: &str| s.to_owned();
    match segments.as_slice() {
        ["project", project, tail @ ..] => {
            if !valid_project_name(project) {
                return Resolved::NoMatch;
            }
            let project = owned(project);
            match tail {
                ["push"] => Resolved::Api(Route::PushList(project)),
                ["push", action]
                    if [
                        "health_summary",
                        "health_usage",
                        "health",
                        "decisiontask",
                        "group_results",
                    ]
                    .contains(action) =>
                {
                    Resolved::NotSimulated(format!("/push/{action}/"))
                }
                ["push", pk] if lookup(pk) => Resolved::Api(Route::PushDetail(project, owned(pk))),
                ["push", pk, "status"] if lookup(pk) => {
                    Resolved::NotSimulated("/push/<id>/status/".to_owned())
                }
                ["jobs"] => Resolved::Api(Route::ProjectJobs(project)),
                ["jobs", pk] if lookup(pk) => Resolved::Api(Route::ProjectJob(project, owned(pk))),
                ["jobs", pk, action]
                    if lookup(pk)
                        && [
                            "text_log_steps",
                            "text_log_errors",
                            "bug_suggestions",
                            "similar_jobs",
                        ]
                        .contains(action) =>
                {
                    Resolved::NotSimulated(format!("/jobs/<id>/{action}/"))
                }
                ["job-log-url"] => Resolved::Api(Route::JobLogUrls(project)),
                ["job-log-url", pk] if lookup(pk) => Resolved::Api(Route::JobLogUrl(owned(pk))),
                [first, ..] if OTHER_PROJECT_ROUTES.contains(first) => {
                    Resolved::NotSimulated(format!("/api/project/<project>/{first}/"))
                }
                _ => Resolved::NoMatch,
            }
        }
        ["jobs"] => Resolved::Api(Route::Jobs),
        ["jobs", pk] if lookup(pk) => Resolved::NotSimulated("/api/jobs/<id>/".to_owned()),
        [first, ..] if OTHER_ROUTES.contains(first) => {
            Resolved::NotSimulated(format!("/api/{first}/"))
        }
        _ => Resolved::NoMatch,
    }
}

// ----- content negotiation -----

/// Django REST framework's `_MediaType`: the type (lowercased) and its parameters.
struct MediaType {
    main_type: String,
    sub_type: String,
    params: Vec<(String, String)>,
}

impl MediaType {
    /// `parse_header_parameters`: `type/subtype; key=value; ...`, keys lowercased, values
    /// unquoted.
    fn parse(text: &str) -> MediaType {
        let mut parts = text.split(';');
        let full_type = parts.next().unwrap_or_default().trim().to_lowercase();
        let params = parts
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v);
                Some((k.trim().to_lowercase(), v.to_owned()))
            })
            .collect();
        let (main_type, sub_type) = full_type
            .split_once('/')
            .map(|(m, s)| (m.to_owned(), s.to_owned()))
            .unwrap_or((full_type.clone(), String::new()));
        MediaType {
            main_type,
            sub_type,
            params,
        }
    }

    fn precedence(&self) -> usize {
        if self.main_type == "*" {
            0
        } else if self.sub_type == "*" {
            1
        } else if self.params.is_empty() || self.params.iter().all(|(k, _)| k == "q") {
            2
        } else {
            3
        }
    }

    /// Whether `JSONRenderer`'s "application/json" satisfies this client media type.
    fn accepts_json(&self) -> bool {
        (self.sub_type == "*" || self.sub_type == "json")
            && (self.main_type == "*" || self.main_type == "application")
    }

    fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// `DefaultContentNegotiation.select_renderer` with the one renderer Treeherder has
/// (`JSONRenderer`), then `AcceptHeaderVersioning.determine_version`. The media type the
/// answer is rendered as (its `Content-Type`), or the error answer and its media type.
fn negotiate(accept: Option<&str>, query: &QueryParams) -> Result<String, (Reply, String)> {
    let json = "application/json".to_owned();
    if let Some(format) = query.get("format").filter(|f| !f.is_empty())
        && format != "json"
    {
        return Err((Reply::detail(404, "Not found."), json));
    }
    let tokens: Vec<&str> = accept.unwrap_or("*/*").split(',').map(str::trim).collect();
    let mut chosen = None;
    for precedence in [3, 2, 1, 0] {
        chosen = tokens.iter().find_map(|token| {
            let media = MediaType::parse(token);
            (media.precedence() == precedence && media.accepts_json()).then(|| {
                if media.precedence() < 2 {
                    let mut full = json.clone();
                    for (k, v) in &media.params {
                        full.push_str(&format!(";{k}={v}"));
                    }
                    full
                } else {
                    (*token).to_owned()
                }
            })
        });
        if chosen.is_some() {
            break;
        }
    }
    let Some(media_type) = chosen else {
        return Err((
            Reply::detail(406, "Could not satisfy the request Accept header."),
            json,
        ));
    };
    let version = MediaType::parse(&media_type)
        .param("version")
        .unwrap_or("1.0")
        .to_owned();
    if version != "1.0" {
        return Err((
            Reply::detail(406, "Invalid version in \"Accept\" header."),
            media_type,
        ));
    }
    Ok(media_type)
}

// ----- answering -----

/// An answer with the headers that go with it.
struct Answer {
    reply: Reply,
    /// The `Content-Type` of a JSON body.
    media_type: String,
    /// Answered by a Django REST framework view (which adds `Allow`).
    drf: bool,
}

impl Answer {
    fn django(reply: Reply) -> Answer {
        Answer {
            reply,
            media_type: "application/json".to_owned(),
            drf: false,
        }
    }
}

struct Request<'a> {
    method: &'a Method,
    path: &'a str,
    raw_query: &'a str,
    user_agent: Option<&'a str>,
    accept: Option<&'a str>,
    base: &'a str,
}

fn answer_request(state: &State, request: &Request) -> Answer {
    if request.user_agent.is_some_and(disallowed_user_agent) {
        return Answer::django(Reply::forbidden_page());
    }
    let path = unquote(request.path);
    let read = *request.method == Method::GET || *request.method == Method::HEAD;
    if let Some(rest) = path.strip_prefix(HOSTED_LOG_PREFIX) {
        let text = rest
            .strip_suffix("/live_backing.log")
            .and_then(|id| id.parse::<i64>().ok())
            .and_then(|id| state.hosted_log(id))
            .filter(|_| read);
        return Answer::django(match text {
            Some(text) => Reply {
                status: 200,
                body: Body::Text(text.to_owned()),
            },
            None => Reply::not_found(),
        });
    }
    let route = match resolve(&path) {
        Resolved::NoMatch => return Answer::django(Reply::not_found()),
        Resolved::NotSimulated(what) => {
            return Answer::django(Reply::not_simulated(&what));
        }
        Resolved::Api(route) => route,
    };
    let query = QueryParams::parse(request.raw_query);
    let media_type = match negotiate(request.accept, &query) {
        Ok(media_type) => media_type,
        Err((reply, media_type)) => {
            return Answer {
                reply,
                media_type,
                drf: true,
            };
        }
    };
    let reply = if *request.method == Method::OPTIONS {
        Reply::not_simulated("OPTIONS (Django REST framework's metadata)")
    } else if !read {
        // IsAuthenticatedOrReadOnly, with no credentials (the simulator has no users).
        Reply::detail(403, "Authentication credentials were not provided.")
    } else {
        let absolute_uri = if request.raw_query.is_empty() {
            format!("{}{}", request.base, request.path)
        } else {
            format!("{}{}?{}", request.base, request.path, request.raw_query)
        };
        let ctx = Ctx {
            query: &query,
            base: request.base,
            absolute_uri: &absolute_uri,
        };
        match &route {
            Route::PushList(project) => push::list(state, project, &query),
            Route::PushDetail(project, pk) => push::retrieve(state, project, pk),
            Route::ProjectJobs(project) => jobs::project_list(state, project, &query),
            Route::ProjectJob(project, pk) => jobs::project_retrieve(state, project, pk, &ctx),
            Route::JobLogUrls(project) => jobs::log_url_list(state, project, &ctx),
            Route::JobLogUrl(pk) => jobs::log_url_retrieve(state, pk, &ctx),
            Route::Jobs => jobs::list(state, &ctx),
        }
    };
    // Exceptions in views are Django's 500 page, not a Django REST framework answer.
    let drf = matches!(reply.body, Body::Json(_));
    Answer {
        reply,
        media_type,
        drf,
    }
}

fn response(answer: Answer) -> Response {
    let Answer {
        reply,
        media_type,
        drf,
    } = answer;
    let (content_type, text) = match reply.body {
        Body::Json(text) => (media_type, text),
        Body::Html(text) => ("text/html; charset=utf-8".to_owned(), text),
        Body::Text(text) => ("text/plain; charset=utf-8".to_owned(), text),
    };
    let mut response = Response::new(HttpBody::from(text));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    if drf {
        headers.insert(
            header::ALLOW,
            HeaderValue::from_static("GET, HEAD, OPTIONS"),
        );
    }
    // SecurityMiddleware and XFrameOptionsMiddleware, on every answer.
    headers.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("origin-when-cross-origin"),
    );
    response
}

enum Before {
    Proceed,
    Sleep(std::time::Duration),
    Fail(u16),
}

/// The fault to apply to this request; counts a limited `ServerError` down.
fn take_fault(state: &mut State) -> Before {
    match &mut state.fault {
        Fault::None => Before::Proceed,
        Fault::Slow(duration) => Before::Sleep(*duration),
        Fault::ServerError { status, remaining } => {
            let status = *status;
            match remaining {
                None => Before::Fail(status),
                Some(0) => {
                    state.fault = Fault::None;
                    Before::Proceed
                }
                Some(n) => {
                    *n -= 1;
                    if *n == 0 {
                        state.fault = Fault::None;
                    }
                    Before::Fail(status)
                }
            }
        }
    }
}

fn fault_reply(status: u16) -> Reply {
    if status == 500 {
        return Reply::server_error();
    }
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    Reply {
        status,
        body: Body::Text(format!("{status} {reason}\n")),
    }
}

/// The axum handler for every request.
pub(super) async fn serve(
    AxState(shared): AxState<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path().to_owned();
    let raw_query = uri.query().unwrap_or_default().to_owned();
    let user_agent = header_text(&headers, header::USER_AGENT);
    let accept = header_text(&headers, header::ACCEPT);
    let host = header_text(&headers, header::HOST);
    let log = |state: &mut State, status: u16| {
        state.log.push(LoggedRequest {
            method: method.to_string(),
            path: path.clone(),
            query: raw_query.clone(),
            status,
            user_agent: user_agent.clone(),
            accept: accept.clone(),
        });
    };

    let before = take_fault(&mut lock(&shared));
    let answer = match before {
        Before::Proceed => None,
        Before::Sleep(duration) => {
            tokio::time::sleep(duration).await;
            None
        }
        Before::Fail(status) => Some(Answer::django(fault_reply(status))),
    };
    let mut state = lock(&shared);
    let answer = answer.unwrap_or_else(|| {
        let base = match &host {
            Some(host) => format!("http://{host}"),
            None => state.base_url.clone(),
        };
        answer_request(
            &state,
            &Request {
                method: &method,
                path: &path,
                raw_query: &raw_query,
                user_agent: user_agent.as_deref(),
                accept: accept.as_deref(),
                base: &base,
            },
        )
    });
    log(&mut state, answer.reply.status);
    drop(state);
    response(answer)
}
