//! The smoke tests' results: one line per check (what was asked, how it ended, after how many
//! attempts) and the report of a whole run, for the log, the error and the job summary.

use std::time::Duration;

use super::SmokeError;

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckResult {
    pub(crate) name: String,
    /// `GET service/x:http/ready`.
    pub(crate) target: String,
    pub(crate) passed: bool,
    pub(crate) attempts: u32,
    pub(crate) elapsed: Duration,
    pub(crate) detail: String,
}

/// Every check's result, in spec order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Report {
    pub(crate) results: Vec<CheckResult>,
}

impl Report {
    pub(crate) fn passed(&self) -> bool {
        self.results.iter().all(|r| r.passed)
    }

    /// The report a run produced, whether it passed (`Ok`) or failed (`Failed`).
    pub(crate) fn of(result: &Result<Option<Report>, SmokeError>) -> Option<&Report> {
        match result {
            Ok(r) => r.as_ref(),
            Err(e) => e.report(),
        }
    }
}

impl CheckResult {
    /// The request, the outcome and the attempts in one line, for the summary table.
    pub(crate) fn summary_detail(&self) -> String {
        format!(
            "{}: {} ({})",
            self.target,
            self.detail,
            attempts(self.attempts, self.elapsed)
        )
    }
}

/// `1 attempt in 0.1s`, `7 attempts in 12.0s`: how long a check took, in every message.
pub(crate) fn attempts(n: u32, elapsed: Duration) -> String {
    format!(
        "{n} attempt{} in {:.1}s",
        if n == 1 { "" } else { "s" },
        elapsed.as_secs_f64()
    )
}
