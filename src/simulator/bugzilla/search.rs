//! `GET /rest/bug`: `Bug.search` as Bugzilla 5 runs it. The parameters become criteria
//! (all ANDed) the way `Bugzilla::WebService::Bug::search` and `Bugzilla::Search` build them:
//!
//! - `whiteboard` (or `status_whiteboard`) and `summary` (or `short_desc`): repeated values
//!   are joined with "," and matched with `status_whiteboard_type` / `short_desc_type`,
//!   default `allwordssubstr` (every word, split on whitespace and commas, is a
//!   case-insensitive substring). `whiteboard_type` is not a Bugzilla parameter: ignored.
//! - `id`: any of the listed bug ids; `creator`: any word a substring of the reporter.
//! - `status`, `resolution`, `product`, `component`: any of the values, exactly.
//! - `last_change_time` / `creation_time`: at or after the time.
//! - boolean charts `fN` / `oN` / `vN` (and `nN=1` to negate), on the internal field names.
//! - `limit` (default and maximum 10000; 0 = no limit) and `offset` (which needs `limit`).
//!
//! Only bugs the viewer may see are returned, ordered by id.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::rest::{ApiError, Ctx, bug_object};
use super::state::{self, Bug, State};

/// Bugzilla's default `max_search_results`.
const MAX_SEARCH_RESULTS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    BugId,
    Whiteboard,
    Summary,
    Reporter,
    Status,
    Resolution,
    Product,
    Component,
    LastChange,
    Creation,
}

impl Field {
    /// A field by its internal (boolean chart) name.
    fn from_chart_name(name: &str) -> Option<Field> {
        Some(match name {
            "bug_id" => Field::BugId,
            "status_whiteboard" => Field::Whiteboard,
            "short_desc" => Field::Summary,
            "reporter" => Field::Reporter,
            "bug_status" => Field::Status,
            "resolution" => Field::Resolution,
            "product" => Field::Product,
            "component" => Field::Component,
            "delta_ts" => Field::LastChange,
            "creation_ts" => Field::Creation,
            _ => return None,
        })
    }

    fn is_time(self) -> bool {
        matches!(self, Field::LastChange | Field::Creation)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equals,
    NotEquals,
    AnyExact,
    Substring,
    CaseSubstring,
    NotSubstring,
    AllWordsSubstr,
    AnyWordsSubstr,
    NoWordsSubstr,
    IsEmpty,
    IsNotEmpty,
    LessThan,
    LessThanEq,
    GreaterThan,
    GreaterThanEq,
}

impl Op {
    fn parse(name: &str) -> Result<Op, ApiError> {
        Ok(match name {
            "equals" | "exact" => Op::Equals,
            "notequals" => Op::NotEquals,
            "anyexact" => Op::AnyExact,
            "substring" => Op::Substring,
            "casesubstring" => Op::CaseSubstring,
            "notsubstring" => Op::NotSubstring,
            "allwordssubstr" => Op::AllWordsSubstr,
            "anywordssubstr" => Op::AnyWordsSubstr,
            "nowordssubstr" => Op::NoWordsSubstr,
            "isempty" => Op::IsEmpty,
            "isnotempty" => Op::IsNotEmpty,
            "lessthan" => Op::LessThan,
            "lessthaneq" => Op::LessThanEq,
            "greaterthan" => Op::GreaterThan,
            "greaterthaneq" => Op::GreaterThanEq,
            "regexp" | "notregexp" | "allwords" | "anywords" | "nowords" | "matches"
            | "notmatches" | "changedbefore" | "changedafter" | "changedfrom" | "changedto"
            | "changedby" => {
                return Err(ApiError::new(
                    1,
                    format!("The search type '{name}' is not supported by the Bugzilla simulator."),
                ));
            }
            _ => {
                return Err(ApiError::new(
                    1,
                    format!("'{name}' is not a valid search type."),
                ));
            }
        })
    }
}

#[derive(Debug, Clone)]
enum Operand {
    Text(String),
    Time(DateTime<Utc>),
}

#[derive(Debug, Clone)]
struct Criterion {
    field: Field,
    op: Op,
    value: Operand,
    negate: bool,
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn text_of(bug: &Bug, field: Field) -> String {
    match field {
        Field::BugId => bug.id.to_string(),
        Field::Whiteboard => bug.whiteboard.clone(),
        Field::Summary => bug.summary.clone(),
        Field::Reporter => bug.creator.clone(),
        Field::Status => "NEW".to_owned(),
        Field::Resolution => String::new(),
        Field::Product => state::PRODUCT.to_owned(),
        Field::Component => state::COMPONENT.to_owned(),
        Field::LastChange => state::format_time(bug.last_change_time),
        Field::Creation => state::format_time(bug.creation_time),
    }
}

fn time_of(bug: &Bug, field: Field) -> Option<DateTime<Utc>> {
    match field {
        Field::LastChange => Some(bug.last_change_time),
        Field::Creation => Some(bug.creation_time),
        _ => None,
    }
}

impl Criterion {
    fn new(field: Field, op: Op, value: &str, negate: bool) -> Result<Criterion, ApiError> {
        let compares = matches!(
            op,
            Op::Equals
                | Op::NotEquals
                | Op::LessThan
                | Op::LessThanEq
                | Op::GreaterThan
                | Op::GreaterThanEq
        );
        let value = if field.is_time() && compares {
            Operand::Time(state::parse_time(value).ok_or_else(|| ApiError::illegal_date(value))?)
        } else {
            Operand::Text(value.to_owned())
        };
        Ok(Criterion {
            field,
            op,
            value,
            negate,
        })
    }

