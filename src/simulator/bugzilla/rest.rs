//! What every endpoint of the simulated REST API shares: Bugzilla's error objects and
//! their HTTP codes, the request as an endpoint sees it, `include_fields` filtering, and
//! the bug object (search and `GET /rest/bug/<id>` return the same one).

use axum::http::Method;
use serde_json::{Map, Value, json};

use super::state::{self, Bug, User, format_time};
use super::types::Flavor;

const DOCUMENTATION: &str = "https://bugzilla.readthedocs.org/en/5.0/api/";

// ----- errors -----

/// A Bugzilla WebService error: the code and message of `{"error":true,...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ApiError {
    pub code: i64,
    pub message: String,
}

impl ApiError {
    pub fn new(code: i64, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }

    /// Bugzilla's `REST_STATUS_CODE_MAP`.
    pub fn status(&self) -> u16 {
        match self.code {
            51 | 101 | 32614 => 404,
            102 | 106 | 109 | 110 | 113 | 115 | 120 | 300..=304 | 410 | 504 | 505 => 401,
            _ => 400,
        }
    }

    pub fn body(&self, flavor: Flavor) -> Value {
        let code = match flavor {
            Flavor::V52 => json!(self.code),
            Flavor::V53 => json!(self.code.to_string()),
        };
        json!({
            "error": true,
            "code": code,
            "message": self.message,
            "documentation": DOCUMENTATION,
        })
    }

    pub fn not_found(method: &Method, path_info: &str) -> ApiError {
        ApiError::new(
            32614,
            format!("A REST API resource was not found for '{method} {path_info}'."),
        )
    }

    pub fn login_required() -> ApiError {
        ApiError::new(410, "You must log in before using this part of Bugzilla.")
    }

    pub fn param_required(function: &str, param: &str) -> ApiError {
        let function = if function.is_empty() {
            String::new()
        } else {
            format!(" {function}")
        };
        ApiError::new(
            50,
            format!(
                "The function{function} requires a {param} argument, and that argument was not set."
            ),
        )
    }

    pub fn not_numeric(function: &str, param: &str) -> ApiError {
        ApiError::new(
            52,
            format!("Invalid parameter '{param}' passed to {function}: It must be numeric."),
        )
    }

    pub fn illegal_date(text: &str) -> ApiError {
        ApiError::new(56, format!("'{text}' is not a legal date."))
    }

    pub fn invalid_bug_id(text: &str) -> ApiError {
        ApiError::new(
            100,
            format!("'{text}' is not a valid bug number nor an alias to a bug."),
        )
    }
}

pub(super) type ApiResult = Result<(u16, Value), ApiError>;

// ----- the request -----

/// What an endpoint sees of a request.
pub(super) struct Ctx<'a> {
    pub query: &'a [(String, String)],
    /// The JSON object of a POST/PUT body.
    pub body: Option<Map<String, Value>>,
    pub viewer: Option<User>,
    pub flavor: Flavor,
}

impl Ctx<'_> {
    pub fn query_all(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn query_first(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A parameter as Bugzilla merges them for POST/PUT: the query string overrides the
    /// JSON body.
    pub fn param(&self, name: &str) -> Option<Value> {
        let from_query = self.query_all(name);
        match from_query.len() {
            0 => self.body.as_ref().and_then(|b| b.get(name)).cloned(),
            1 => Some(Value::String(from_query[0].to_owned())),
            _ => Some(Value::Array(
                from_query.into_iter().map(|v| json!(v)).collect(),
            )),
        }
    }

    pub fn viewer(&self) -> Option<&User> {
        self.viewer.as_ref()
    }

    pub fn require_login(&self) -> Result<&User, ApiError> {
        self.viewer.as_ref().ok_or_else(ApiError::login_required)
    }

    pub fn boolean(&self, value: bool) -> Value {
        match self.flavor {
            Flavor::V52 => json!(i64::from(value)),
            Flavor::V53 => json!(value),
        }
    }

    pub fn fields(&self) -> FieldFilter {
        FieldFilter::from_ctx(self)
    }
}

/// `include_fields` / `exclude_fields`, as `Bugzilla::WebService::Util::filter` applies
/// them to each returned object: keep only the included names (if any are given; `_all`
/// and `_default` keep everything, `name.sub` keeps `name`), then drop the excluded ones.
pub(super) struct FieldFilter {
    include: Option<Vec<String>>,
    exclude: Vec<String>,
}

impl FieldFilter {
    pub fn from_ctx(ctx: &Ctx) -> FieldFilter {
        let collect = |name: &str| -> Vec<String> {
            let mut raw: Vec<String> = ctx.query_all(name).into_iter().map(str::to_owned).collect();
            if raw.is_empty() {
                match ctx.body.as_ref().and_then(|b| b.get(name)) {
                    Some(Value::String(s)) => raw.push(s.clone()),
                    Some(Value::Array(items)) => {
                        raw.extend(items.iter().filter_map(|i| i.as_str().map(str::to_owned)));
                    }
                    _ => {}
                }
            }
            raw.iter()
                .flat_map(|v| v.split(|c: char| c.is_whitespace() || c == ',' || c == '+'))
                .filter(|f| !f.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let include = collect("include_fields");
        FieldFilter {
            include: (!include.is_empty()).then_some(include),
            exclude: collect("exclude_fields"),
        }
    }

    fn wants(&self, field: &str) -> bool {
        if self.exclude.iter().any(|f| f == field) {
            return false;
        }
        match &self.include {
            None => true,
            Some(include) => include.iter().any(|f| {
                f == field
                    || f == "_all"
                    || f == "_default"
                    || f.strip_prefix(field)
                        .is_some_and(|rest| rest.starts_with('.'))
            }),
        }
    }

    pub fn apply(&self, object: Map<String, Value>) -> Value {
        Value::Object(object.into_iter().filter(|(k, _)| self.wants(k)).collect())
    }
}

/// A bug as the REST API returns it.
pub(super) fn bug_object(bug: &Bug) -> Map<String, Value> {
    let value = json!({
        "id": bug.id,
        "alias": [],
        "summary": bug.summary,
        "whiteboard": bug.whiteboard,
        "status": "NEW",
        "resolution": "",
        "is_open": true,
        "product": state::PRODUCT,
        "component": state::COMPONENT,
        "creator": bug.creator,
        // A private bug is restricted to the insiders' group.
        "groups": if bug.private { vec![state::INSIDERS_GROUP] } else { Vec::new() },
        "creation_time": format_time(bug.creation_time),
        "last_change_time": format_time(bug.last_change_time),
    });
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
