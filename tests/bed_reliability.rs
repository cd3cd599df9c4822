//! Reliability on the bed, the fast part (`make test`): 70+ bad inputs each refused with its
//! documented one-line error, exit 1 and the cluster untouched; canary secrets (token,
//! kubeconfig, registry password) never shown by an end-to-end run; a rollback that itself fails
//! ends `failed` with a GitHub deployment status `error` and a clear message. The real binary runs
//! as a docker action would run it (only INPUT_*/GITHUB_* variables, PATH and HOME). The slow part
//! (kube-apiserver restarted mid-rollout) is tests/bed_soak.rs; SIGTERM, stuck releases,
//! concurrency and GitHub retries are proven in tests/bed_deploy.rs and tests/bed_github_action.rs.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::case::copy_dir;
use common::{Bed, create_namespace, delete_namespace, parse_outputs, testapp_chart, unique_name};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use serde_json::{Value, json};

const RUN_DEADLINE: Duration = Duration::from_secs(240);
const MAIN_TIP: &str = "ee3b2f7904fd6c989c87d6b5f7ecd382679612f4";

/// A workspace with the bed's test chart at `chart/`.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Workspace {
        let dir = tempfile::tempdir().expect("workspace");
        copy_dir(&testapp_chart(), &dir.path().join("chart"));
        std::fs::create_dir_all(dir.path().join("deploy/values")).unwrap();
        std::fs::write(
            dir.path().join("deploy/values/values-dev.yaml"),
            "replicas: 1\n",
        )
        .unwrap();
        Workspace { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// One run of the binary.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    outputs: BTreeMap<String, String>,
    summary: String,
}

impl Run {
    fn out(&self, name: &str) -> &str {
        self.outputs.get(name).map(String::as_str).unwrap_or("")
    }
    fn errors(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| l.starts_with("::error"))
            .collect()
    }
}

/// Runs the real binary with exactly `vars` (plus PATH, HOME and the output files) in `ws`.
fn run_action(ws: &Path, vars: &BTreeMap<String, String>) -> Run {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let output = ws.join(format!("output-{n}"));
    let summary = ws.join(format!("summary-{n}"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trader-deploy"));
    cmd.env_clear()
        .envs(vars)
        .env("GITHUB_OUTPUT", &output)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .current_dir(ws);
    for k in ["PATH", "HOME"] {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, v);
        }
    }
    let out = common::run_with_deadline(&mut cmd, RUN_DEADLINE);
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        outputs: parse_outputs(&std::fs::read_to_string(&output).unwrap_or_default()),
        summary: std::fs::read_to_string(&summary).unwrap_or_default(),
    }
}

/// The variables of a valid dev deploy of `tag` of release `app` into `ns` with helm 3.
fn deploy_vars(
    bed: &Bed,
    ws: &Path,
    ns: &str,
    tag: &str,
    kubeconfig: &str,
) -> BTreeMap<String, String> {
    let home = ws.join("helm");
    let mut v = BTreeMap::new();
    for (k, val) in [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_EVENT_NAME", "push"),
        ("GITHUB_REF", "refs/heads/feature"),
        ("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567"),
        ("INPUT_CHART", "chart"),
        ("INPUT_RELEASE", "app"),
        ("INPUT_ENVIRONMENT", "dev"),
        ("INPUT_VERIFY_IMAGES", "false"),
        ("INPUT_TIMEOUT", "120s"),
    ] {
        v.insert(k.to_string(), val.to_string());
    }
    v.insert("GITHUB_WORKSPACE".into(), ws.display().to_string());
    v.insert("INPUT_NAMESPACE".into(), ns.into());
    v.insert("INPUT_VERSION".into(), tag.into());
    v.insert(
        "INPUT_SET".into(),
        format!("image.tag={tag}\nscanner.image.tag={tag}"),
    );
    v.insert("INPUT_KUBECONFIG".into(), kubeconfig.into());
    v.insert("INPUT_HELM".into(), bed.helm3.display().to_string());
    for (k, d) in [("CONFIG", "config"), ("CACHE", "cache"), ("DATA", "data")] {
        v.insert(format!("HELM_{k}_HOME"), home.join(d).display().to_string());
    }
    v
}

/// `helm history` of release `app` in `ns` as (revision, status, chart, description), or None
/// when the release does not exist.
fn history(bed: &Bed, ns: &str) -> Option<Vec<(u64, String, String)>> {
    let mut cmd = bed.helm(3);
    cmd.args(["history", "app", "-n", ns, "-o", "json"]);
    let out = common::run_with_deadline(&mut cmd, Duration::from_secs(60));
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).expect("helm history json");
    Some(
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["revision"].as_u64().unwrap(),
                    r["status"].as_str().unwrap().to_string(),
                    r["updated"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect(),
    )
}

async fn namespace_exists(client: &kube::Client, ns: &str) -> bool {
    Api::<Namespace>::all(client.clone())
        .get_opt(ns)
        .await
        .unwrap_or_else(|e| panic!("get namespace {ns}: {e}"))
        .is_some()
}

async fn lease_exists(client: &kube::Client, ns: &str) -> bool {
    Api::<Lease>::namespaced(client.clone(), ns)
        .get_opt("trader-deploy-app")
        .await
        .unwrap_or_else(|e| panic!("get lease in {ns}: {e}"))
        .is_some()
}

// ---------------------------------------------------------------------------------------------
// Bad inputs: the documented one-line error, exit 1, nothing changed on the cluster.

