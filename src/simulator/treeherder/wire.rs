//! What every endpoint shares: the query string as Django reads it (`QueryDict`), Python's
//! `int()`, Python's `urlencode`, and the answers (Django REST framework JSON, Django's
//! HTML error pages).

use serde::Serialize;
use serde_json::json;

// ----- the query string -----

/// `%XX` decoding of a query-string component after `+` → space, invalid UTF-8 replaced
/// (`urllib.parse.unquote_plus(..., errors="replace")`).
pub(super) fn unquote_plus(text: &str) -> String {
    unquote_bytes(text, true)
}

/// `%XX` decoding of a URL path, as the WSGI server hands Django its `PATH_INFO`.
pub(super) fn unquote(text: &str) -> String {
    unquote_bytes(text, false)
}

fn unquote_bytes(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `urllib.parse.quote_plus`: UTF-8, everything but `A-Za-z0-9_.-~` escaped, space as `+`.
pub(super) fn quote_plus(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The query string as Django's `QueryDict` holds it: every (key, value) pair in order,
/// blank values kept (`parse_qsl(keep_blank_values=True)`).
#[derive(Debug, Clone, Default)]
pub(super) struct QueryParams {
    pairs: Vec<(String, String)>,
}

impl QueryParams {
    pub fn parse(raw: &str) -> QueryParams {
        let pairs = raw
            .split('&')
            .filter(|part| !part.is_empty())
            .map(|part| match part.split_once('=') {
                Some((k, v)) => (unquote_plus(k), unquote_plus(v)),
                None => (unquote_plus(part), String::new()),
            })
            .collect();
        QueryParams { pairs }
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// `QueryDict.get`: the last value given for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `QueryDict.getlist`: every value given for `key`, in order.
    pub fn get_list(&self, key: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The keys in order of first appearance, each with its last value: what
    /// `dict(querydict.items())` and the JSON of a `QueryDict` show.
    pub fn items(&self) -> Vec<(String, String)> {
        let mut items: Vec<(String, String)> = Vec::new();
        for (k, v) in &self.pairs {
            match items.iter_mut().find(|(key, _)| key == k) {
                Some(item) => item.1 = v.clone(),
                None => items.push((k.clone(), v.clone())),
            }
        }
        items
    }
}

/// An ordered string-to-string map, serialized as a JSON object in that order.
#[derive(Debug, Clone, Default)]
pub(super) struct OrderedMap(pub Vec<(String, String)>);

impl Serialize for OrderedMap {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

// ----- Python's int() -----

/// Python's `int(text)` for the values Treeherder converts: surrounding whitespace, an
/// optional sign, ASCII digits with single underscores between them. `None` where Python
/// raises `ValueError`. Values beyond `i64` saturate (they only ever exceed a limit).
pub(super) fn py_int(text: &str) -> Option<i64> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let mut value: i128 = 0;
    for c in digits.chars() {
        if c == '_' {
            continue;
        }
        let digit = c.to_digit(10)?;
        value = (value * 10 + i128::from(digit)).min(i128::from(i64::MAX) + 1);
    }
    let value = if negative { -value } else { value };
    Some(value.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
}

/// What a django-filter `NumberFilter` (a `DecimalField`) makes of a value: `Ok(None)` for
/// a blank value (the filter is skipped), `Ok(Some(n))` for a number (a non-integral
/// number never matches an integer column: `Some(None)`), `Err` for "Enter a number.".
pub(super) fn number_filter(text: &str) -> Result<Option<Option<i64>>, ()> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if let Some(n) = py_int(text) {
        return Ok(Some(Some(n)));
    }
    let plain = text.replace('_', "");
    let numeric = plain
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    match plain.parse::<f64>() {
        Ok(value) if numeric && value.is_finite() => {
            if value.fract() == 0.0 && value.abs() < 9.0e18 {
                Ok(Some(Some(value as i64)))
            } else {
                Ok(Some(None))
            }
        }
        _ => Err(()),
    }
}

// ----- answers -----

/// Django's `ERROR_PAGE_TEMPLATE` (`django/views/defaults.py`), which its default 400, 403,
/// 404 and 500 views answer when the site has no template of its own.
pub(super) fn django_error_page(title: &str, details: &str) -> String {
    format!(
        "\n<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>{title}</title>\n</head>\n<body>\n  <h1>{title}</h1><p>{details}</p>\n</body>\n</html>\n"
    )
}

/// The body of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Body {
    /// Django REST framework JSON (compact, as its `JSONRenderer` writes it).
    Json(String),
    /// A Django HTML page.
    Html(String),
    /// Plain text (hosted logs, faults, what the simulator does not simulate).
    Text(String),
}

/// An answer: status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Reply {
    pub status: u16,
    pub body: Body,
}

impl Reply {
    /// A JSON answer.
    pub fn json<T: Serialize>(status: u16, value: &T) -> Reply {
        match serde_json::to_string(value) {
            Ok(text) => Reply {
                status,
                body: Body::Json(text),
            },
            Err(_) => Reply::server_error(),
        }
    }

    /// A Django REST framework error: `{"detail": message}`.
    pub fn detail(status: u16, message: &str) -> Reply {
        Reply::json(status, &json!({ "detail": message }))
    }

    /// `Response("text", status=...)`: a bare JSON string, as several Treeherder views answer.
    pub fn json_string(status: u16, message: &str) -> Reply {
        Reply::json(status, &message)
    }

    /// Django's 404 page, for a URL no pattern matches.
    pub fn not_found() -> Reply {
        Reply {
            status: 404,
            body: Body::Html(django_error_page(
                "Not Found",
                "The requested resource was not found on this server.",
            )),
        }
    }

    /// Django's 500 page, for an exception in a view (`DoesNotExist`, a non-numeric id...).
    pub fn server_error() -> Reply {
        Reply {
            status: 500,
            body: Body::Html(django_error_page("Server Error (500)", "")),
        }
    }

    /// Django's 403 page (`PermissionDenied` from a middleware).
    pub fn forbidden_page() -> Reply {
        Reply {
            status: 403,
            body: Body::Html(django_error_page("403 Forbidden", "")),
        }
    }

    /// An endpoint real Treeherder has but the simulator does not simulate.
    pub fn not_simulated(what: &str) -> Reply {
        Reply {
            status: 501,
            body: Body::Text(format!(
                "The Treeherder simulator does not simulate {what}.\n"
            )),
        }
    }
}

/// What an endpoint sees of a request besides its path.
pub(super) struct Ctx<'a> {
    pub query: &'a QueryParams,
    /// "http://host:port", from the `Host` header.
    pub base: &'a str,
    /// `request.build_absolute_uri()`: base, path and the raw query string.
    pub absolute_uri: &'a str,
}
