//! The action's image (`make image`) run the way GitHub's runner runs a docker action
//! (tests/common/docker_action.rs re-enacts the runner with podman) against the bed: a healthy
//! deploy and a rolled-back one with helm 3 and helm 4, a refused approval, kubeconfigs that
//! earlier steps wrote (in the workspace, through KUBECONFIG, a second context), one the container
//! cannot see; and the image checked against the Dockerfile it stands for. Outputs are read from
//! the mounted GITHUB_OUTPUT file and the summary from GITHUB_STEP_SUMMARY.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::StandinRepo;
use common::case::{Case, copy_dir};
use common::docker_action::{DockerAction, RunnerDisk, StepResult, embedded_kubeconfig, image};
use serde_json::{Value, json};

const TOKEN: &str = "ghs_bed_full";
const MAIN_TIP: &str = "ee3b2f7904fd6c989c87d6b5f7ecd382679612f4";
const STEP_DEADLINE: Duration = Duration::from_secs(240);

/// One test: a release on the bed, a repository of its own in the GitHub stand-in, and the
/// runner's disk with the test chart checked out in the workspace.
struct Job {
    case: Case,
    repo: StandinRepo,
    disk: RunnerDisk,
}

impl Job {
    async fn new(name: &str, major: u8) -> Job {
        let case = Case::new(&format!("img-{name}"), major).await;
        let api = case
            .bed
            .github_api_url
            .clone()
            .expect("the bed's GitHub stand-in");
        let standin = case.bed.github_standin_url.clone().expect("stand-in URL");
        let repo = StandinRepo::add(api, standin, "td-img", |_| {}).await;
        let disk = RunnerDisk::new(repo.full.split('/').nth(1).unwrap());
        copy_dir(&case.ws.path().join("chart"), &disk.workspace.join("chart"));
        Job { case, repo, disk }
    }

    /// The step `uses: org/trader-deploy@…` with a dev deploy of `tag` on a push to main.
    fn step(&self, tag: &str) -> DockerAction<'_> {
        let c = &self.case;
        let inputs: BTreeMap<String, String> = [
            ("chart", "chart".to_string()),
            ("release", c.release.clone()),
            ("namespace", c.ns.clone()),
            ("environment", "dev".into()),
            ("version", tag.to_string()),
            ("set", format!("image.tag={tag}\nscanner.image.tag={tag}")),
            ("verify_images", "false".into()),
            ("timeout", "120s".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let env: BTreeMap<String, String> = [
            ("GITHUB_REPOSITORY", self.repo.full.as_str()),
            ("GITHUB_API_URL", self.repo.api.as_str()),
            ("GITHUB_REF", "refs/heads/main"),
            ("GITHUB_REF_NAME", "main"),
            ("GITHUB_SHA", MAIN_TIP),
            ("GITHUB_RUN_ID", "1001"),
            ("GITHUB_RUN_ATTEMPT", "1"),
            ("GITHUB_ACTOR", "carol"),
            ("TD_JOB_TOKEN", TOKEN),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let event = json!({
            "ref": "refs/heads/main",
            "after": MAIN_TIP,
            "repository": {"full_name": self.repo.full, "default_branch": "main"},
        });
        DockerAction {
            disk: &self.disk,
            image: image(c.major),
            inputs,
            env,
            event: ("push".into(), event),
        }
    }

    /// The bed's kubeconfig with its certificates embedded, as a secret would hold it.
    fn kubeconfig(&self, context: &str) -> String {
        embedded_kubeconfig(&self.case.bed.kubeconfig, context)
    }

    /// Writes a file into the workspace, as an earlier step would.
    fn write(&self, rel: &str, text: &str) -> std::path::PathBuf {
        let p = self.disk.workspace.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }
}

fn with<'a>(mut a: DockerAction<'a>, pairs: &[(&str, &str)]) -> DockerAction<'a> {
    for (k, v) in pairs {
        a.inputs.insert(k.to_string(), v.to_string());
    }
    a
}