/// A bad-input case: the inputs that differ from a valid deploy, the input the error names, and
/// a part of its documented message (src/inputs.rs, src/version.rs; README "Inputs").
type BadInput = (Vec<(&'static str, String)>, &'static str, &'static str);

fn bad_input_cases() -> Vec<BadInput> {
    let s = |pairs: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
    };
    vec![
        (
            s(&[("mode", "deploy2")]),
            "mode",
            "\"deploy2\" is not a mode (deploy, rollback, plan, validate, resolve, uninstall)",
        ),
        (s(&[("mode", "DEPLOY!")]), "mode", "is not a mode"),
        (
            s(&[("environment", "a/b")]),
            "environment",
            "\"a/b\" is not a valid environment name",
        ),
        (
            s(&[("environment", "prod!")]),
            "environment",
            "\"prod!\" is not a valid environment name",
        ),
        (
            s(&[("environment", "")]),
            "environment",
            "not given and cannot be inferred from a push event on refs/heads/feature",
        ),
        (
            s(&[("version", "bad tag")]),
            "version",
            "\"bad tag\" is not a valid image tag",
        ),
        (
            s(&[("version", ".hidden")]),
            "version",
            "\".hidden\" is not a valid image tag",
        ),
        (
            s(&[("version", &"v".repeat(129))]),
            "version",
            "is not a valid image tag",
        ),
        (
            s(&[("environment", "prod"), ("version", "latest")]),
            "version",
            "\"latest\" is a moving tag; protected environment \"prod\" takes only immutable semver tags",
        ),
        (
            s(&[("environment", "prod"), ("version", "sha-01234567")]),
            "version",
            "\"sha-01234567\" is a commit build, not a release",
        ),
        (
            s(&[("environment", "production"), ("version", "main")]),
            "version",
            "\"main\" is not a semver release tag",
        ),
        (
            s(&[("environment", "prod"), ("version", "broken-pull")]),
            "version",
            "\"broken-pull\" is not a semver release tag",
        ),
        (
            s(&[("ref", "main")]),
            "ref",
            "\"main\" is not a full git ref (e.g. refs/tags/v1.2.0, refs/heads/main)",
        ),
        (
            s(&[("version", ""), ("ref", "refs/tags/release-1")]),
            "ref",
            "tag \"release-1\" is not a semver release tag",
        ),
        (
            s(&[("chart", "charts/missing")]),
            "chart",
            "\"charts/missing\" is not a chart directory",
        ),
        (
            s(&[("chart", "deploy")]),
            "chart",
            "\"deploy\" is not a chart directory",
        ),
        (
            s(&[("release", "Trader_Admin")]),
            "release",
            "\"Trader_Admin\" is not a valid helm release name",
        ),
        (
            s(&[("release", &"a".repeat(54))]),
            "release",
            "is not a valid helm release name",
        ),
        (
            s(&[("release", "-app")]),
            "release",
            "\"-app\" is not a valid helm release name",
        ),
        (
            s(&[("namespace", "Trader")]),
            "namespace",
            "\"Trader\" is not a valid namespace",
        ),
        (
            s(&[("namespace", &"n".repeat(64))]),
            "namespace",
            "is not a valid namespace",
        ),
        (
            s(&[("namespace", "trader-")]),
            "namespace",
            "\"trader-\" is not a valid namespace",
        ),
        (
            s(&[("values_files", "deploy/values/values-dev.yaml\nnope.yaml")]),
            "values_files",
            "file \"nope.yaml\" does not exist",
        ),
        (
            s(&[("images", "image.pythonOrch")]),
            "images",
            "entry 1 \"image.pythonOrch\" is not helm.key=repository",
        ),
        (
            s(&[("images", "image.x=ghcr.io/acme/x:v1")]),
            "images",
            "entry 1 repository \"ghcr.io/acme/x:v1\" has a tag",
        ),
        (
            s(&[("images", "image.x=ghcr.io/Acme/x")]),
            "images",
            "path component \"Acme\"",
        ),
        (
            s(&[("images", "image.x=ghcr.io/acme/x@sha256:00")]),
            "images",
            "has a digest",
        ),
        (
            s(&[("images", "a=ghcr.io/acme/x\na=ghcr.io/acme/y")]),
            "images",
            "key \"a\" is given twice",
        ),
        (
            s(&[("images", "image..x=ghcr.io/acme/x")]),
            "images",
            "entry 1 key \"image..x\" is not a helm values key",
        ),
        (
            s(&[("images", "image.x=ghcr.io:99999/acme/x")]),
            "images",
            "registry host \"ghcr.io:99999\" is not host[:port]",
        ),
        (
            s(&[("set", "=x")]),
            "set",
            "entry 1 \"=x\" is not key=value",
        ),
        (
            s(&[("set", "image.tag=v1.0.0\nreplica count=2")]),
            "set",
            "entry 2 \"replica count=2\" is not key=value",
        ),
        (
            s(&[("kubeconfig", "not-a-kubeconfig-canary-7f3a9")]),
            "kubeconfig",
            "is neither a kubeconfig (YAML with `clusters`) nor base64 of one",
        ),
        (
            s(&[("kubeconfig", "apiVersion: v1\nkind: Config\n")]),
            "kubeconfig",
            "is neither a kubeconfig",
        ),
        (
            s(&[("protected_environments", "prod, a/b")]),
            "protected_environments",
            "\"a/b\" is not a valid environment name",
        ),
        (
            s(&[("timeout", "5x")]),
            "timeout",
            "\"5x\" is not a duration (e.g. 5m, 90s, 1h30m)",
        ),
        (
            s(&[("timeout", "0s")]),
            "timeout",
            "\"0s\" is out of range (1s to 6h)",
        ),
        (
            s(&[("timeout", "7h")]),
            "timeout",
            "\"7h\" is out of range (1s to 6h)",
        ),
        (
            s(&[("rollback_on_failure", "yes")]),
            "rollback_on_failure",
            "\"yes\" is not true or false",
        ),
        (
            s(&[("history_max", "-1")]),
            "history_max",
            "\"-1\" is not a whole number from 0 to 1000",
        ),
        (
            s(&[("history_max", "5000")]),
            "history_max",
            "\"5000\" is not a whole number from 0 to 1000",
        ),
        (
            s(&[("history_max", "ten")]),
            "history_max",
            "\"ten\" is not a whole number from 0 to 1000",
        ),
        (
            s(&[("smoke_tests", "smoke.yaml")]),
            "smoke_tests",
            "file \"smoke.yaml\" does not exist",
        ),
        (
            s(&[("smoke_tests", "bad-smoke.yaml")]),
            "smoke_tests",
            "check \"ready\": `expect.status` 2000 is not an HTTP status",
        ),
        (
            s(&[("rollback_revision", "0")]),
            "rollback_revision",
            "\"0\" is not a revision number (1 or more)",
        ),
        (
            s(&[("rollback_revision", "abc")]),
            "rollback_revision",
            "\"abc\" is not a revision number (1 or more)",
        ),
        (
            s(&[("verify_images", "maybe")]),
            "verify_images",
            "\"maybe\" is not true or false",
        ),
        (
            s(&[("pin_digests", "yes")]),
            "pin_digests",
            "\"yes\" is not true or false",
        ),
        (
            s(&[("require_distinct_approver", "sure")]),
            "require_distinct_approver",
            "\"sure\" is not true or false",
        ),
        (
            s(&[("environment_url", "not a url")]),
            "environment_url",
            "\"not a url\" is not an http(s) URL",
        ),
        (
            s(&[("notify_webhook", "ftp://hooks.example.com/x")]),
            "notify_webhook",
            "is not an http(s) URL",
        ),
        (
            s(&[("registry_username", "bot")]),
            "registry_password",
            "is required with registry_username",
        ),
        (
            s(&[("registry_password", "pw-canary-only")]),
            "registry_username",
            "is required with registry_password",
        ),
        (
            s(&[
                ("registry_username", "a:b"),
                ("registry_password", "pw-123456"),
            ]),
            "registry_username",
            "\"a:b\" may not contain ':' or control characters",
        ),
        // Issue #17, finding 4: `set` may not override a key `images` resolved (helm splits an
        // entry on commas, so the second key of one entry counts).
        (
            s(&[
                ("images", "image.ref=ghcr.io/acme/x"),
                ("set", "replicas=1,image.ref=evil"),
            ]),
            "set",
            "entry 1 sets \"image.ref\", which would override \"image.ref\" from `images` \
             (ghcr.io/acme/x:v1.1.0, the image that is verified and deployed)",
        ),
        (
            s(&[
                ("images", "image.ref=ghcr.io/acme/x"),
                ("set", "image.ref=ghcr.io/evil/x:v1"),
            ]),
            "set",
            "entry 1 sets \"image.ref\", which would override \"image.ref\"",
        ),
        (
            s(&[
                ("images", "image.ref=ghcr.io/acme/x"),
                ("set", "image=null"),
            ]),
            "set",
            "entry 1 sets \"image\", which would override \"image.ref\"",
        ),
        (
            s(&[
                ("images", "image.ref=ghcr.io/acme/x"),
                ("set", "image.ref.x=1"),
            ]),
            "set",
            "entry 1 sets \"image.ref.x\", which would override \"image.ref\"",
        ),
        (
            s(&[
                ("images", "image.ref=ghcr.io/acme/x"),
                ("set", "replicas=1\nimage={}"),
            ]),
            "set",
            "entry 2 sets \"image\", which would override \"image.ref\"",
        ),
        (
            s(&[
                ("images", "image.ref=ghcr.io/acme/x"),
                ("set", "hosts={a,b},image.ref=evil"),
            ]),
            "set",
            "entry 1 sets \"image.ref\", which would override \"image.ref\"",
        ),
        (
            s(&[
                ("images", "images[0].ref=ghcr.io/acme/x"),
                ("set", "images[0]=evil"),
            ]),
            "set",
            "entry 1 sets \"images[0]\", which would override \"images[0].ref\"",
        ),
        (
            s(&[
                (
                    "images",
                    "image.ref=ghcr.io/acme/x\nscanner.image.ref=ghcr.io/acme/y",
                ),
                ("set", "scanner.image=x"),
            ]),
            "set",
            "entry 1 sets \"scanner.image\", which would override \"scanner.image.ref\"",
        ),
        (
            s(&[("set", "a[x]=1")]),
            "set",
            "entry 1 \"a[x]=1\" is not what helm --set reads: list index [x] is not a number",
        ),
        (
            s(&[("set", "a={x,y")]),
            "set",
            "is not what helm --set reads: a list value {… is not closed",
        ),
        // Issue #17, finding 1: credentials per registry host.
        (
            s(&[("registry_auth", "not-json-canary-auth-7c1e")]),
            "registry_auth",
            "is neither docker config.json JSON ({\"auths\": {…}}) nor base64 of it (value not \
             shown: it is a secret)",
        ),
        (
            s(&[("registry_auth", r#"{"credsStore": "desktop"}"#)]),
            "registry_auth",
            "has no `auths` object",
        ),
        (
            s(&[("registry_auth", r#"{"auths": {}}"#)]),
            "registry_auth",
            "`auths` names no registry",
        ),
        (
            s(&[(
                "registry_auth",
                r#"{"auths": {"ghcr.io": {"auth": "canary-auth-7c1e!"}}}"#,
            )]),
            "registry_auth",
            "the entry for \"ghcr.io\" has an `auth` that is not base64 of user:password",
        ),
        (
            s(&[("registry_auth", r#"{"auths": {"ghcr.io": {}}}"#)]),
            "registry_auth",
            "the entry for \"ghcr.io\" has neither `auth` nor `username` and `password`",
        ),
        (
            s(&[(
                "registry_auth",
                r#"{"auths": {"ghcr.io:99999": {"auth": "Ym90OnB3"}}}"#,
            )]),
            "registry_auth",
            "\"ghcr.io:99999\" is not a registry host[:port]",
        ),
        (
            s(&[(
                "registry_auth",
                r#"{"auths": {"ghcr.io": {"identitytoken": "canary-auth-7c1e"}}}"#,
            )]),
            "registry_auth",
            "holds an identity or registry token, which is not supported",
        ),
        (
            s(&[(
                "registry_auth",
                r#"{"auths": {"docker.io": {"auth": "Ym90OnB3"}, "https://index.docker.io/v1/": {"auth": "Ym90OnB3"}}}"#,
            )]),
            "registry_auth",
            "registry registry-1.docker.io is given twice",
        ),
        (
            s(&[
                ("registry_username", "bot"),
                ("registry_password", "pw-canary-only"),
            ]),
            "registry_host",
            "is required with registry_username/registry_password: name the one registry host \
             they are for (e.g. ghcr.io)",
        ),
        (
            s(&[("registry_host", "ghcr.io")]),
            "registry_host",
            "is given without registry_username/registry_password",
        ),
        (
            s(&[
                ("registry_username", "bot"),
                ("registry_password", "pw-canary-only"),
                ("registry_host", "ghcr io"),
            ]),
            "registry_host",
            "\"ghcr io\" is not a registry host[:port]",
        ),
        (
            s(&[
                (
                    "registry_auth",
                    r#"{"auths": {"ghcr.io": {"username": "a", "password": "canary-auth-7c1e"}}}"#,
                ),
                ("registry_username", "bot"),
                ("registry_password", "pw-canary-only"),
                ("registry_host", "GHCR.io"),
            ]),
            "registry_host",
            "ghcr.io has credentials in registry_auth too: give them once",
        ),
        // Values from the workflow (issue #16).
        (
            s(&[("values", "- replicas\n- 2")]),
            "values",
            "is not a YAML mapping (key: value lines, as in a values file)",
        ),
        (
            s(&[("secret_values", "apiKey: [canary-unclosed-31")]),
            "secret_values",
            "is not valid YAML",
        ),
        (
            s(&[("set_string", "replicas")]),
            "set_string",
            "entry 1 \"replicas\" is not key=value",
        ),
        // Deploy windows (issue #18).
        (
            s(&[("deploy_window", "{calendar: XPAR}")]),
            "deploy_window",
            "unknown exchange calendar \"XPAR\": supported are XNYS, XNAS, XLON, XETR, XTKS, XHKG, 24/7",
        ),
        (
            s(&[("deploy_window", "{calendar: 24/7}")]),
            "deploy_window",
            "calendar 24/7 never closes, so it allows no deploy",
        ),
        (
            s(&[("deploy_window", "{calendar: XNYS, margin: 13h}")]),
            "deploy_window",
            "margin 13h is longer than 12h",
        ),
        (
            s(&[("deploy_window", "{windows: ['Sat 25:00-26:00']}")]),
            "deploy_window",
            "window \"Sat 25:00-26:00\" is not `DAYS HH:MM-HH:MM`",
        ),
        (
            s(&[("deploy_window", "[XNYS]")]),
            "deploy_window",
            "deploy_window is not a deploy window (keys: calendar, margin, windows, timezone, rollback)",
        ),
        (
            s(&[("window_override", "sure")]),
            "window_override",
            "\"sure\" is not true or false",
        ),
        (
            s(&[(
                "kubeconfig",
                "apiVersion: v1\nkind: Config\ncurrent-context: gke\nclusters:\n- name: gke\n  \
                 cluster: {server: \"https://127.0.0.1:1\"}\ncontexts:\n- name: gke\n  context: \
                 {cluster: gke, user: gke}\nusers:\n- name: gke\n  user:\n    exec:\n      \
                 apiVersion: client.authentication.k8s.io/v1beta1\n      command: \
                 kubelogin\n      args: [get-token, --login, interactive]\n",
            )]),
            "kubeconfig",
            "the exec credential plugin `kubelogin get-token --login interactive` is not \
             supported (supported: `aws eks get-token`, `aws-iam-authenticator token`, \
             `gke-gcloud-auth-plugin`, `kubelogin get-token --login spn|workloadidentity`); give \
             a kubeconfig with a token instead",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_inputs_leave_the_cluster_untouched() {
    let bed = Bed::load();
    let client = bed.client().await;
    let ws = Workspace::new();
    std::fs::write(
        ws.path().join("bad-smoke.yaml"),
        "checks:\n  - name: ready\n    service: ${release}\n    port: http\n    expect: {status: 2000}\n",
    )
    .unwrap();
    let kubeconfig = std::fs::read_to_string(&bed.kubeconfig).unwrap();

    // A release that exists (revision 1, deployed) and a namespace that must never appear.
    let ns = create_namespace(&client, "rel-badin").await;
    let mut install = bed.helm(3);
    install
        .args(["upgrade", "--install", "app"])
        .arg(ws.path().join("chart"))
        .args(["-n", &ns, "--wait", "--timeout", "120s"]);
    bed.run(&mut install, Duration::from_secs(180));
    let before = history(&bed, &ns).expect("the release exists");
    assert_eq!(before.len(), 1);
    let ghost = unique_name("rel-ghost");

    let cases = bad_input_cases();
    assert!(cases.len() >= 70, "only {} cases", cases.len());
    for (i, (inputs, input, message)) in cases.iter().enumerate() {
        // Alternate targets: the existing release (history must not change) and a namespace
        // that does not exist (it must not be created).
        let target = if i % 2 == 0 {
            ns.as_str()
        } else {
            ghost.as_str()
        };
        let mut vars = deploy_vars(&bed, ws.path(), target, "v1.1.0", &kubeconfig);
        for (k, v) in inputs {
            vars.insert(format!("INPUT_{}", k.to_uppercase()), v.clone());
        }
        let run = run_action(ws.path(), &vars);
        assert_eq!(run.code, Some(1), "{inputs:?}: {run:#?}");
        let errors = run.errors();
        assert_eq!(
            errors.len(),
            1,
            "{inputs:?}: one error line: {}",
            run.stdout
        );
        let expected = format!("::error title=Invalid input::input `{input}`: ");
        assert!(
            errors[0].starts_with(&expected) && errors[0].contains(message),
            "{inputs:?}\n  got:  {}\n  want: {expected}…{message}",
            errors[0]
        );
        assert!(
            !run.stdout.contains("::group::"),
            "{inputs:?}: a step started: {}",
            run.stdout
        );
        // No secret shown: the kubeconfig's key paths and the canaries stay out of the error.
        for secret in [
            "not-a-kubeconfig-canary-7f3a9",
            "pw-canary-only",
            "pw-123456",
            "canary-auth-7c1e",
        ] {
            assert!(
                run.stdout
                    .lines()
                    .filter(|l| !l.starts_with("::add-mask::"))
                    .all(|l| !l.contains(secret))
                    && !run.stderr.contains(secret),
                "{inputs:?}: secret {secret} shown: {run:#?}"
            );
        }
        assert_eq!(
            history(&bed, &ns).as_ref(),
            Some(&before),
            "{inputs:?}: the release changed"
        );
        assert!(
            !namespace_exists(&client, &ghost).await,
            "{inputs:?}: namespace {ghost} was created"
        );
        assert!(
            !lease_exists(&client, &ns).await,
            "{inputs:?}: a lease was left"
        );
    }

    // The control: the same valid baseline does change the cluster, so the checks above could
    // have failed.
    let run = run_action(
        ws.path(),
        &deploy_vars(&bed, ws.path(), &ghost, "v1.1.0", &kubeconfig),
    );
    assert_eq!(run.code, Some(0), "the baseline deploys: {run:#?}");
    assert!(namespace_exists(&client, &ghost).await);
    assert_eq!(history(&bed, &ghost).map(|h| h.len()), Some(1));
    delete_namespace(&client, &ghost).await;
    delete_namespace(&client, &ns).await;
}

// ---------------------------------------------------------------------------------------------
// The GitHub stand-in (testbed/github/): a repository of our own per test.

type Repo = common::StandinRepo;

/// Adds a repository of this test's own to the bed's stand-in.
async fn add_repo(bed: &Bed, prefix: &str, edit: impl FnOnce(&mut Value)) -> Repo {
    Repo::add(
        bed.github_api_url
            .clone()
            .expect("the bed has the GitHub stand-in (GITHUB_API_URL)"),
        bed.github_standin_url
            .clone()
            .expect("TD_GITHUB_STANDIN_URL"),
        prefix,
        edit,
    )
    .await
}

/// The GitHub variables of a workflow_dispatch run 1001 on main, for `repo`.
fn repo_vars(repo: &Repo, ws: &Path, token: &str) -> BTreeMap<String, String> {
    let event = ws.join("event.json");
    std::fs::write(
        &event,
        json!({
            "inputs": {},
            "ref": "refs/heads/main",
            "repository": {"full_name": repo.full, "default_branch": "main"},
            "sender": {"login": "carol"},
            "workflow": ".github/workflows/deploy.yml"
        })
        .to_string(),
    )
    .unwrap();
    let mut v = BTreeMap::new();
    for (k, val) in [
        ("GITHUB_REPOSITORY", repo.full.as_str()),
        ("GITHUB_API_URL", repo.api.as_str()),
        ("GITHUB_SERVER_URL", "https://github.com"),
        ("GITHUB_RUN_ID", "1001"),
        ("GITHUB_RUN_ATTEMPT", "1"),
        ("GITHUB_ACTOR", "carol"),
        ("RUNNER_NAME", "GitHub Actions 1"),
        ("GITHUB_JOB", "deploy"),
        ("GITHUB_EVENT_NAME", "workflow_dispatch"),
        ("GITHUB_REF", "refs/heads/main"),
        ("GITHUB_REF_NAME", "main"),
        ("GITHUB_SHA", MAIN_TIP),
        ("INPUT_GITHUB_TOKEN", token),
    ] {
        v.insert(k.to_string(), val.to_string());
    }
    v.insert("GITHUB_EVENT_PATH".into(), event.display().to_string());
    v
}

/// The deployment statuses posted, in order: (deployment id, state, description).
fn posted_statuses(log: &[Value]) -> Vec<(String, String, String)> {
    log.iter()
        .filter(|e| e["method"] == "POST" && e["path"].as_str().unwrap().ends_with("/statuses"))
        .map(|e| {
            let path = e["path"].as_str().unwrap();
            (
                path.rsplit('/').nth(1).unwrap().to_string(),
                e["body"]["state"].as_str().unwrap_or("?").to_string(),
                e["body"]["description"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// A staging deploy of `tag` through GitHub: the cluster and the GitHub variables.
fn staging_vars(
    bed: &Bed,
    repo: &Repo,
    ws: &Path,
    ns: &str,
    tag: &str,
    kubeconfig: &str,
    token: &str,
) -> BTreeMap<String, String> {
    let mut v = deploy_vars(bed, ws, ns, tag, kubeconfig);
    v.extend(repo_vars(repo, ws, token));
    v.insert("INPUT_ENVIRONMENT".into(), "staging".into());
    v
}

// ---------------------------------------------------------------------------------------------
// A rollback that itself fails.

/// The last good revision is itself broken (a crash-looping image installed by bare helm, which
/// marks it `deployed` without waiting): a broken-pull deploy fails, its rollback to that revision
/// fails verification, and the run says so: outcome `failed`, a `Rollback failed` error naming both
/// failures, the GitHub deployment's last status `error`, no release left pending.
#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_that_fails_is_failed_with_status_error() {
    let bed = Bed::load();
    let client = bed.client().await;
    let ws = Workspace::new();
    let repo = add_repo(&bed, "td-rbfail", |_| {}).await;
    let ns = create_namespace(&client, "rel-rbfail").await;
    let mut install = bed.helm(3);
    install
        .args(["upgrade", "--install", "app"])
        .arg(ws.path().join("chart"))
        .args([
            "-n",
            &ns,
            "--set",
            "image.tag=crashloop",
            "--set",
            "scanner.image.tag=crashloop",
        ]);
    bed.run(&mut install, Duration::from_secs(120));
    assert_eq!(history(&bed, &ns).unwrap()[0].1, "deployed");

    let kubeconfig = std::fs::read_to_string(&bed.kubeconfig).unwrap();
    let run = run_action(
        ws.path(),
        &staging_vars(
            &bed,
            &repo,
            ws.path(),
            &ns,
            "broken-pull",
            &kubeconfig,
            "ghs_bed_full",
        ),
    );
    eprintln!("{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert_eq!(run.out("status"), "failed");
    assert_eq!(run.out("rolled_back"), "false");
    let errors = run.errors();
    assert_eq!(errors.len(), 1, "{}", run.stdout);
    assert!(
        errors[0].starts_with("::error title=Rollback failed::"),
        "{}",
        errors[0]
    );
    // Both failures named: the deploy's and the rollback's, and the revision it went back to.
    for part in [
        "ErrImagePull",
        "failed too",
        "revision 1",
        "CrashLoopBackOff",
    ] {
        assert!(errors[0].contains(part), "{part:?} not in {}", errors[0]);
    }
    assert!(run.summary.contains("**failed**"), "{}", run.summary);

    let statuses = posted_statuses(&repo.log().await);
    let states: Vec<&str> = statuses.iter().map(|s| s.1.as_str()).collect();
    assert_eq!(states, ["in_progress", "error"], "{statuses:#?}");
    assert_eq!(statuses[1].0, run.out("deployment_id"));
    assert!(!statuses[1].2.is_empty() && statuses[1].2.chars().count() <= 140);

    let h = history(&bed, &ns).unwrap();
    assert!(h.iter().all(|(_, s, _)| !s.starts_with("pending")), "{h:?}");
    assert!(!lease_exists(&client, &ns).await);
    delete_namespace(&client, &ns).await;
}

// ---------------------------------------------------------------------------------------------
// Canary secrets never shown.

/// The bed's kubeconfig (it works: the current context is untouched) with a canary in a comment
/// and in a credential field: a second user's token and password.
fn canary_kubeconfig(bed: &Bed, canary: &str) -> String {
    let text = std::fs::read_to_string(&bed.kubeconfig).unwrap();
    let mut doc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let users = doc["users"].as_array_mut().expect("users");
    users.push(
        serde_saphyr::from_str(&format!(
            "name: canary-user\nuser:\n  token: {canary}-token\n  password: {canary}-password\n  username: deployer\n"
        ))
        .unwrap(),
    );
    format!(
        "# kubeconfig for the canary test; do not print: {canary}-comment\n{}",
        serde_saphyr::to_string(&doc).unwrap()
    )
}

/// Every place a run shows something: no canary there. The mask commands themselves carry the
/// secrets (the runner hides them; they are never displayed).
fn assert_no_canary(run: &Run, canaries: &[String]) {
    for c in canaries {
        for (n, line) in run.stdout.lines().enumerate() {
            assert!(
                line.starts_with("::add-mask::") || !line.contains(c.as_str()),
                "canary {c} on stdout line {}: {line}",
                n + 1
            );
        }
        assert!(
            !run.stderr.contains(c.as_str()),
            "canary {c} on stderr:\n{}",
            run.stderr
        );
        assert!(
            !run.summary.contains(c.as_str()),
            "canary {c} in the summary:\n{}",
            run.summary
        );
        for (k, v) in &run.outputs {
            assert!(!v.contains(c.as_str()), "canary {c} in output {k}: {v}");
        }
    }
}

/// A staging deploy through GitHub with a canary token (a real one: the stand-in accepts it with
/// full permissions), a canary kubeconfig, a canary registry password (image verification on).
async fn canary_run(final_tag: &str, want: &str) {
    let bed = Bed::load();
    let client = bed.client().await;
    let ws = Workspace::new();
    // `images` sets only keys the chart has: two unused ones (the images are verified with the
    // registry's credentials; the chart's own tags come from `set`).
    let values = ws.path().join("chart/values.yaml");
    let mut text = std::fs::read_to_string(&values).unwrap();
    text.push_str("verify:\n  orch: \"\"\n  scanner: \"\"\n");
    std::fs::write(&values, text).unwrap();
    let canary = format!("cnry{}", unique_name("x").replace('-', ""));
    let token = format!("ghs_{canary}tok");
    let repo = add_repo(&bed, "td-canary", |fx| {
        fx["tokens"][&token] = json!({
            "login": "github-actions[bot]",
            "permissions": {"metadata": "read", "contents": "read", "actions": "read", "deployments": "write"}
        });
    })
    .await;
    let ns = create_namespace(&client, "rel-canary").await;
    let kubeconfig = canary_kubeconfig(&bed, &canary);
    let password = format!("{canary}-registry-pw");
    let canaries = vec![
        token.clone(),
        canary.clone(),
        format!("{canary}-token"),
        format!("{canary}-password"),
        format!("{canary}-comment"),
        password.clone(),
    ];
    let mut runs = Vec::new();
    for tag in ["v1.0.0", final_tag] {
        let mut vars = staging_vars(&bed, &repo, ws.path(), &ns, tag, &kubeconfig, &token);
        vars.insert("INPUT_VERIFY_IMAGES".into(), "true".into());
        // Keys the chart does not read: the references are verified in the registry (with the
        // credentials) while `set` picks the pods' tags as in every other test.
        vars.insert(
            "INPUT_IMAGES".into(),
            format!(
                "verify.orch={0}/acme/python-orch\nverify.scanner={0}/acme/go-scanner",
                bed.registry
            ),
        );
        vars.insert("INPUT_REGISTRY_USERNAME".into(), "deployer".into());
        vars.insert("INPUT_REGISTRY_PASSWORD".into(), password.clone());
        vars.insert("INPUT_REGISTRY_HOST".into(), bed.registry.clone());
        // Debug logging too: what a user turns on when something goes wrong.
        vars.insert("TRADER_DEPLOY_LOG".into(), "debug".into());
        let run = run_action(ws.path(), &vars);
        assert_no_canary(&run, &canaries);
        runs.push(run);
    }
    let (first, last) = (&runs[0], &runs[1]);
    assert_eq!(first.code, Some(0), "{}\n{}", first.stdout, first.stderr);
    assert_eq!(first.out("status"), "success");
    assert_eq!(last.out("status"), want, "{}\n{}", last.stdout, last.stderr);
    // The secrets were used for real: GitHub saw the deployments, the cluster the release.
    assert!(!last.out("deployment_id").is_empty());
    let states: Vec<String> = posted_statuses(&repo.log().await)
        .into_iter()
        .map(|s| s.1)
        .collect();
    let end = if want == "success" {
        "success"
    } else {
        "failure"
    };
    // On a miss, the run's own log says why (a status GitHub's side never received once failed CI
    // under load, 2026-11-30: not reproduced in five runs).
    assert_eq!(
        states,
        ["in_progress", "success", "in_progress", end],
        "{}\n{}",
        last.stdout,
        last.stderr
    );
    assert_eq!(history(&bed, &ns).unwrap().last().unwrap().1, "deployed");
    // The registry was asked (with the credentials): the summary carries the digests.
    for run in &runs {
        assert!(
            run.stdout.contains("::group::Verify images") && run.summary.contains("sha256:"),
            "{}\n{}",
            run.stdout,
            run.summary
        );
    }
    // The token is masked before anything else is printed.
    assert!(
        first
            .stdout
            .lines()
            .take_while(|l| l.starts_with("::add-mask::"))
            .any(|l| l == format!("::add-mask::{token}")),
        "{}",
        first.stdout
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn canaries_never_leak_success() {
    canary_run("v1.1.0", "success").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn canaries_never_leak_rolled_back() {
    canary_run("broken-pull", "rolled_back").await;
}

// ---------------------------------------------------------------------------------------------
// Issue #17, finding 6: helm runs with an allow-listed environment, never the action's inputs,
// and so do the exec credential plugins this program's own kube client runs. The observation
// point is real: a kubeconfig whose user is an exec credential plugin (a script that records its
// environment and its parent's, then hands over the bed's own client certificate). helm runs the
// plugin with helm's environment, so what the plugin sees under helm is what helm was given.

/// The bed's admin credential as an ExecCredential (client certificate and key, or a token).
fn exec_credential(bed: &Bed) -> Value {
    let text = std::fs::read_to_string(&bed.kubeconfig).unwrap();
    let doc: Value = serde_saphyr::from_str(&text).expect("the bed's kubeconfig");
    let user = &doc["users"][0]["user"];
    let pem = |data: &str, file: &str| -> Option<String> {
        use base64::Engine as _;
        if let Some(d) = user[data].as_str() {
            let bytes = base64::engine::general_purpose::STANDARD.decode(d).unwrap();
            return Some(String::from_utf8(bytes).unwrap());
        }
        user[file]
            .as_str()
            .map(|f| std::fs::read_to_string(f).unwrap())
    };
    let status = match (
        pem("client-certificate-data", "client-certificate"),
        pem("client-key-data", "client-key"),
        user["token"].as_str(),
    ) {
        (Some(cert), Some(key), _) => json!({"clientCertificateData": cert, "clientKeyData": key}),
        (_, _, Some(token)) => json!({"token": token}),
        _ => panic!("the bed's kubeconfig has neither a client certificate nor a token"),
    };
    json!({
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": status,
    })
}

/// The bed's kubeconfig with its user replaced by an exec plugin that writes
/// `<dumps>/env-<pid>` (first line: the program that ran it; then its own environment) and
/// `<dumps>/env-<pid>.parent` (that program's environment), then prints the credential.
fn exec_kubeconfig(bed: &Bed, dir: &Path) -> (String, std::path::PathBuf) {
    let dumps = dir.join("dumps");
    std::fs::create_dir_all(&dumps).unwrap();
    let cred = dir.join("credential.json");
    std::fs::write(&cred, exec_credential(bed).to_string()).unwrap();
    // Named and called as the action's own plugin (`trader-deploy kube-token aws eks get-token`):
    // the action refuses any exec plugin `kube-token` does not answer (issue #15), and leaves this
    // one as it is. It records its environment and prints the bed's credential.
    let plugin_dir = dir.join("plugin");
    std::fs::create_dir_all(&plugin_dir).unwrap();
    let plugin = plugin_dir.join("trader-deploy");
    std::fs::write(
        &plugin,
        format!(
            "#!/bin/sh\nf='{}/env-'$$\n{{ readlink /proc/$PPID/exe; env; }} > \"$f\"\n\
             tr '\\0' '\\n' < /proc/$PPID/environ > \"$f.parent\"\ncat '{}'\n",
            dumps.display(),
            cred.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let text = std::fs::read_to_string(&bed.kubeconfig).unwrap();
    let mut doc: Value = serde_saphyr::from_str(&text).unwrap();
    let name = doc["users"][0]["name"].clone();
    doc["users"] = json!([{
        "name": name,
        "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": plugin.display().to_string(),
            "args": ["kube-token", "aws", "eks", "get-token", "--cluster-name", "recorded"],
            "interactiveMode": "Never",
        }},
    }]);
    (serde_json::to_string(&doc).unwrap(), dumps)
}

#[tokio::test(flavor = "multi_thread")]
async fn helm_gets_none_of_the_inputs() {
    const CANARY: &str = "env-canary-9b41";
    let bed = Bed::load();
    let client = bed.client().await;
    let ws = Workspace::new();
    let me = std::fs::canonicalize(env!("CARGO_BIN_EXE_trader-deploy")).unwrap();
    for (major, helm) in [(3, &bed.helm3), (4, &bed.helm4)] {
        let dir = tempfile::tempdir().unwrap();
        let (kubeconfig, dumps) = exec_kubeconfig(&bed, dir.path());
        let ns = unique_name(&format!("env-helm{major}"));
        let mut vars = deploy_vars(&bed, ws.path(), &ns, "v1.1.0", &kubeconfig);
        vars.insert("INPUT_HELM".into(), helm.display().to_string());
        vars.insert("INPUT_REGISTRY_USERNAME".into(), "bot".into());
        vars.insert("INPUT_REGISTRY_PASSWORD".into(), format!("pw-{CANARY}"));
        vars.insert("INPUT_REGISTRY_HOST".into(), "ghcr.io".into());
        vars.insert("GITHUB_TOKEN".into(), format!("ghs-{CANARY}"));
        let run = run_action(ws.path(), &vars);
        assert_eq!(run.code, Some(0), "helm {major}: {run:#?}");
        assert_eq!(history(&bed, &ns).map(|h| h.len()), Some(1), "helm {major}");

        // validate runs helm lint and template (no cluster) with the same environment rule.
        let mut validate = vars.clone();
        validate.insert("INPUT_MODE".into(), "validate".into());
        let run = run_action(ws.path(), &validate);
        assert_eq!(run.code, Some(0), "helm {major} validate: {run:#?}");

        let mut by_helm = 0;
        let mut by_action = 0;
        for entry in std::fs::read_dir(&dumps).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some() {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let parent_env = std::fs::read_to_string(path.with_extension("parent")).unwrap();
            let (parent, env) = text.split_once('\n').unwrap();
            let who = if std::path::Path::new(parent) == me {
                // This program's own kube client ran it: the canary was in the parent's
                // environment, so a plugin that saw none of it was given a filtered one.
                by_action += 1;
                assert!(parent_env.contains(CANARY), "the control: {parent_env}");
                "the action's client"
            } else {
                // helm ran it: helm's own environment is what helm was given.
                by_helm += 1;
                assert!(
                    !parent_env.contains(CANARY),
                    "helm {major} got {parent_env}"
                );
                "helm"
            };
            for line in env.lines() {
                assert!(
                    !line.starts_with("INPUT_") && !line.starts_with("GITHUB_"),
                    "helm {major}: {who} ({parent}) passed on {line}"
                );
                assert!(
                    !line.contains(CANARY),
                    "helm {major}: {who} passed on {line}"
                );
            }
            for needed in ["PATH=", "HOME=", "HELM_CACHE_HOME="] {
                assert!(
                    env.lines().any(|l| l.starts_with(needed)),
                    "helm {major}: {who}: no {needed} in {env}"
                );
            }
        }
        assert!(by_helm > 0, "helm {major} never ran the exec plugin");
        assert!(
            by_action > 0,
            "the action's client never ran the exec plugin"
        );
        delete_namespace(&client, &ns).await;
    }
}

// ---------------------------------------------------------------------------------------------
// mode uninstall (issue #16): a preview environment's whole life.

/// A `pr-*` environment deployed twice, then uninstalled: the release and its pods are gone, and
/// every GitHub deployment of the environment ends `inactive` (GitHub shows a transient one as
/// destroyed). A second uninstall finds nothing and changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_preview_environment_is_deployed_then_uninstalled_with_its_deployments_inactive() {
    let bed = Bed::load();
    let client = bed.client().await;
    let ws = Workspace::new();
    let repo = add_repo(&bed, "td-preview", |_| {}).await;
    let ns = create_namespace(&client, "rel-preview").await;
    let kubeconfig = std::fs::read_to_string(&bed.kubeconfig).unwrap();
    let vars = |tag: &str, mode: &str| {
        let mut v = deploy_vars(&bed, ws.path(), &ns, tag, &kubeconfig);
        v.extend(repo_vars(&repo, ws.path(), "ghs_bed_full"));
        v.insert("INPUT_ENVIRONMENT".into(), "pr-42".into());
        v.insert("INPUT_MODE".into(), mode.into());
        if mode == "uninstall" {
            v.insert("INPUT_VERSION".into(), String::new());
        }
        v
    };
    // Two runs (two pushes to the pull request), two GitHub deployments.
    for (tag, run_id) in [("v1.0.0", "1001"), ("v1.1.0", "1002")] {
        let mut v = vars(tag, "deploy");
        v.insert("GITHUB_RUN_ID".into(), run_id.into());
        let run = run_action(ws.path(), &v);
        assert_eq!(run.out("status"), "success", "{}", run.stdout);
    }
    let run = run_action(ws.path(), &vars("", "uninstall"));
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.out("status"), "success");
    assert!(
        run.stdout
            .contains("release \"app\" uninstalled; its workloads and pods are gone"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("2 deployment(s) of pr-42 marked inactive"),
        "{}",
        run.stdout
    );
    assert!(history(&bed, &ns).is_none(), "the release is gone");
    let pods = kube::Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), &ns)
        .list(&Default::default())
        .await
        .unwrap();
    assert!(pods.items.is_empty(), "pods left: {:?}", pods.items.len());
    let state = repo.control("GET", "/_standin/state", None).await;
    let deps = state["repos"][&repo.full.to_ascii_lowercase()]["deployments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let preview: Vec<&Value> = deps
        .iter()
        .filter(|d| d["environment"] == "pr-42")
        .collect();
    assert_eq!(preview.len(), 2, "{deps:#?}");
    for d in &preview {
        assert_eq!(d["transient"], true, "{d}");
        let last = d["statuses"].as_array().unwrap().last().unwrap();
        assert_eq!(last["state"], "inactive", "{d}");
    }
    // Again: nothing installed, nothing to mark.
    let again = run_action(ws.path(), &vars("", "uninstall"));
    assert_eq!(again.out("status"), "success", "{}", again.stdout);
    assert!(
        again.stdout.contains("is not installed"),
        "{}",
        again.stdout
    );
    assert!(
        again
            .stdout
            .contains("0 deployment(s) of pr-42 marked inactive"),
        "{}",
        again.stdout
    );
    delete_namespace(&client, &ns).await;
}

// ---------------------------------------------------------------------------------------------
// Values from the workflow (issue #16, part 4).

/// `values` comes after the values files (replicas 2 over the file's 1), `set_string` keeps a
/// string a string (a ConfigMap's port), and `secret_values` reaches the chart but never any
/// channel: not stdout, stderr, the summary or the outputs, of a plan (whose diff holds the new
/// ConfigMap) or of the deploy.
#[tokio::test(flavor = "multi_thread")]
async fn inline_values_follow_the_files_and_secret_values_never_show() {
    const CANARY: &str = "canary-sv-9f3e71";
    let bed = Bed::load();
    let client = bed.client().await;
    let ws = Workspace::new();
    let ns = create_namespace(&client, "rel-values").await;
    let kubeconfig = std::fs::read_to_string(&bed.kubeconfig).unwrap();
    let mut v = deploy_vars(&bed, ws.path(), &ns, "v1.0.0", &kubeconfig);
    let first = run_action(ws.path(), &v);
    assert_eq!(first.out("status"), "success", "{}", first.stdout);
    v.insert(
        "INPUT_VALUES".into(),
        "replicas: 2\nconfig:\n  mode: paper\n".into(),
    );
    v.insert(
        "INPUT_SECRET_VALUES".into(),
        format!("config:\n  apiKey: {CANARY}\n"),
    );
    v.insert("INPUT_SET_STRING".into(), "config.port=7497".into());
    // The runner never shows what `::add-mask::` registers: those lines are the masking itself.
    let leaks = |run: &Run| {
        let outputs: Vec<&String> = run.outputs.values().collect();
        run.stdout
            .lines()
            .any(|l| !l.starts_with("::add-mask::") && l.contains(CANARY))
            || run.stderr.contains(CANARY)
            || run.summary.contains(CANARY)
            || outputs.iter().any(|o| o.contains(CANARY))
    };
    v.insert("INPUT_MODE".into(), "plan".into());
    let plan = run_action(ws.path(), &v);
    assert_eq!(plan.code, Some(0), "{}\n{}", plan.stdout, plan.stderr);
    assert!(
        plan.stdout.contains("app-config"),
        "the plan shows the new ConfigMap: {}",
        plan.stdout
    );
    assert!(
        !leaks(&plan),
        "the secret leaked from the plan:\n{}\n{}",
        plan.stdout,
        plan.summary
    );
    v.insert("INPUT_MODE".into(), "deploy".into());
    let run = run_action(ws.path(), &v);
    assert_eq!(
        run.out("status"),
        "success",
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(
        !leaks(&run),
        "the secret leaked from the deploy:\n{}\n{}",
        run.stdout,
        run.summary
    );
    let cm = kube::Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), &ns)
        .get("app-config")
        .await
        .unwrap();
    let data = cm.data.unwrap();
    assert_eq!(data["apiKey"], CANARY, "the chart got the secret value");
    assert_eq!(data["port"], "7497");
    assert_eq!(data["mode"], "paper");
    let dep = kube::Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), &ns)
        .get("app-orch")
        .await
        .unwrap();
    assert_eq!(
        dep.spec.unwrap().replicas,
        Some(2),
        "values over the values file"
    );
    delete_namespace(&client, &ns).await;
}
