//! One queue of a landing gate: the scheduling rule, with no I/O. Requests wait in order
//! (priority, then arrival); candidates are built in that order, each on top of the one
//! before it (the first on the destination's tip), up to the window; each candidate holds a
//! batch of requests and is tested once. When the head candidate passed it lands, exactly
//! as tested. A failed candidate rebuilds everything behind it without waiting; once it is
//! at the head (everything ahead of it landed) it is the culprit: a single request is
//! ejected, a batch is split in halves and tested again (bisection), so the innocent land.
//!
//! The lane answers events (`enqueue`, `result`, `tip_moved`, `remove`, `promote`) with
//! [`Action`]s for its executor: the service (build, push, run CI, land) or the queue
//! simulator (a simulated clock and CI). Both run this same code.

/// A request in the gate, by the id the executor knows it by.
pub type ChangeId = i64;

/// A candidate: one batch of requests on top of the candidate before it.
pub type CandidateId = u64;

/// How a destination's queue tests what lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// One candidate at a time, one request each: `tip + A`, land, then `tip + B`.
    Serial,
    /// Up to a window of candidates in parallel, each on top of the one before.
    Speculative,
}

/// A queue's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneConfig {
    /// Serial or speculative.
    pub strategy: Strategy,
    /// The most candidates under test at once (speculative; serial is 1).
    pub max_window: usize,
    /// The most requests in one candidate (serial is 1).
    pub batch_size: usize,
}

impl LaneConfig {
    fn window_limit(&self) -> usize {
        match self.strategy {
            Strategy::Serial => 1,
            Strategy::Speculative => self.max_window.max(1),
        }
    }

    fn batch_limit(&self) -> usize {
        match self.strategy {
            Strategy::Serial => 1,
            Strategy::Speculative => self.batch_size.max(1),
        }
    }
}

/// A request entering the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// Its id.
    pub id: ChangeId,
    /// Higher first.
    pub priority: i64,
    /// Arrival order (lower first among equal priorities).
    pub arrival: i64,
}

/// What the lane asks its executor to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Build `changes` on top of candidate `on` (the destination's tip when `None`) and
    /// test the result. `ahead` lists every request under it that is not on the tip yet.
    Test {
        /// The new candidate.
        candidate: CandidateId,
        /// The candidate it builds on.
        on: Option<CandidateId>,
        /// Its requests, in order.
        changes: Vec<ChangeId>,
        /// The requests of the candidates below it.
        ahead: Vec<ChangeId>,
    },
    /// The candidate's result no longer matters (something below it failed or changed).
    Cancel {
        /// The candidate.
        candidate: CandidateId,
    },
    /// Push the candidate's tested commits to the destination (a fast-forward).
    Land {
        /// The candidate.
        candidate: CandidateId,
        /// Its requests, in order.
        changes: Vec<ChangeId>,
    },
    /// The request failed the gate: it was tested with `tested_with` (the candidates'
    /// requests below it and its own batch) on the tip, and that failed.
    Eject {
        /// The request.
        change: ChangeId,
        /// The candidate whose failure convicted it.
        candidate: CandidateId,
        /// The other requests that were in that test.
        tested_with: Vec<ChangeId>,
    },
}

/// A candidate's CI verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Passed.
    Passed,
    /// Failed.
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Waiting {
    change: Change,
    /// Bisection: the largest batch this request may be in (halved each time a batch
    /// holding it fails at the head).
    max_batch: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Testing,
    Passed,
    Failed,
}

#[derive(Debug, Clone)]
struct Candidate {
    id: CandidateId,
    changes: Vec<Waiting>,
    ahead: Vec<ChangeId>,
    state: State,
}

/// A failure already seen: `changes` on the tip failed; `landed_since` of them have
/// landed since (the passing first part of a bisection). Bisection steps whose outcome it
/// decides need no CI run.
#[derive(Debug, Clone)]
struct KnownFailure {
    /// The run that failed, and everything it tested beyond the tip it was built on.
    candidate: CandidateId,
    tested: Vec<ChangeId>,
    changes: Vec<ChangeId>,
    landed_since: Vec<ChangeId>,
}

/// One candidate as a status view shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandidateView {
    /// Its id.
    pub id: CandidateId,
    /// Its requests.
    pub changes: Vec<ChangeId>,
    /// `testing`, `passed` or `failed` (waiting for those below it).
    pub state: &'static str,
}

/// One queue.
#[derive(Debug, Clone)]
pub struct Lane {
    config: LaneConfig,
    waiting: Vec<Waiting>,
    in_flight: Vec<Candidate>,
    window: usize,
    next_id: CandidateId,
    known_failure: Option<KnownFailure>,
}

