//! The action's contract, checked against the real binary: action.yml ↔ code ↔ README parity,
//! resolution on GitHub's own webhook payloads, and the documented error for each bad input.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::parse_outputs;
use common::tools::{cache, require};
use trader_deploy::inputs::INPUTS;
use trader_deploy::outputs::OUTPUTS;

const BIN: &str = env!("CARGO_BIN_EXE_trader-deploy");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml(path: &Path) -> trader_deploy::manifest::Yaml {
    trader_deploy::manifest::parse(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn keys(v: &trader_deploy::manifest::Yaml) -> Vec<String> {
    v.as_mapping()
        .expect("a mapping")
        .keys()
        .map(|k| k.as_str().to_string())
        .collect()
}

/// The first column of the markdown table under `## heading` in the README.
fn readme_table(heading: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("README has no ## {heading}"));
    readme[start + heading.len() + 5..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.split('|')
                .nth(1)
                .unwrap()
                .trim()
                .trim_matches('`')
                .to_string()
        })
        .collect()
}

#[test]
fn action_yml_code_and_readme_agree() {
    let action = yaml(&repo().join("action.yml"));
    let code_inputs: Vec<String> = INPUTS.iter().map(|i| i.name.to_string()).collect();
    let code_outputs: Vec<String> = OUTPUTS.iter().map(|o| o.name.to_string()).collect();
    assert_eq!(keys(&action["inputs"]), code_inputs, "action.yml inputs");
    assert_eq!(keys(&action["outputs"]), code_outputs, "action.yml outputs");
    for o in OUTPUTS {
        assert_eq!(
            action["outputs"][o.name]["description"].as_str(),
            Some(o.description),
            "action.yml output {:?}",
            o.name
        );
    }
    assert_eq!(readme_table("Inputs"), code_inputs, "README inputs table");
    assert_eq!(
        readme_table("Outputs"),
        code_outputs,
        "README outputs table"
    );
    for (name, input) in action["inputs"].as_mapping().unwrap() {
        let desc = input["description"].as_str().unwrap_or_default();
        assert!(!desc.is_empty(), "input {name:?} has no description");
        // GitHub does not enforce `required`; the code decides what is missing.
        assert_eq!(input["required"].as_bool(), Some(false), "input {name:?}");
        let snake = name.as_str();
        assert!(
            snake.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "input {snake:?} is not snake_case"
        );
    }
    assert_eq!(action["runs"]["using"].as_str(), Some("docker"));
    let image = action["runs"]["image"].as_str().unwrap();
    assert!(
        image.starts_with("docker://") && (image.ends_with(":v1") || pinned(image)),
        "a prebuilt image, not a Dockerfile build on every run: {image}"
    );
}

/// A release commit's image reference: `…@sha256:<64 hex>` (tests/release.rs checks the form).
fn pinned(image: &str) -> bool {
    image
        .split_once("@sha256:")
        .is_some_and(|(_, hex)| hex.len() == 64)
}

/// `uses: org/trader-deploy/helm4@v1`: the same interface as action.yml, its own image.
#[test]
fn helm4_action_has_the_same_inputs_and_outputs() {
    let action = yaml(&repo().join("action.yml"));
    let helm4 = yaml(&repo().join("helm4/action.yml"));
    assert_eq!(
        keys(&helm4),
        keys(&action),
        "helm4/action.yml top-level keys"
    );
    // Whole mappings: names, descriptions, required, defaults.
    assert_eq!(helm4["inputs"], action["inputs"], "helm4/action.yml inputs");
    assert_eq!(
        helm4["outputs"], action["outputs"],
        "helm4/action.yml outputs"
    );
    assert_eq!(helm4["branding"], action["branding"]);
    assert_eq!(helm4["runs"]["using"], action["runs"]["using"]);
    assert_eq!(keys(&helm4["runs"]), keys(&action["runs"]));
    for key in ["name", "description"] {
        let (a, h) = (action[key].as_str().unwrap(), helm4[key].as_str().unwrap());
        assert!(h.starts_with(a) && h.contains("helm 4"), "{key}: {h:?}");
    }
    let (a, h) = (
        action["runs"]["image"].as_str().unwrap(),
        helm4["runs"]["image"].as_str().unwrap(),
    );
    if pinned(a) {
        // A release commit: two different images of one repository.
        assert!(pinned(h) && h != a, "{h}");
        assert_eq!(a.split_once('@').unwrap().0, h.split_once('@').unwrap().0);
    } else {
        assert_eq!(h, format!("{a}-helm4"), "the helm 4 image of the same tag");
    }
}

