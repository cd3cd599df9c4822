//! The programs and packages `make deps` (and `make tools`) install that some tests need. A test
//! asks for one here: present, it gets the path; missing, the test skips with one line naming
//! the tool and the make target, except under `CI=true`, where a missing tool fails the run.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Where `make deps` caches what it installs: `~/.cache/trader-deploy`.
pub fn cache() -> PathBuf {
    PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/trader-deploy")
}

/// A version pinned in testbed/versions.env (`NAME=version`).
pub fn pinned(name: &str) -> String {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("testbed/versions.env");
    let text = std::fs::read_to_string(&file).expect("testbed/versions.env");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("{name} not pinned in testbed/versions.env"))
        .to_string()
}

/// `path` (tool `what`, installed by `make deps`) when it is there; else see [`require_from`].
pub fn require(what: &str, path: PathBuf) -> Option<PathBuf> {
    require_from(what, path, "make deps")
}

/// `path` when it is there. When it is not: under `CI=true` the test fails (CI installs every
/// tool, so a missing one is a broken setup); otherwise one line on stderr (outside the test
/// harness's capture, so a plain `cargo test` shows it) says what is missing and which make
/// target installs it, and the caller returns: `let Some(x) = require(…) else { return };`.
pub fn require_from(what: &str, path: PathBuf, target: &str) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    let line = format!("{what} is missing ({}): run `{target}`", path.display());
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{line} (CI=true: a missing tool fails the run)");
    }
    let _ = writeln!(std::io::stderr(), "skipped: {line}");
    None
}

/// actionlint at its pinned version (tests/lint_files.rs, tests/examples.rs).
pub fn actionlint() -> Option<PathBuf> {
    let version = pinned("ACTIONLINT_VERSION");
    require(
        "actionlint",
        cache().join(format!("bin/actionlint-{version}")),
    )
}

/// Runs a tool to its end: whether it succeeded, and its stdout then stderr.
pub fn run(cmd: &mut std::process::Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The AWS CLI (v1, from PyPI, in `make deps`' virtualenv): the reference for `kube-token aws`.
pub fn aws_cli() -> Option<PathBuf> {
    require("the AWS CLI (awscli)", cache().join("venv/bin/aws"))
}

/// Debian's libfaketime, preloaded to freeze a dynamically linked program's clock.
pub fn libfaketime() -> Option<PathBuf> {
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path().join("faketime/libfaketime.so.1"))
        .find(|p| p.exists());
    require(
        "libfaketime",
        found.unwrap_or_else(|| {
            PathBuf::from("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
        }),
    )
}

/// aws-iam-authenticator's own token verifier in a one-file program (testbed/eks-verifier),
/// built by `make deps` at the pinned version.
pub fn eks_token_verifier() -> Option<PathBuf> {
    let version = pinned("AWS_IAM_AUTHENTICATOR_VERSION");
    require(
        "eks-token-verifier (aws-iam-authenticator's verifier)",
        cache().join(format!("bin/eks-token-verifier-{version}")),
    )
}

/// Google's and Microsoft's Python auth libraries (google-auth, azure-identity) in `make deps`'
/// virtualenv: the references for `kube-token gke-gcloud-auth-plugin` and `kubelogin`.
pub fn cloud_auth_python() -> Option<PathBuf> {
    let venv = cache().join("venv-cloudauth");
    let stamp = venv.join(format!(
        ".stamp-{}-{}",
        pinned("GOOGLE_AUTH_VERSION"),
        pinned("AZURE_IDENTITY_VERSION")
    ));
    require("google-auth and azure-identity (venv-cloudauth)", stamp)?;
    Some(venv.join("bin/python"))
}
