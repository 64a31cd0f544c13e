//! One queue of a landing gate: the scheduling rule, with no I/O. Requests wait in order
//! (priority, then arrival); candidates are built in that order, each on top of the one
//! before it (the first on the destination's tip), up to the window; each candidate holds a
//! batch of requests and is tested once. When the head candidate passed it lands, exactly
//! as tested. A failed candidate rebuilds everything behind it without waiting; once it is
//! at the head (everything ahead of it landed) it is the culprit: a single request is
//! ejected, a batch is split in halves and tested again (bisection), so the innocent land.
//!
//! The lane answers events (`enqueue`, `result`, `landed`, `land_refused`, `tip_moved`,
//! `remove`, `promote`) with [`Action`]s for its executor: the service (build, push, run
//! CI, land) or the queue simulator (a simulated clock and CI). Both run this same code.
//! One landing is asked for at a time; the executor answers it with `landed` (pushed) or
//! `land_refused` (the tip moved: everything is rebuilt).

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
    /// Push the candidate's tested commits to the destination (a fast-forward), then say
    /// how it went: [`Lane::landed`] or [`Lane::land_refused`].
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
    /// Bisection: requests of one half of a failed batch share a group (never 0) and are
    /// batched only with each other; 0 for the others.
    group: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Testing,
    Passed,
    /// Its landing was asked for; waiting for the executor to say how it went.
    Landing,
    /// Failed; waits for those below it to be decided.
    Failed,
}

#[derive(Debug, Clone)]
struct Candidate {
    id: CandidateId,
    changes: Vec<Waiting>,
    /// The requests of the candidates below it when it was built.
    ahead: Vec<ChangeId>,
    state: State,
}

impl Candidate {
    fn ids(&self) -> Vec<ChangeId> {
        self.changes.iter().map(|w| w.change.id).collect()
    }
}

/// A failure already seen on the current tip: `changes` (with `tested` below them, since
/// landed) failed in run `candidate`; `landed_since` of them have landed since (the
/// passing first half of a bisection). Bisection steps whose outcome it decides need no
/// CI run.
#[derive(Debug, Clone)]
struct KnownFailure {
    candidate: CandidateId,
    tested: Vec<ChangeId>,
    changes: Vec<ChangeId>,
    landed_since: Vec<ChangeId>,
}

/// One queue.
#[derive(Debug, Clone)]
pub struct Lane {
    config: LaneConfig,
    waiting: Vec<Waiting>,
    in_flight: Vec<Candidate>,
    window: usize,
    next_id: CandidateId,
    next_group: u64,
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
            next_group: 1,
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

