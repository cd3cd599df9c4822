//! GitHub's runner running a docker action, re-enacted with podman: the runner's disk layout
//! (`_work/_temp/_github_home`, `_github_workflow`, `_runner_file_commands`, the workspace at
//! `_work/<repo>/<repo>`), the step environment (every action.yml input as `INPUT_*`, the
//! `GITHUB_*`, `RUNNER_*` and `ACTIONS_*` variables, `HOME`), the runner's path translation of
//! every value, and `docker run` with the runner's argument shape.
//!
//! Read from actions/runner: `ContainerActionHandler.RunAsync` (mounts, `HOME`, the environment,
//! `TranslateToContainerPath` on every value) and `DockerCommandManager.DockerRun` (the argument
//! order: `--name`, `--label`, `--workdir /github/workspace`, `--rm`, `-e NAME` per variable with
//! the values in docker's own environment, `-e GITHUB_ACTIONS=true`, `-e CI=true`, `--network`,
//! the `-v` mounts, the image, the action's args). Two deviations, both forced by this machine:
//! `--network host` stands for the job's network (the bed listens on loopback), and the
//! `/var/run/docker.sock` mount is left out (no Docker engine runs here; the action never uses
//! it). podman reads `testbed/podman/containers.conf` (CONTAINERS_CONF), which only lowers the
//! default ulimits this sandbox cannot grant.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::repo_root;

/// The image tag `make image` builds for a helm major version.
pub fn image(major: u8) -> String {
    match major {
        3 => "localhost/trader-deploy:dev".into(),
        4 => "localhost/trader-deploy:dev-helm4".into(),
        _ => panic!("no image for helm {major}"),
    }
}

/// The runner's disk for one job: `root/_work/...` as a hosted runner lays it out.
pub struct RunnerDisk {
    pub root: tempfile::TempDir,
    /// `$RUNNER_WORKSPACE`: `_work/<repo>`.
    pub runner_workspace: PathBuf,
    /// `github.workspace`: `_work/<repo>/<repo>`, mounted at /github/workspace.
    pub workspace: PathBuf,
    /// `$RUNNER_TEMP`: `_work/_temp` (not mounted).
    pub temp: PathBuf,
    pub home: PathBuf,
    pub workflow: PathBuf,
    pub file_commands: PathBuf,
}

impl RunnerDisk {
    pub fn new(repo_name: &str) -> RunnerDisk {
        let root = tempfile::tempdir().expect("runner root");
        let work = root.path().join("_work");
        let temp = work.join("_temp");
        let runner_workspace = work.join(repo_name);
        let d = RunnerDisk {
            workspace: runner_workspace.join(repo_name),
            runner_workspace,
            home: temp.join("_github_home"),
            workflow: temp.join("_github_workflow"),
            file_commands: temp.join("_runner_file_commands"),
            temp,
            root,
        };
        for p in [&d.workspace, &d.home, &d.workflow, &d.file_commands] {
            std::fs::create_dir_all(p).unwrap();
        }
        d
    }

    /// (host, container) pairs, in the order the runner adds its mounts.
    fn mounts(&self) -> Vec<(PathBuf, &'static str)> {
        vec![
            (self.home.clone(), "/github/home"),
            (self.workflow.clone(), "/github/workflow"),
            (self.file_commands.clone(), "/github/file_commands"),
            (self.workspace.clone(), "/github/workspace"),
        ]
    }

    /// `ContainerInfo.TranslateToContainerPath`: the first mapping (the last one added, so the
    /// workspace first) whose host path equals the value or starts it followed by `/`.
    pub fn translate(&self, value: &str) -> String {
        for (host, container) in self.mounts().into_iter().rev() {
            let host = host.to_str().unwrap();
            if value == host {
                return container.to_string();
            }
            if let Some(rest) = value.strip_prefix(&format!("{host}/")) {
                return format!("{container}/{rest}");
            }
        }
        value.to_string()
    }
}