fn with_env<'a>(mut a: DockerAction<'a>, pairs: &[(&str, &str)]) -> DockerAction<'a> {
    for (k, v) in pairs {
        a.env.insert(k.to_string(), v.to_string());
    }
    a
}

fn show(r: &StepResult) -> String {
    format!(
        "exit {}\nargs: {:?}\nstdout:\n{}\nstderr:\n{}",
        r.code, r.args, r.stdout, r.stderr
    )
}

fn assert_ok(r: &StepResult) {
    assert_eq!(r.code, 0, "{}", show(r));
    assert_eq!(
        r.outputs.get("status").map(String::as_str),
        Some("success"),
        "{}",
        show(r)
    );
}

/// The only `::error` line of a failed step.
fn error_line(r: &StepResult) -> String {
    let errors: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("::error"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", show(r));
    errors[0].to_string()
}

// ---------------------------------------------------------------------------------------------

/// The runner's argument shape, as DockerCommandManager.DockerRun builds it.
#[tokio::test(flavor = "multi_thread")]
async fn the_container_gets_the_runners_arguments_mounts_and_environment() {
    let job = Job::new("shape", 3).await;
    let kc = job.kubeconfig("bed");
    let r = with(job.step("v1.0.0"), &[("kubeconfig", &kc)]).run(STEP_DEADLINE);
    assert_ok(&r);
    let a = &r.args;
    assert_eq!(a[0], "run");
    assert_eq!((a[1].as_str(), a[3].as_str()), ("--name", "--label"));
    assert_eq!(&a[5..8], ["--workdir", "/github/workspace", "--rm"]);
    // Every variable by name only (values travel in podman's environment, never on argv).
    let names: Vec<&str> = a
        .windows(2)
        .filter(|w| w[0] == "-e")
        .map(|w| w[1].as_str())
        .collect();
    for must in [
        "INPUT_KUBECONFIG",
        "INPUT_GITHUB_TOKEN",
        "GITHUB_WORKSPACE",
        "GITHUB_OUTPUT",
        "RUNNER_TEMP",
        "ACTIONS_RUNTIME_TOKEN",
        "HOME",
        "GITHUB_ACTIONS=true",
        "CI=true",
    ] {
        assert!(names.contains(&must), "-e {must} missing: {a:?}");
    }
    assert!(
        !a.iter().any(|x| x.contains(TOKEN) || x.contains("BEGIN")),
        "{a:?}"
    );
    let mounts: Vec<&str> = a
        .windows(2)
        .filter(|w| w[0] == "-v")
        .map(|w| w[1].rsplit(':').next().unwrap())
        .collect();
    assert_eq!(
        mounts,
        [
            "/github/home",
            "/github/workflow",
            "/github/file_commands",
            "/github/workspace"
        ]
    );
    assert_eq!(a.last().unwrap(), &image(3));
    // The token went to the stand-in (GitHub deployment for dev), masked in the log.
    assert!(
        r.stdout
            .lines()
            .all(|l| l.starts_with("::add-mask::") || !l.contains(TOKEN)),
        "{}",
        show(&r)
    );
    let log = job.repo.log().await;
    assert!(
        log.iter().any(|e| e["method"] == "POST"
            && e["path"].as_str().unwrap().ends_with("/deployments")),
        "{log:#?}"
    );
    job.case.done().await;
}

async fn healthy_then_rolled_back(major: u8) {
    let job = Job::new("roll", major).await;
    let kc = job.kubeconfig("bed");
    let first = with(job.step("v1.0.0"), &[("kubeconfig", &kc)]).run(STEP_DEADLINE);
    assert_ok(&first);
    assert_eq!(first.outputs["revision"], "1");
    assert_eq!(first.outputs["version"], "v1.0.0");
    assert!(
        first.stdout.contains(&format!("(major version {major})")),
        "the image's own helm {major}: {}",
        show(&first)
    );
    assert!(first.summary.contains("v1.0.0"), "{}", first.summary);
    assert_eq!(job.case.status(), ("deployed".to_string(), 1));

    let broken = with(job.step("broken-pull"), &[("kubeconfig", &kc)]).run(STEP_DEADLINE);
    assert_eq!(broken.code, 1, "{}", show(&broken));
    assert_eq!(broken.outputs["status"], "rolled_back", "{}", show(&broken));
    assert_eq!(broken.outputs["rolled_back"], "true");
    assert!(
        // ErrImagePull or ImagePullBackOff, whichever the watch saw first.
        broken.summary.contains("ImagePull") && broken.summary.contains("broken-pull"),
        "{}",
        broken.summary
    );
    assert_eq!(job.case.status(), ("deployed".to_string(), 3));
    assert_eq!(job.case.ready_orch_tag().await, "v1.0.0");
    job.case.done().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn healthy_then_rolled_back_in_the_helm3_image() {
    healthy_then_rolled_back(3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn healthy_then_rolled_back_in_the_helm4_image() {
    healthy_then_rolled_back(4).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_approval_changes_nothing() {
    let job = Job::new("refused", 3).await;
    let kc = job.kubeconfig("bed");
    let step = with(
        job.step("v1.1.0"),
        &[
            ("kubeconfig", &kc),
            ("environment", "prod"),
            ("version", "v1.1.0"),
        ],
    );
    let mut step = with_env(step, &[("GITHUB_RUN_ID", "1002")]);
    step.event = (
        "workflow_dispatch".into(),
        json!({
            "ref": "refs/heads/main",
            "inputs": {},
            "repository": {"full_name": job.repo.full, "default_branch": "main"},
        }),
    );
    let r = step.run(STEP_DEADLINE);
    assert_eq!(r.code, 1, "{}", show(&r));
    let err = error_line(&r);
    assert!(
        err.starts_with("::error title=Deployment refused::")
            && err.contains("run 1002 has no approval for environment prod"),
        "{err}"
    );
    assert_eq!(r.outputs["status"], "failed");
    let log = job.repo.log().await;
    assert!(log.iter().all(|e| e["method"] == "GET"), "{log:#?}");
    let out = job.case.bed.run(
        job.case
            .bed
            .helm(3)
            .args(["list", "-a", "-n", &job.case.ns, "-o", "json"]),
        Duration::from_secs(60),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
    job.case.done().await;
}

/// A kubeconfig whose current-context points at nothing, for `context` to be proven.
fn dead_kubeconfig() -> &'static str {
    "apiVersion: v1\nkind: Config\nclusters:\n- name: dead\n  cluster: {server: 'https://127.0.0.1:1'}\n\
     contexts:\n- name: dead\n  context: {cluster: dead, user: dead}\ncurrent-context: dead\n\
     users:\n- name: dead\n  user: {token: dead-token-0123456789}\n"
}

#[tokio::test(flavor = "multi_thread")]
async fn kubeconfigs_written_by_earlier_steps() {
    let job = Job::new("kubeconfigs", 3).await;
    let live = job.kubeconfig("bed");

    // 1. A file in the workspace, named by `kubeconfig_path`.
    job.write("kube/config.yaml", &live);
    let r = with(
        job.step("v1.0.0"),
        &[("kubeconfig_path", "kube/config.yaml")],
    )
    .run(STEP_DEADLINE);
    assert_ok(&r);
    assert_eq!(job.case.status(), ("deployed".to_string(), 1));

    // 2. KUBECONFIG exported with two host paths in the workspace (google-github-actions writes
    //    absolute host paths): the runner rewrites only the first; the action maps the second.
    //    The first file's current-context is dead, so only `context` can make this deploy.
    let dead = job.write("kube/dead.yaml", dead_kubeconfig());
    let live_file = job.write("kube/live.yaml", &live);
    let list = format!("{}:{}", dead.display(), live_file.display());
    let r = with(
        with_env(job.step("v1.1.0"), &[("KUBECONFIG", &list)]),
        &[("context", "bed")],
    )
    .run(STEP_DEADLINE);
    assert_ok(&r);
    assert_eq!(job.case.status(), ("deployed".to_string(), 2));
    assert!(r.stdout.contains("::add-mask::dead-token-0123456789"));
    assert!(
        r.stdout
            .lines()
            .all(|l| l.starts_with("::add-mask::") || !l.contains("dead-token")),
        "{}",
        show(&r)
    );

    // Without `context`, the dead current-context is used: the connection fails, nothing changes.
    let r = with_env(job.step("v1.2.0"), &[("KUBECONFIG", &list)]).run(STEP_DEADLINE);
    assert_eq!(r.code, 1, "{}", show(&r));
    assert_eq!(job.case.status(), ("deployed".to_string(), 2));

    // A context the kubeconfig does not have: one line naming the input and the contexts.
    let r = with(
        with_env(job.step("v1.2.0"), &[("KUBECONFIG", &list)]),
        &[("context", "prod-eu")],
    )
    .run(STEP_DEADLINE);
    assert_eq!(r.code, 1, "{}", show(&r));
    assert_eq!(
        error_line(&r),
        "::error title=Invalid input::input `context`: the kubeconfig has no context \"prod-eu\" \
         (it has: dead, bed)"
    );

    // 3. Under RUNNER_TEMP, as azure/k8s-set-context writes it: not mounted, refused in one line.
    let temp_file = job.disk.temp.join("kubeconfig_1764.yaml");
    std::fs::write(&temp_file, &live).unwrap();
    let r = with_env(
        job.step("v1.2.0"),
        &[("KUBECONFIG", temp_file.to_str().unwrap())],
    )
    .run(STEP_DEADLINE);
    assert_eq!(r.code, 1, "{}", show(&r));
    let err = error_line(&r);
    assert!(
        err.starts_with(&format!(
            "::error title=Invalid input::input `kubeconfig`: not given, and the KUBECONFIG file \
             {} is not visible inside the action's container",
            temp_file.display()
        )),
        "{err}"
    );
    assert!(err.contains("$GITHUB_WORKSPACE"), "{err}");
    assert_eq!(job.case.status(), ("deployed".to_string(), 2));
    job.case.done().await;
}

// ---------------------------------------------------------------------------------------------
// The image against its Dockerfile (no bed needed).

/// The Dockerfile's final stage: COPY destinations, ENV pairs, ENTRYPOINT, and USER/WORKDIR.
struct FinalStage {
    copies: Vec<String>,
    env: Vec<String>,
    entrypoint: Vec<String>,
    other: Vec<String>,
}

fn final_stage(dockerfile: &str) -> FinalStage {
    // Join continuation lines, drop comments, keep what follows the last FROM.
    let mut lines: Vec<String> = Vec::new();
    let mut cur = String::new();
    for l in dockerfile.lines() {
        let t = l.trim();
        if t.starts_with('#') || t.is_empty() {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(head) => cur.push_str(head),
            None => {
                cur.push_str(t);
                lines.push(std::mem::take(&mut cur));
            }
        }
    }
    let last_from = lines.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    let mut st = FinalStage {
        copies: vec![],
        env: vec![],
        entrypoint: vec![],
        other: vec![],
    };
    for l in &lines[last_from + 1..] {
        let (instr, rest) = l.split_once(' ').unwrap();
        match instr {
            "COPY" => st
                .copies
                .push(rest.split_whitespace().last().unwrap().to_string()),
            "ENV" => st.env.extend(rest.split_whitespace().map(str::to_string)),
            "ENTRYPOINT" => st.entrypoint = serde_json::from_str(rest).unwrap(),
            _ => st.other.push(l.clone()),
        }
    }
    st
}

fn podman(args: &[&str]) -> String {
    let out = Command::new("podman")
        .args(args)
        .env(
            "CONTAINERS_CONF",
            common::repo_root().join("testbed/podman/containers.conf"),
        )
        .output()
        .expect("podman");
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every path in the image's root with its mode (`0o1777`, file type bits dropped).
fn image_files(tag: &str) -> BTreeMap<String, (bool, u32)> {
    use std::os::unix::fs::PermissionsExt as _;
    let root = podman(&["image", "mount", tag]).trim().to_string();
    let mut out = BTreeMap::new();
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, (bool, u32)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            let rel = format!("/{}", e.path().strip_prefix(base).unwrap().display());
            out.insert(rel, (meta.is_dir(), meta.permissions().mode() & 0o7777));
            if meta.is_dir() {
                walk(base, &e.path(), out);
            }
        }
    }
    walk(Path::new(&root), Path::new(&root), &mut out);
    podman(&["image", "unmount", tag]);
    out
}

#[test]
fn the_image_holds_what_the_dockerfile_says() {
    let dockerfile = std::fs::read_to_string(common::repo_root().join("Dockerfile")).unwrap();
    let stage = final_stage(&dockerfile);
    assert!(
        stage.other.is_empty(),
        "unexpected instructions: {:?}",
        stage.other
    );
    let versions =
        std::fs::read_to_string(common::repo_root().join("testbed/versions.env")).unwrap();
    for (major, tag) in [(3, image(3)), (4, image(4))] {
        let cfg: Value = serde_json::from_str(&podman(&[
            "image",
            "inspect",
            "--format",
            "{{json .Config}}",
            &tag,
        ]))
        .unwrap();
        let env: Vec<String> = serde_json::from_value(cfg["Env"].clone()).unwrap();
        assert_eq!(env, stage.env, "{tag}: ENV");
        let ep: Vec<String> = serde_json::from_value(cfg["Entrypoint"].clone()).unwrap();
        assert_eq!(ep, stage.entrypoint, "{tag}: ENTRYPOINT");
        assert!(
            cfg.get("Cmd").is_none_or(Value::is_null),
            "{tag}: no CMD: {cfg}"
        );
        assert!(
            cfg.get("User").is_none_or(|u| u == ""),
            "{tag}: no USER: {cfg}"
        );
        assert!(
            cfg.get("WorkingDir").is_none_or(|u| u == ""),
            "{tag}: no WORKDIR"
        );

        // The files are the COPY destinations and their parent directories, nothing else.
        let files = image_files(&tag);
        let mut want: BTreeMap<String, (bool, u32)> = BTreeMap::new();
        for dst in &stage.copies {
            let mut p = Path::new(dst);
            while let Some(parent) = p.parent() {
                if parent != Path::new("/") {
                    want.insert(parent.display().to_string(), (true, 0o755));
                }
                p = parent;
            }
        }
        // Modes as the stages make them: `mkdir -m 1777 /rootfs-tmp`, executables from the
        // build stages, the CA bundle from the distribution's package.
        assert!(dockerfile.contains("mkdir -m 1777 /rootfs-tmp"));
        want.insert("/tmp".into(), (true, 0o1777));
        want.insert("/etc/ssl/certs/ca-certificates.crt".into(), (false, 0o644));
        want.insert("/usr/local/bin/helm".into(), (false, 0o755));
        want.insert("/usr/local/bin/trader-deploy".into(), (false, 0o755));
        assert_eq!(files, want, "{tag}: files and modes");

        // The image's helm is the version the Dockerfile pins for that major.
        let pinned = versions
            .lines()
            .find_map(|l| l.strip_prefix(&format!("HELM{major}_VERSION=")))
            .unwrap();
        assert!(dockerfile.contains(&format!("ARG HELM{major}_VERSION={pinned}")));
        let v = podman(&[
            "run",
            "--rm",
            "--entrypoint",
            "/usr/local/bin/helm",
            &tag,
            "version",
            "--short",
        ]);
        assert!(v.starts_with(pinned), "{tag}: helm {v} is not {pinned}");
    }
}