/// helm4/action.yml is generated from action.yml; an edit of one alone fails here.
#[test]
fn helm4_action_is_generated_from_action_yml() {
    let action = yaml(&repo().join("action.yml"));
    if pinned(action["runs"]["image"].as_str().unwrap()) {
        // A release commit: the files were generated on the branch, then pinned.
        return;
    }
    let out = Command::new("bash")
        .arg(repo().join("scripts/helm4-action.sh"))
        .arg("-")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/helm4-action.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed = std::fs::read_to_string(repo().join("helm4/action.yml")).unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout) == committed,
        "helm4/action.yml is not what action.yml generates: edit action.yml only, then run \
         scripts/helm4-action.sh"
    );
}

/// A temporary GitHub workspace with a chart, per-environment values and an event payload.
struct Run {
    dir: tempfile::TempDir,
    env: BTreeMap<String, String>,
}

impl Run {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let chart = dir.path().join("charts/traderadmin");
        std::fs::create_dir_all(&chart).unwrap();
        std::fs::write(
            chart.join("Chart.yaml"),
            "apiVersion: v2\nname: traderadmin\nversion: 0.1.0\n",
        )
        .unwrap();
        // The image keys `images` sets, as one string each (the example chart's shape).
        std::fs::write(
            chart.join("values.yaml"),
            "image:\n  pythonOrch: ghcr.io/acme/python-orch:v0\n  goScanner: ghcr.io/acme/go-scanner:v0\n",
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("deploy/values")).unwrap();
        for env in ["dev", "staging", "prod"] {
            std::fs::write(
                dir.path().join(format!("deploy/values/values-{env}.yaml")),
                "replicaCount: 1\n",
            )
            .unwrap();
        }
        let mut env = BTreeMap::new();
        for (k, v) in [
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_REPOSITORY", "acme/trader"),
            ("GITHUB_RUN_ID", "1001"),
            ("GITHUB_RUN_ATTEMPT", "1"),
            ("GITHUB_ACTOR", "carol"),
            ("RUNNER_NAME", "GitHub Actions 1"),
        ] {
            env.insert(k.to_string(), v.to_string());
        }
        env.insert(
            "GITHUB_WORKSPACE".into(),
            dir.path().to_string_lossy().into_owned(),
        );
        for (k, f) in [
            ("GITHUB_OUTPUT", "output"),
            ("GITHUB_STEP_SUMMARY", "summary"),
        ] {
            env.insert(k.into(), dir.path().join(f).to_string_lossy().into_owned());
        }
        Run { dir, env }
    }

    fn event(mut self, name: &str, payload: &serde_json::Value) -> Self {
        let path = self.dir.path().join("event.json");
        std::fs::write(&path, serde_json::to_vec(payload).unwrap()).unwrap();
        self.env.insert("GITHUB_EVENT_NAME".into(), name.into());
        self.env.insert(
            "GITHUB_EVENT_PATH".into(),
            path.to_string_lossy().into_owned(),
        );
        self
    }

    fn var(mut self, k: &str, v: &str) -> Self {
        self.env.insert(k.into(), v.into());
        self
    }

    fn input(self, name: &str, v: &str) -> Self {
        let var = trader_deploy::inputs::input_var(name);
        self.var(&var, v)
    }

    fn run(&self) -> Outcome {
        let out = Command::new(BIN)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&self.env)
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        let outputs = std::fs::read_to_string(self.dir.path().join("output")).unwrap_or_default();
        Outcome {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            outputs: parse_outputs(&outputs),
        }
    }
}

#[derive(Debug)]
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    outputs: BTreeMap<String, String>,
}

