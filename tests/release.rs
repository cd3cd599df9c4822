//! A release pins what it runs: the release workflow's pin step, run here on a copy of the repo's
//! action files with made-up digests, leaves action.yml and helm4/action.yml naming their images
//! by digest and otherwise unchanged; bad digests are refused with the files untouched; and the
//! workflow feeds that step the digests of the multi-arch images it built and pushed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::tools::run;
use trader_deploy::manifest::{Yaml, parse};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_file(path: &Path) -> Yaml {
    parse(&std::fs::read_to_string(path).unwrap()).unwrap()
}

const IMAGE: &str = "ghcr.io/org/trader-deploy";

/// A well-formed digest that no registry ever returned.
fn fake_digest(seed: char) -> String {
    format!("sha256:{}", seed.to_string().repeat(64))
}

/// A scratch copy of what the release job sees: the two action files and the script.
fn checkout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "action.yml",
        "helm4/action.yml",
        "scripts/pin-action-image.sh",
    ] {
        let dest = dir.path().join(f);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(repo().join(f), &dest).unwrap();
    }
    dir
}

fn action_files(dir: &Path) -> [(String, String); 2] {
    ["action.yml", "helm4/action.yml"]
        .map(|f| (f.to_string(), std::fs::read_to_string(dir.join(f)).unwrap()))
}

fn pin(dir: &Path, image: &str, helm3: &str, helm4: &str) -> (bool, String) {
    run(Command::new("bash")
        .arg(dir.join("scripts/pin-action-image.sh"))
        .args([image, helm3, helm4])
        .arg(dir))
}

/// `runs.image` as `docker://<repository>@sha256:<64 lower-case hex>`: its digest.
fn digest_reference(image: &str) -> Result<&str, String> {
    let rest = image
        .strip_prefix(&format!("docker://{IMAGE}@"))
        .ok_or_else(|| format!("{image}: not docker://{IMAGE}@…"))?;
    let hex = rest
        .strip_prefix("sha256:")
        .ok_or_else(|| format!("{image}: not a sha256 digest"))?;
    if hex.len() == 64 && hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
        Ok(rest)
    } else {
        Err(format!("{image}: not 64 lower-case hex digits"))
    }
}

/// Every top-level key but `runs`, and runs.using: what pinning must leave alone.
fn all_but_the_image(doc: &Yaml) -> Vec<(String, Yaml)> {
    let mut kept: Vec<(String, Yaml)> = doc
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.as_str() != "runs")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    kept.push(("runs.using".into(), doc["runs"]["using"].clone()));
    kept
}

/// The steps of the release workflow's one job, by id or name.
fn release_steps() -> Vec<Yaml> {
    let wf = yaml_file(&repo().join(".github/workflows/release.yml"));
    let jobs = wf["jobs"].as_mapping().unwrap();
    assert_eq!(jobs.len(), 1, "one release job");
    jobs.values().next().unwrap()["steps"]
        .as_sequence()
        .unwrap()
        .clone()
}

fn step<'a>(steps: &'a [Yaml], id: &str) -> (usize, &'a Yaml) {
    steps
        .iter()
        .enumerate()
        .find(|(_, s)| s.get("id").and_then(Yaml::as_str) == Some(id))
        .unwrap_or_else(|| panic!("release.yml has no step with id {id}"))
}

fn step_named<'a>(steps: &'a [Yaml], prefix: &str) -> (usize, &'a Yaml) {
    steps
        .iter()
        .enumerate()
        .find(|(_, s)| {
            s.get("name")
                .and_then(Yaml::as_str)
                .is_some_and(|n| n.starts_with(prefix))
        })
        .unwrap_or_else(|| panic!("release.yml has no step named {prefix}…"))
}

