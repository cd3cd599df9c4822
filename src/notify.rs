//! The `notify_webhook` notification: one JSON document per outcome, with a Slack-compatible
//! `text` field, POSTed once at the end of the run (bounded retries; a failure is a warning).

use std::time::{Duration, Instant};

use crate::http::{Backoff, Retry};

use serde_json::{Value, json};

use crate::context::RunContext;
use crate::inputs::Config;
use crate::outputs::{Outputs, Status};
use crate::redact::Redactor;
use crate::runner::Runner;
use crate::secret::Secret;

/// The notification could not be delivered. Never shows the URL (a secret).
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotifyError {
    #[error("failed to send the notification to notify_webhook: {0}")]
    Transport(String),
    #[error("failed to send the notification to notify_webhook: it answered {status}: {body}")]
    Status { status: u16, body: String },
}

/// Sends the outcome to `notify_webhook` when it is set; a failure is a warning.
pub(crate) async fn notify(
    config: &Config,
    ctx: &RunContext,
    runner: &Runner,
    outputs: &Outputs,
    error: Option<&str>,
) {
    let Some(url) = &config.notify_webhook else {
        return;
    };
    match send(url, &message(ctx, outputs, error), &runner.redactor()).await {
        Ok(()) => runner.info(&format!(
            "Sent the {} notification to notify_webhook",
            outputs.status.as_str()
        )),
        Err(e) => runner.warning("Notification", &e.to_string()),
    }
}

/// The JSON document for one outcome.
pub(crate) fn message(ctx: &RunContext, outputs: &Outputs, error: Option<&str>) -> Value {
    let repo = ctx.repository.clone().unwrap_or_default();
    let run_url = ctx.run_url();
    let text = text(&repo, outputs, error, run_url.as_deref());
    json!({
        "text": text,
        "status": outputs.status.as_str(),
        "environment": outputs.environment,
        "version": outputs.version,
        "images": outputs.images,
        "revision": outputs.revision,
        "previous_revision": outputs.previous_revision,
        "rolled_back": outputs.rolled_back,
        "deployment_id": outputs.deployment_id,
        "environment_url": outputs.environment_url,
        "duration_seconds": (outputs.duration_seconds * 10.0).round() / 10.0,
        "window_override": outputs.window_overridden,
        "error": error,
        "repository": ctx.repository,
        "ref": ctx.git_ref,
        "sha": ctx.sha,
        "actor": ctx.actor,
        "run_id": ctx.run_id,
        "run_attempt": ctx.run_attempt,
        "run_url": run_url,
    })
}

/// Slack mrkdwn: one line saying what happened, where, and a link to the run.
fn text(repo: &str, o: &Outputs, error: Option<&str>, run_url: Option<&str>) -> String {
    let who = if repo.is_empty() {
        String::new()
    } else {
        format!("*{}*: ", slack_escape(repo))
    };
    let (v, env) = (slack_escape(&o.version), slack_escape(&o.environment));
    let rev = |r: Option<u32>| r.map(|r| r.to_string()).unwrap_or_else(|| "?".into());
    let mut line = match o.status {
        Status::Success => format!(
            ":white_check_mark: {who}deployed `{v}` to *{env}* (revision {}, {}) in {:.1}s",
            rev(o.revision),
            match o.previous_revision {
                Some(p) => format!("was {p}"),
                None => "the first".to_string(),
            },
            o.duration_seconds
        ),
        Status::RolledBack => format!(
            ":leftwards_arrow_with_hook: {who}`{v}` failed on *{env}* and was rolled back to revision {}",
            rev(o.revision)
        ),
        Status::Failed => format!(":x: {who}deploying `{v}` to *{env}* failed"),
    };
    if o.window_overridden {
        line.push_str(" :warning: outside its deploy window (window_override)");
    }
    if let Some(e) = error.filter(|e| !e.is_empty()) {
        let e: String = e.lines().next().unwrap_or("").chars().take(300).collect();
        line.push_str(&format!(": {}", slack_escape(&e)));
    }
    if let Some(u) = run_url {
        line.push_str(&format!(" (<{u}|run log>)"));
    }
    line
}

