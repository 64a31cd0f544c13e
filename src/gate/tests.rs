//! The scheduling rule, scenario by scenario.

use super::lane::*;

fn change(id: ChangeId) -> Change {
    Change {
        id,
        priority: 0,
        arrival: id,
    }
}

fn speculative(window: usize, batch: usize) -> Lane {
    Lane::new(
        LaneConfig {
            strategy: Strategy::Speculative,
            max_window: window,
            batch_size: batch,
        },
        1,
    )
}

/// Plays a perfect executor: every landing asked for is pushed at once. Returns every
/// action, the confirmations' included.
fn confirm(lane: &mut Lane, actions: Vec<Action>) -> Vec<Action> {
    let mut all = Vec::new();
    let mut pending = actions;
    while !pending.is_empty() {
        let mut next = Vec::new();
        for action in pending {
            if let Action::Land { candidate, .. } = &action {
                next.extend(lane.landed(*candidate));
            }
            all.push(action);
        }
        pending = next;
    }
    all
}

/// A candidate passes, and the executor pushes every landing asked for.
fn pass(lane: &mut Lane, candidate: CandidateId) -> Vec<Action> {
    let actions = lane.result(candidate, Verdict::Passed);
    confirm(lane, actions)
}

/// The candidates each `Test` action starts: (candidate, on, changes).
fn tests(actions: &[Action]) -> Vec<(CandidateId, Option<CandidateId>, Vec<ChangeId>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Test {
                candidate,
                on,
                changes,
                ..
            } => Some((*candidate, *on, changes.clone())),
            _ => None,
        })
        .collect()
}

fn landed(actions: &[Action]) -> Vec<ChangeId> {
    actions
        .iter()
        .flat_map(|a| match a {
            Action::Land { changes, .. } => changes.clone(),
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn serial_tests_one_request_on_the_tip_at_a_time() {
    let mut lane = Lane::new(
        LaneConfig {
            strategy: Strategy::Serial,
            max_window: 20,
            batch_size: 8,
        },
        1,
    );
    assert_eq!(tests(&lane.enqueue(change(10))), [(1, None, vec![10])]);
    assert!(lane.enqueue(change(11)).is_empty(), "one at a time");
    let actions = lane.result(1, Verdict::Passed);
    assert_eq!(landed(&actions), [10]);
    assert!(
        tests(&actions).is_empty(),
        "nothing starts before the landing is pushed"
    );
    assert_eq!(tests(&lane.landed(1)), [(2, None, vec![11])]);
}

#[test]
fn a_window_tests_candidates_on_top_of_each_other_and_lands_them_in_order() {
    let mut lane = speculative(4, 1);
    let mut started = Vec::new();
    for id in 1..=5 {
        started.extend(tests(&lane.enqueue(change(id))));
    }
    assert_eq!(
        started,
        [
            (1, None, vec![1]),
            (2, Some(1), vec![2]),
            (3, Some(2), vec![3]),
            (4, Some(3), vec![4])
        ]
    );
    // A later candidate passing lands nothing while those below it are under test.
    assert!(landed(&lane.result(2, Verdict::Passed)).is_empty());
    // One landing at a time: 2 is asked for once 1 is pushed.
    let actions = lane.result(1, Verdict::Passed);
    assert_eq!(landed(&actions), [1]);
    let actions = confirm(&mut lane, actions);
    assert_eq!(landed(&actions), [1, 2]);
    assert_eq!(tests(&actions), [(5, Some(4), vec![5])]);
}

#[test]
fn a_failure_in_the_middle_rebuilds_those_above_and_ejects_only_the_culprit() {
    let mut lane = speculative(4, 1);
    for id in 1..=4 {
        lane.enqueue(change(id));
    }
    // Candidate 2 (request 2, on request 1) fails: 3 and 4 were built on it. They are
    // rebuilt at once on request 1, without request 2.
    let actions = lane.result(2, Verdict::Failed);
    assert!(actions.contains(&Action::Cancel { candidate: 3 }));
    assert!(actions.contains(&Action::Cancel { candidate: 4 }));
    // The window halved (4 → 2): one rebuilt candidate for now.
    assert_eq!(tests(&actions), [(5, Some(1), vec![3])]);
    let actions = pass(&mut lane, 1);
    assert_eq!(landed(&actions), [1]);
    assert_eq!(tests(&actions), [(6, Some(5), vec![4])]);
    assert!(actions.contains(&Action::Eject {
        change: 2,
        candidate: 2,
        tested_with: vec![1]
    }));
    // Halved when 2 failed (4 → 2), one more for the landing of 1.
    assert_eq!(lane.window(), 3);
    let actions = pass(&mut lane, 5);
    assert_eq!(landed(&actions), [3]);
    assert_eq!(landed(&pass(&mut lane, 6)), [4]);
    assert!(lane.is_idle());
}

#[test]
fn a_candidate_that_failed_above_another_failure_is_tested_again() {
    let mut lane = speculative(3, 1);
    for id in 1..=3 {
        lane.enqueue(change(id));
    }
    // 3 fails first (maybe because of 2), then 2 fails: 3 goes back to the queue (its
    // run is over: nothing to cancel), to be tested again without 2.
    lane.result(3, Verdict::Failed);
    let actions = lane.result(2, Verdict::Failed);
    assert!(
        !actions.contains(&Action::Cancel { candidate: 3 }),
        "already over"
    );
    assert_eq!(lane.waiting(), [3]);
    let actions = pass(&mut lane, 1);
    assert_eq!(landed(&actions), [1]);
    assert_eq!(tests(&actions), [(4, None, vec![3])]);
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Eject { change: 2, .. }))
    );
    let actions = pass(&mut lane, 4);
    assert_eq!(landed(&actions), [3], "3 was innocent");
    assert!(lane.is_idle());
}

