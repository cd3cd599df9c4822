//! Diagnostics of a failed rollout for the log and the job summary: the failing pods'
//! container states, the events of those pods and of the workloads, the last log lines.

use std::fmt::Write as _;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event as KubeEvent, Pod};
use kube::api::{Api, ListParams, LogParams};

use super::error::RolloutError;
use super::progress::pod_failure;
use super::statefulset::pod_ready;

/// Diagnostics of a failed rollout, as markdown: the failing pods' container states, the
/// events of those pods and of the workloads, and the last `log_lines` log lines of each
/// container where the API has them (0: no logs; an app may log what the job log should not).
pub async fn diagnostics(client: &kube::Client, err: &RolloutError, log_lines: u32) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "#### Rollout diagnostics\n\n**Cause:** {}\n", err.cause);
    let _ = writeln!(s, "| workload | last state |\n|---|---|");
    for (w, line) in &err.last_progress {
        let _ = writeln!(s, "| `{w}` | {} |", line.replace('|', "\\|"));
    }
    // The failing pod first, then the other pods that are not ready; at most five.
    let mut pods: Vec<&Pod> = err.pods.iter().collect();
    pods.sort_by_key(|p| (pod_failure(p).is_none(), pod_key(p)));
    let pods: Vec<&Pod> = pods
        .into_iter()
        .filter(|p| pod_failure(p).is_some() || !pod_ready(p))
        .take(5)
        .collect();
    for pod in pods {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod_key(pod);
        let _ = writeln!(s, "\n**Pod `{name}`** (phase {})\n", pod_phase(pod));
        let _ = writeln!(s, "```");
        for line in container_states(pod) {
            let _ = writeln!(s, "{line}");
        }
        let _ = writeln!(s, "```");
        let events = events_of(client, &ns, &name).await;
        if !events.is_empty() {
            let _ = writeln!(s, "Events:\n```\n{}\n```", events.join("\n"));
        }
        let containers = pod.spec.iter().flat_map(|sp| sp.containers.iter());
        for c in containers.filter(|_| log_lines > 0) {
            // A container that restarted: its crashed instance's lines too (the running one
            // may already be a new instance).
            let restarted = pod
                .status
                .iter()
                .flat_map(|st| st.container_statuses.iter().flatten())
                .any(|cs| cs.name == c.name && cs.restart_count > 0);
            let instances: &[bool] = if restarted { &[true, false] } else { &[false] };
            for &previous in instances {
                let which = if previous {
                    format!("the previous instance of `{}`", c.name)
                } else {
                    format!("`{}`", c.name)
                };
                let line = logs_of(client, &ns, &name, &c.name, previous, log_lines).await;
                match line {
                    Ok(logs) if !logs.trim().is_empty() => {
                        let _ = writeln!(
                            s,
                            "Last log lines of {which}:\n```\n{}\n```",
                            logs.trim_end()
                        );
                    }
                    Ok(_) => {}
                    // The current instance's logs are what matter; a missing previous one is
                    // not worth a line.
                    Err(_) if previous => {}
                    Err(e) => {
                        let _ = writeln!(s, "Logs of {which}: not available ({e})");
                    }
                }
            }
        }
    }
    for (w, _) in &err.last_progress {
        let events = events_of(client, &w.namespace, &w.name).await;
        if !events.is_empty() {
            let _ = writeln!(s, "\nEvents of `{w}`:\n```\n{}\n```", events.join("\n"));
        }
    }
    s
}

/// The last `lines` log lines of one container (of its previous instance with `previous`).
async fn logs_of(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
    container: &str,
    previous: bool,
    lines: u32,
) -> Result<String, String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let lp = LogParams {
        container: Some(container.to_string()),
        tail_lines: Some(i64::from(lines)),
        previous,
        ..LogParams::default()
    };
    match tokio::time::timeout(Duration::from_secs(10), api.logs(pod, &lp)).await {
        Ok(Ok(logs)) => Ok(logs),
        Ok(Err(kube::Error::Api(status))) => Err(status.message),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".to_string()),
    }
}

fn pod_key(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

fn pod_phase(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "unknown".into())
}

/// One line per container: name, image, state, restarts.
pub fn container_states(pod: &Pod) -> Vec<String> {
    let mut out = Vec::new();
    let Some(st) = &pod.status else {
        return vec!["no status".into()];
    };
    for cs in st
        .init_container_statuses
        .iter()
        .flatten()
        .chain(st.container_statuses.iter().flatten())
    {
        let state = match &cs.state {
            Some(s) if s.waiting.is_some() => {
                let w = s.waiting.as_ref().expect("checked");
                format!(
                    "waiting: {} {}",
                    w.reason.as_deref().unwrap_or(""),
                    w.message.as_deref().unwrap_or("")
                )
            }
            Some(s) if s.terminated.is_some() => {
                let t = s.terminated.as_ref().expect("checked");
                format!(
                    "terminated: exit {} {} {}",
                    t.exit_code,
                    t.reason.as_deref().unwrap_or(""),
                    t.message.as_deref().unwrap_or("")
                )
            }
            Some(s) if s.running.is_some() => "running".to_string(),
            _ => "unknown".to_string(),
        };
        out.push(format!(
            "{}  image={}  ready={}  restarts={}  {}",
            cs.name,
            cs.image,
            cs.ready,
            cs.restart_count,
            state.trim_end()
        ));
    }
    if out.is_empty() {
        out.push("no container statuses yet".into());
    }
    out
}

/// The events about one object, oldest first, as readable lines.
async fn events_of(client: &kube::Client, namespace: &str, name: &str) -> Vec<String> {
    let api: Api<KubeEvent> = Api::namespaced(client.clone(), namespace);
    let lp = ListParams::default().fields(&format!("involvedObject.name={name}"));
    let Ok(Ok(list)) = tokio::time::timeout(Duration::from_secs(10), api.list(&lp)).await else {
        return Vec::new();
    };
    let mut items = list.items;
    items.sort_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0));
    items
        .iter()
        .rev()
        .take(15)
        .rev()
        .map(|e| {
            format!(
                "{} {} x{}: {}",
                e.type_.as_deref().unwrap_or(""),
                e.reason.as_deref().unwrap_or(""),
                e.count.unwrap_or(1),
                e.message.as_deref().unwrap_or("").trim()
            )
        })
        .collect()
}
