//! The queue simulator (`autoland simulate`): the gate's real scheduling code
//! ([`crate::gate::Lane`]) driven by a simulated clock and a simulated CI, to compare
//! strategies before choosing one for a destination.
//!
//! The model. Requests arrive as a Poisson stream (`arrivals_per_t` per mean CI duration
//! T). Each is bad on its own with probability `p` (fails any test that holds it). Two
//! requests that arrive within `span` of each other and touch the same part of the tree
//! break the tests together with probability `q` (each passes alone: a semantic conflict).
//! The tree has `parts` independent parts, one per request, uniformly; lanes, when used,
//! are those parts, and requests of different parts never interact. A CI run takes T times
//! a uniform factor in [1 - spread, 1 + spread]; CI capacity is unlimited, and every
//! started run counts, cancelled ones included. A tip is red when its requests hold a bad
//! one or an interacting pair.
//!
//! `off` is Autoland without a gate: each request is tested on try on the tip of its
//! arrival and, when that passes, lands on whatever the tip is by then.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::gate::{Action, CandidateId, Change, Lane, LaneConfig, Strategy, Verdict};

/// What the simulated world looks like.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Requests to simulate.
    pub requests: usize,
    /// Mean arrivals per mean CI duration T.
    pub arrivals_per_t: f64,
    /// Probability that a request is bad on its own.
    pub p: f64,
    /// Probability that two close requests of the same part break the tests together.
    pub q: f64,
    /// How many arrivals apart two requests may be and still interact.
    pub span: usize,
    /// Independent parts of the tree (lanes, when a strategy uses them).
    pub parts: usize,
    /// CI durations are T × uniform [1 - spread, 1 + spread].
    pub spread: f64,
    /// Random seed (same seed, same world).
    pub seed: u64,
    /// Disruptions (0 in the tables): people pushing to the destination directly, per T.
    pub direct_pushes_per_t: f64,
    /// ... the probability that a request is cancelled (at a random time within 2 T of
    /// its arrival; a cancel during its landing is refused, as in the service).
    pub cancels: f64,
}

/// A strategy to simulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Its name in the table.
    pub name: &'static str,
    /// `None`: no gate (test on try, land without retest).
    pub gate: Option<LaneConfig>,
    /// One queue per part of the tree.
    pub lanes: bool,
}

/// What a simulation measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// Requests landed.
    pub landed: usize,
    /// Requests refused (ejected, or failed on try).
    pub refused: usize,
    /// Requests cancelled before they were decided.
    pub cancelled: usize,
    /// CI runs started.
    pub ci_runs: usize,
    /// Landings per T, from the first arrival to the last landing.
    pub landings_per_t: f64,
    /// CI runs per landed request.
    pub runs_per_landing: f64,
    /// Time from arrival to landing, in T: median.
    pub p50_t: f64,
    /// ... and 90th percentile.
    pub p90_t: f64,
    /// Landings that left the destination's tip red.
    pub red_tips: usize,
    /// Landings whose tip was not exactly what its candidate tested (must be 0: checked
    /// here, independently of the rule).
    pub untested_landings: usize,
    /// Requests landed or refused more than once (must be 0).
    pub decided_twice: usize,
}

/// The strategies the issue compares, with the given window and batch size.
pub fn policies(window: usize, batch: usize) -> Vec<Policy> {
    let speculative = |batch_size| {
        Some(LaneConfig {
            strategy: Strategy::Speculative,
            max_window: window,
            batch_size,
        })
    };
    vec![
        Policy {
            name: "off (try, then land)",
            gate: None,
            lanes: false,
        },
        Policy {
            name: "serial",
            gate: Some(LaneConfig {
                strategy: Strategy::Serial,
                max_window: 1,
                batch_size: 1,
            }),
            lanes: false,
        },
        Policy {
            name: "speculative",
            gate: speculative(1),
            lanes: false,
        },
        Policy {
            name: "speculative+batches",
            gate: speculative(batch),
            lanes: false,
        },
        Policy {
            name: "speculative+lanes",
            gate: speculative(1),
            lanes: true,
        },
        Policy {
            name: "speculative+batches+lanes",
            gate: speculative(batch),
            lanes: true,
        },
    ]
}

/// The simulated world: who is bad, who interacts, which part each request touches.
struct World {
    scenario: Scenario,
    bad: Vec<bool>,
    part: Vec<usize>,
    arrival: Vec<f64>,
}

