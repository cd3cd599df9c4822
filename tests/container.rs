//! What the image holds, proven without a Docker engine: the static release binary and the
//! pinned helm run in an otherwise empty root (chroot), with only CA certificates beside them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::tools::{cache, pinned, require_from};

fn static_bin() -> PathBuf {
    let p = PathBuf::from(
        std::env::var("TD_STATIC_BIN").expect("TD_STATIC_BIN: run through `make container`"),
    );
    assert!(p.is_file(), "{} missing: run `make static`", p.display());
    p
}

/// helm as the image ships it: the pinned helm 3 built by testbed/build-tools.sh.
fn helm() -> Option<PathBuf> {
    let v = pinned("HELM3_VERSION");
    require_from("helm", cache().join(format!("bin/helm-{v}")), "make tools")
}

fn copy(from: &Path, root: &Path, to: &str) {
    let dest = root.join(to.trim_start_matches('/'));
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::copy(from, &dest).unwrap();
}

/// The image's root; None (the test skips) when helm is not built.
fn empty_root() -> Option<tempfile::TempDir> {
    let helm = helm()?;
    let root = tempfile::tempdir().unwrap();
    copy(&static_bin(), root.path(), "/usr/local/bin/trader-deploy");
    copy(&helm, root.path(), "/usr/local/bin/helm");
    copy(
        Path::new("/etc/ssl/certs/ca-certificates.crt"),
        root.path(),
        "/etc/ssl/certs/ca-certificates.crt",
    );
    std::fs::create_dir_all(root.path().join("tmp")).unwrap();
    std::fs::create_dir_all(root.path().join("github/workspace")).unwrap();
    Some(root)
}

fn chroot(root: &Path, args: &[&str], envs: &[(&str, &str)]) -> (Option<i32>, String) {
    // Found on this process's PATH: the child's PATH is the empty root's.
    let chroot = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("chroot"))
        .find(|p| p.is_file())
        .expect("chroot (coreutils)");
    let out = Command::new(chroot)
        .arg(root)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/local/bin")
        .env("HOME", "/tmp")
        .envs(envs.iter().copied())
        .output()
        .expect("chroot (the tests run as root, as CI does)");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn binary_is_static() {
    let bytes = std::fs::read(static_bin()).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF");
    // A dynamically linked ELF names its loader in a PT_INTERP segment.
    let hay = String::from_utf8_lossy(&bytes);
    assert!(
        !hay.contains("/lib64/ld-linux"),
        "binary asks for a dynamic loader"
    );
    assert!(
        !hay.contains("/lib/ld-musl"),
        "binary asks for a dynamic loader"
    );
    assert!(!hay.contains("libssl.so"), "binary links OpenSSL");
}

#[test]
fn action_and_helm_run_in_an_empty_root() {
    let Some(root) = empty_root() else {
        return;
    };
    let (code, out) = chroot(
        root.path(),
        &["/usr/local/bin/trader-deploy", "--help"],
        &[],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("Usage: trader-deploy"), "{out}");

    // The docker action's way in: no arguments, INPUT_* and GITHUB_* variables.
    let (code, out) = chroot(
        root.path(),
        &["/usr/local/bin/trader-deploy"],
        &[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_WORKSPACE", "/github/workspace"),
            ("GITHUB_EVENT_NAME", "push"),
            ("GITHUB_REF", "refs/tags/v1.2.0"),
            ("INPUT_MODE", "resolve"),
            ("INPUT_IMAGES", "image.pythonOrch=ghcr.io/acme/python-orch"),
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("image.pythonOrch = ghcr.io/acme/python-orch:v1.2.0"),
        "{out}"
    );
    assert!(out.contains("output environment=prod"), "{out}");

    let (code, out) = chroot(
        root.path(),
        &["/usr/local/bin/helm", "version", "--short"],
        &[],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("v3."), "{out}");
}
