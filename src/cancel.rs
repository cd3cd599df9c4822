//! Cancellation (SIGTERM/SIGINT of a cancelled job) and deadlines: the two ways a wait ends
//! early. Depends on nothing else in the crate, so every module that waits can take them.

use std::time::{Duration, Instant};

/// Cancellation of a run by SIGTERM or SIGINT (a cancelled job): helm is stopped cleanly and the
/// release is brought back to a known deployed revision.
#[derive(Clone)]
pub struct Cancel {
    rx: tokio::sync::watch::Receiver<Option<&'static str>>,
    _tx: Option<std::sync::Arc<tokio::sync::watch::Sender<Option<&'static str>>>>,
}

impl Cancel {
    /// Never fires.
    pub fn never() -> Cancel {
        let (tx, rx) = tokio::sync::watch::channel(None);
        Cancel {
            rx,
            _tx: Some(std::sync::Arc::new(tx)),
        }
    }

    /// Fires on the first SIGTERM or SIGINT. Needs a tokio runtime.
    pub fn on_signals() -> Cancel {
        use tokio::signal::unix::{SignalKind, signal};
        let (tx, rx) = tokio::sync::watch::channel(None);
        let tx = std::sync::Arc::new(tx);
        let sender = tx.clone();
        if let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            tokio::spawn(async move {
                let name = tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                };
                let _ = sender.send(Some(name));
            });
        }
        Cancel { rx, _tx: Some(tx) }
    }

    /// The signal that cancelled the run, if one did.
    pub fn signal(&self) -> Option<&'static str> {
        *self.rx.borrow()
    }

    /// Resolves with the signal's name once the run is cancelled.
    pub async fn cancelled(&self) -> &'static str {
        let mut rx = self.rx.clone();
        match rx.wait_for(Option::is_some).await {
            Ok(v) => v.unwrap_or("cancel"),
            Err(_) => std::future::pending().await,
        }
    }
}

/// When a wait must end: `timeout` counted from `since` (e.g. the start of the upgrade, so that
/// the timeout covers the whole rollout).
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    pub timeout: Duration,
    pub since: Instant,
}

impl Deadline {
    pub fn from_now(timeout: Duration) -> Deadline {
        Deadline {
            timeout,
            since: Instant::now(),
        }
    }

    pub fn at(&self) -> Instant {
        self.since + self.timeout
    }

    pub fn passed(&self) -> bool {
        Instant::now() >= self.at()
    }

    /// What is left of it.
    pub fn remaining(&self) -> Duration {
        self.at().saturating_duration_since(Instant::now())
    }

    /// A sleep until it passes.
    pub async fn sleep(&self) {
        tokio::time::sleep_until(tokio::time::Instant::from_std(self.at())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cancel_reports_the_signal() {
        let never = Cancel::never();
        assert_eq!(never.signal(), None);
        let waited = tokio::time::timeout(Duration::from_millis(20), never.cancelled()).await;
        assert!(waited.is_err(), "never fires");
    }

    #[test]
    fn a_deadline_counts_from_its_start() {
        let d = Deadline {
            timeout: Duration::from_secs(10),
            since: Instant::now() - Duration::from_secs(4),
        };
        assert!(!d.passed());
        assert!(d.remaining() <= Duration::from_secs(6));
        assert!(d.remaining() > Duration::from_secs(5));
        assert!(Deadline::from_now(Duration::ZERO).passed());
    }
}