/// One run of the action's container: its inputs and the step's extra environment.
pub struct DockerAction<'a> {
    pub disk: &'a RunnerDisk,
    pub image: String,
    /// `with:` values.
    pub inputs: BTreeMap<String, String>,
    /// Job/step `env:` and what earlier steps exported (GITHUB_ENV), before translation.
    pub env: BTreeMap<String, String>,
    /// The event name and payload (written to the workflow dir as event.json).
    pub event: (String, serde_json::Value),
}

/// What the step left: exit code, its stdout and stderr, and the files it wrote.
pub struct StepResult {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub outputs: BTreeMap<String, String>,
    pub summary: String,
    /// The exact `podman run` arguments, for the record.
    pub args: Vec<String>,
}

impl DockerAction<'_> {
    /// Every action.yml input as the runner sets it: the `with:` value, else the input's
    /// default (`${{ github.token }}` evaluates to the job's token), else the empty string.
    fn input_env(&self, token: &str) -> BTreeMap<String, String> {
        let text = std::fs::read_to_string(repo_root().join("action.yml")).unwrap();
        let action: trader_deploy::manifest::Yaml = trader_deploy::manifest::parse(&text).unwrap();
        let mut out = BTreeMap::new();
        for (name, spec) in action["inputs"].as_mapping().unwrap() {
            let name = name.as_str();
            let value = match self.inputs.get(name) {
                Some(v) => v.clone(),
                None => match spec.get("default").and_then(|d| d.as_str()) {
                    Some("${{ github.token }}") => token.to_string(),
                    Some(d) => d.to_string(),
                    None => String::new(),
                },
            };
            out.insert(
                format!("INPUT_{}", name.replace(' ', "_").to_uppercase()),
                value,
            );
        }
        for k in self.inputs.keys() {
            assert!(
                out.contains_key(&format!("INPUT_{}", k.to_uppercase())),
                "action.yml has no input {k:?}"
            );
        }
        out
    }

    /// The step's environment before translation: inputs, the github/runner contexts' runtime
    /// variables, ACTIONS_*, HOME, then the job/step env.
    fn environment(&self, step: &str) -> BTreeMap<String, String> {
        let d = self.disk;
        let token = self
            .env
            .get("TD_JOB_TOKEN")
            .cloned()
            .unwrap_or_else(|| "ghs_job_token".into());
        let mut env = self.input_env(&token);
        let event_path = d.workflow.join("event.json");
        std::fs::write(&event_path, self.event.1.to_string()).unwrap();
        let output = d.file_commands.join(format!("set_output_{step}"));
        let summary = d.file_commands.join(format!("step_summary_{step}"));
        let env_file = d.file_commands.join(format!("set_env_{step}"));
        let path_file = d.file_commands.join(format!("add_path_{step}"));
        let state = d.file_commands.join(format!("save_state_{step}"));
        for f in [&output, &summary, &env_file, &path_file, &state] {
            std::fs::write(f, "").unwrap();
        }
        let s = |p: &Path| p.to_str().unwrap().to_string();
        for (k, v) in [
            ("GITHUB_WORKSPACE", s(&d.workspace)),
            ("GITHUB_EVENT_NAME", self.event.0.clone()),
            ("GITHUB_EVENT_PATH", s(&event_path)),
            ("GITHUB_OUTPUT", s(&output)),
            ("GITHUB_STEP_SUMMARY", s(&summary)),
            ("GITHUB_ENV", s(&env_file)),
            ("GITHUB_PATH", s(&path_file)),
            ("GITHUB_STATE", s(&state)),
            ("GITHUB_ACTION", "__org_trader-deploy".into()),
            ("GITHUB_ACTION_REPOSITORY", "org/trader-deploy".into()),
            ("GITHUB_JOB", "deploy".into()),
            ("GITHUB_WORKFLOW", "deploy".into()),
            ("GITHUB_RETENTION_DAYS", "90".into()),
            ("GITHUB_SERVER_URL", "https://github.com".into()),
            (
                "GITHUB_GRAPHQL_URL",
                "https://api.github.com/graphql".into(),
            ),
            ("RUNNER_OS", "Linux".into()),
            ("RUNNER_ARCH", "X64".into()),
            ("RUNNER_NAME", "GitHub Actions 1".into()),
            ("RUNNER_ENVIRONMENT", "github-hosted".into()),
            ("RUNNER_TEMP", s(&d.temp)),
            ("RUNNER_TOOL_CACHE", "/opt/hostedtoolcache".into()),
            ("RUNNER_WORKSPACE", s(&d.runner_workspace)),
            (
                "ACTIONS_RUNTIME_URL",
                "https://pipelines.actions.githubusercontent.com/x/".into(),
            ),
            ("ACTIONS_RUNTIME_TOKEN", "runtime-token".into()),
            ("HOME", s(&d.home)),
        ] {
            env.insert(k.to_string(), v);
        }
        for (k, v) in &self.env {
            if k != "TD_JOB_TOKEN" {
                env.insert(k.clone(), v.clone());
            }
        }
        env
    }

    /// `docker run` as the runner builds it, run with podman; waits up to `deadline`.
    pub fn run(&self, deadline: std::time::Duration) -> StepResult {
        let d = self.disk;
        let step = format!("{:08x}", rand::random::<u32>());
        let env: BTreeMap<String, String> = self
            .environment(&step)
            .into_iter()
            .map(|(k, v)| {
                let t = d.translate(&v);
                (k, t)
            })
            .collect();
        let label = &instance_label(d.root.path().to_str().unwrap())[..6];
        let sanitized: String = self
            .image
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let mut args: Vec<String> = vec![
            "run".into(),
            "--name".into(),
            format!("{sanitized}_{}", &step[..6]),
            "--label".into(),
            label.to_string(),
            "--workdir".into(),
            "/github/workspace".into(),
            "--rm".into(),
        ];
        for k in env.keys() {
            args.push("-e".into());
            args.push(k.clone());
        }
        args.extend(["-e".into(), "GITHUB_ACTIONS=true".into()]);
        if !env.contains_key("CI") {
            args.extend(["-e".into(), "CI=true".into()]);
        }
        args.extend(["--network".into(), "host".into()]);
        for (host, container) in d.mounts() {
            args.push("-v".into());
            args.push(format!("{}:{container}", host.display()));
        }
        args.push(self.image.clone());
        let mut cmd = Command::new("podman");
        cmd.args(&args)
            .env_clear()
            .envs(&env)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "CONTAINERS_CONF",
                repo_root().join("testbed/podman/containers.conf"),
            );
        let out = super::run_with_deadline(&mut cmd, deadline);
        let read = |name: &str| {
            std::fs::read_to_string(d.file_commands.join(format!("{name}_{step}"))).unwrap()
        };
        StepResult {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            outputs: super::parse_outputs(&read("set_output")),
            summary: read("step_summary"),
            args,
        }
    }
}

