//! Which lane of a gated destination a request joins, from the files it changes.
//!
//! With configured lanes (named path globs), a request whose files all fall in one lane
//! joins it; files in no lane, or in several, send it to the destination's main lane.
//! Without configured lanes, lanes form by themselves: a request joins the lane of the
//! queued requests whose files it shares; one sharing files with nobody starts a lane of
//! its own; one sharing files with several lanes waits until at most one of them is still
//! active (it would otherwise tie two queues that are tested apart). A lane ends when its
//! last request leaves.

use std::collections::{BTreeMap, BTreeSet};

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::lane::ChangeId;

/// The lane of requests that fit no configured lane.
pub const MAIN_LANE: &str = "main";

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Into this lane's queue now.
    Lane(String),
    /// Not yet: it shares files with these active lanes; [`Router::done`] releases it.
    Held(Vec<String>),
}

/// A bad lane definition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lane `{lane}`: {message}")]
pub struct LaneError {
    /// The lane.
    pub lane: String,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug)]
enum Rule {
    Globs(Vec<(String, GlobSet)>),
    Disjoint,
}

/// The lanes of one destination and the requests in them.
#[derive(Debug)]
pub struct Router {
    rule: Rule,
    /// Per active lane, the files its requests change.
    files: BTreeMap<String, BTreeSet<String>>,
    /// Each routed request: its lane and files.
    members: BTreeMap<ChangeId, (String, Vec<String>)>,
    /// Requests waiting for lanes to drain, in arrival order.
    held: Vec<(ChangeId, Vec<String>)>,
    next_lane: u64,
}

impl Router {
    /// Lanes from `(name, globs)`; none: lanes by disjoint file sets.
    pub fn new(lanes: &[(String, Vec<String>)]) -> Result<Router, LaneError> {
        let rule = if lanes.is_empty() {
            Rule::Disjoint
        } else {
            let mut rules = Vec::with_capacity(lanes.len());
            for (name, globs) in lanes {
                let bad = |message: String| LaneError {
                    lane: name.clone(),
                    message,
                };
                if name == MAIN_LANE || name.is_empty() {
                    return Err(bad(format!(
                        "the name must be non-empty and not `{MAIN_LANE}` (the lane of the rest)"
                    )));
                }
                if globs.is_empty() {
                    return Err(bad("no paths: give it at least one glob".to_owned()));
                }
                let mut set = GlobSetBuilder::new();
                for glob in globs {
                    set.add(
                        Glob::new(glob).map_err(|e| bad(format!("`{glob}` is not a glob: {e}")))?,
                    );
                }
                rules.push((name.clone(), set.build().map_err(|e| bad(e.to_string()))?));
            }
            Rule::Globs(rules)
        };
        Ok(Router {
            rule,
            files: BTreeMap::new(),
            members: BTreeMap::new(),
            held: Vec::new(),
            next_lane: 1,
        })
    }

    /// One lane (`main`) for every request.
    pub fn single() -> Router {
        Router {
            rule: Rule::Globs(Vec::new()),
            files: BTreeMap::new(),
            members: BTreeMap::new(),
            held: Vec::new(),
            next_lane: 1,
        }
    }

    /// Routes a request that changes `files`.
    pub fn route(&mut self, change: ChangeId, files: &[String]) -> Route {
        match self.place(files) {
            Route::Lane(lane) => {
                self.join(change, &lane, files);
                Route::Lane(lane)
            }
            Route::Held(lanes) => {
                self.held.push((change, files.to_vec()));
                Route::Held(lanes)
            }
        }
    }

    /// The request left its lane (landed, ejected, cancelled). Returns the held requests
    /// that may now join a lane, in arrival order, with their lane.
    pub fn done(&mut self, change: ChangeId) -> Vec<(ChangeId, String)> {
        self.held.retain(|(id, _)| *id != change);
        let Some((lane, _)) = self.members.remove(&change) else {
            return Vec::new();
        };
        // The lane's files are those of the requests still in it.
        let still: BTreeSet<String> = self
            .members
            .values()
            .filter(|(l, _)| *l == lane)
            .flat_map(|(_, f)| f.iter().cloned())
            .collect();
        if self.members.values().any(|(l, _)| *l == lane) {
            self.files.insert(lane, still);
        } else {
            self.files.remove(&lane);
        }
        let mut released = Vec::new();
        let held = std::mem::take(&mut self.held);
        for (id, files) in held {
            match self.place(&files) {
                Route::Lane(lane) => {
                    self.join(id, &lane, &files);
                    released.push((id, lane));
                }
                Route::Held(_) => self.held.push((id, files)),
            }
        }
        released
    }

    /// How many requests are in `lane`.
    pub fn members_of(&self, lane: &str) -> usize {
        self.members.values().filter(|(l, _)| l == lane).count()
    }

    /// The lane a request is in.
    pub fn lane_of(&self, change: ChangeId) -> Option<&str> {
        self.members.get(&change).map(|(lane, _)| lane.as_str())
    }

    fn place(&mut self, files: &[String]) -> Route {
        match &self.rule {
            Rule::Globs(rules) => {
                let mut hit: BTreeSet<&str> = BTreeSet::new();
                for file in files {
                    let mut lanes = rules
                        .iter()
                        .filter(|(_, set)| set.is_match(file))
                        .map(|(name, _)| name.as_str());
                    match (lanes.next(), lanes.next()) {
                        (Some(lane), None) => {
                            hit.insert(lane);
                        }
                        // In no lane, or in several: the main lane.
                        _ => {
                            hit.insert(MAIN_LANE);
                        }
                    }
                }
                match (hit.len(), hit.first()) {
                    (1, Some(lane)) => Route::Lane((*lane).to_owned()),
                    _ => Route::Lane(MAIN_LANE.to_owned()),
                }
            }
            Rule::Disjoint => {
                let touching: Vec<String> = self
                    .files
                    .iter()
                    .filter(|(_, set)| files.iter().any(|f| set.contains(f)))
                    .map(|(lane, _)| lane.clone())
                    .collect();
                match touching.as_slice() {
                    [] => {
                        let lane = format!("lane-{}", self.next_lane);
                        self.next_lane += 1;
                        Route::Lane(lane)
                    }
                    [one] => Route::Lane(one.clone()),
                    _ => Route::Held(touching),
                }
            }
        }
    }

