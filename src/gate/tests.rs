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
    assert_eq!(tests(&actions), [(2, None, vec![11])]);
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
    let actions = lane.result(1, Verdict::Passed);
    assert_eq!(landed(&actions), [1, 2]);
    // Two landed: the window grows back (it is at its maximum) and request 5 starts on 4.
    assert_eq!(tests(&actions), [(5, Some(4), vec![5])]);
}

#[test]
fn a_failure_in_the_middle_rebuilds_those_above_and_ejects_only_the_culprit() {
    let mut lane = speculative(4, 1);
    for id in 1..=4 {
        lane.enqueue(change(id));
    }
    // Candidate 2 (request 2, on request 1) fails: 3 and 4 were built on it.
    let actions = lane.result(2, Verdict::Failed);
    assert!(actions.contains(&Action::Cancel { candidate: 3 }));
    assert!(actions.contains(&Action::Cancel { candidate: 4 }));
    assert_eq!(lane.window(), 2);
    // They are rebuilt at once on request 1, without request 2 (within the window).
    assert_eq!(tests(&actions), [(5, Some(1), vec![3])]);
    let actions = lane.result(1, Verdict::Passed);
    assert_eq!(landed(&actions), [1]);
    assert!(actions.contains(&Action::Eject {
        change: 2,
        candidate: 2,
        tested_with: vec![1]
    }));
    assert_eq!(tests(&actions), [(6, Some(5), vec![4])]);
    let actions = lane.result(5, Verdict::Passed);
    assert_eq!(landed(&actions), [3]);
    assert_eq!(landed(&lane.result(6, Verdict::Passed)), [4]);
    assert!(lane.is_idle());
}

#[test]
fn a_candidate_that_failed_above_another_failure_is_tested_again() {
    let mut lane = speculative(3, 1);
    for id in 1..=3 {
        lane.enqueue(change(id));
    }
    // 3 fails first (maybe because of 2), then 2 fails: 3 goes back to the queue.
    lane.result(3, Verdict::Failed);
    let actions = lane.result(2, Verdict::Failed);
    assert!(actions.contains(&Action::Cancel { candidate: 3 }));
    assert_eq!(lane.waiting(), [3]);
    let actions = lane.result(1, Verdict::Passed);
    assert_eq!(landed(&actions), [1]);
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Eject { change: 2, .. }))
    );
    assert_eq!(tests(&actions), [(4, None, vec![3])]);
    assert_eq!(
        landed(&lane.result(4, Verdict::Passed)),
        [3],
        "3 was innocent"
    );
}

#[test]
fn a_failed_batch_is_bisected_and_the_innocent_land() {
    let mut lane = speculative(1, 4);
    for id in 1..=5 {
        lane.enqueue(change(id));
    }
    // Request 1 was alone when it came; the four behind it make one candidate.
    let actions = lane.result(1, Verdict::Passed);
    assert_eq!(tests(&actions), [(2, None, vec![2, 3, 4, 5])]);
    // It fails on the tip: split in halves.
    let actions = lane.result(2, Verdict::Failed);
    assert_eq!(tests(&actions), [(3, None, vec![2, 3])]);
    // The first half passes and lands; the second half is what failed on this very tip,
    // so it is split again without a run.
    let actions = lane.result(3, Verdict::Passed);
    assert_eq!(landed(&actions), [2, 3]);
    assert_eq!(tests(&actions), [(4, None, vec![4])]);
    // 4 passes: 5 is the culprit, known without testing it again (convicted by run 2).
    let actions = lane.result(4, Verdict::Passed);
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
fn the_tip_moving_rebuilds_everything_and_cancelled_requests_leave() {
    let mut lane = speculative(3, 1);
    for id in 1..=3 {
        lane.enqueue(change(id));
    }
    let actions = lane.tip_moved();
    assert_eq!(
        actions
            .iter()
            .filter(|a| matches!(a, Action::Cancel { .. }))
            .count(),
        3
    );
    assert_eq!(
        tests(&actions),
        [
            (4, None, vec![1]),
            (5, Some(4), vec![2]),
            (6, Some(5), vec![3])
        ]
    );
    let actions = lane.remove(2);
    assert!(actions.contains(&Action::Cancel { candidate: 5 }));
    assert!(actions.contains(&Action::Cancel { candidate: 6 }));
    assert_eq!(tests(&actions), [(7, Some(4), vec![3])]);
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
    assert_eq!(lane.waiting(), [3, 2, 4]);
    lane.promote(4);
    assert_eq!(lane.waiting(), [4, 3, 2]);
}
