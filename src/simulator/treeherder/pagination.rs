//! `treeherder.webapp.api.pagination.JobPagination`, the paginator of `GET /api/jobs/`: a
//! Django REST framework `PageNumberPagination` with `page_size = 2000`,
//! `page_size_query_param = "count"`, `max_page_size = 2000`, over Django's `Paginator`
//! (no orphans, an empty first page allowed). Pages are chosen with `page` (a number or
//! "last"); the answer has `count` (all matching items), `next`, `previous` and `results`.

use super::wire::{QueryParams, Reply, py_int, quote_plus};

/// `JobPagination.page_size`, and its `max_page_size`.
pub(super) const PAGE_SIZE: usize = 2000;

/// One page and the links around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Page<T> {
    /// `paginator.count`: every matching item.
    pub count: usize,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<T>,
}

/// `PageNumberPagination.get_page_size`: `count` if it is a positive integer (at most
/// 2000), else 2000.
fn page_size(query: &QueryParams) -> usize {
    match query.get("count").and_then(py_int) {
        Some(n) if n > 0 => (n as usize).min(PAGE_SIZE),
        _ => PAGE_SIZE,
    }
}

/// Pages `items` as `JobPagination` does. `url` is the request's absolute URI (scheme,
/// host, path and the raw query string), from which the links are made. An invalid page is
/// Django REST framework's `NotFound("Invalid page.")`.
pub(super) fn paginate<T: Clone>(
    items: &[T],
    query: &QueryParams,
    url: &str,
) -> Result<Page<T>, Reply> {
    let per_page = page_size(query);
    let count = items.len();
    let num_pages = count.max(1).div_ceil(per_page);
    let number = match query.get("page").filter(|p| !p.is_empty()) {
        None => 1,
        Some("last") => num_pages,
        Some(text) => match py_int(text) {
            Some(n) if n >= 1 && (n as u64) <= num_pages as u64 => n as usize,
            _ => return Err(Reply::detail(404, "Invalid page.")),
        },
    };
    let bottom = (number - 1) * per_page;
    let top = (bottom + per_page).min(count);
    let next =
        (number < num_pages).then(|| replace_query_param(url, "page", &(number + 1).to_string()));
    let previous = (number > 1).then(|| {
        if number - 1 == 1 {
            remove_query_param(url, "page")
        } else {
            replace_query_param(url, "page", &(number - 1).to_string())
        }
    });
    Ok(Page {
        count,
        next,
        previous,
        results: items[bottom..top].to_vec(),
    })
}

/// `parse_qs(query, keep_blank_values=True)`: keys in order of first appearance, each with
/// all its values.
fn parse_qs(query: &str) -> Vec<(String, Vec<String>)> {
    let mut grouped: Vec<(String, Vec<String>)> = Vec::new();
    for (k, v) in QueryParams::parse(query).pairs() {
        match grouped.iter_mut().find(|(key, _)| key == k) {
            Some((_, values)) => values.push(v.clone()),
            None => grouped.push((k.clone(), vec![v.clone()])),
        }
    }
    grouped
}

/// `urlencode(sorted(query_dict.items()), doseq=True)`.
fn urlencode_sorted(mut grouped: Vec<(String, Vec<String>)>) -> String {
    grouped.sort_by(|a, b| a.0.cmp(&b.0));
    grouped
        .iter()
        .flat_map(|(k, values)| {
            values
                .iter()
                .map(move |v| format!("{}={}", quote_plus(k), quote_plus(v)))
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn with_query(url: &str, edit: impl FnOnce(&mut Vec<(String, Vec<String>)>)) -> String {
    let (without_fragment, fragment) = match url.split_once('#') {
        Some((u, f)) => (u, Some(f)),
        None => (url, None),
    };
    let (base, query) = without_fragment
        .split_once('?')
        .unwrap_or((without_fragment, ""));
    let mut grouped = parse_qs(query);
    edit(&mut grouped);
    let query = urlencode_sorted(grouped);
    let mut out = base.to_owned();
    if !query.is_empty() {
        out.push('?');
        out.push_str(&query);
    }
    if let Some(fragment) = fragment.filter(|f| !f.is_empty()) {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// Django REST framework's `replace_query_param`: the query re-encoded with `key` set to
/// `value` and the keys sorted.
pub(super) fn replace_query_param(url: &str, key: &str, value: &str) -> String {
    with_query(url, |grouped| {
        match grouped.iter_mut().find(|(k, _)| k == key) {
            Some((_, values)) => *values = vec![value.to_owned()],
            None => grouped.push((key.to_owned(), vec![value.to_owned()])),
        }
    })
}

/// Django REST framework's `remove_query_param`.
pub(super) fn remove_query_param(url: &str, key: &str) -> String {
    with_query(url, |grouped| grouped.retain(|(k, _)| k != key))
}