impl World {
    fn new(scenario: Scenario) -> World {
        let mut rng = StdRng::seed_from_u64(scenario.seed);
        let mut t = 0.0;
        let mut arrival = Vec::with_capacity(scenario.requests);
        let mut bad = Vec::with_capacity(scenario.requests);
        let mut part = Vec::with_capacity(scenario.requests);
        for _ in 0..scenario.requests {
            // Exponential gaps: a Poisson stream.
            let u: f64 = rng.random_range(f64::EPSILON..1.0);
            t += -u.ln() / scenario.arrivals_per_t.max(1e-9);
            arrival.push(t);
            bad.push(rng.random_bool(scenario.p.clamp(0.0, 1.0)));
            part.push(rng.random_range(0..scenario.parts.max(1)));
        }
        World {
            scenario,
            bad,
            part,
            arrival,
        }
    }

    /// Whether requests `a` and `b` break the tests together (symmetric, fixed per seed).
    fn interact(&self, a: usize, b: usize) -> bool {
        if a == b || self.part[a] != self.part[b] || a.abs_diff(b) > self.scenario.span {
            return false;
        }
        let (lo, hi) = (a.min(b) as u64, a.max(b) as u64);
        let mut h = self.scenario.seed ^ 0x9e37_79b9_7f4a_7c15;
        for x in [lo, hi] {
            h ^= x
                .wrapping_add(0x9e37_79b9_7f4a_7c15)
                .wrapping_add(h << 6)
                .wrapping_add(h >> 2);
            h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
            h ^= h >> 31;
        }
        (h as f64 / u64::MAX as f64) < self.scenario.q
    }

    /// Whether a tree holding `tip` and then `added` passes the tests.
    fn passes(&self, tip: &HashSet<usize>, added: &[usize]) -> bool {
        let all: HashSet<usize> = added.iter().copied().collect();
        let span = self.scenario.span;
        added.iter().all(|&a| {
            !self.bad[a]
                && (a.saturating_sub(span)..=(a + span).min(self.bad.len().saturating_sub(1)))
                    .all(|b| !((tip.contains(&b) || all.contains(&b)) && self.interact(a, b)))
        })
    }

    fn duration(&self, rng: &mut StdRng) -> f64 {
        let spread = self.scenario.spread.clamp(0.0, 0.99);
        1.0 + spread * (2.0 * rng.random::<f64>() - 1.0)
    }
}

/// Events in time order (time in T, as integer micro-T for a total order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Arrival(usize),
    Done {
        lane: usize,
        candidate: CandidateId,
        passed: bool,
    },
    TryDone {
        request: usize,
        passed: bool,
    },
    DirectPush,
    Cancel(usize),
}

fn at(t: f64) -> i64 {
    (t * 1_000_000.0) as i64
}

/// The executor of the simulation: the world's truth, the queues, and the tallies.
struct Sim<'w> {
    world: &'w World,
    rng: StdRng,
    events: BinaryHeap<Reverse<(i64, u64, Event)>>,
    sequence: u64,
    lanes: Vec<Lane>,
    lane_of: Vec<usize>,
    tip: HashSet<usize>,
    /// Per lane, what moved its tip, in order (a request id, or -1 for a direct push);
    /// per candidate, what it was tested on: that history's length and the requests
    /// below it.
    history: Vec<Vec<i64>>,
    tested_on: BTreeMap<CandidateId, (usize, Vec<i64>)>,
    cancelled_runs: HashSet<CandidateId>,
    decided: HashSet<i64>,
    landed_at: BTreeMap<usize, f64>,
    runs: usize,
    refused: usize,
    cancelled: usize,
    red: usize,
    untested: usize,
    twice: usize,
    last_landing: f64,
}