#[test]
fn the_release_step_pins_both_action_files_by_digest() {
    // Runs the workflow's own pin step (its `run:` script, with its env) on a scratch checkout.
    let steps = release_steps();
    let (_, pin_step) = step_named(&steps, "Pin the images");
    let script = pin_step["run"].as_str().unwrap();
    let env = pin_step["env"].as_mapping().unwrap();
    let dir = checkout();
    let before = action_files(dir.path());
    let (helm3, helm4) = (fake_digest('3'), fake_digest('4'));
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", script])
        .current_dir(dir.path());
    for (k, v) in env {
        let fake = match v.as_str().unwrap() {
            "${{ steps.names.outputs.image }}" => IMAGE.to_string(),
            "${{ steps.helm3.outputs.digest }}" => helm3.clone(),
            "${{ steps.helm4.outputs.digest }}" => helm4.clone(),
            other => panic!("pin step env {k}: unexpected value {other}"),
        };
        cmd.env(k, fake);
    }
    let (ok, out) = run(&mut cmd);
    assert!(ok, "pin step failed:\n{out}");

    // What the release commit would hold.
    for ((file, old_text), want) in before.iter().zip([&helm3, &helm4]) {
        let new_text = std::fs::read_to_string(dir.path().join(file)).unwrap();
        let (old, new) = (
            parse::<Yaml>(old_text).unwrap(),
            yaml_file(&dir.path().join(file)),
        );
        let image = new["runs"]["image"].as_str().unwrap();
        assert_eq!(digest_reference(image), Ok(want.as_str()), "{file}");
        assert_eq!(all_but_the_image(&new), all_but_the_image(&old), "{file}");
        let changed = old_text
            .lines()
            .zip(new_text.lines())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(changed, 1, "{file}: one line changes");
        assert_eq!(old_text.lines().count(), new_text.lines().count(), "{file}");
    }
}

#[test]
fn a_tag_reference_is_not_a_digest_reference() {
    // The check above must be able to fail.
    for image in [
        "docker://ghcr.io/org/trader-deploy:v1",
        "docker://ghcr.io/org/trader-deploy:v1-helm4",
        "docker://ghcr.io/org/trader-deploy@sha256:abc",
        "docker://ghcr.io/org/trader-deploy@sha512:aaaa",
        "docker://ghcr.io/evil/trader-deploy@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "Dockerfile",
    ] {
        assert!(digest_reference(image).is_err(), "{image}");
    }
}

#[test]
fn bad_digests_and_images_are_refused_and_nothing_changes() {
    let good = fake_digest('a');
    let other = fake_digest('b');
    let cases: Vec<(&str, String, String, &str)> = vec![
        (IMAGE, "sha256:abc".into(), other.clone(), "short digest"),
        (
            IMAGE,
            good.to_uppercase().replace("SHA256", "sha256"),
            other.clone(),
            "upper-case hex",
        ),
        (
            IMAGE,
            good.replace("sha256", "sha512"),
            other.clone(),
            "not sha256",
        ),
        (
            IMAGE,
            good.clone(),
            format!("{other}\n  evil: 1"),
            "newline in a digest",
        ),
        (IMAGE, "latest".into(), other.clone(), "a tag, not a digest"),
        (
            IMAGE,
            good.clone(),
            good.clone(),
            "one digest for both images",
        ),
        (IMAGE, good.clone(), String::new(), "empty helm 4 digest"),
        (
            "ghcr.io/org/trader-deploy:v1",
            good.clone(),
            other.clone(),
            "image with a tag",
        ),
        (
            "ghcr.io/Org/Trader-Deploy",
            good.clone(),
            other.clone(),
            "upper-case image",
        ),
        (
            "ghcr.io/org/x y",
            good.clone(),
            other.clone(),
            "space in the image",
        ),
    ];
    for (image, helm3, helm4, why) in cases {
        let dir = checkout();
        let before = action_files(dir.path());
        let (ok, out) = pin(dir.path(), image, &helm3, &helm4);
        assert!(!ok, "{why}: accepted\n{out}");
        assert!(out.contains("pin-action-image: "), "{why}: {out}");
        assert_eq!(action_files(dir.path()), before, "{why}: a file changed");
    }

    // A file without a runs.image line: refused, and the other file is not rewritten either.
    let dir = checkout();
    let helm4_file = dir.path().join("helm4/action.yml");
    let text = std::fs::read_to_string(&helm4_file).unwrap();
    std::fs::write(&helm4_file, text.replace("\n  image:", "\n  # image:")).unwrap();
    let before = action_files(dir.path());
    let (ok, out) = pin(dir.path(), IMAGE, &good, &other);
    assert!(!ok, "a file without runs.image was accepted:\n{out}");
    assert!(out.contains("exactly one runs.image line"), "{out}");
    assert_eq!(action_files(dir.path()), before);

    // The control: the same call on intact files succeeds.
    let dir = checkout();
    let (ok, out) = pin(dir.path(), IMAGE, &good, &other);
    assert!(ok, "{out}");
}