    fn matches(&self, bug: &Bug) -> bool {
        self.test(bug) != self.negate
    }

    fn test(&self, bug: &Bug) -> bool {
        if let (Operand::Time(wanted), Some(actual)) = (&self.value, time_of(bug, self.field)) {
            return match self.op {
                Op::Equals => actual == *wanted,
                Op::NotEquals => actual != *wanted,
                Op::LessThan => actual < *wanted,
                Op::LessThanEq => actual <= *wanted,
                Op::GreaterThan => actual > *wanted,
                Op::GreaterThanEq => actual >= *wanted,
                _ => false,
            };
        }
        let value = match &self.value {
            Operand::Text(text) => text.as_str(),
            Operand::Time(_) => "",
        };
        let actual = text_of(bug, self.field);
        let lower = actual.to_lowercase();
        // Exact comparisons are case-insensitive, as with MySQL's default collation.
        let ordering = || {
            if self.field == Field::BugId
                && let Ok(n) = value.trim().parse::<i64>()
            {
                bug.id.cmp(&n)
            } else {
                lower.cmp(&value.to_lowercase())
            }
        };
        match self.op {
            Op::Equals => lower == value.to_lowercase(),
            Op::NotEquals => lower != value.to_lowercase(),
            Op::AnyExact => value
                .split(',')
                .map(str::trim)
                .any(|v| !v.is_empty() && lower == v.to_lowercase()),
            Op::Substring => lower.contains(&value.to_lowercase()),
            Op::CaseSubstring => actual.contains(value),
            Op::NotSubstring => !lower.contains(&value.to_lowercase()),
            Op::AllWordsSubstr => words(value).iter().all(|w| lower.contains(w.as_str())),
            Op::AnyWordsSubstr => {
                let words = words(value);
                words.is_empty() || words.iter().any(|w| lower.contains(w.as_str()))
            }
            Op::NoWordsSubstr => !words(value).iter().any(|w| lower.contains(w.as_str())),
            Op::IsEmpty => actual.is_empty(),
            Op::IsNotEmpty => !actual.is_empty(),
            Op::LessThan => ordering().is_lt(),
            Op::LessThanEq => ordering().is_le(),
            Op::GreaterThan => ordering().is_gt(),
            Op::GreaterThanEq => ordering().is_ge(),
        }
    }
}

/// A non-negative integer parameter ("" counts as 0, as Perl's numeric comparison does).
fn natural(text: &str, name: &str) -> Result<usize, ApiError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(0);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::not_numeric("Bug.search", name));
    }
    Ok(text.parse::<usize>().unwrap_or(usize::MAX))
}

/// The criteria of the plain (non-chart) parameters.
fn basic_criteria(ctx: &Ctx) -> Result<Vec<Criterion>, ApiError> {
    let mut criteria = Vec::new();
    let values = |names: &[&str]| -> Vec<String> {
        names
            .iter()
            .flat_map(|n| ctx.query_all(n))
            .map(str::to_owned)
            .collect()
    };

    let ids = values(&["id", "bug_id"]);
    if !ids.is_empty() {
        let joined = ids.join(",");
        for id in joined.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if !id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ApiError::new(
                    100,
                    format!("'{id}' is not a valid bug number nor an alias to a bug."),
                ));
            }
        }
        criteria.push(Criterion::new(Field::BugId, Op::AnyExact, &joined, false)?);
    }

    // Free-text fields: the `<internal name>_type` parameter picks the operator.
    for (names, type_param, field) in [
        (
            &["whiteboard", "status_whiteboard"][..],
            "status_whiteboard_type",
            Field::Whiteboard,
        ),
        (
            &["summary", "short_desc"][..],
            "short_desc_type",
            Field::Summary,
        ),
    ] {
        let given = values(names);
        if given.is_empty() {
            continue;
        }
        let op = Op::parse(ctx.query_first(type_param).unwrap_or("allwordssubstr"))?;
        let joined = given.join(",");
        if joined.trim().is_empty() && !matches!(op, Op::IsEmpty | Op::IsNotEmpty) {
            continue;
        }
        criteria.push(Criterion::new(field, op, &joined, false)?);
    }

    let creators = values(&["creator", "reporter"]);
    if !creators.is_empty() {
        criteria.push(Criterion::new(
            Field::Reporter,
            Op::AnyWordsSubstr,
            &creators.join(" "),
            false,
        )?);
    }

    for (names, type_param, field) in [
        (
            &["status", "bug_status"][..],
            "bug_status_type",
            Field::Status,
        ),
        (&["resolution"][..], "resolution_type", Field::Resolution),
        (&["product"][..], "product_type", Field::Product),
        (&["component"][..], "component_type", Field::Component),
    ] {
        let given = values(names);
        if given.is_empty() {
            continue;
        }
        let op = Op::parse(ctx.query_first(type_param).unwrap_or("anyexact"))?;
        criteria.push(Criterion::new(field, op, &given.join(","), false)?);
    }

    for (name, field) in [
        ("last_change_time", Field::LastChange),
        ("creation_time", Field::Creation),
    ] {
        if let Some(text) = ctx.query_first(name) {
            criteria.push(Criterion::new(field, Op::GreaterThanEq, text, false)?);
        }
    }
    Ok(criteria)
}