impl Sim<'_> {
    fn at(&mut self, t: f64, e: Event) {
        self.sequence += 1;
        self.events.push(Reverse((at(t), self.sequence, e)));
    }

    fn decide(&mut self, id: i64) {
        self.twice += usize::from(!self.decided.insert(id));
    }

    /// Carries out a lane's actions, and the actions they lead to. The actions of one
    /// call were decided on one state of the lane: what its tip had then is the base of
    /// the candidates they start (a landing among them is below those candidates).
    fn execute(&mut self, now: f64, lane: usize, actions: Vec<Action>) {
        let mut batch = actions;
        while !batch.is_empty() {
            let base = self.history[lane].len();
            let mut next = Vec::new();
            for action in batch {
                match action {
                    Action::Test {
                        candidate,
                        changes,
                        ahead,
                        ..
                    } => {
                        self.runs += 1;
                        self.tested_on.insert(candidate, (base, ahead.clone()));
                        let added: Vec<usize> =
                            ahead.iter().chain(&changes).map(|&c| c as usize).collect();
                        let passed = self.world.passes(&self.tip, &added);
                        let done = now + self.world.duration(&mut self.rng);
                        self.at(
                            done,
                            Event::Done {
                                lane,
                                candidate,
                                passed,
                            },
                        );
                    }
                    Action::Cancel { candidate } => {
                        self.cancelled_runs.insert(candidate);
                    }
                    Action::Land { candidate, changes } => {
                        // Exactly what was tested: the lane's tip gained, since the test,
                        // the requests below the candidate and nothing else.
                        let exact =
                            self.tested_on
                                .remove(&candidate)
                                .is_some_and(|(base, ahead)| {
                                    self.history[lane].get(base..) == Some(ahead.as_slice())
                                });
                        self.untested += usize::from(!exact);
                        let added: Vec<usize> = changes.iter().map(|&c| c as usize).collect();
                        if !self.world.passes(&self.tip, &added) {
                            self.red += 1;
                        }
                        for &c in &changes {
                            self.decide(c);
                            self.tip.insert(c as usize);
                            self.landed_at.insert(c as usize, now);
                        }
                        self.history[lane].extend(changes.iter().copied());
                        self.last_landing = now;
                        next.extend(self.lanes[lane].landed(candidate));
                    }
                    Action::Eject { change, .. } => {
                        self.refused += 1;
                        self.decide(change);
                    }
                }
            }
            batch = next;
        }
    }

    /// Someone pushed to the destination: every lane's tip moved.
    fn direct_push(&mut self, now: f64) {
        for lane in 0..self.lanes.len() {
            self.history[lane].push(-1);
            let actions = self.lanes[lane].tip_moved();
            self.execute(now, lane, actions);
        }
    }
}

