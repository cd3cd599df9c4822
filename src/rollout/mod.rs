//! Rollout tracking: the release's workloads (from its manifest) and their pods watched with
//! kube-rs watchers until every workload is fully updated and ready, failing fast on a failing
//! pod status; the StatefulSet rules a rollback needs; diagnostics for the job summary.

mod diagnostics;
mod error;
mod progress;
pub mod repair;
pub mod statefulset;
mod tracker;
mod watch;
mod workloads;

pub use diagnostics::{container_states, diagnostics};
pub use progress::{
    FAILING_REASONS, PodFailure, Progress, daemonset_progress, deployment_progress, job_progress,
    pod_failure, selects, statefulset_progress,
};
pub use watch::{Cause, RolloutError, watch};
pub use workloads::{Kind, Workload, workloads_from_manifest};
