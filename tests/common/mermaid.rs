//! The job summary's timeline read by Mermaid itself: `mermaid-gantt.mjs` (beside this file)
//! parses every ```mermaid block with the `mermaid` npm package that `make deps` installs, and
//! returns each gantt task as Mermaid computed it. A block Mermaid rejects fails the test.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use super::tools::{cache, require};

/// One bar of a gantt chart, as Mermaid computed it (times in ms).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Task {
    pub section: String,
    pub name: String,
    pub start: i64,
    pub end: i64,
    pub done: bool,
    pub crit: bool,
}

#[derive(Debug, serde::Deserialize)]
struct Block {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    tasks: Vec<Task>,
}

/// The tasks of the one gantt chart in `markdown`, parsed by Mermaid; None (the test skips) when
/// `make deps` has not installed Mermaid. Panics when Mermaid rejects a block or the document
/// does not hold exactly one gantt chart.
pub fn gantt(markdown: &str) -> Option<Vec<Task>> {
    let npm = cache().join("npm");
    require(
        "mermaid (npm)",
        npm.join("node_modules/mermaid/package.json"),
    )?;
    require("jsdom (npm)", npm.join("node_modules/jsdom/package.json"))?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/mermaid-gantt.mjs");
    let mut child = Command::new("node")
        .arg(&script)
        .arg(&npm)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node (installed with npm by make deps)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(markdown.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "Mermaid rejected the summary's chart:\n{}\n--- summary ---\n{markdown}",
        String::from_utf8_lossy(&out.stderr)
    );
    let blocks: Vec<Block> = serde_json::from_slice(&out.stdout).expect("the parser's JSON");
    let gantts: Vec<Block> = blocks.into_iter().filter(|b| b.kind == "gantt").collect();
    assert_eq!(
        gantts.len(),
        1,
        "one gantt chart in the summary:\n{markdown}"
    );
    Some(gantts.into_iter().next().unwrap().tasks)
}

/// Asserts that Mermaid reads `markdown`'s timeline with a bar for each of `steps` (section
/// "run", in this order, the name followed by its duration) and that exactly the steps in
/// `failed` are marked failed (`crit`); returns the tasks (None: Mermaid is not installed).
pub fn assert_timeline(markdown: &str, steps: &[&str], failed: &[&str]) -> Option<Vec<Task>> {
    let tasks = gantt(markdown)?;
    let run: Vec<&Task> = tasks.iter().filter(|t| t.section == "run").collect();
    let names: Vec<String> = run
        .iter()
        .map(|t| {
            let n = t.name.trim();
            let n = n.rsplit_once(" (").map_or(n, |(n, _)| n);
            n.strip_suffix(" (failed)").unwrap_or(n).to_string()
        })
        .collect();
    assert_eq!(names, steps, "the timeline's steps:\n{markdown}");
    for (t, name) in run.iter().zip(&names) {
        assert_eq!(
            t.crit,
            failed.contains(&name.as_str()),
            "step {name} marked failed: {}\n{markdown}",
            t.crit
        );
        assert_eq!(t.done, !t.crit, "{name}");
    }
    // Steps follow each other: each starts no earlier than the one before it.
    for w in run.windows(2) {
        assert!(
            w[1].start >= w[0].start,
            "{} before {}",
            w[1].name,
            w[0].name
        );
    }
    Some(tasks)
}
