//! The shipped non-Rust files pass their third-party linters: hadolint on the Dockerfile,
//! actionlint on every workflow (the project's own and the examples users copy).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::tools::{actionlint, cache, require, run};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn workflows(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")))
        .collect();
    files.sort();
    files
}

#[test]
fn dockerfile_passes_hadolint() {
    let Some(hadolint) = require("hadolint", cache().join("venv/bin/hadolint")) else {
        return;
    };
    let (ok, out) = run(Command::new(hadolint).arg(repo().join("Dockerfile")));
    assert!(ok, "hadolint:\n{out}");
}

#[test]
fn hadolint_is_live() {
    // The linter must be able to fail, or the test above proves nothing.
    let Some(hadolint) = require("hadolint", cache().join("venv/bin/hadolint")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("Dockerfile");
    std::fs::write(&bad, "FROM alpine\nRUN apk add curl\nUSER root\n").unwrap();
    let (ok, out) = run(Command::new(hadolint).arg(&bad));
    assert!(!ok, "hadolint accepted a bad Dockerfile:\n{out}");
}

#[test]
fn workflows_pass_actionlint() {
    let Some(actionlint) = actionlint() else {
        return;
    };
    let mut files = workflows(&repo().join(".github/workflows"));
    files.extend(workflows(&repo().join("examples/workflows")));
    assert!(
        files.iter().any(|f| f.ends_with("release.yml")),
        "no release workflow: {files:?}"
    );
    let (ok, out) = run(Command::new(&actionlint).arg("-no-color").args(&files));
    assert!(ok, "actionlint:\n{out}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope }}\n",
    )
    .unwrap();
    let (ok, out) = run(Command::new(&actionlint).arg(&bad));
    assert!(!ok, "actionlint accepted a bad workflow:\n{out}");
}