/// GitHub's own example payloads, from the npm package `@octokit/webhooks-examples` (None when
/// `make deps` has not installed it: the test skips).
fn webhook_examples(event: &str) -> Option<Vec<serde_json::Value>> {
    let path = match std::env::var_os("TD_WEBHOOK_EXAMPLES") {
        Some(p) => PathBuf::from(p),
        None => require(
            "@octokit/webhooks-examples (npm)",
            cache().join("npm/node_modules/@octokit/webhooks-examples/api.github.com/index.json"),
        )?,
    };
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("webhook examples at {}: {e}", path.display()));
    let all: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    Some(
        all.into_iter()
            .find(|e| e["name"] == event)
            .unwrap_or_else(|| panic!("no {event} examples"))["examples"]
            .as_array()
            .unwrap()
            .clone(),
    )
}

fn example(
    examples: &[serde_json::Value],
    pred: impl Fn(&serde_json::Value) -> bool,
) -> &serde_json::Value {
    examples
        .iter()
        .find(|e| pred(e))
        .expect("a matching example")
}

const IMAGES: &str =
    "image.pythonOrch=ghcr.io/acme/python-orch\nimage.goScanner=ghcr.io/acme/go-scanner";

fn resolve_push(payload: &serde_json::Value, git_ref: &str) -> Outcome {
    Run::new()
        .event("push", payload)
        .var("GITHUB_REF", git_ref)
        .var("GITHUB_SHA", payload["after"].as_str().unwrap())
        .input("mode", "resolve")
        .input("images", IMAGES)
        .run()
}

#[test]
fn resolve_on_real_payloads() {
    let Some(pushes) = webhook_examples("push") else {
        return;
    };
    let branch_push = example(&pushes, |e| {
        e["ref"] == "refs/heads/master" && e["deleted"] == false
    });
    assert_eq!(branch_push["repository"]["default_branch"], "master");
    let sha = branch_push["after"].as_str().unwrap();

    // A push to the default branch: dev, sha-<8>.
    let o = resolve_push(branch_push, "refs/heads/master");
    assert_eq!(o.code, Some(0), "{o:?}");
    assert_eq!(o.outputs["environment"], "dev");
    assert_eq!(o.outputs["version"], format!("sha-{}", &sha[..8]));
    let images: BTreeMap<String, String> = serde_json::from_str(&o.outputs["images"]).unwrap();
    assert_eq!(
        images["image.pythonOrch"],
        format!("ghcr.io/acme/python-orch:sha-{}", &sha[..8])
    );
    assert!(
        o.stdout.contains("::group::Resolve the plan"),
        "{}",
        o.stdout
    );

    // A release tag push: prod; a prerelease tag: staging. The payload is GitHub's tag push
    // example with its ref set to a release tag.
    let tag_push = example(&pushes, |e| {
        e["ref"].as_str().unwrap().starts_with("refs/tags/") && e["deleted"] == false
    });
    for (tag, env) in [("v1.2.0", "prod"), ("v1.3.0-rc.1", "staging")] {
        let mut p = tag_push.clone();
        p["ref"] = format!("refs/tags/{tag}").into();
        let o = resolve_push(&p, &format!("refs/tags/{tag}"));
        assert_eq!(o.code, Some(0), "{o:?}");
        assert_eq!(
            (
                o.outputs["environment"].as_str(),
                o.outputs["version"].as_str()
            ),
            (env, tag)
        );
        assert!(o.stdout.contains("protected") || env != "prod");
    }

    // GitHub's tag push example as it is (`simple-tag`): no environment can be inferred, and
    // with one given, the tag is refused as a version.
    let o = resolve_push(tag_push, "refs/tags/simple-tag");
    assert_eq!(o.code, Some(1));
    assert!(
        o.stdout
            .contains("input `environment`: not given and cannot be inferred"),
        "{}",
        o.stdout
    );
    let o = Run::new()
        .event("push", tag_push)
        .var("GITHUB_REF", "refs/tags/simple-tag")
        .input("mode", "resolve")
        .input("environment", "dev")
        .run();
    assert!(
        o.stdout
            .contains("input `ref`: tag \"simple-tag\" is not a semver release tag"),
        "{}",
        o.stdout
    );

    // A tag deletion is not a deploy.
    let deletion = example(&pushes, |e| e["deleted"] == true);
    let o = resolve_push(deletion, deletion["ref"].as_str().unwrap());
    assert_eq!(o.code, Some(1));
    assert!(
        o.stdout
            .contains("input `ref`: this push deletes refs/tags/"),
        "{}",
        o.stdout
    );

    // workflow_dispatch: its inputs choose; without them nothing is inferred.
    let Some(dispatches) = webhook_examples("workflow_dispatch") else {
        return;
    };
    let dispatch = example(&dispatches, |e| e["ref"] == "refs/heads/main");
    let mut with_inputs = dispatch.clone();
    with_inputs["inputs"] = serde_json::json!({"environment": "staging", "version": "v1.2.0"});
    let o = Run::new()
        .event("workflow_dispatch", &with_inputs)
        .var("GITHUB_REF", "refs/heads/main")
        .var("GITHUB_SHA", sha)
        .input("mode", "resolve")
        .run();
    assert_eq!(o.code, Some(0), "{o:?}");
    assert_eq!(o.outputs["environment"], "staging");
    assert_eq!(o.outputs["version"], "v1.2.0");
    // An explicit input wins over the dispatch input.
    let o = Run::new()
        .event("workflow_dispatch", &with_inputs)
        .var("GITHUB_REF", "refs/heads/main")
        .input("mode", "resolve")
        .input("version", "v1.2.1")
        .run();
    assert_eq!(o.outputs["version"], "v1.2.1");
    let o = Run::new()
        .event("workflow_dispatch", dispatch)
        .var("GITHUB_REF", "refs/heads/main")
        .var("GITHUB_SHA", sha)
        .input("mode", "resolve")
        .run();
    assert_eq!(o.code, Some(1));
    assert!(o.stdout.contains("input `environment`"), "{}", o.stdout);
}

