//! The only place helm is spawned: a command with its arguments as a list (never through a
//! shell), run until it exits, its deadline passes, or the run is cancelled (helm then gets
//! SIGTERM, so that it marks an interrupted release failed, and is killed if it lingers).

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt as _;

use super::{Framed, HelmError};
use crate::cancel::Cancel;

/// How long helm gets to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Runs helm with `args` until it exits, `deadline` passes, or `cancel` fires.
pub(super) async fn run(
    bin: &Path,
    action: &str,
    args: Vec<OsString>,
    deadline: Duration,
    cancel: Option<&Cancel>,
) -> Result<Output, HelmError> {
    tracing::debug!(bin = %bin.display(), ?args, "spawning helm");
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a Ctrl-C at a terminal reaches this program, which decides
        // when helm is stopped.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| HelmError::Spawn {
        action: action.to_string(),
        bin: bin.to_path_buf(),
        source,
    })?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let read_out = tokio::spawn(async move {
        let mut s = String::new();
        if let Some(mut o) = stdout {
            let _ = o.read_to_string(&mut s).await;
        }
        s
    });
    let read_err = tokio::spawn(async move {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            let _ = e.read_to_string(&mut s).await;
        }
        s
    });
    let collect = |h: tokio::task::JoinHandle<String>| async move {
        tokio::time::timeout(STOP_GRACE, h)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default()
    };

    let never = Cancel::never();
    let cancel = cancel.unwrap_or(&never);
    let outcome = tokio::select! {
        status = child.wait() => Ok(status),
        _ = tokio::time::sleep(deadline) => Err(None),
        signal = cancel.cancelled() => Err(Some(signal)),
    };
    match outcome {
        Ok(status) => {
            let status = status.map_err(|source| HelmError::Spawn {
                action: action.to_string(),
                bin: bin.to_path_buf(),
                source,
            })?;
            let (out, err) = (collect(read_out).await, collect(read_err).await);
            if status.success() {
                Ok(Output {
                    stdout: out,
                    stderr: err,
                })
            } else {
                Err(HelmError::Failed {
                    action: action.to_string(),
                    status: status.to_string(),
                    stderr: Framed(err),
                })
            }
        }
        Err(signal) => {
            // Ask helm to stop (it marks an interrupted release failed), then make sure.
            if let Some(pid) = child.id() {
                terminate(pid);
            }
            if tokio::time::timeout(STOP_GRACE, child.wait())
                .await
                .is_err()
            {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
            let err = collect(read_err).await;
            read_out.abort();
            match signal {
                Some(signal) => Err(HelmError::Cancelled {
                    action: action.to_string(),
                    signal,
                    stderr: Framed(err),
                }),
                None => Err(HelmError::Deadline {
                    action: action.to_string(),
                    deadline,
                }),
            }
        }
    }
}

/// What a successful helm command wrote.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub stdout: String,
    /// Warnings (deprecated APIs, kubeconfig permissions, …).
    pub stderr: String,
}

/// Sends SIGTERM to one process (helm), by its id.
fn terminate(pid: u32) {
    // SAFETY: kill(2) with a pid this program spawned and has not yet reaped.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}