/// Runs `policy` in `scenario`.
pub fn run(scenario: Scenario, policy: Policy) -> Outcome {
    let world = World::new(scenario);
    let lane_count = if policy.lanes {
        scenario.parts.max(1)
    } else {
        1
    };
    let gate = policy.gate.unwrap_or(LaneConfig {
        strategy: Strategy::Serial,
        max_window: 1,
        batch_size: 1,
    });
    let mut sim = Sim {
        world: &world,
        rng: StdRng::seed_from_u64(scenario.seed.wrapping_add(1)),
        events: BinaryHeap::new(),
        sequence: 0,
        lanes: (0..lane_count)
            .map(|k| Lane::new(gate, (k as u64) << 40))
            .collect(),
        lane_of: world
            .part
            .iter()
            .map(|&p| if policy.lanes { p } else { 0 })
            .collect(),
        tip: HashSet::new(),
        history: vec![Vec::new(); lane_count],
        tested_on: BTreeMap::new(),
        cancelled_runs: HashSet::new(),
        decided: HashSet::new(),
        landed_at: BTreeMap::new(),
        runs: 0,
        refused: 0,
        cancelled: 0,
        red: 0,
        untested: 0,
        twice: 0,
        last_landing: 0.0,
    };
    let last_arrival = world.arrival.last().copied().unwrap_or(0.0);
    for (i, &t) in world.arrival.iter().enumerate() {
        sim.at(t, Event::Arrival(i));
        if policy.gate.is_some() && sim.rng.random_bool(scenario.cancels.clamp(0.0, 1.0)) {
            let when = t + 2.0 * sim.rng.random::<f64>();
            sim.at(when, Event::Cancel(i));
        }
    }
    if policy.gate.is_some() && scenario.direct_pushes_per_t > 0.0 {
        let mut t = 0.0;
        while t < last_arrival {
            let u: f64 = sim.rng.random_range(f64::EPSILON..1.0);
            t += -u.ln() / scenario.direct_pushes_per_t;
            sim.at(t, Event::DirectPush);
        }
    }
    while let Some(Reverse((time, _, event))) = sim.events.pop() {
        let now = time as f64 / 1_000_000.0;
        match event {
            Event::Arrival(i) if policy.gate.is_none() => {
                sim.runs += 1;
                let passed = world.passes(&sim.tip, &[i]);
                let done = now + world.duration(&mut sim.rng);
                sim.at(done, Event::TryDone { request: i, passed });
            }
            Event::Arrival(i) => {
                let lane = sim.lane_of[i];
                let change = Change {
                    id: i as i64,
                    priority: 0,
                    arrival: i as i64,
                };
                let actions = sim.lanes[lane].enqueue(change);
                sim.execute(now, lane, actions);
            }
            Event::TryDone { request, passed } => {
                if passed {
                    // Landed without a test of the tip it makes: red if it interacts
                    // with something already there. (Counted per landing that breaks the
                    // tip, as if each were backed out at once.)
                    if !world.passes(&sim.tip, &[request]) {
                        sim.red += 1;
                    }
                    sim.tip.insert(request);
                    sim.landed_at.insert(request, now);
                    sim.last_landing = now;
                } else {
                    sim.refused += 1;
                }
            }
            Event::Done {
                lane,
                candidate,
                passed,
            } => {
                if !sim.cancelled_runs.remove(&candidate) {
                    let verdict = if passed {
                        Verdict::Passed
                    } else {
                        Verdict::Failed
                    };
                    let actions = sim.lanes[lane].result(candidate, verdict);
                    sim.execute(now, lane, actions);
                }
            }
            Event::DirectPush => sim.direct_push(now),
            Event::Cancel(i) => {
                let lane = sim.lane_of[i];
                let id = i as i64;
                // Only a request still in the queue (arrived, not decided, not landing).
                if now >= world.arrival[i]
                    && !sim.decided.contains(&id)
                    && !sim.lanes[lane].is_landing(id)
                {
                    sim.cancelled += 1;
                    sim.decide(id);
                    let actions = sim.lanes[lane].remove(id);
                    sim.execute(now, lane, actions);
                }
            }
        }
    }
    let Sim {
        landed_at,
        runs,
        refused,
        cancelled,
        red,
        untested,
        twice,
        last_landing,
        ..
    } = sim;
    let landed = landed_at.len();
    let mut waits: Vec<f64> = landed_at
        .iter()
        .map(|(&i, &t)| t - world.arrival[i])
        .collect();
    waits.sort_by(f64::total_cmp);
    let percentile = |q: f64| {
        if waits.is_empty() {
            0.0
        } else {
            waits[((waits.len() - 1) as f64 * q).round() as usize]
        }
    };
    let first = world.arrival.first().copied().unwrap_or(0.0);
    let elapsed = (last_landing - first).max(1e-9);
    Outcome {
        landed,
        refused,
        cancelled,
        ci_runs: runs,
        landings_per_t: landed as f64 / elapsed,
        runs_per_landing: if landed == 0 {
            0.0
        } else {
            runs as f64 / landed as f64
        },
        p50_t: percentile(0.5),
        p90_t: percentile(0.9),
        red_tips: red,
        untested_landings: untested,
        decided_twice: twice,
    }
}

/// The comparison table (Markdown) of `policies` in `scenario`; the serial rate is the
/// yardstick.
pub fn table(scenario: Scenario, policies: &[Policy]) -> (String, Vec<(Policy, Outcome)>) {
    let results: Vec<(Policy, Outcome)> = policies.iter().map(|&p| (p, run(scenario, p))).collect();
    let serial = results
        .iter()
        .find(|(p, _)| p.name == "serial")
        .map(|(_, o)| o.landings_per_t)
        .unwrap_or(0.0);
    let mut out = String::from(
        "| strategy | landed | refused | landings per T | × serial | CI runs per landing | time to land p50 / p90 (T) | red tips |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (policy, o) in &results {
        out.push_str(&format!(
            "| {} | {} | {} | {:.2} | {:.1} | {:.2} | {:.1} / {:.1} | {} |\n",
            policy.name,
            o.landed,
            o.refused,
            o.landings_per_t,
            if serial > 0.0 {
                o.landings_per_t / serial
            } else {
                0.0
            },
            o.runs_per_landing,
            o.p50_t,
            o.p90_t,
            o.red_tips
        ));
    }
    (out, results)
}