#[test]
fn the_workflow_pins_the_multi_arch_images_it_pushed() {
    let wf = yaml_file(&repo().join(".github/workflows/release.yml"));
    let tags: Vec<&str> = wf["on"]["push"]["tags"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(tags, ["v[0-9]+.[0-9]+.[0-9]+"], "only vX.Y.Z tags release");

    let steps = release_steps();
    let (guard, _) = step_named(&steps, "Refuse an already pinned commit");
    let (b3, helm3) = step(&steps, "helm3");
    let (b4, helm4) = step(&steps, "helm4");
    for (s, major) in [(helm3, 3), (helm4, 4)] {
        let with = &s["with"];
        assert!(
            s["uses"]
                .as_str()
                .unwrap()
                .starts_with("docker/build-push-action@")
        );
        assert_eq!(with["platforms"].as_str(), Some("linux/amd64,linux/arm64"));
        assert_eq!(with["push"].as_bool(), Some(true));
        let args = with.get("build-args").and_then(Yaml::as_str).unwrap_or("");
        assert_eq!(args.contains("HELM_MAJOR=4"), major == 4, "helm {major}");
    }
    let (check, check_step) = step_named(&steps, "Check that every image starts");
    let run_text = check_step["run"].as_str().unwrap();
    assert!(run_text.contains("linux/arm64") && run_text.contains("linux/amd64"));
    let (pin_at, pin_step) = step_named(&steps, "Pin the images");
    assert!(
        pin_step["run"]
            .as_str()
            .unwrap()
            .starts_with("scripts/pin-action-image.sh ")
    );
    assert_eq!(
        pin_step["env"]["HELM3_DIGEST"].as_str(),
        Some("${{ steps.helm3.outputs.digest }}")
    );
    assert_eq!(
        pin_step["env"]["HELM4_DIGEST"].as_str(),
        Some("${{ steps.helm4.outputs.digest }}")
    );
    let (commit_at, commit) = step_named(&steps, "Commit and point the tags");
    let script = commit["run"].as_str().unwrap();
    for want in [
        "git add action.yml helm4/action.yml",
        "git tag -f \"$TAG\"",
        "git tag -f \"$MAJOR\"",
        "git push -f origin \"refs/tags/$TAG\" \"refs/tags/$MAJOR\"",
    ] {
        assert!(script.contains(want), "commit step lacks {want:?}");
    }
    assert!(
        guard < b3 && b3 < b4 && b4 < check && check < pin_at && pin_at < commit_at,
        "steps out of order"
    );
}

#[test]
fn the_dockerfile_cross_compiles_instead_of_emulating() {
    // The release builds linux/arm64 on an amd64 runner: a RUN in a stage of the target platform
    // would run under emulation (slow, and the check step's QEMU is not set up for the build).
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let mut stages: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        let word = line.split_whitespace().next().unwrap_or("");
        if word == "FROM" {
            stages.push((line.to_string(), Vec::new()));
        } else if let Some((_, body)) = stages.last_mut() {
            // An instruction starts its line; continuation lines are indented.
            if !line.starts_with(['#', ' ', '\t']) && !word.is_empty() {
                body.push(word.to_string());
            }
        }
    }
    let (last, last_body) = stages.pop().expect("a FROM");
    assert_eq!(last, "FROM scratch", "the final stage");
    assert!(
        !last_body.iter().any(|w| w == "RUN"),
        "the final stage runs nothing"
    );
    assert!(stages.len() >= 3, "{stages:?}");
    for (from, body) in &stages {
        if body.iter().any(|w| w == "RUN") {
            assert!(
                from.starts_with("FROM --platform=$BUILDPLATFORM "),
                "a stage that runs commands must run on the build platform: {from}"
            );
        }
        if from.contains(" AS build") || from.contains(" AS helm") {
            assert!(body.iter().any(|w| w == "ARG"), "{from}: takes TARGETARCH");
        }
    }
    assert!(text.contains("ARG TARGETARCH"));
    assert!(text.contains("aarch64-unknown-linux-musl"));
    assert!(text.contains("GOARCH=$TARGETARCH"));
}