/// The runner's `DockerInstanceLabel`: six hex digits derived from its root directory (the
/// runner takes them from a sha256; any stable hash serves a label here).
fn instance_label(s: &str) -> String {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    format!("{:016x}", h.finish())
}

/// A kubeconfig for `server` with the bed's CA and client certificate embedded (the bed's own
/// names files, which a container cannot see), under context `name`.
pub fn embedded_kubeconfig(bed_kubeconfig: &Path, name: &str) -> String {
    let kc: serde_json::Value = {
        let y: trader_deploy::manifest::Yaml =
            trader_deploy::manifest::parse(&std::fs::read_to_string(bed_kubeconfig).unwrap())
                .unwrap();
        serde_json::to_value(y).unwrap()
    };
    let b64 = |p: &serde_json::Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .encode(std::fs::read(p.as_str().unwrap()).unwrap())
    };
    let cluster = &kc["clusters"][0]["cluster"];
    let user = &kc["users"][0]["user"];
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    server: {}\n    \
         certificate-authority-data: {}\ncontexts:\n- name: {name}\n  context: {{cluster: {name}, \
         user: {name}}}\ncurrent-context: {name}\nusers:\n- name: {name}\n  user:\n    \
         client-certificate-data: {}\n    client-key-data: {}\n",
        cluster["server"].as_str().unwrap(),
        b64(&cluster["certificate-authority"]),
        b64(&user["client-certificate"]),
        b64(&user["client-key"]),
    )
}