/// Throughput and CI cost against `p` for every policy: `(p, [(name, outcome)])`.
pub fn sweep(
    scenario: Scenario,
    policies: &[Policy],
    ps: &[f64],
) -> Vec<(f64, Vec<(&'static str, Outcome)>)> {
    ps.iter()
        .map(|&p| {
            let s = Scenario { p, ..scenario };
            (
                p,
                policies
                    .iter()
                    .map(|&pol| (pol.name, run(s, pol)))
                    .collect(),
            )
        })
        .collect()
}

/// `autoland simulate`: the options.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Requests to simulate.
    #[arg(long, default_value_t = 2000)]
    pub requests: usize,
    /// Mean arrivals per mean CI duration T.
    #[arg(long, default_value_t = 12.0)]
    pub arrivals_per_t: f64,
    /// Probability that a request fails on its own.
    #[arg(long, default_value_t = 0.10)]
    pub p: f64,
    /// Probability that two close requests of the same part fail together.
    #[arg(long, default_value_t = 0.02)]
    pub q: f64,
    /// How many arrivals apart two requests may interact.
    #[arg(long, default_value_t = 8)]
    pub span: usize,
    /// Independent parts of the tree (the lanes of the strategies with lanes).
    #[arg(long, default_value_t = 4)]
    pub parts: usize,
    /// CI durations are T × uniform [1 - spread, 1 + spread].
    #[arg(long, default_value_t = 0.2)]
    pub spread: f64,
    /// The gate's largest window.
    #[arg(long, default_value_t = 20)]
    pub window: usize,
    /// The gate's largest batch.
    #[arg(long, default_value_t = 2)]
    pub batch: usize,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Disruption: direct pushes to the destination per T (each rebuilds every candidate).
    #[arg(long, default_value_t = 0.0)]
    pub direct_pushes_per_t: f64,
    /// Disruption: the probability that a request is cancelled while queued.
    #[arg(long, default_value_t = 0.0)]
    pub cancels: f64,
    /// Also print throughput and CI runs per landing against p (0 to 30 %).
    #[arg(long)]
    pub sweep: bool,
    /// Draw the sweep to this PNG file (needs a build with `--features plot`).
    #[arg(long)]
    pub plot: Option<std::path::PathBuf>,
}

/// The p values of the sweep.
pub const SWEEP: [f64; 7] = [0.0, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30];

/// Runs `autoland simulate`.
pub fn main(args: &SimulateArgs) -> anyhow::Result<()> {
    let scenario = Scenario {
        requests: args.requests,
        arrivals_per_t: args.arrivals_per_t,
        p: args.p,
        q: args.q,
        span: args.span,
        parts: args.parts,
        spread: args.spread,
        seed: args.seed,
        direct_pushes_per_t: args.direct_pushes_per_t,
        cancels: args.cancels,
    };
    if ![args.p, args.q, args.cancels]
        .iter()
        .all(|x| (0.0..=1.0).contains(x))
    {
        anyhow::bail!("--p, --q and --cancels are probabilities, between 0 and 1");
    }
    if !(args.direct_pushes_per_t >= 0.0 && args.spread >= 0.0 && args.spread < 1.0) {
        anyhow::bail!("--direct-pushes-per-t must be at least 0 and --spread in [0, 1)");
    }
    if args.requests == 0 || args.arrivals_per_t <= 0.0 || args.window == 0 || args.batch == 0 {
        anyhow::bail!("--requests, --arrivals-per-t, --window and --batch must be positive");
    }
    let policies = policies(args.window, args.batch);
    println!(
        "{} requests, {:.1} arrivals per T, p = {:.0} %, q = {:.1} % (within {} arrivals, same part), \
         {} parts, window {}, batch {}, seed {}\n",
        args.requests,
        args.arrivals_per_t,
        args.p * 100.0,
        args.q * 100.0,
        args.span,
        args.parts,
        args.window,
        args.batch,
        args.seed
    );
    let (text, _) = table(scenario, &policies);
    println!("{text}");
    if args.sweep || args.plot.is_some() {
        let sweep = sweep(scenario, &policies, &SWEEP);
        println!(
            "| p | {} |",
            policies
                .iter()
                .map(|p| p.name)
                .collect::<Vec<_>>()
                .join(" | ")
        );
        println!("|---|{}", "---|".repeat(policies.len()));
        for (p, row) in &sweep {
            let cells: Vec<String> = row
                .iter()
                .map(|(_, o)| format!("{:.2}/T, {:.2} runs", o.landings_per_t, o.runs_per_landing))
                .collect();
            println!("| {:.0} % | {} |", p * 100.0, cells.join(" | "));
        }
        if let Some(path) = &args.plot {
            plot(path, &sweep)?;
            println!("\nplotted to {}", path.display());
        }
    }
    Ok(())
}

