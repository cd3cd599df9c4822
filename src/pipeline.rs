//! THE sequence of a run: resolve, verify images, approve, upgrade, watch, smoke-test, roll back,
//! report. Each step is one group in the log.

use std::time::Instant;

use crate::context::RunContext;
use crate::inputs::{Config, Mode};
use crate::outputs::{Outputs, Status};
use crate::resolve;
use crate::runner::Runner;

/// A run that did not succeed: the message for the annotation and the outputs it still writes.
#[derive(Debug)]
pub struct Failure {
    pub title: &'static str,
    pub error: anyhow::Error,
    pub outputs: Outputs,
}

/// Runs the configured mode to its outcome.
pub async fn run(config: &Config, ctx: &RunContext, runner: &Runner) -> Result<Outputs, Failure> {
    let started = Instant::now();
    let mut result = match config.mode {
        Mode::Resolve => resolve_only(config, ctx, runner),
        other => Err(Failure {
            title: "Mode not available",
            error: anyhow::anyhow!(
                "input `mode`: {:?} is not available in this build yet (only resolve is)",
                other.as_str()
            ),
            outputs: Outputs {
                status: Status::Failed,
                ..resolve::outputs(config)
            },
        }),
    };
    let secs = started.elapsed().as_secs_f64();
    match &mut result {
        Ok(o) => o.duration_seconds = secs,
        Err(f) => f.outputs.duration_seconds = secs,
    }
    result
}

fn resolve_only(config: &Config, ctx: &RunContext, runner: &Runner) -> Result<Outputs, Failure> {
    let _group = runner.group("Resolve the plan");
    runner.info(resolve::render_text(config, ctx).trim_end());
    let outputs = resolve::outputs(config);
    runner
        .summary(&resolve::render_markdown(config))
        .map_err(|e| Failure {
            title: "Job summary",
            error: e.into(),
            outputs: outputs.clone(),
        })?;
    Ok(outputs)
}

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