/// Slack's three control characters.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// POSTs the document, redacted by `redactor` (the run's secrets) on its way out: 10 s per
/// attempt, one retry on a 5xx or a connection failure.
pub(crate) async fn send(
    url: &Secret,
    body: &Value,
    redactor: &Redactor,
) -> Result<(), NotifyError> {
    let body = &redactor.json(body);
    let client = crate::http::client(Some(Duration::from_secs(10)))
        .map_err(|e| NotifyError::Transport(e.without_url().to_string()))?;
    let retry = Retry {
        max_attempts: 2,
        max_total: Duration::from_secs(60),
        base: Duration::from_secs(1),
        backoff: Backoff::Linear,
        cap: Duration::from_secs(1),
    };
    let started = Instant::now();
    let mut last = None;
    for attempt in 1..=retry.max_attempts {
        if attempt > 1 {
            let Some(wait) = retry.next_wait(started, attempt - 1, None) else {
                break;
            };
            tokio::time::sleep(wait).await;
        }
        match client.post(url.expose()).json(body).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => {
                let status = r.status().as_u16();
                let body: String = r
                    .text()
                    .await
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect();
                let err = NotifyError::Status { status, body };
                if status < 500 {
                    return Err(err);
                }
                last = Some(err);
            }
            Err(e) => last = Some(NotifyError::Transport(e.without_url().to_string())),
        }
    }
    Err(last.unwrap_or_else(|| NotifyError::Transport("no attempt made".into())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> RunContext {
        RunContext {
            repository: Some("acme/trader".into()),
            run_id: Some(1001),
            run_attempt: 1,
            server_url: "https://github.com".into(),
            sha: Some("ee3b2f79".into()),
            ..RunContext::default()
        }
    }

    fn outputs(status: Status) -> Outputs {
        Outputs {
            environment: "prod".into(),
            version: "v1.2.0".into(),
            revision: Some(5),
            previous_revision: Some(4),
            status,
            rolled_back: status == Status::RolledBack,
            duration_seconds: 12.34,
            ..Outputs::default()
        }
    }

    #[test]
    fn one_document_per_outcome() {
        let m = message(&ctx(), &outputs(Status::Success), None);
        assert_eq!(
            m["text"],
            ":white_check_mark: *acme/trader*: deployed `v1.2.0` to *prod* (revision 5, was 4) in 12.3s \
             (<https://github.com/acme/trader/actions/runs/1001/attempts/1|run log>)"
        );
        assert_eq!(m["status"], "success");
        assert_eq!(m["duration_seconds"], 12.3);
        assert_eq!(m["run_id"], 1001);

        let mut o = outputs(Status::RolledBack);
        o.revision = Some(4);
        let m = message(&ctx(), &o, Some("smoke test <orders> failed\nmore"));
        assert_eq!(m["status"], "rolled_back");
        assert!(
            m["text"].as_str().unwrap().starts_with(
                ":leftwards_arrow_with_hook: *acme/trader*: `v1.2.0` failed on *prod* and was rolled \
                 back to revision 4: smoke test &lt;orders&gt; failed ("
            ),
            "{}",
            m["text"]
        );
        let m = message(
            &RunContext::default(),
            &outputs(Status::Failed),
            Some("boom"),
        );
        assert_eq!(m["text"], ":x: deploying `v1.2.0` to *prod* failed: boom");
        assert_eq!(m["error"], "boom");
    }

    /// A one-shot webhook receiver answering `status`; returns the request it got.
    async fn receiver(status: u16) -> (String, tokio::task::JoinHandle<String>) {
        let (base, h) = crate::http::test_server::once(status, "ok").await;
        (format!("{base}/hooks/T000/B000"), h)
    }

    #[tokio::test]
    async fn posts_json_to_the_webhook() {
        let (url, h) = receiver(200).await;
        let body = message(&ctx(), &outputs(Status::Success), None);
        send(&Secret::new(url), &body, &Redactor::default())
            .await
            .unwrap();
        let req = h.await.unwrap();
        assert!(
            req.starts_with("POST /hooks/T000/B000 HTTP/1.1\r\n"),
            "{req}"
        );
        assert!(
            req.to_ascii_lowercase()
                .contains("content-type: application/json")
        );
        let json: Value = serde_json::from_str(req.split_once("\r\n\r\n").unwrap().1).unwrap();
        assert_eq!(json, body);
    }

    /// A secret quoted by an error (helm echoing a value) leaves in neither `error` nor `text`.
    #[tokio::test]
    async fn the_body_is_redacted_on_its_way_out() {
        let (url, h) = receiver(200).await;
        let redactor = Redactor::default();
        redactor.add("canary-5ecret");
        let body = message(
            &ctx(),
            &outputs(Status::Failed),
            Some("execution error: password canary-5ecret rejected"),
        );
        assert!(body.to_string().contains("canary-5ecret"));
        send(&Secret::new(url), &body, &redactor).await.unwrap();
        let req = h.await.unwrap();
        assert!(!req.contains("canary-5ecret"), "{req}");
        let json: Value = serde_json::from_str(req.split_once("\r\n\r\n").unwrap().1).unwrap();
        assert_eq!(json["error"], "execution error: password *** rejected");
        assert!(
            json["text"]
                .as_str()
                .unwrap()
                .contains("password *** rejected")
        );
    }

    #[tokio::test]
    async fn errors_never_show_the_url() {
        let (url, _h) = receiver(404).await;
        let none = Redactor::default();
        let e = send(&Secret::new(url.clone()), &json!({"text": "x"}), &none)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("answered 404"), "{e}");
        assert!(!e.to_string().contains("/hooks/"));
        let e = send(
            &Secret::new("http://127.0.0.1:1/hooks/T1/secret"),
            &json!({}),
            &none,
        )
        .await
        .unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
    }
}
