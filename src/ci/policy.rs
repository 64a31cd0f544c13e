//! The retry policy: given every attempt of every job of a run, whether to wait, retry
//! some jobs, or give the run its verdict. Pure, so each rule is a unit test.
//!
//! - A job that **failed** is run again up to `retry_failed_jobs` times, one that hit an
//!   **infrastructure** failure up to `retry_infra` times; cancelled and skipped jobs never.
//! - Every retry spends one from the request's quota and one from the repository's daily
//!   quota; a job that needs a retry when either is spent is final, and the verdict says
//!   which quota stopped it.
//! - Only a CI that takes orders is retried by Autoland (Buildbot, the built-in runner);
//!   for the others (Treeherder, the webhook) the CI's own later attempts count, and a job
//!   whose result is `retry` (the CI runs it again itself) keeps the run waiting for the
//!   next attempt.
//! - A job that failed and then passed is intermittent: the run passes and says so.

use crate::config::RetryRules;
use crate::store::{CiJob, JobResult, JobState, outcomes};

/// Retries still allowed by the quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Left in the request's quota.
    pub request_left: i64,
    /// Left in the repository's daily quota.
    pub day_left: i64,
    /// The request's quota (for messages).
    pub per_request: u32,
    /// The daily quota (for messages).
    pub per_day: u32,
}

/// Why a job is run again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    /// It failed.
    Failed,
    /// The infrastructure failed.
    Infra,
}

impl RetryReason {
    /// Label for events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            RetryReason::Failed => "failed",
            RetryReason::Infra => "infra",
        }
    }
}

/// One retry to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// The job.
    pub name: String,
    /// The attempt to start.
    pub attempt: i64,
    /// Why.
    pub reason: RetryReason,
    /// What the attempt before said (`FAILURE`, `exception`, ...).
    pub previous: String,
}

/// What to do with a run now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Jobs are still to come or running; `retries` are to be asked for now.
    Wait {
        /// Jobs to run again.
        retries: Vec<Retry>,
    },
    /// Every job passed (`intermittent`: those that needed a retry).
    Passed {
        /// Jobs that passed only on a later attempt.
        intermittent: Vec<String>,
    },
    /// A job failed for good.
    Failed {
        /// The failed jobs.
        failed: Vec<String>,
        /// Jobs that were not retried because a quota was spent, with the quota.
        quota: Option<String>,
    },
}