#[test]
fn a_failed_batch_is_bisected_and_the_innocent_land() {
    let mut lane = speculative(1, 4);
    for id in 1..=5 {
        lane.enqueue(change(id));
    }
    // Request 1 was alone when it came; the four behind it make one candidate.
    let actions = pass(&mut lane, 1);
    assert_eq!(tests(&actions), [(2, None, vec![2, 3, 4, 5])]);
    // It fails on the tip: split in halves.
    let actions = lane.result(2, Verdict::Failed);
    assert_eq!(tests(&actions), [(3, None, vec![2, 3])]);
    // The first half passes and lands; the second half is what failed on this very tip,
    // so it is split again without a run.
    let actions = pass(&mut lane, 3);
    assert_eq!(landed(&actions), [2, 3]);
    assert_eq!(tests(&actions), [(4, None, vec![4])]);
    // 4 passes: 5 is the culprit, known without testing it again (convicted by run 2).
    let actions = pass(&mut lane, 4);
    assert_eq!(landed(&actions), [4]);
    assert!(
        actions.contains(&Action::Eject {
            change: 5,
            candidate: 2,
            tested_with: vec![2, 3, 4]
        }),
        "{actions:?}"
    );
    assert!(tests(&actions).is_empty());
    assert!(lane.is_idle());
}

