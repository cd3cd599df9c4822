//! Why a rollout did not become ready: the cause, and what the diagnostics and the rollback need
//! to know of the moment it was seen.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::Pod;

use super::progress::PodFailure;
use super::workloads::Workload;

/// Why a rollout did not become ready.
#[derive(Debug, Clone)]
pub enum Cause {
    /// A pod of the new revision reached a failing status.
    Pod(PodFailure),
    /// A workload reported failure (ProgressDeadlineExceeded, a failed Job).
    Workload { workload: Workload, message: String },
    /// The deadline passed first (with the watch's last error, if it had trouble).
    Deadline(Duration, Option<String>),
    /// SIGTERM/SIGINT.
    Cancelled(&'static str),
    /// The watch itself broke down.
    Watch(String),
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Pod(p) => write!(f, "{p}"),
            Cause::Workload { workload, message } => write!(f, "{workload}: {message}"),
            Cause::Deadline(d, None) => write!(
                f,
                "not ready within the timeout of {}",
                humantime::format_duration(*d)
            ),
            Cause::Deadline(d, Some(e)) => write!(
                f,
                "not ready within the timeout of {} (the watch's last error: {e})",
                humantime::format_duration(*d)
            ),
            Cause::Cancelled(s) => write!(f, "cancelled by {s}"),
            Cause::Watch(e) => write!(f, "the watch failed: {e}"),
        }
    }
}

/// A rollout that did not become ready.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{what}: {cause}")]
pub struct RolloutError {
    /// What was being watched, e.g. `the rollout of release "x" in namespace "y"`.
    pub what: String,
    pub cause: Cause,
    /// When the failure was seen (wall clock), for the time to rollback.
    pub detected_at: SystemTime,
    pub detected: Instant,
    /// Each workload's last progress line.
    pub last_progress: Vec<(Workload, String)>,
    /// Pods of the workloads (current revision) as last seen, for the diagnostics.
    pub pods: Vec<Pod>,
}

impl RolloutError {
    pub fn is_cancelled(&self) -> bool {
        matches!(self.cause, Cause::Cancelled(_))
    }
}
