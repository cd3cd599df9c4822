//! The arm64 build runs: trader-deploy cross-built for aarch64-unknown-linux-musl (`make arm64`,
//! the Dockerfile's recipe, profile cross-check) is checked to be a static aarch64 ELF and run
//! under qemu-user (`qemu-aarch64-static`, invoked directly: no binfmt registration needed), where
//! it must print its version and resolve a plan exactly as the host build does.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::tools::require;

/// The host build of the same sources, for comparison.
const HOST_BIN: &str = env!("CARGO_BIN_EXE_trader-deploy");

fn arm64_bin() -> PathBuf {
    let p = PathBuf::from(
        std::env::var("TD_ARM64_BIN").expect("TD_ARM64_BIN: run through `make arm64`"),
    );
    assert!(p.is_file(), "{} missing: run `make arm64`", p.display());
    p
}

fn qemu() -> Option<PathBuf> {
    require(
        "qemu-aarch64-static (Debian's qemu-user-static)",
        PathBuf::from("/usr/bin/qemu-aarch64-static"),
    )
}

const EM_AARCH64: u16 = 0xB7;
const PT_INTERP: u32 = 3;
const PT_DYNAMIC: u32 = 2;

/// (e_machine, the p_type of every program header) of a 64-bit little-endian ELF file.
fn elf_header(bytes: &[u8]) -> (u16, Vec<u32>) {
    assert_eq!(&bytes[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(bytes[4], 2, "not a 64-bit ELF (EI_CLASS)");
    assert_eq!(bytes[5], 1, "not little-endian (EI_DATA)");
    let u16_at = |o: usize| u16::from_le_bytes(bytes[o..o + 2].try_into().unwrap());
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
    let machine = u16_at(18);
    let phoff = usize::try_from(u64_at(32)).unwrap();
    let phentsize = usize::from(u16_at(54));
    let phnum = usize::from(u16_at(56));
    let types = (0..phnum).map(|i| u32_at(phoff + i * phentsize)).collect();
    (machine, types)
}

fn run(cmd: &mut Command) -> (Option<i32>, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `bin args…` (under `qemu` when given) in an empty directory with an empty environment: a
/// command-line run, outside GitHub Actions.
fn cli(qemu: Option<&Path>, bin: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = match qemu {
        Some(q) => {
            let mut c = Command::new(q);
            c.arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.args(args)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", dir.path());
    run(&mut cmd)
}

/// Drops the one line that measures time, so two runs' outputs compare equal.
fn without_duration(out: &str) -> String {
    out.lines()
        .filter(|l| !l.starts_with("output duration_seconds="))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn elf_reader_tells_the_host_binary_apart() {
    // The check below must be able to fail: the host's own x86_64 build is not aarch64.
    let (machine, _) = elf_header(&std::fs::read(HOST_BIN).unwrap());
    assert_eq!(machine, 0x3E, "the host build is x86_64 (EM_X86_64)");
    assert_ne!(machine, EM_AARCH64);
}

#[test]
fn binary_is_static_aarch64() {
    let (machine, segments) = elf_header(&std::fs::read(arm64_bin()).unwrap());
    assert_eq!(
        machine, EM_AARCH64,
        "e_machine {machine:#x}: not an aarch64 binary"
    );
    assert!(!segments.is_empty(), "no program headers");
    assert!(
        !segments.contains(&PT_INTERP),
        "the binary asks for a dynamic loader (PT_INTERP)"
    );
    assert!(
        !segments.contains(&PT_DYNAMIC),
        "the binary is dynamically linked (PT_DYNAMIC)"
    );
}

#[test]
fn version_under_qemu() {
    let Some(qemu) = qemu() else {
        return;
    };
    let (code, out, err) = cli(Some(&qemu), &arm64_bin(), &["--version"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(
        out,
        format!("trader-deploy {}\n", env!("CARGO_PKG_VERSION")),
        "{err}"
    );
}

#[test]
fn resolve_under_qemu_matches_the_host_build() {
    let Some(qemu) = qemu() else {
        return;
    };
    let args = [
        "resolve",
        "--environment",
        "prod",
        "--version",
        "v1.2.0",
        "--images",
        "image.pythonOrch=ghcr.io/acme/python-orch",
        "--images",
        "image.goScanner=ghcr.io/acme/go-scanner",
        "--timeout",
        "90s",
    ];
    let (code, out, err) = cli(Some(&qemu), &arm64_bin(), &args);
    assert_eq!(code, Some(0), "{out}{err}");
    for want in [
        "environment   prod (from input; protected",
        "version       v1.2.0 (from input)",
        "image.pythonOrch = ghcr.io/acme/python-orch:v1.2.0",
        "image.goScanner = ghcr.io/acme/go-scanner:v1.2.0",
        "timeout       1m 30s",
        "output environment=prod",
        "output status=success",
    ] {
        assert!(out.contains(want), "{want:?} not in:\n{out}{err}");
    }
    let (host_code, host_out, host_err) = cli(None, Path::new(HOST_BIN), &args);
    assert_eq!(host_code, Some(0), "{host_out}{host_err}");
    assert_eq!(without_duration(&out), without_duration(&host_out));
}

#[test]
fn bad_input_under_qemu_is_the_documented_error() {
    let Some(qemu) = qemu() else {
        return;
    };
    let (code, out, err) = cli(
        Some(&qemu),
        &arm64_bin(),
        &[
            "resolve",
            "--environment",
            "dev",
            "--version",
            "v1.0.0",
            "--timeout",
            "5x",
        ],
    );
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        format!("{out}{err}").contains("input `timeout`: \"5x\" is not a duration"),
        "{out}{err}"
    );
}