#[cfg(not(feature = "plot"))]
fn plot(_: &std::path::Path, _: &[(f64, Vec<(&'static str, Outcome)>)]) -> anyhow::Result<()> {
    anyhow::bail!(
        "this build cannot draw: build with `cargo run --release --features plot -- simulate --plot FILE`"
    )
}

#[cfg(feature = "plot")]
fn plot(
    path: &std::path::Path,
    sweep: &[(f64, Vec<(&'static str, Outcome)>)],
) -> anyhow::Result<()> {
    use plotters::prelude::*;
    // Text needs a font: the first of the usual system ones.
    let font = [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
    ]
    .iter()
    .find_map(|p| std::fs::read(p).ok())
    .ok_or_else(|| anyhow::anyhow!("no TrueType font found (install fonts-dejavu-core)"))?;
    let font: &'static [u8] = Box::leak(font.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| anyhow::anyhow!("the font cannot be read"))?;
    let names: Vec<&str> = sweep
        .first()
        .map(|(_, row)| row.iter().map(|(n, _)| *n).collect())
        .unwrap_or_default();
    let root = BitMapBackend::new(path, (1200, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(600);
    let series = |pick: &dyn Fn(&Outcome) -> f64, i: usize| -> Vec<(f64, f64)> {
        sweep
            .iter()
            .map(|(p, row)| (p * 100.0, pick(&row[i].1)))
            .collect()
    };
    let max_throughput = sweep
        .iter()
        .flat_map(|(_, row)| row.iter().map(|(_, o)| o.landings_per_t))
        .fold(1.0, f64::max);
    let max_runs = sweep
        .iter()
        .flat_map(|(_, row)| row.iter().map(|(_, o)| o.runs_per_landing))
        .fold(1.0, f64::max);
    for (area, title, top, legend, pick) in [
        (
            &left,
            "landings per T",
            max_throughput,
            SeriesLabelPosition::UpperRight,
            (&|o: &Outcome| o.landings_per_t) as &dyn Fn(&Outcome) -> f64,
        ),
        (
            &right,
            "CI runs per landing",
            max_runs,
            SeriesLabelPosition::LowerRight,
            &|o: &Outcome| o.runs_per_landing,
        ),
    ] {
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0.0..30.0, 0.0..top * 1.1)?;
        chart
            .configure_mesh()
            .x_desc("p: requests failing on their own (%)")
            .draw()?;
        for (i, name) in names.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(series(pick, i), color.stroke_width(2)))?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(legend)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(p: f64, q: f64) -> Scenario {
        Scenario {
            requests: 400,
            arrivals_per_t: 12.0,
            p,
            q,
            span: 8,
            parts: 4,
            spread: 0.2,
            seed: 7,
            direct_pushes_per_t: 0.0,
            cancels: 0.0,
        }
    }

    #[test]
    fn gated_strategies_land_only_what_they_tested_and_never_red() {
        // Many worlds, every strategy, with direct pushes and cancellations: no request
        // lost or decided twice, every landing is exactly its tested candidate, no red
        // tip; without the gate, red tips.
        for seed in 0..40 {
            let s = Scenario {
                seed,
                p: [0.0, 0.05, 0.1, 0.3][seed as usize % 4],
                q: [0.0, 0.02, 0.1][seed as usize % 3],
                direct_pushes_per_t: [0.0, 0.3, 2.0][seed as usize % 3],
                cancels: [0.0, 0.05, 0.2][seed as usize % 3],
                ..scenario(0.1, 0.05)
            };
            for policy in policies(1 + seed as usize % 12, 1 + seed as usize % 5) {
                let o = run(s, policy);
                let name = policy.name;
                assert_eq!(
                    o.landed + o.refused + o.cancelled,
                    s.requests,
                    "{name}, seed {seed}: lost requests"
                );
                if policy.gate.is_some() {
                    assert_eq!(
                        (o.red_tips, o.untested_landings, o.decided_twice),
                        (0, 0, 0),
                        "{name}, seed {seed}"
                    );
                }
            }
        }
        let off = run(scenario(0.1, 0.05), policies(20, 4)[0]);
        assert!(
            off.red_tips > 0,
            "without the gate, interacting pairs land red"
        );
    }

    #[test]
    fn without_failures_everything_lands_and_serial_takes_one_run_each() {
        let s = scenario(0.0, 0.0);
        let serial = run(s, policies(20, 4)[1]);
        assert_eq!((serial.landed, serial.ci_runs), (400, 400));
        let batched = run(s, policies(20, 4)[3]);
        assert_eq!(batched.landed, 400);
        assert!(batched.ci_runs < 400 && batched.landings_per_t > serial.landings_per_t * 4.0);
    }
}