impl Lane {
    /// An empty queue; `first_candidate` numbers its candidates (so that several lanes,
    /// or a restarted one, never reuse an id).
    pub fn new(config: LaneConfig, first_candidate: CandidateId) -> Lane {
        Lane {
            window: config.window_limit(),
            config,
            waiting: Vec::new(),
            in_flight: Vec::new(),
            next_id: first_candidate,
            known_failure: None,
        }
    }

    /// The current window (candidates that may be under test at once).
    pub fn window(&self) -> usize {
        self.window
    }

    /// Requests waiting for a candidate, in order.
    pub fn waiting(&self) -> Vec<ChangeId> {
        self.waiting.iter().map(|w| w.change.id).collect()
    }

    /// Candidates under test or decided, bottom first.
    pub fn candidates(&self) -> Vec<CandidateView> {
        self.in_flight
            .iter()
            .map(|c| CandidateView {
                id: c.id,
                changes: c.changes.iter().map(|w| w.change.id).collect(),
                state: match c.state {
                    State::Testing => "testing",
                    State::Passed => "passed",
                    State::Failed => "failed",
                },
            })
            .collect()
    }

    /// Nothing waits and nothing is under test.
    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.in_flight.is_empty()
    }

    /// A request is ready to land: it joins the queue in order.
    pub fn enqueue(&mut self, change: Change) -> Vec<Action> {
        self.insert(Waiting {
            change,
            max_batch: usize::MAX,
        });
        let mut actions = Vec::new();
        self.fill(&mut actions);
        actions
    }

    /// A candidate's verdict. Unknown (cancelled) candidates are ignored.
    pub fn result(&mut self, candidate: CandidateId, verdict: Verdict) -> Vec<Action> {
        let mut actions = Vec::new();
        let Some(index) = self.in_flight.iter().position(|c| c.id == candidate) else {
            return actions;
        };
        if self.in_flight[index].state != State::Testing {
            return actions;
        }
        match verdict {
            Verdict::Passed => self.in_flight[index].state = State::Passed,
            Verdict::Failed => {
                self.in_flight[index].state = State::Failed;
                // Everything above it was built on it: rebuild without waiting.
                self.requeue_above(index, &mut actions);
                self.window = (self.window / 2).max(1);
            }
        }
        self.settle(&mut actions);
        self.fill(&mut actions);
        actions
    }

    /// The destination's tip moved under the gate (a push from elsewhere, or a landing
    /// refused): every candidate is rebuilt on the new tip.
    pub fn tip_moved(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        self.requeue_above(0, &mut actions);
        if let Some(c) = self.in_flight.pop() {
            actions.push(Action::Cancel { candidate: c.id });
            for w in c.changes {
                self.insert(w);
            }
        }
        self.known_failure = None;
        self.fill(&mut actions);
        actions
    }

    /// The request left (cancelled): out of the queue, and everything built on it rebuilt.
    pub fn remove(&mut self, change: ChangeId) -> Vec<Action> {
        let mut actions = Vec::new();
        self.known_failure = None;
        self.waiting.retain(|w| w.change.id != change);
        if let Some(index) = self
            .in_flight
            .iter()
            .position(|c| c.changes.iter().any(|w| w.change.id == change))
        {
            // It and everything above it go back, without it.
            self.requeue_above(index, &mut actions);
            if let Some(c) = self.in_flight.pop() {
                actions.push(Action::Cancel { candidate: c.id });
                for w in c.changes.into_iter().filter(|w| w.change.id != change) {
                    self.insert(w);
                }
            }
        }
        self.settle(&mut actions);
        self.fill(&mut actions);
        actions
    }

    /// An operator moves a waiting request to the front of the queue.
    pub fn promote(&mut self, change: ChangeId) -> Vec<Action> {
        let top = self
            .waiting
            .iter()
            .map(|w| w.change.priority)
            .chain(
                self.in_flight
                    .iter()
                    .flat_map(|c| c.changes.iter().map(|w| w.change.priority)),
            )
            .max()
            .unwrap_or(0);
        if let Some(index) = self.waiting.iter().position(|w| w.change.id == change) {
            let mut w = self.waiting.remove(index);
            w.change.priority = top.saturating_add(1);
            self.insert(w);
        }
        let mut actions = Vec::new();
        self.fill(&mut actions);
        actions
    }

    fn insert(&mut self, w: Waiting) {
        let key = |w: &Waiting| (-w.change.priority, w.change.arrival, w.change.id);
        let at = self.waiting.partition_point(|x| key(x) < key(&w));
        self.waiting.insert(at, w);
    }

    /// Cancels the candidates above `index` (not `index` itself) and puts their requests
    /// back in the queue.
    fn requeue_above(&mut self, index: usize, actions: &mut Vec<Action>) {
        while self.in_flight.len() > index + 1 {
            if let Some(c) = self.in_flight.pop() {
                actions.push(Action::Cancel { candidate: c.id });
                for w in c.changes {
                    self.insert(w);
                }
            }
        }
    }

    /// Lands passed candidates at the bottom; convicts a failed one at the bottom.
    fn settle(&mut self, actions: &mut Vec<Action>) {
        while let Some(head) = self.in_flight.first() {
            match head.state {
                State::Testing => break,
                State::Passed => {
                    let c = self.in_flight.remove(0);
                    if self.config.strategy == Strategy::Speculative {
                        self.window = (self.window + 1).min(self.config.window_limit());
                    }
                    let landed: Vec<ChangeId> = c.changes.iter().map(|w| w.change.id).collect();
                    self.known_failure = self.known_failure.take().and_then(|mut k| {
                        // Still known only while the tip gains nothing but its own part.
                        let ours = landed.iter().all(|id| k.changes.contains(id));
                        k.landed_since.extend(landed.iter().copied());
                        ours.then_some(k)
                    });
                    actions.push(Action::Land {
                        candidate: c.id,
                        changes: landed,
                    });
                }
                State::Failed => {
                    let c = self.in_flight.remove(0);
                    let ids: Vec<ChangeId> = c.changes.iter().map(|w| w.change.id).collect();
                    let tested: Vec<ChangeId> = c.ahead.iter().chain(&ids).copied().collect();
                    self.known_failure = Some(KnownFailure {
                        candidate: c.id,
                        tested: tested.clone(),
                        changes: ids,
                        landed_since: Vec::new(),
                    });
                    self.convict(c.id, c.changes, &tested, actions);
                }
            }
        }
    }

    /// `changes` failed on the tip (candidate `candidate`, which tested `tested`): eject
    /// a single request, split a batch.
    fn convict(
        &mut self,
        candidate: CandidateId,
        changes: Vec<Waiting>,
        tested: &[ChangeId],
        actions: &mut Vec<Action>,
    ) {
        if let [only] = changes.as_slice() {
            let id = only.change.id;
            actions.push(Action::Eject {
                change: id,
                candidate,
                tested_with: tested.iter().copied().filter(|t| *t != id).collect(),
            });
            return;
        }
        let half = changes.len().div_ceil(2);
        for mut w in changes {
            w.max_batch = half;
            self.insert(w);
        }
    }

    /// Starts candidates while the window allows and requests wait.
    fn fill(&mut self, actions: &mut Vec<Action>) {
        // A failed candidate waiting for those below it to finish is out of the chain:
        // new candidates build on the last one that may still land.
        let active = |lane: &Lane| {
            lane.in_flight
                .iter()
                .filter(|c| c.state != State::Failed)
                .count()
        };
        while active(self) < self.window && !self.waiting.is_empty() {
            let mut limit = self.config.batch_limit();
            let mut take = 0;
            for w in &self.waiting {
                limit = limit.min(w.max_batch);
                if take >= limit {
                    break;
                }
                take += 1;
            }
            let take = take.max(1);
            let batch: Vec<Waiting> = self.waiting.drain(..take).collect();
            let ids: Vec<ChangeId> = batch.iter().map(|w| w.change.id).collect();
            // A bisection step whose outcome is already known: the same requests on the
            // same tip failed, or the failed batch's first part landed and the rest is
            // what is left of it on top.
            if self.in_flight.is_empty()
                && let Some((candidate, tested)) = self.decided_by_known_failure(&ids)
            {
                self.known_failure = Some(KnownFailure {
                    candidate,
                    tested: tested.clone(),
                    changes: ids,
                    landed_since: Vec::new(),
                });
                self.convict(candidate, batch, &tested, actions);
                continue;
            }
            let chain = self.in_flight.iter().filter(|c| c.state != State::Failed);
            let ahead: Vec<ChangeId> = chain
                .clone()
                .flat_map(|c| c.changes.iter().map(|w| w.change.id))
                .collect();
            let on = chain.clone().next_back().map(|c| c.id);
            let id = self.next_id;
            self.next_id += 1;
            actions.push(Action::Test {
                candidate: id,
                on,
                changes: ids,
                ahead: ahead.clone(),
            });
            self.in_flight.push(Candidate {
                id,
                changes: batch,
                ahead,
                state: State::Testing,
            });
        }
    }

    /// Whether testing `ids` on the tip would repeat a known failure: the failing set was
    /// tested on a tip that has since gained only its own first part, and `ids` is the
    /// rest. Returns the run that failed and what it tested.
    fn decided_by_known_failure(&self, ids: &[ChangeId]) -> Option<(CandidateId, Vec<ChangeId>)> {
        let known = self.known_failure.as_ref()?;
        let split = known.landed_since.len().min(known.changes.len());
        let (landed, rest) = known.changes.split_at(split);
        (!known.landed_since.is_empty() && landed == known.landed_since.as_slice() && rest == ids)
            .then(|| (known.candidate, known.tested.clone()))
    }
}
