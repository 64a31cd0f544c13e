//! The REST surface: routing, authentication, faults, the request log, and the
//! endpoints. Each request is answered synchronously under the state lock (after the
//! `Slow` fault's sleep), so requests are serialised like a single-process Bugzilla.

use axum::body::{Body, Bytes};
use axum::extract::{Query, State as AxState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::rest::{ApiError, ApiResult, Ctx, bug_object};
use super::state::Shared;
use super::state::{self, Attachment, Bug, BugField, State, StoredComment, User, format_time};
use super::types::{Fault, Flavor, LoggedRequest};

// ----- serving -----

/// The Bugzilla path (Bugzilla's `path_info`) of a request under `/rest` or `/rest.cgi`.
fn rest_path(path: &str) -> Option<&str> {
    ["/rest.cgi", "/rest"].into_iter().find_map(|prefix| {
        let rest = path.strip_prefix(prefix)?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query string for the log: every API key value replaced by "REDACTED".
pub(super) fn redact_query(raw: &str) -> String {
    if raw.is_empty() {
        return String::new();
    }
    raw.split('&')
        .map(|part| {
            let key = part.split('=').next().unwrap_or_default();
            let name = percent_decode(&key.replace('+', " "));
            if name.eq_ignore_ascii_case("api_key") || name.eq_ignore_ascii_case("Bugzilla_api_key")
            {
                format!("{key}=REDACTED")
            } else {
                part.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The API key a request presents and where it comes from, in Bugzilla's precedence: query
/// string, then JSON body (POST/PUT), then (5.3 only) the `X-BUGZILLA-API-KEY` header.
fn presented_key(
    flavor: Flavor,
    query: &[(String, String)],
    body: Option<&Map<String, Value>>,
    headers: &HeaderMap,
) -> (Option<String>, &'static str) {
    for name in ["Bugzilla_api_key", "api_key"] {
        if let Some((_, v)) = query.iter().find(|(k, v)| k == name && !v.is_empty()) {
            return (Some(v.clone()), "param");
        }
    }
    if let Some(body) = body {
        for name in ["Bugzilla_api_key", "api_key"] {
            if let Some(Value::String(v)) = body.get(name)
                && !v.is_empty()
            {
                return (Some(v.clone()), "body");
            }
        }
    }
    if flavor == Flavor::V53
        && let Some(v) = headers
            .get("x-bugzilla-api-key")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
    {
        return (Some(v.to_owned()), "header");
    }
    (None, "none")
}

fn parse_body(method: &Method, body: &Bytes) -> Result<Option<Map<String, Value>>, ApiError> {
    if method != Method::POST && method != Method::PUT {
        return Ok(None);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let invalid = |detail: String| {
        ApiError::new(
            32000,
            format!("Could not parse the 'params' argument as valid JSON. Error: {detail}"),
        )
    };
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err(invalid("the body is not a JSON object".to_owned())),
        Err(error) => Err(invalid(error.to_string())),
    }
}

fn text_response(status: u16, text: &'static str) -> Response {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn json_response(status: u16, body: &Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
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
        Fault::None | Fault::InvalidKey => Before::Proceed,
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

/// The axum handler for every request.
pub(super) async fn serve(
    AxState(sim): AxState<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let raw_query = uri.query().unwrap_or_default().to_owned();
    let log = |state: &mut State, status: u16, auth: &'static str| {
        state.log.push(LoggedRequest {
            method: method.to_string(),
            path: path.clone(),
            query: redact_query(&raw_query),
            status,
            auth,
            user_agent: headers
                .get(axum::http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
        });
    };
    let Some(path_info) = rest_path(&path).map(percent_decode) else {
        log(&mut state::lock(&sim), 404, "none");
        return text_response(404, "Not Found");
    };
    let query: Vec<(String, String)> = Query::try_from_uri(&uri)
        .map(|Query(pairs)| pairs)
        .unwrap_or_default();

    let before = take_fault(&mut state::lock(&sim));
    match before {
        Before::Proceed => {}
        Before::Sleep(duration) => tokio::time::sleep(duration).await,
        Before::Fail(status) => {
            let mut state = state::lock(&sim);
            let body = parse_body(&method, &body).ok().flatten();
            let (_, auth) = presented_key(state.flavor, &query, body.as_ref(), &headers);
            log(&mut state, status, auth);
            return text_response(status, "Internal Server Error");
        }
    }

    let mut state = state::lock(&sim);
    let flavor = state.flavor;
    let mut auth = presented_key(flavor, &query, None, &headers).1;
    let result = handle(
        &mut state, &method, &path_info, &query, &headers, &body, &mut auth,
    );
    let (status, value) = match result {
        Ok(answer) => answer,
        Err(error) => (error.status(), error.body(flavor)),
    };
    log(&mut state, status, auth);
    drop(state);
    json_response(status, &value)
}

// ----- routing -----

enum Route {
    Version,
    Whoami,
    ValidLogin,
    User,
    Search,
    GetBug(String),
    UpdateBug(String),
    BugAttachments(String),
    Attachment(String),
    BugComments(String),
    AddComment(String),
    Comment(String),
    History(String),
}

fn route(method: &Method, path_info: &str, flavor: Flavor) -> Option<Route> {
    let rest = path_info.strip_prefix('/')?;
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return None;
    }
    let get = method == Method::GET;
    let owned = |s: &str| s.to_owned();
    match segments.as_slice() {
        ["version"] if get => Some(Route::Version),
        ["whoami"] if get && flavor == Flavor::V53 => Some(Route::Whoami),
        ["valid_login"] if get => Some(Route::ValidLogin),
        ["user"] if get => Some(Route::User),
        ["bug"] if get => Some(Route::Search),
        ["bug", "attachment", id] if get => Some(Route::Attachment(owned(id))),
        ["bug", "comment", id] if get => Some(Route::Comment(owned(id))),
        ["bug", id] if get => Some(Route::GetBug(owned(id))),
        ["bug", id] if method == Method::PUT => Some(Route::UpdateBug(owned(id))),
        ["bug", id, "attachment"] if get => Some(Route::BugAttachments(owned(id))),
        ["bug", id, "comment"] if get => Some(Route::BugComments(owned(id))),
        ["bug", id, "comment"] if method == Method::POST => Some(Route::AddComment(owned(id))),
        ["bug", id, "history"] if get => Some(Route::History(owned(id))),
        _ => None,
    }
}

fn handle(
    state: &mut State,
    method: &Method,
    path_info: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
    body: &Bytes,
    auth: &mut &'static str,
) -> ApiResult {
    let flavor = state.flavor;
    let route =
        route(method, path_info, flavor).ok_or_else(|| ApiError::not_found(method, path_info))?;
    let body = parse_body(method, body)?;
    let (key, source) = presented_key(flavor, query, body.as_ref(), headers);
    *auth = source;
    let viewer = match key {
        None => None,
        Some(key) => {
            let user = match state.fault {
                Fault::InvalidKey => None,
                _ => state.user_by_key(&key),
            };
            Some(user.ok_or_else(|| {
                ApiError::new(
                    306,
                    "The API key you specified is invalid. Please check that you typed it correctly.",
                )
            })?)
        }
    };
    let ctx = Ctx {
        query,
        body,
        viewer,
        flavor,
    };
    match route {
        Route::Version => Ok((200, json!({ "version": flavor.version() }))),
        Route::Whoami => whoami(&ctx),
        Route::ValidLogin => valid_login(&ctx),
        Route::User => users(state, &ctx),
        Route::Search => super::search::search(state, &ctx).map(|v| (200, v)),
        Route::GetBug(id) => get_bug(state, &ctx, &id),
        Route::UpdateBug(id) => update_bug(state, &ctx, &id),
        Route::BugAttachments(id) => bug_attachments(state, &ctx, &id),
        Route::Attachment(id) => attachment(state, &ctx, &id),
        Route::BugComments(id) => bug_comments(state, &ctx, &id),
        Route::AddComment(id) => add_comment(state, &ctx, &id),
        Route::Comment(id) => comment(state, &ctx, &id),
        Route::History(id) => history(state, &ctx, &id),
    }
}

// ----- shared checks and shapes -----

/// `Bugzilla::Bug->check`: the bug a path or parameter names, if it exists and the viewer
/// may see it.
fn check_bug<'s>(state: &'s State, viewer: Option<&User>, id: &str) -> Result<&'s Bug, ApiError> {
    let id = id.trim();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        // No aliases are defined here, so every non-number is an unknown alias.
        return Err(ApiError::invalid_bug_id(id));
    }
    let bug = id
        .parse::<i64>()
        .ok()
        .and_then(|n| state.bugs.get(&n))
        .ok_or_else(|| ApiError::new(101, format!("Bug #{id} does not exist.")))?;
    if !State::can_see_bug(viewer, bug) {
        return Err(ApiError::new(
            102,
            format!("You are not authorized to access bug #{}.", bug.id),
        ));
    }
    Ok(bug)
}

fn attachment_object(ctx: &Ctx, a: &Attachment) -> Map<String, Value> {
    let flags: Vec<Value> = a
        .flags
        .iter()
        .map(|f| {
            let mut flag = json!({
                "id": f.id,
                "type_id": f.type_id,
                "name": f.name,
                "status": f.status,
                "setter": f.setter,
                "creation_date": format_time(f.creation_date),
                "modification_date": format_time(f.modification_date),
            });
            if let (Some(requestee), Some(map)) = (&f.requestee, flag.as_object_mut()) {
                map.insert("requestee".to_owned(), json!(requestee));
            }
            flag
        })
        .collect();
    let value = json!({
        "id": a.id,
        "bug_id": a.bug_id,
        "file_name": a.file_name,
        "summary": a.summary,
        "content_type": a.content_type,
        "is_patch": ctx.boolean(a.is_patch),
        "is_obsolete": ctx.boolean(a.is_obsolete),
        "is_private": ctx.boolean(a.is_private),
        "size": a.data.len(),
        "creator": a.creator,
        "creation_time": format_time(a.creation_time),
        "last_change_time": format_time(a.last_change_time),
        "data": base64::engine::general_purpose::STANDARD.encode(&a.data),
        "flags": flags,
    });
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn comment_object(c: &StoredComment) -> Map<String, Value> {
    let value = json!({
        "id": c.id,
        "bug_id": c.bug_id,
        "attachment_id": c.attachment_id,
        "count": c.count,
        "text": c.text,
        "creator": c.creator,
        "time": format_time(c.time),
        "creation_time": format_time(c.time),
        "is_private": c.is_private,
        "tags": [],
    });
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn new_since(ctx: &Ctx) -> Result<Option<DateTime<Utc>>, ApiError> {
    match ctx.query_first("new_since") {
        None => Ok(None),
        Some(text) => state::parse_time(text)
            .map(Some)
            .ok_or_else(|| ApiError::illegal_date(text)),
    }
}

// ----- endpoints -----

fn whoami(ctx: &Ctx) -> ApiResult {
    let user = ctx.require_login()?;
    Ok((
        200,
        json!({
            "id": user.id,
            "real_name": user.real_name,
            "name": user.email,
            "login": user.email,
        }),
    ))
}

/// `User.valid_login` (5.0 and later): whether the caller is logged in as exactly `login`
/// (Bugzilla compares the login names with `eq`).
fn valid_login(ctx: &Ctx) -> ApiResult {
    let login = ctx
        .query_first("login")
        .ok_or_else(|| ApiError::param_required("User.valid_login", "login"))?;
    let valid = ctx.viewer().is_some_and(|v| v.email == login);
    Ok((200, json!({ "result": valid })))
}

/// `User.get` by `names`: anonymous callers get id, real_name and name; logged-in callers
/// also email and can_login. An unknown name is error 51.
fn users(state: &State, ctx: &Ctx) -> ApiResult {
    let names = ctx.query_all("names");
    if names.is_empty() {
        return Err(ApiError::new(
            50,
            "The function User.get requires that you set one of the following parameters: ids, names, match",
        ));
    }
    let mut out = Vec::new();
    for name in names {
        let user = state.users.iter().find(|u| u.email == name).ok_or_else(|| {
            ApiError::new(
                51,
                format!(
                    "There is no user named '{name}'. Either you mis-typed the name or that user has not yet registered for a Bugzilla account."
                ),
            )
        })?;
        let mut object = json!({ "id": user.id, "real_name": user.real_name, "name": user.email });
        if ctx.viewer().is_some()
            && let Some(map) = object.as_object_mut()
        {
            map.insert("email".to_owned(), json!(user.email));
            map.insert("can_login".to_owned(), json!(true));
        }
        out.push(object);
    }
    Ok((200, json!({ "users": out })))
}

fn get_bug(state: &State, ctx: &Ctx, id: &str) -> ApiResult {
    let bug = check_bug(state, ctx.viewer(), id)?;
    let object = ctx.fields().apply(bug_object(bug));
    Ok((200, json!({ "bugs": [object], "faults": [] })))
}

/// A parameter's value as Bugzilla would stringify it; `None` for arrays and objects.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => Some(String::new()),
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_owned()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

fn update_bug(state: &mut State, ctx: &Ctx, path_id: &str) -> ApiResult {
    let user = ctx.require_login()?.clone();
    // Parameters of the body override those of the path (`_retrieve_json_params`).
    let ids: Vec<String> = match ctx.param("ids") {
        None => vec![path_id.to_owned()],
        Some(Value::Array(items)) => items.iter().filter_map(scalar_text).collect(),
        Some(other) => scalar_text(&other).into_iter().collect(),
    };
    if ids.is_empty() {
        return Err(ApiError::param_required("", "ids"));
    }
    let mut bug_ids = Vec::with_capacity(ids.len());
    for id in &ids {
        bug_ids.push(check_bug(state, Some(&user), id)?.id);
    }

    let mut fields = Vec::new();
    for (name, field) in [
        ("whiteboard", BugField::Whiteboard),
        ("summary", BugField::Summary),
    ] {
        if let Some(value) = ctx.param(name) {
            let text = scalar_text(&value).ok_or_else(|| {
                ApiError::new(
                    53,
                    format!("Invalid parameter passed to Bug.update: {name}."),
                )
            })?;
            if field == BugField::Summary && text.trim().is_empty() {
                return Err(ApiError::new(107, "You must enter a summary for this bug."));
            }
            let text = if field == BugField::Summary {
                text.trim().to_owned()
            } else {
                text
            };
            fields.push((field, text));
        }
    }
    let comment = match ctx.param("comment") {
        None | Some(Value::Null) => None,
        Some(Value::Object(c)) => {
            let text = c
                .get("body")
                .or_else(|| c.get("comment"))
                .and_then(scalar_text)
                .unwrap_or_default();
            let private = c.get("is_private").is_some_and(truthy);
            Some((text, private))
        }
        Some(_) => {
            return Err(ApiError::new(
                53,
                "Invalid parameter passed to Bug.update: comment must be an object like {\"body\": \"...\"}.",
            ));
        }
    };
    if comment.as_ref().is_some_and(|(_, private)| *private) && !user.insider {
        return Err(ApiError::new(
            113,
            "You are not allowed to make comments private.",
        ));
    }

    let mut results = Vec::with_capacity(bug_ids.len());
    for bug_id in bug_ids {
        let Some((result, _)) = state.update_bug(
            bug_id,
            &user.email,
            &fields,
            comment.as_ref().map(|(t, p)| (t.as_str(), *p)),
        ) else {
            return Err(ApiError::new(101, format!("Bug #{bug_id} does not exist.")));
        };
        let changes: Map<String, Value> = result
            .changes
            .into_iter()
            .map(|(field, removed, added)| (field, json!({ "removed": removed, "added": added })))
            .collect();
        results.push(json!({
            "id": bug_id,
            "alias": [],
            "last_change_time": format_time(result.last_change_time),
            "changes": changes,
        }));
    }
    Ok((200, json!({ "bugs": results })))
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty() && s != "0",
        Value::Null => false,
        Value::Array(_) | Value::Object(_) => true,
    }
}

fn bug_attachments(state: &State, ctx: &Ctx, id: &str) -> ApiResult {
    let bug = check_bug(state, ctx.viewer(), id)?;
    let filter = ctx.fields();
    let list: Vec<Value> = state
        .attachments
        .values()
        .filter(|a| a.bug_id == bug.id && State::lists_attachment(ctx.viewer(), a))
        .map(|a| filter.apply(attachment_object(ctx, a)))
        .collect();
    let mut bugs = Map::new();
    bugs.insert(bug.id.to_string(), Value::Array(list));
    Ok((200, json!({ "bugs": bugs, "attachments": {} })))
}

fn attachment(state: &State, ctx: &Ctx, id: &str) -> ApiResult {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::not_numeric(
            "Bugzilla::Attachment::new_from_list",
            "attachment_ids",
        ));
    }
    // `Bugzilla::Attachment->new_from_list` skips ids that do not exist.
    let Some(a) = id
        .parse::<i64>()
        .ok()
        .and_then(|n| state.attachments.get(&n))
    else {
        return Ok((200, json!({ "attachments": {}, "bugs": {} })));
    };
    check_bug(state, ctx.viewer(), &a.bug_id.to_string())?;
    if a.is_private && !ctx.viewer().is_some_and(|v| v.insider) {
        return Err(ApiError::new(
            304,
            format!(
                "Sorry, you are not authorized to access attachment #{}.",
                a.id
            ),
        ));
    }
    let mut attachments = Map::new();
    attachments.insert(
        a.id.to_string(),
        ctx.fields().apply(attachment_object(ctx, a)),
    );
    Ok((200, json!({ "attachments": attachments, "bugs": {} })))
}

fn bug_comments(state: &State, ctx: &Ctx, id: &str) -> ApiResult {
    let bug = check_bug(state, ctx.viewer(), id)?;
    let since = new_since(ctx)?;
    let filter = ctx.fields();
    let list: Vec<Value> = state
        .comments
        .values()
        .filter(|c| c.bug_id == bug.id && State::can_see_comment(ctx.viewer(), c))
        .filter(|c| since.is_none_or(|t| c.time > t))
        .map(|c| filter.apply(comment_object(c)))
        .collect();
    let mut bugs = Map::new();
    bugs.insert(bug.id.to_string(), json!({ "comments": list }));
    Ok((200, json!({ "bugs": bugs, "comments": {} })))
}

fn comment(state: &State, ctx: &Ctx, id: &str) -> ApiResult {
    let found = id
        .trim()
        .parse::<i64>()
        .ok()
        .and_then(|n| state.comments.get(&n))
        .ok_or_else(|| ApiError::new(111, format!("{id} is not a valid comment id.")))?;
    check_bug(state, ctx.viewer(), &found.bug_id.to_string())?;
    if !State::can_see_comment(ctx.viewer(), found) {
        return Err(ApiError::new(
            110,
            format!("Comment {} is private.", found.id),
        ));
    }
    let mut comments = Map::new();
    comments.insert(
        found.id.to_string(),
        ctx.fields().apply(comment_object(found)),
    );
    Ok((200, json!({ "comments": comments, "bugs": {} })))
}

fn add_comment(state: &mut State, ctx: &Ctx, id: &str) -> ApiResult {
    let user = ctx.require_login()?.clone();
    let text = ctx
        .param("comment")
        .as_ref()
        .and_then(scalar_text)
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| ApiError::param_required("", "comment"))?;
    let bug_id = check_bug(state, Some(&user), id)?.id;
    let private = ctx
        .param("is_private")
        .or_else(|| ctx.param("private"))
        .is_some_and(|v| truthy(&v));
    if private && !user.insider {
        return Err(ApiError::new(
            113,
            "You are not allowed to make comments private.",
        ));
    }
    let comment_id = state.add_comment(bug_id, &user.email, &text, private);
    Ok((201, json!({ "id": comment_id })))
}

fn history(state: &State, ctx: &Ctx, id: &str) -> ApiResult {
    let bug = check_bug(state, ctx.viewer(), id)?;
    let since = new_since(ctx)?;
    let entries: Vec<Value> = bug
        .history
        .iter()
        .filter(|h| since.is_none_or(|t| h.when > t))
        .map(|h| {
            let changes: Vec<Value> = h
                .changes
                .iter()
                .map(|c| {
                    let mut change = json!({
                        "field_name": c.field_name,
                        "removed": c.removed,
                        "added": c.added,
                    });
                    if let (Some(aid), Some(map)) = (c.attachment_id, change.as_object_mut()) {
                        map.insert("attachment_id".to_owned(), json!(aid));
                    }
                    change
                })
                .collect();
            json!({ "when": format_time(h.when), "who": h.who, "changes": changes })
        })
        .collect();
    Ok((
        200,
        json!({ "bugs": [{ "id": bug.id, "alias": [], "history": entries }] }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_every_api_key() {
        assert_eq!(
            redact_query("a=1&api_key=secret&Bugzilla_api_key=x&b=api_key"),
            "a=1&api_key=REDACTED&Bugzilla_api_key=REDACTED&b=api_key"
        );
        assert_eq!(redact_query(""), "");
        assert_eq!(redact_query("api%5Fkey=s"), "api%5Fkey=REDACTED");
    }

    #[test]
    fn maps_codes_to_statuses() {
        assert_eq!(ApiError::new(101, "").status(), 404);
        assert_eq!(ApiError::new(102, "").status(), 401);
        assert_eq!(ApiError::new(410, "").status(), 401);
        assert_eq!(ApiError::new(32614, "").status(), 404);
        assert_eq!(ApiError::new(306, "").status(), 400);
        assert_eq!(ApiError::new(100, "").status(), 400);
    }

    #[test]
    fn finds_the_bugzilla_path() {
        assert_eq!(rest_path("/rest/bug/1"), Some("/bug/1"));
        assert_eq!(rest_path("/rest.cgi/version"), Some("/version"));
        assert_eq!(rest_path("/rest"), Some(""));
        assert_eq!(rest_path("/restful"), None);
        assert_eq!(rest_path("/bug/1"), None);
        assert_eq!(percent_decode("a%20b%2"), "a b%2");
    }
}
