//! Issue #17 on the bed, findings 2 and 3 where no GitHub is needed: text the action does not
//! control (a chart's `fail` message in helm's error, a smoke-test response body) carries
//! `::error::`, `##[set-output …]` and `::stop-commands::` lines, and the raw stdout of the real
//! binary, run as a GitHub Action, holds no command but the action's own (the runner's parser
//! is modelled by tests/common/commands.rs). The approval-comment and GitHub/webhook canary cases
//! are in bed_github_action.rs, the pod/event case in bed_node.rs. Needs a running bed
//! (`make testbed-up`).

mod common;

use std::io::{Read as _, Write as _};
use std::time::Duration;

use common::case::{Case, Finished};
use common::commands::assert_only_own_commands;

/// A chart template that fails, when `forge=true`, with a message forging commands.
const FORGING_TEMPLATE: &str = r#"{{- if .Values.forge }}{{ fail "chart refused\n::error::forged-by-helm\n##[set-output name=x;]forged-by-helm\n::stop-commands::forged-by-helm" }}{{- end }}
"#;

fn assert_shown_but_not_read(f: &Finished, shown: &[&str]) {
    let out = f.log();
    for s in shown {
        assert!(out.contains(s), "{s:?} not shown:\n{out}");
    }
    assert_only_own_commands(&out, "forged");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_helm_error_forging_commands_stays_text_in_validate_and_deploy() {
    let case = Case::new("sec-helm", 3).await;
    std::fs::write(
        case.ws.path().join("chart/templates/forge.yaml"),
        FORGING_TEMPLATE,
    )
    .unwrap();
    // validate prints helm's lint and template output (here: its error) as it comes.
    let f = case.run(
        "v1.0.0",
        &[
            ("mode", "validate"),
            ("set", "image.tag=v1.0.0\nforge=true"),
        ],
    );
    assert_eq!(f.code, Some(1), "{}", f.log());
    assert_shown_but_not_read(
        &f,
        &[
            "::error::forged-by-helm",
            "##[set-output name=x;]forged-by-helm",
        ],
    );
    // deploy: the upgrade fails on the template; its error ends in the final annotation.
    let f = case.run("v1.0.0", &[("set", "image.tag=v1.0.0\nforge=true")]);
    assert_eq!(f.code, Some(1), "{}", f.log());
    assert_eq!(f.out("status"), "failed");
    assert_shown_but_not_read(&f, &["forged-by-helm"]);
    case.done().await;
}

/// An HTTP server on 127.0.0.1 answering every request 200 with `body` (a thread, for the
/// test's life).
fn forging_server(body: &'static str) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/status", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread")]
async fn a_smoke_response_body_forging_commands_stays_text() {
    let case = Case::new("sec-smoke", 3).await;
    let url = forging_server(
        "status: degraded\n::error::forged-by-body\n##[set-output name=x;]forged-by-body\n\
         ::stop-commands::forged-by-body\n",
    );
    std::fs::write(
        case.ws.path().join("smoke.yaml"),
        format!(
            "defaults: {{timeout: 3s, interval: 500ms, request_timeout: 2s}}\n\
             checks:\n  - name: forged-body\n    url: {url}\n    \
             expect: {{body_contains: [never-in-the-body]}}\n"
        ),
    )
    .unwrap();
    let f = case.run("v1.0.0", &[("smoke_tests", "smoke.yaml")]);
    assert_eq!(f.code, Some(1), "{}", f.log());
    assert!(f.log().contains("forged-body"), "{}", f.log());
    assert_shown_but_not_read(&f, &["##[set-output name=x;]forged-by-body"]);
    case.done().await;
}
