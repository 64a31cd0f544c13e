//! What every module needs to run, and nothing that names a module: the [`Context`](crate::runtime::Context)
//! (configuration, database, working copies, trackers), wake-ups between modules and
//! processes, supervision and heartbeats, leadership of the singleton modules, the status
//! overview and the metrics. Modules (`pipeline`, `ci`, `tracker`, `treestatus`, `web`)
//! import this; it imports none of them. `service` is the one place that starts them.

pub mod context;
pub mod leadership;
pub mod listener;
pub mod metrics;
pub mod module_status;
pub mod status;
pub mod supervise;
pub mod tracker;
pub mod wake;

pub use context::{Context, actor_of, instance_name};
pub use leadership::{lead, singleton};
pub use module_status::ModuleStatus;
pub use supervise::supervise;
pub use tracker::{GatherError, Gathered, Tracker, Trackers};
pub use wake::Work;