#[test]
fn resolve_writes_summary_and_default_values_file() {
    let r = Run::new()
        .var("GITHUB_EVENT_NAME", "push")
        .var("GITHUB_REF", "refs/tags/v2.0.0")
        .input("mode", "resolve")
        .input("images", IMAGES);
    let o = r.run();
    assert_eq!(o.code, Some(0), "{o:?}");
    let summary = std::fs::read_to_string(r.dir.path().join("summary")).unwrap();
    assert!(
        summary.contains("| Environment | `prod` (from tag name), protected |"),
        "{summary}"
    );
    assert!(
        summary.contains("`deploy/values/values-prod.yaml`"),
        "{summary}"
    );
    assert!(
        summary.contains("`image.goScanner` = `ghcr.io/acme/go-scanner:v2.0.0`"),
        "{summary}"
    );
}

#[test]
fn cli_mirrors_the_action() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .env_clear()
        .current_dir(dir.path())
        .args([
            "resolve",
            "--environment",
            "prod",
            "--version",
            "v1.2.0",
            "--images",
            "image.pythonOrch=ghcr.io/acme/python-orch",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    // Outside Actions: plain lines, no workflow commands.
    assert!(stdout.contains("==> Resolve the plan"), "{stdout}");
    assert!(
        stdout.contains("image.pythonOrch = ghcr.io/acme/python-orch:v1.2.0"),
        "{stdout}"
    );
    assert!(stdout.contains("output environment=prod"), "{stdout}");
    assert!(!stdout.contains("::"), "{stdout}");

    let out = Command::new(BIN)
        .env_clear()
        .current_dir(dir.path())
        .args(["resolve", "--environment", "prod", "--version", "latest"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "error: Invalid input: input `version`: \"latest\" is a moving tag; protected environment \"prod\" takes only immutable semver tags (e.g. v1.2.0)"
    );
    let out = Command::new(BIN)
        .arg("deploy")
        .arg("--no-such-flag")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// The inputs given, the input the error must name, and the message it must carry.
type BadInput<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);

/// Each bad input: the input named, the documented message, exit 1, one annotation.
#[test]
fn bad_inputs_give_one_line_errors() {
    let kubeconfig_canary = "not-a-kubeconfig-canary-7f3a9";
    let cases: &[BadInput] = &[
        (
            &[("mode", "deploy2")],
            "mode",
            "\"deploy2\" is not a mode (deploy, rollback, plan, validate, resolve, uninstall)",
        ),
        (
            &[("environment", "a/b")],
            "environment",
            "\"a/b\" is not a valid environment name",
        ),
        (
            &[("version", "bad tag")],
            "version",
            "\"bad tag\" is not a valid image tag",
        ),
        (
            &[("environment", "prod"), ("version", "latest")],
            "version",
            "\"latest\" is a moving tag; protected environment \"prod\" takes only immutable semver tags",
        ),
        (
            &[("environment", "prod"), ("version", "sha-01234567")],
            "version",
            "\"sha-01234567\" is a commit build, not a release",
        ),
        (
            &[("environment", "production"), ("version", "main")],
            "version",
            "\"main\" is not a semver release tag",
        ),
        (
            &[("ref", "main")],
            "ref",
            "\"main\" is not a full git ref (e.g. refs/tags/v1.2.0, refs/heads/main)",
        ),
        (
            &[("version", ""), ("ref", "refs/tags/release-1")],
            "ref",
            "tag \"release-1\" is not a semver release tag",
        ),
        (
            &[("chart", "charts/missing")],
            "chart",
            "\"charts/missing\" is not a chart directory",
        ),
        (
            &[("release", "Trader_Admin")],
            "release",
            "\"Trader_Admin\" is not a valid helm release name",
        ),
        (
            &[("release", &"a".repeat(54))],
            "release",
            "is not a valid helm release name",
        ),
        (
            &[("namespace", "Trader")],
            "namespace",
            "\"Trader\" is not a valid namespace",
        ),
        (
            &[("values_files", "deploy/values/values-dev.yaml\nnope.yaml")],
            "values_files",
            "file \"nope.yaml\" does not exist",
        ),
        (
            &[("images", "image.pythonOrch")],
            "images",
            "entry 1 \"image.pythonOrch\" is not helm.key=repository",
        ),
        (
            &[("images", "image.x=ghcr.io/acme/x:v1")],
            "images",
            "entry 1 repository \"ghcr.io/acme/x:v1\" has a tag",
        ),
        (
            &[("images", "image.x=ghcr.io/Acme/x")],
            "images",
            "path component \"Acme\"",
        ),
        (
            &[("images", "image.x=ghcr.io/acme/x@sha256:00")],
            "images",
            "has a digest",
        ),
        (
            &[("images", "a=ghcr.io/acme/x\na=ghcr.io/acme/y")],
            "images",
            "key \"a\" is given twice",
        ),
        (&[("set", "=x")], "set", "entry 1 \"=x\" is not key=value"),
        (
            &[("kubeconfig", kubeconfig_canary)],
            "kubeconfig",
            "is neither a kubeconfig (YAML with `clusters`) nor base64 of one",
        ),
        (
            &[("protected_environments", "prod, a/b")],
            "protected_environments",
            "\"a/b\" is not a valid environment name",
        ),
        (
            &[("timeout", "5x")],
            "timeout",
            "\"5x\" is not a duration (e.g. 5m, 90s, 1h30m)",
        ),
        (
            &[("timeout", "0s")],
            "timeout",
            "\"0s\" is out of range (1s to 6h)",
        ),
        (
            &[("rollback_on_failure", "yes")],
            "rollback_on_failure",
            "\"yes\" is not true or false",
        ),
        (
            &[("history_max", "-1")],
            "history_max",
            "\"-1\" is not a whole number from 0 to 1000",
        ),
        (
            &[("statefulset_on_delete", "wait")],
            "statefulset_on_delete",
            "\"wait\" is not one of report, roll",
        ),
        (
            &[("pending_grace", "2d")],
            "pending_grace",
            "\"2d\" is out of range (0s to 24h)",
        ),
        (
            &[("pending_grace", "soon")],
            "pending_grace",
            "\"soon\" is not a duration (e.g. 5m, 90s, 1h30m)",
        ),
        (
            &[("history_max", "5000")],
            "history_max",
            "\"5000\" is not a whole number from 0 to 1000",
        ),
        (
            &[("smoke_tests", "smoke.yaml")],
            "smoke_tests",
            "file \"smoke.yaml\" does not exist",
        ),
        (
            &[("rollback_revision", "0")],
            "rollback_revision",
            "\"0\" is not a revision number (1 or more)",
        ),
        (
            &[("verify_images", "maybe")],
            "verify_images",
            "\"maybe\" is not true or false",
        ),
        (
            &[("notify_webhook", "ftp://hooks.example.com/x")],
            "notify_webhook",
            "is not an http(s) URL",
        ),
        (
            &[("environment", "")],
            "environment",
            "not given and cannot be inferred from a push event on refs/heads/feature",
        ),
    ];
    assert!(cases.len() >= 20);
    for (inputs, input, message) in cases {
        let mut run = Run::new()
            .var("GITHUB_EVENT_NAME", "push")
            .var("GITHUB_REF", "refs/heads/feature")
            .var("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567");
        // A valid baseline, so that only the input under test is wrong.
        let mut all: BTreeMap<&str, &str> = [("environment", "dev"), ("version", "v1.0.0")].into();
        for (k, v) in *inputs {
            all.insert(k, v);
        }
        for (k, v) in all {
            run = run.input(k, v);
        }
        let o = run.run();
        assert_eq!(o.code, Some(1), "{inputs:?}: {o:?}");
        let errors: Vec<&str> = o
            .stdout
            .lines()
            .filter(|l| l.starts_with("::error"))
            .collect();
        assert_eq!(errors.len(), 1, "{inputs:?}: {}", o.stdout);
        assert_eq!(
            o.outputs.get("status").map(String::as_str),
            Some("failed"),
            "{inputs:?}"
        );
        let expected = format!("::error title=Invalid input::input `{input}`: ");
        assert!(
            errors[0].starts_with(&expected) && errors[0].contains(message),
            "{inputs:?}\n  got:  {}\n  want: {expected}…{message}",
            errors[0]
        );
        // The secret input is masked first; no other line may carry it.
        let unmasked = o
            .stdout
            .lines()
            .filter(|l| !l.starts_with("::add-mask::"))
            .any(|l| l.contains(kubeconfig_canary));
        assert!(!unmasked, "secret echoed: {}", o.stdout);
        assert!(
            !o.stderr.contains(kubeconfig_canary),
            "secret echoed: {}",
            o.stderr
        );
    }
}

#[test]
fn secrets_are_masked_before_anything_else() {
    let token = "ghs_canaryTOKEN0123456789";
    let kubeconfig = "apiVersion: v1\nclusters:\n- name: c\n  cluster: {server: https://127.0.0.1:6443}\nusers:\n- name: u\n  user:\n    token: kube-canary-token-42\n";
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(kubeconfig);
    let o = Run::new()
        .var("GITHUB_EVENT_NAME", "push")
        .input("mode", "resolve")
        .input("environment", "dev")
        .input("version", "v1.0.0")
        .input("github_token", token)
        .input("kubeconfig", &b64)
        .run();
    assert_eq!(o.code, Some(0), "{o:?}");
    let masks: Vec<&str> = o
        .stdout
        .lines()
        .take_while(|l| l.starts_with("::add-mask::"))
        .collect();
    for secret in [token, b64.as_str(), "kube-canary-token-42"] {
        assert!(
            masks.contains(&format!("::add-mask::{secret}").as_str()),
            "{secret} not masked first: {}",
            o.stdout
        );
    }
    let after_masks = o
        .stdout
        .lines()
        .skip(masks.len())
        .collect::<Vec<_>>()
        .join("\n");
    for secret in [token, "kube-canary-token-42"] {
        assert!(!after_masks.contains(secret), "{after_masks}");
        assert!(!o.stderr.contains(secret));
        assert!(o.outputs.values().all(|v| !v.contains(secret)));
    }
}