    /// Nothing waits and nothing is under test.
    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.in_flight.is_empty()
    }

    /// Whether `change` is being landed (it can no longer be removed).
    pub fn is_landing(&self, change: ChangeId) -> bool {
        self.in_flight
            .iter()
            .any(|c| c.state == State::Landing && c.changes.iter().any(|w| w.change.id == change))
    }

    /// A request is ready to land: it joins the queue in order.
    pub fn enqueue(&mut self, change: Change) -> Vec<Action> {
        self.insert(Waiting { change, group: 0 });
        self.step(Vec::new())
    }

    /// A candidate's verdict. Unknown (cancelled) candidates are ignored.
    pub fn result(&mut self, candidate: CandidateId, verdict: Verdict) -> Vec<Action> {
        let mut actions = Vec::new();
        let Some(index) = self.position(candidate) else {
            return actions;
        };
        if self.in_flight[index].state != State::Testing {
            return actions;
        }
        match verdict {
            Verdict::Passed => self.in_flight[index].state = State::Passed,
            Verdict::Failed => {
                self.in_flight[index].state = State::Failed;
                // Everything above it was built on it: rebuild without waiting. Each
                // failure halves the window (failures above a culprit too: until it is
                // found, the gate is speculating on a bad stretch).
                self.requeue_above(index, &mut actions);
                self.window = (self.window / 2).max(1);
            }
        }
        self.step(actions)
    }

    /// The executor pushed the landing it was asked for.
    pub fn landed(&mut self, candidate: CandidateId) -> Vec<Action> {
        if !self.landing_at_bottom(candidate) {
            return Vec::new();
        }
        let c = self.in_flight.remove(0);
        let landed = c.ids();
        if self.config.strategy == Strategy::Speculative {
            self.window = (self.window + 1).min(self.config.window_limit());
        }
        self.known_failure = self.known_failure.take().and_then(|mut k| {
            // Still known only while the tip gains nothing but its own first part.
            let ours = landed.iter().all(|id| k.changes.contains(id));
            k.landed_since.extend(landed.iter().copied());
            ours.then_some(k)
        });
        self.step(Vec::new())
    }

    /// The executor could not land (the destination's tip moved): everything is rebuilt
    /// on the new tip, the refused candidate's requests included.
    pub fn land_refused(&mut self, candidate: CandidateId) -> Vec<Action> {
        if !self.landing_at_bottom(candidate) {
            return Vec::new();
        }
        let mut actions = Vec::new();
        while let Some(c) = self.in_flight.pop() {
            if c.state != State::Failed && c.id != candidate {
                actions.push(Action::Cancel { candidate: c.id });
            }
            for w in c.changes {
                self.insert(Waiting { group: 0, ..w });
            }
        }
        self.known_failure = None;
        self.step(actions)
    }

    /// The destination's tip moved under the gate (someone pushed directly): every
    /// candidate is rebuilt on the new tip (a landing under way is left to finish; its
    /// executor then says how it went).
    pub fn tip_moved(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        let keep = match self.in_flight.first() {
            Some(c) if c.state == State::Landing => 1,
            _ => 0,
        };
        while self.in_flight.len() > keep {
            if let Some(c) = self.in_flight.pop() {
                if c.state != State::Failed {
                    actions.push(Action::Cancel { candidate: c.id });
                }
                for w in c.changes {
                    self.insert(Waiting { group: 0, ..w });
                }
            }
        }
        self.known_failure = None;
        self.step(actions)
    }

    /// The request left (cancelled): out of the queue, and everything built on it rebuilt.
    /// A request being landed cannot leave ([`Lane::is_landing`]); nothing happens.
    pub fn remove(&mut self, change: ChangeId) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.is_landing(change) {
            return actions;
        }
        self.known_failure = None;
        self.waiting.retain(|w| w.change.id != change);
        if let Some(index) = self
            .in_flight
            .iter()
            .position(|c| c.changes.iter().any(|w| w.change.id == change))
        {
            let c = if self.in_flight[index].state == State::Failed {
                // Nothing was built on a failed candidate.
                self.in_flight.remove(index)
            } else {
                self.requeue_above(index, &mut actions);
                let c = self.in_flight.remove(index);
                actions.push(Action::Cancel { candidate: c.id });
                c
            };
            for w in c.changes.into_iter().filter(|w| w.change.id != change) {
                self.insert(w);
            }
        }
        self.step(actions)
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
            w.group = 0;
            self.insert(w);
        }
        self.step(Vec::new())
    }

    /// Whether `candidate` is the bottom one and its landing was asked for.
    fn landing_at_bottom(&self, candidate: CandidateId) -> bool {
        self.in_flight
            .first()
            .is_some_and(|c| c.id == candidate && c.state == State::Landing)
    }

    fn position(&self, candidate: CandidateId) -> Option<usize> {
        self.in_flight.iter().position(|c| c.id == candidate)
    }

    fn insert(&mut self, w: Waiting) {
        let key = |w: &Waiting| {
            (
                std::cmp::Reverse(w.change.priority),
                w.change.arrival,
                w.change.id,
            )
        };
        let at = self.waiting.partition_point(|x| key(x) < key(&w));
        self.waiting.insert(at, w);
    }

    /// Settles the bottom, then starts candidates: what every event ends with.
    fn step(&mut self, mut actions: Vec<Action>) -> Vec<Action> {
        self.settle(&mut actions);
        self.fill(&mut actions);
        actions
    }

    /// Cancels the candidates above `index` (not `index` itself) and puts their requests
    /// back in the queue.
    fn requeue_above(&mut self, index: usize, actions: &mut Vec<Action>) {
        while self.in_flight.len() > index + 1 {
            if let Some(c) = self.in_flight.pop() {
                if c.state != State::Failed {
                    actions.push(Action::Cancel { candidate: c.id });
                }
                for w in c.changes {
                    self.insert(w);
                }
            }
        }
    }

    /// Asks for the bottom candidate's landing once it passed; convicts a failed one at
    /// the bottom (its failure happened on the tip).
    fn settle(&mut self, actions: &mut Vec<Action>) {
        while let Some(head) = self.in_flight.first_mut() {
            match head.state {
                State::Testing | State::Landing => break,
                State::Passed => {
                    head.state = State::Landing;
                    actions.push(Action::Land {
                        candidate: head.id,
                        changes: head.ids(),
                    });
                    break;
                }
                State::Failed => {
                    let c = self.in_flight.remove(0);
                    let ids = c.ids();
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

    /// `changes` failed on the tip (run `candidate`, which tested `tested`): eject a
    /// single request, split a batch into two halves that are batched only within
    /// themselves.
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
        for (i, chunk) in changes.chunks(half).enumerate() {
            let group = self.next_group + i as u64;
            for w in chunk {
                self.insert(Waiting { group, ..*w });
            }
        }
        self.next_group += 2;
    }

    /// The next batch from the front of the queue: requests of one bisection half
    /// together, the others up to the batch size.
    fn next_batch(&self) -> usize {
        let Some(first) = self.waiting.first() else {
            return 0;
        };
        let limit = if first.group == 0 {
            self.config.batch_limit()
        } else {
            usize::MAX
        };
        self.waiting
            .iter()
            .take_while(|w| w.group == first.group)
            .take(limit)
            .count()
    }

    /// Starts candidates while the window allows and requests wait.
    fn fill(&mut self, actions: &mut Vec<Action>) {
        loop {
            // A failed candidate waiting for those below it is out of the chain: new
            // candidates build on the last one that may still land.
            let chain: Vec<&Candidate> = self
                .in_flight
                .iter()
                .filter(|c| c.state != State::Failed)
                .collect();
            if chain.len() >= self.window || self.waiting.is_empty() {
                return;
            }
            let take = self.next_batch().max(1);
            let ids: Vec<ChangeId> = self.waiting[..take].iter().map(|w| w.change.id).collect();
            let ahead: Vec<ChangeId> = chain.iter().flat_map(|c| c.ids()).collect();
            let on = chain.last().map(|c| c.id);
            match self.known_outcome(&ahead, &ids) {
                Known::Fails(candidate, tested) => {
                    // What is left of a failed batch, on the tip its first half made:
                    // the failed run itself. Split (or eject) without running it again.
                    let batch: Vec<Waiting> = self.waiting.drain(..take).collect();
                    self.known_failure = Some(KnownFailure {
                        candidate,
                        tested: tested.clone(),
                        changes: ids,
                        landed_since: Vec::new(),
                    });
                    self.convict(candidate, batch, &tested, actions);
                    continue;
                }
                // The same requests on the same tip failed already: wait for those below
                // to land (then it is decided) or fail (then it is tested again).
                Known::Repeats => return,
                Known::No => {}
            }
            let batch: Vec<Waiting> = self.waiting.drain(..take).collect();
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

    /// What is known of testing `ids` on top of `ahead` (the unlanded candidates below).
    fn known_outcome(&self, ahead: &[ChangeId], ids: &[ChangeId]) -> Known {
        let Some(known) = &self.known_failure else {
            return Known::No;
        };
        let tree: Vec<ChangeId> = known
            .landed_since
            .iter()
            .chain(ahead)
            .chain(ids)
            .copied()
            .collect();
        if tree != known.changes {
            Known::No
        } else if !ahead.is_empty() {
            Known::Repeats
        } else if !known.landed_since.is_empty() {
            Known::Fails(known.candidate, known.tested.clone())
        } else {
            // Nothing below to wait for (cannot happen after a split; never block).
            Known::No
        }
    }
}

/// See [`Lane::known_outcome`].
enum Known {
    No,
    Fails(CandidateId, Vec<ChangeId>),
    Repeats,
}