#[test]
fn bisection_never_retests_a_known_failure_nor_mixes_in_other_requests() {
    // Window 4, batches of 3: four single candidates fill the window, then a batch of
    // [2, 3, 4] and [5] above it.
    let mut lane = speculative(4, 3);
    for id in [1, 9, 10, 11, 2, 3, 4, 5] {
        lane.enqueue(Change {
            id,
            priority: 0,
            arrival: id * 10 + i64::from(id > 8) * -1000,
        });
    }
    let mut started = tests(&pass(&mut lane, 1));
    for candidate in [2, 3, 4] {
        started.extend(tests(&pass(&mut lane, candidate)));
    }
    assert_eq!(
        started,
        [(5, Some(4), vec![2, 3, 4]), (6, Some(5), vec![5])]
    );
    // The batch fails on the tip: halves [2, 3] and [4]. [4] on top of [2, 3] would be
    // the failed run again, so it waits (and 5 behind it); 5 is never batched with a half.
    let actions = lane.result(5, Verdict::Failed);
    assert!(actions.contains(&Action::Cancel { candidate: 6 }));
    assert_eq!(tests(&actions), [(7, None, vec![2, 3])]);
    // [2, 3] lands: [4] is known to fail (it is run 5), ejected without a run; 5 goes on.
    let actions = pass(&mut lane, 7);
    assert_eq!(landed(&actions), [2, 3]);
    assert!(actions.contains(&Action::Eject {
        change: 4,
        candidate: 5,
        tested_with: vec![9, 10, 11, 2, 3]
    }));
    assert_eq!(tests(&actions), [(8, None, vec![5])]);
}

#[test]
fn a_refused_landing_loses_nothing_and_rebuilds_on_the_new_tip() {
    let mut lane = speculative(3, 1);
    for id in 1..=3 {
        lane.enqueue(change(id));
    }
    lane.result(2, Verdict::Passed);
    let actions = lane.result(1, Verdict::Passed);
    assert_eq!(landed(&actions), [1]);
    // Someone pushed first: 1, 2 and 3 are all built again, on the new tip.
    let actions = lane.land_refused(1);
    assert!(actions.contains(&Action::Cancel { candidate: 2 }));
    assert!(actions.contains(&Action::Cancel { candidate: 3 }));
    assert_eq!(
        tests(&actions),
        [
            (4, None, vec![1]),
            (5, Some(4), vec![2]),
            (6, Some(5), vec![3])
        ]
    );
    // A landing under way survives a direct push (its executor will say how it went):
    // the others are rebuilt on it.
    lane.result(4, Verdict::Passed);
    assert!(lane.is_landing(1));
    let actions = lane.tip_moved();
    assert!(!actions.contains(&Action::Cancel { candidate: 4 }));
    assert_eq!(
        tests(&actions),
        [(7, Some(4), vec![2]), (8, Some(7), vec![3])]
    );
    assert!(
        lane.remove(1).is_empty(),
        "a request being landed cannot leave"
    );
    let actions = lane.landed(4);
    assert!(actions.is_empty(), "{actions:?}");
    assert_eq!(landed(&pass(&mut lane, 7)), [2]);
}

#[test]
fn cancelled_requests_leave_and_only_what_was_built_on_them_is_rebuilt() {
    let mut lane = speculative(3, 1);
    for id in 1..=3 {
        lane.enqueue(change(id));
    }
    let actions = lane.remove(2);
    assert!(actions.contains(&Action::Cancel { candidate: 2 }));
    assert!(actions.contains(&Action::Cancel { candidate: 3 }));
    assert_eq!(tests(&actions), [(4, Some(1), vec![3])]);
    // A failed candidate waiting at 5: removing it rebuilds nothing else.
    lane.enqueue(change(5));
    lane.result(5, Verdict::Failed);
    let actions = lane.remove(5);
    assert!(
        !actions.iter().any(|a| matches!(a, Action::Cancel { .. })),
        "{actions:?}"
    );
}

#[test]
fn priority_then_arrival_and_an_operator_may_move_one_to_the_front() {
    let mut lane = speculative(1, 1);
    lane.enqueue(change(1));
    lane.enqueue(change(2));
    lane.enqueue(Change {
        id: 3,
        priority: 5,
        arrival: 3,
    });
    lane.enqueue(change(4));
    lane.enqueue(Change {
        id: 6,
        priority: i64::MIN,
        arrival: 6,
    });
    assert_eq!(lane.waiting(), [3, 2, 4, 6]);
    lane.promote(4);
    assert_eq!(lane.waiting(), [4, 3, 2, 6]);
}
