//! Wake-ups: which module has new work, and the in-process signals that start an idle
//! module at once instead of at its next poll. [`Context::wake`](super::Context::wake)
//! also tells the other processes (PostgreSQL NOTIFY; see [`super::listener`]). Polling
//! stays the safety net.

use std::fmt;

use tokio::sync::Notify;

/// Which module has new work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// A workable request (new, retried, try passed, repository reopened).
    Pushers,
    /// A queued CI run.
    Ci,
    /// A finished CI run.
    Watcher,
    /// Reports for the tracker.
    Outbox,
    /// A request joined or left a landing gate.
    Gate,
}

impl Work {
    /// Every kind of work.
    pub const ALL: [Work; 5] = [
        Work::Pushers,
        Work::Ci,
        Work::Watcher,
        Work::Outbox,
        Work::Gate,
    ];

    /// The name sent between processes.
    pub fn as_str(self) -> &'static str {
        match self {
            Work::Pushers => "pushers",
            Work::Ci => "ci",
            Work::Watcher => "watcher",
            Work::Outbox => "outbox",
            Work::Gate => "gate",
        }
    }

    /// The kind named `text` (as sent between processes).
    pub fn parse(text: &str) -> Option<Work> {
        Work::ALL.into_iter().find(|w| w.as_str() == text)
    }
}

impl fmt::Display for Work {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Wake-ups of this process's modules, one signal per kind of [`Work`].
#[derive(Debug, Default)]
pub struct Wakers {
    /// New workable requests (received, try passed).
    pushers: Notify,
    /// A CI run was queued.
    ci: Notify,
    /// A CI run finished.
    watcher: Notify,
    /// Reports were queued for the tracker.
    outbox: Notify,
    /// The landing gates (one executor per gated destination): a request joined or left
    /// a gate, or a CI run finished.
    gate: Notify,
}

impl Wakers {
    /// The signal of the modules that do `work`.
    pub fn of(&self, work: Work) -> &Notify {
        match work {
            Work::Pushers => &self.pushers,
            Work::Ci => &self.ci,
            Work::Watcher => &self.watcher,
            Work::Outbox => &self.outbox,
            Work::Gate => &self.gate,
        }
    }

    /// Wakes this process's modules that do `work`. Every gate executor waits on the
    /// same signal: all of them are woken (and a permit is kept for one that is busy);
    /// a finished CI run concerns the gates as much as the result watcher.
    pub fn notify(&self, work: Work) {
        self.of(work).notify_one();
        if matches!(work, Work::Gate | Work::Watcher) {
            self.gate.notify_waiters();
            self.gate.notify_one();
        }
    }

    /// Wakes every module of this process (wake-ups sent meanwhile may have been lost).
    pub fn notify_all(&self) {
        for work in Work::ALL {
            self.notify(work);
        }
    }
}