    fn join(&mut self, change: ChangeId, lane: &str, files: &[String]) {
        self.files
            .entry(lane.to_owned())
            .or_default()
            .extend(files.iter().cloned());
        self.members
            .insert(change, (lane.to_owned(), files.to_vec()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[&str]) -> Vec<String> {
        list.iter().map(|f| (*f).to_owned()).collect()
    }

    fn lanes() -> Vec<(String, Vec<String>)> {
        vec![
            (
                "docs".to_owned(),
                vec!["docs/**".to_owned(), "*.md".to_owned()],
            ),
            ("mobile".to_owned(), vec!["mobile/**".to_owned()]),
        ]
    }

    #[test]
    fn configured_lanes_take_requests_wholly_inside_them_and_main_the_rest() {
        let mut router = Router::new(&lanes()).unwrap();
        assert_eq!(
            router.route(1, &files(&["docs/a.txt", "README.md"])),
            Route::Lane("docs".to_owned())
        );
        assert_eq!(
            router.route(2, &files(&["mobile/app/x.kt"])),
            Route::Lane("mobile".to_owned())
        );
        // Across two lanes, or outside every lane: main.
        assert_eq!(
            router.route(3, &files(&["docs/a.txt", "mobile/b.kt"])),
            Route::Lane(MAIN_LANE.to_owned())
        );
        assert_eq!(
            router.route(4, &files(&["src/lib.rs"])),
            Route::Lane(MAIN_LANE.to_owned())
        );
        assert_eq!(router.lane_of(2), Some("mobile"));
    }

    #[test]
    fn bad_lanes_are_refused_with_the_reason() {
        let bad = |name: &str, globs: &[&str]| {
            Router::new(&[(name.to_owned(), files(globs))])
                .unwrap_err()
                .to_string()
        };
        assert!(bad("docs", &["docs/[x"]).contains("`docs/[x` is not a glob"));
        assert!(bad("main", &["x/**"]).contains("not `main`"));
        assert!(bad("empty", &[]).contains("no paths"));
    }

    #[test]
    fn without_configured_lanes_disjoint_requests_get_lanes_of_their_own() {
        let mut router = Router::new(&[]).unwrap();
        let a = router.route(1, &files(&["a/x", "shared"]));
        let b = router.route(2, &files(&["b/y"]));
        assert_ne!(a, b);
        // Shares a file with 1: same lane.
        assert_eq!(router.route(3, &files(&["shared", "a/z"])), a);
        // Touches both lanes: held until it touches only one.
        assert_eq!(
            router.route(4, &files(&["a/x", "b/y"])),
            Route::Held(vec!["lane-1".to_owned(), "lane-2".to_owned()])
        );
        // 1 leaves and takes `a/x` with it (3 keeps `shared` and `a/z`): 4 now shares files
        // with lane 2 only, and joins it.
        assert_eq!(router.done(1), [(4, "lane-2".to_owned())]);
        assert_eq!(router.lane_of(4), Some("lane-2"));
        // A lane ends with its last request: a new request with 3's files starts afresh.
        assert!(router.done(3).is_empty());
        assert_eq!(
            router.route(5, &files(&["shared"])),
            Route::Lane("lane-3".to_owned())
        );
    }

    #[test]
    fn lanes_of_disjoint_files_never_share_a_file_and_nobody_is_left_waiting() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        for seed in 0..50 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut router = Router::new(&[]).unwrap();
            let mut inside: Vec<ChangeId> = Vec::new();
            let mut held: Vec<ChangeId> = Vec::new();
            let mut joined = std::collections::BTreeSet::new();
            for id in 0..300 {
                if rng.random_bool(0.55) || inside.is_empty() {
                    let n = rng.random_range(1..4);
                    let touched: Vec<String> = (0..n)
                        .map(|_| format!("f{}", rng.random_range(0..40)))
                        .collect();
                    match router.route(id, &touched) {
                        Route::Lane(_) => {
                            assert!(joined.insert(id));
                            inside.push(id);
                        }
                        Route::Held(lanes) => {
                            assert!(lanes.len() >= 2);
                            held.push(id);
                        }
                    }
                } else {
                    let leaving = inside.swap_remove(rng.random_range(0..inside.len()));
                    for (released, _) in router.done(leaving) {
                        assert!(joined.insert(released), "released twice");
                        held.retain(|h| *h != released);
                        inside.push(released);
                    }
                }
                // No file is in two active lanes.
                let mut owner = BTreeMap::new();
                for (lane, set) in &router.files {
                    for file in set {
                        assert!(
                            owner.insert(file.clone(), lane.clone()).is_none(),
                            "seed {seed}"
                        );
                    }
                }
            }
            // Everyone leaves: every held request gets a lane on the way.
            while let Some(leaving) = inside.pop() {
                for (released, _) in router.done(leaving) {
                    assert!(joined.insert(released));
                    held.retain(|h| *h != released);
                    inside.push(released);
                }
            }
            assert!(held.is_empty(), "seed {seed}: {held:?} never got a lane");
        }
    }
}
