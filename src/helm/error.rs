//! What a failed helm command says: what was attempted on what, and helm's own stderr shown
//! framed under it.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Helm's stderr, shown framed under the message that says what was attempted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Framed(pub String);

impl fmt::Display for Framed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.trim_end();
        if text.is_empty() {
            return f.write_str("  │ (helm wrote nothing to stderr)");
        }
        for (n, line) in text.lines().enumerate() {
            if n > 0 {
                f.write_str("\n")?;
            }
            write!(f, "  │ {line}")?;
        }
        Ok(())
    }
}

/// A helm command that did not do what was asked. `action` says what was attempted on what,
/// e.g. `upgrade release "traderadmin" in namespace "trader"`.
#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    #[error("failed to {action}: could not run {}", bin.display())]
    Spawn {
        action: String,
        bin: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to {action}: helm {status}; its stderr:\n{stderr}")]
    Failed {
        action: String,
        status: String,
        stderr: Framed,
    },
    #[error("failed to {action}: helm did not finish within {}; stopped it", humantime::format_duration(*.deadline))]
    Deadline { action: String, deadline: Duration },
    #[error("failed to {action}: cancelled ({signal}); helm was stopped; its stderr:\n{stderr}")]
    Cancelled {
        action: String,
        signal: &'static str,
        stderr: Framed,
    },
    #[error("failed to {action}: unexpected output from helm ({message}):\n{output}")]
    Output {
        action: String,
        message: String,
        output: Framed,
    },
}

impl HelmError {
    pub fn is_cancelled(&self) -> bool {
        matches!(self, HelmError::Cancelled { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::helm::release_action;

    #[test]
    fn stderr_is_framed_under_the_message() {
        let e = HelmError::Failed {
            action: release_action("upgrade", "x", "y"),
            status: "exit status: 1".into(),
            stderr: Framed("Error: UPGRADE FAILED: boom\nmore\n".into()),
        };
        assert_eq!(
            e.to_string(),
            "failed to upgrade release \"x\" in namespace \"y\": helm exit status: 1; its stderr:\n  │ Error: UPGRADE FAILED: boom\n  │ more"
        );
    }
}