/// The boolean charts `fN` / `oN` / `vN` / `nN`, in order of N.
fn chart_criteria(ctx: &Ctx) -> Result<Vec<Criterion>, ApiError> {
    let mut numbers: Vec<u32> = ctx
        .query
        .iter()
        .filter_map(|(k, _)| k.strip_prefix('f')?.parse::<u32>().ok())
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    let mut criteria = Vec::new();
    for n in numbers {
        let field = ctx.query_first(&format!("f{n}")).unwrap_or_default().trim();
        if field.is_empty() || field == "noop" || field == "OP" || field == "CP" {
            continue;
        }
        let op = ctx.query_first(&format!("o{n}")).unwrap_or_default().trim();
        if op.is_empty() || op == "noop" {
            continue;
        }
        let value = ctx.query_first(&format!("v{n}")).unwrap_or_default();
        let negate = ctx
            .query_first(&format!("n{n}"))
            .is_some_and(|v| !v.is_empty() && v != "0");
        let field = Field::from_chart_name(field)
            .ok_or_else(|| ApiError::new(108, format!("Can't use {field} as a field name.")))?;
        criteria.push(Criterion::new(field, Op::parse(op)?, value, negate)?);
    }
    Ok(criteria)
}

pub(super) fn search(state: &State, ctx: &Ctx) -> Result<Value, ApiError> {
    let limit = ctx.query_first("limit");
    let offset = ctx.query_first("offset");
    if offset.is_some() && limit.is_none() {
        return Err(ApiError::param_required("Bug.search()", "limit"));
    }
    let (limit, offset) = match limit {
        None => (MAX_SEARCH_RESULTS, 0),
        Some(text) => match natural(text, "limit")? {
            0 => (usize::MAX, 0),
            n => (
                n.min(MAX_SEARCH_RESULTS),
                natural(offset.unwrap_or_default(), "offset")?,
            ),
        },
    };

    let mut criteria = basic_criteria(ctx)?;
    criteria.extend(chart_criteria(ctx)?);
    let filter = ctx.fields();
    let bugs: Vec<Value> = state
        .bugs
        .values()
        .filter(|bug| State::can_see_bug(ctx.viewer.as_ref(), bug))
        .filter(|bug| criteria.iter().all(|c| c.matches(bug)))
        .skip(offset)
        .take(limit)
        .map(|bug| filter.apply(bug_object(bug)))
        .collect();
    Ok(json!({ "bugs": bugs }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bug(whiteboard: &str) -> Bug {
        let now = Utc::now();
        Bug {
            id: 7,
            summary: "Crash in the parser".to_owned(),
            whiteboard: whiteboard.to_owned(),
            creator: "alice@example.com".to_owned(),
            private: false,
            creation_time: now,
            last_change_time: now,
            history: Vec::new(),
        }
    }

    fn matches(field: Field, op: &str, value: &str, bug: &Bug) -> bool {
        Criterion::new(field, Op::parse(op).unwrap_or(Op::Equals), value, false)
            .map(|c| c.matches(bug))
            .unwrap_or(false)
    }

    #[test]
    fn whiteboard_operators() {
        let b = bug("[autoland-try] [checkin-needed]");
        assert!(matches(
            Field::Whiteboard,
            "allwordssubstr",
            "AUTOLAND checkin",
            &b
        ));
        assert!(!matches(
            Field::Whiteboard,
            "allwordssubstr",
            "autoland missing",
            &b
        ));
        assert!(matches(
            Field::Whiteboard,
            "anywordssubstr",
            "autoland missing",
            &b
        ));
        assert!(matches(Field::Whiteboard, "substring", "[Autoland", &b));
        assert!(!matches(
            Field::Whiteboard,
            "substring",
            "autoland checkin",
            &b
        ));
        assert!(matches(Field::Whiteboard, "casesubstring", "[autoland", &b));
        assert!(!matches(
            Field::Whiteboard,
            "casesubstring",
            "[Autoland",
            &b
        ));
        assert!(matches(Field::Whiteboard, "notsubstring", "[nope", &b));
        assert!(matches(
            Field::Whiteboard,
            "equals",
            "[AUTOLAND-TRY] [checkin-needed]",
            &b
        ));
        assert!(matches(Field::Whiteboard, "nowordssubstr", "zzz,qqq", &b));
        assert!(matches(Field::BugId, "anyexact", "3,7", &b));
        assert!(matches(Field::BugId, "greaterthan", "6", &b));
        assert!(Op::parse("regexp").is_err());
    }
}