/// Decides. `expected`: jobs the run must have (empty when the CI decides which jobs
/// exist); `complete`: the CI says no more jobs will appear; `can_retry`: Autoland can ask
/// the CI for another attempt of one job.
pub fn decide(
    jobs: &[CiJob],
    expected: &[String],
    complete: bool,
    rules: RetryRules,
    can_retry: bool,
    quota: Quota,
) -> Decision {
    let mut request_left = quota.request_left;
    let mut day_left = quota.day_left;
    let mut retries = Vec::new();
    let mut failed = Vec::new();
    let mut stopped_by = None;
    let mut running = expected
        .iter()
        .any(|name| !jobs.iter().any(|j| &j.name == name));
    for outcome in outcomes(jobs) {
        let last = outcome.last;
        if last.state != JobState::Completed {
            running = true;
            continue;
        }
        let Some(result) = last.result else {
            running = true;
            continue;
        };
        if result.is_good() {
            continue;
        }
        if !can_retry
            && last
                .raw_result
                .as_deref()
                .is_some_and(|w| w.eq_ignore_ascii_case("retry"))
        {
            // The CI said it runs the job again itself: wait for that attempt.
            running = true;
            continue;
        }
        let same = |r: JobResult| {
            jobs.iter()
                .filter(|j| j.name == outcome.name && j.result == Some(r))
                .count()
        };
        let reason = match result {
            JobResult::Failed if same(JobResult::Failed) <= rules.failed as usize => {
                Some(RetryReason::Failed)
            }
            JobResult::Infra if same(JobResult::Infra) <= rules.infra as usize => {
                Some(RetryReason::Infra)
            }
            _ => None,
        };
        match reason {
            Some(reason) if can_retry => {
                if request_left <= 0 {
                    stopped_by.get_or_insert_with(|| {
                        format!(
                            "this request has used its {} retries (retry_quota_per_request; an \
                             operator can raise it in the try repository's configuration)",
                            quota.per_request
                        )
                    });
                    failed.push(outcome.name.to_owned());
                } else if day_left <= 0 {
                    stopped_by.get_or_insert_with(|| {
                        format!(
                            "the try repository has used its {} retries of the last 24 hours \
                             (retry_quota_per_day; retries come back as the day's pass, or an \
                             operator can raise it)",
                            quota.per_day
                        )
                    });
                    failed.push(outcome.name.to_owned());
                } else {
                    request_left -= 1;
                    day_left -= 1;
                    retries.push(Retry {
                        name: outcome.name.to_owned(),
                        attempt: last.attempt + 1,
                        reason,
                        previous: last
                            .raw_result
                            .clone()
                            .unwrap_or_else(|| result.as_str().to_owned()),
                    });
                }
            }
            _ => failed.push(outcome.name.to_owned()),
        }
    }
    if running || !retries.is_empty() || !complete {
        return Decision::Wait { retries };
    }
    if failed.is_empty() {
        if jobs.is_empty() {
            // Complete with no job at all: nothing was tested, which is not a pass.
            return Decision::Failed {
                failed: Vec::new(),
                quota: None,
            };
        }
        let intermittent = outcomes(jobs)
            .into_iter()
            .filter(|o| o.intermittent)
            .map(|o| o.name.to_owned())
            .collect();
        Decision::Passed { intermittent }
    } else {
        Decision::Failed {
            failed,
            quota: stopped_by,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: RetryRules = RetryRules {
        failed: 1,
        infra: 2,
        per_request: 4,
        per_day: 50,
    };
    const PLENTY: Quota = Quota {
        request_left: 4,
        day_left: 50,
        per_request: 4,
        per_day: 50,
    };

    fn job(name: &str, attempt: i64, result: Option<JobResult>) -> CiJob {
        CiJob {
            id: attempt,
            run_id: 1,
            name: name.to_owned(),
            attempt,
            state: if result.is_some() {
                JobState::Completed
            } else {
                JobState::Running
            },
            result,
            raw_result: result.map(|r| r.as_str().to_uppercase()),
            external_id: None,
            log_url: None,
            duration_ms: None,
            summary: None,
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn all_passed_passes() {
        let jobs = [
            job("build", 1, Some(JobResult::Success)),
            job("test", 1, Some(JobResult::Success)),
        ];
        let d = decide(&jobs, &names(&["build", "test"]), true, RULES, true, PLENTY);
        assert_eq!(
            d,
            Decision::Passed {
                intermittent: vec![]
            }
        );
    }

    #[test]
    fn a_running_or_missing_job_waits() {
        let jobs = [
            job("build", 1, Some(JobResult::Success)),
            job("test", 1, None),
        ];
        let d = decide(&jobs, &names(&["build", "test"]), true, RULES, true, PLENTY);
        assert_eq!(d, Decision::Wait { retries: vec![] });
        let jobs = [job("build", 1, Some(JobResult::Success))];
        let d = decide(&jobs, &names(&["build", "test"]), true, RULES, true, PLENTY);
        assert_eq!(d, Decision::Wait { retries: vec![] });
    }

    #[test]
    fn a_failure_is_retried_once_then_final() {
        let jobs = [job("test", 1, Some(JobResult::Failed))];
        let d = decide(&jobs, &names(&["test"]), true, RULES, true, PLENTY);
        let Decision::Wait { retries } = d else {
            panic!("expected a retry, got {d:?}");
        };
        assert_eq!(retries.len(), 1);
        assert_eq!(retries[0].attempt, 2);
        assert_eq!(retries[0].reason, RetryReason::Failed);
        let jobs = [
            job("test", 1, Some(JobResult::Failed)),
            job("test", 2, Some(JobResult::Failed)),
        ];
        let d = decide(&jobs, &names(&["test"]), true, RULES, true, PLENTY);
        assert_eq!(
            d,
            Decision::Failed {
                failed: names(&["test"]),
                quota: None
            }
        );
    }

    #[test]
    fn infrastructure_failures_get_two_retries_and_a_pass_is_intermittent() {
        let mut jobs = vec![
            job("build", 1, Some(JobResult::Infra)),
            job("build", 2, Some(JobResult::Infra)),
        ];
        let d = decide(&jobs, &names(&["build"]), true, RULES, true, PLENTY);
        assert!(
            matches!(&d, Decision::Wait { retries } if retries[0].attempt == 3),
            "{d:?}"
        );
        jobs.push(job("build", 3, Some(JobResult::Success)));
        let d = decide(&jobs, &names(&["build"]), true, RULES, true, PLENTY);
        assert_eq!(
            d,
            Decision::Passed {
                intermittent: names(&["build"])
            }
        );
        jobs.pop();
        jobs.push(job("build", 3, Some(JobResult::Infra)));
        let d = decide(&jobs, &names(&["build"]), true, RULES, true, PLENTY);
        assert!(matches!(d, Decision::Failed { .. }), "{d:?}");
    }

    #[test]
    fn cancelled_jobs_are_not_retried_and_skipped_ones_do_not_fail() {
        let jobs = [
            job("a", 1, Some(JobResult::Cancelled)),
            job("b", 1, Some(JobResult::Skipped)),
        ];
        let d = decide(&jobs, &[], true, RULES, true, PLENTY);
        assert_eq!(
            d,
            Decision::Failed {
                failed: names(&["a"]),
                quota: None
            }
        );
    }

    #[test]
    fn quotas_stop_retries_and_say_which() {
        let jobs = [job("test", 1, Some(JobResult::Failed))];
        let none_left = Quota {
            request_left: 0,
            ..PLENTY
        };
        let d = decide(&jobs, &names(&["test"]), true, RULES, true, none_left);
        let Decision::Failed { failed, quota } = d else {
            panic!("expected a failure");
        };
        assert_eq!(failed, names(&["test"]));
        assert!(quota.is_some_and(|q| q.contains("retry_quota_per_request") && q.contains('4')));
        let day_spent = Quota {
            day_left: 0,
            ..PLENTY
        };
        let d = decide(&jobs, &names(&["test"]), true, RULES, true, day_spent);
        assert!(
            matches!(&d, Decision::Failed { quota: Some(q), .. } if q.contains("retry_quota_per_day")),
            "{d:?}"
        );
        // Two failures, one retry left: the first is retried, the second is not.
        let jobs = [
            job("a", 1, Some(JobResult::Failed)),
            job("b", 1, Some(JobResult::Failed)),
        ];
        let one = Quota {
            request_left: 1,
            ..PLENTY
        };
        let d = decide(&jobs, &names(&["a", "b"]), true, RULES, true, one);
        assert!(
            matches!(&d, Decision::Wait { retries } if retries.len() == 1),
            "{d:?}"
        );
    }

    #[test]
    fn a_ci_that_takes_no_orders_is_judged_on_its_own_attempts() {
        let jobs = [
            job("test", 1, Some(JobResult::Failed)),
            job("test", 2, Some(JobResult::Success)),
        ];
        let d = decide(&jobs, &[], true, RULES, false, PLENTY);
        assert_eq!(
            d,
            Decision::Passed {
                intermittent: names(&["test"])
            }
        );
        let jobs = [job("test", 1, Some(JobResult::Failed))];
        assert!(matches!(
            decide(&jobs, &[], true, RULES, false, PLENTY),
            Decision::Failed { .. }
        ));
        // The CI retries on its own (`retry`): wait for its next attempt.
        let mut again = job("test", 1, Some(JobResult::Infra));
        again.raw_result = Some("retry".to_owned());
        assert_eq!(
            decide(&[again], &[], true, RULES, false, PLENTY),
            Decision::Wait { retries: vec![] }
        );
        // Not complete yet: wait, even with every job done.
        assert_eq!(
            decide(&jobs, &[], false, RULES, false, PLENTY),
            Decision::Wait { retries: vec![] }
        );
        // Complete with no jobs: not a pass.
        assert!(matches!(
            decide(&[], &[], true, RULES, false, PLENTY),
            Decision::Failed { .. }
        ));
    }
}
