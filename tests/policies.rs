//! The `policies` input's verdicts against conftest's own (the pinned conftest, built from the
//! Go module proxy): the same deny and warn messages for every rendered document, on a corpus
//! of policy folders × manifests — the example policies against every environment's values of
//! the example chart among them. `data.trader_deploy` (the run's facts and every rendered
//! object) is given to conftest as a data file, as the action gives it to its policies.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::tools::{self, cache, pinned};
use serde_json::Value;
use trader_deploy::policy::{Policies, RegoVersion, RunFacts};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn conftest() -> Option<PathBuf> {
    tools::require(
        "conftest",
        cache().join(format!("bin/conftest-{}", pinned("CONFTEST_VERSION"))),
    )
}

fn helm() -> Option<PathBuf> {
    tools::require_from(
        "helm 3",
        cache().join(format!("bin/helm-{}", pinned("HELM3_VERSION"))),
        "make tools",
    )
}

const IMAGES: [(&str, &str); 2] = [
    ("image.pythonOrch", "ghcr.io/acme/python-orch:v1.2.0"),
    ("image.goScanner", "ghcr.io/acme/go-scanner:v1.2.0"),
];

/// The example chart rendered by helm for `environment`'s values plus `set` (helm `--set`).
fn render(helm: &Path, environment: &str, set: &[&str]) -> Vec<Value> {
    let mut cmd = Command::new(helm);
    cmd.args(["template", "traderadmin"])
        .arg(repo().join("examples/charts/traderadmin"))
        .args(["--namespace", "trader", "-f"])
        .arg(repo().join(format!("deploy/values/values-{environment}.yaml")));
    // helm applies --set-string after --set: an image the variant sets is not set again.
    for (k, v) in IMAGES {
        if !set.iter().any(|s| s.starts_with(&format!("{k}="))) {
            cmd.arg("--set-string").arg(format!("{k}={v}"));
        }
    }
    for s in set {
        cmd.arg("--set").arg(s);
    }
    let (ok, out) = tools::run(&mut cmd);
    assert!(ok, "helm template for {environment}: {out}");
    documents(&out)
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .expect("YAML documents")
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn facts(environment: &str) -> RunFacts {
    RunFacts {
        environment: environment.into(),
        protected: environment == "prod",
        release: "traderadmin".into(),
        namespace: "trader".into(),
        version: "v1.2.0".into(),
        images: IMAGES
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// Per document: (sorted denies, sorted warns).
type Verdicts = Vec<(Vec<String>, Vec<String>)>;

/// conftest's verdicts: each document in its own file (conftest checks a file's documents one
/// by one too, but reports them together), the policy folder as `--policy` and `--data`, the
/// run's facts as one more data file.
fn conftest_verdicts(
    conftest: &Path,
    policies: &Path,
    version: RegoVersion,
    docs: &[Value],
    facts: &RunFacts,
) -> Verdicts {
    let dir = tempfile::tempdir().unwrap();
    let mut td = serde_json::to_value(facts).unwrap();
    td["manifests"] = Value::Array(docs.to_vec());
    let ctx = dir.path().join("trader-deploy.json");
    std::fs::write(&ctx, serde_json::json!({ "trader_deploy": td }).to_string()).unwrap();
    let files: Vec<PathBuf> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let f = dir.path().join(format!("doc-{i:03}.json"));
            std::fs::write(&f, d.to_string()).unwrap();
            f
        })
        .collect();
    let out = Command::new(conftest)
        .args(["test", "--no-color", "--output", "json", "--rego-version"])
        .arg(match version {
            RegoVersion::V1 => "v1",
            RegoVersion::V0 => "v0",
        })
        .arg("--policy")
        .arg(policies)
        .arg("--data")
        .arg(policies)
        .arg("--data")
        .arg(&ctx)
        .args(&files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let results: Vec<Value> = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "conftest gave no JSON ({e}): {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let mut by_file: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for r in results {
        let msgs = |key: &str| -> Vec<String> {
            r[key]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| m["msg"].as_str().unwrap().to_string())
                .collect()
        };
        let entry = by_file
            .entry(r["filename"].as_str().unwrap().to_string())
            .or_default();
        entry.0.extend(msgs("failures"));
        entry.1.extend(msgs("warnings"));
    }
    files
        .iter()
        .map(|f| {
            let (mut d, mut w) = by_file.remove(&f.display().to_string()).unwrap_or_default();
            d.sort();
            w.sort();
            (d, w)
        })
        .collect()
}

fn action_verdicts(
    policies: &Path,
    version: RegoVersion,
    docs: &[Value],
    facts: &RunFacts,
) -> Verdicts {
    let p = Policies::load(policies, Path::new("policies"), version).unwrap();
    let v = p.evaluate_documents(docs, facts).unwrap();
    v.objects.into_iter().map(|o| (o.denies, o.warns)).collect()
}

struct Corpus {
    /// (name, documents, environment)
    manifests: Vec<(String, Vec<Value>, String)>,
}

fn corpus(helm: &Path) -> Corpus {
    let mut manifests = Vec::new();
    for env in ["dev", "staging", "prod"] {
        manifests.push((
            format!("chart/{env}"),
            render(helm, env, &[]),
            env.to_string(),
        ));
    }
    // What the example policies are there to stop, each rendered by helm from a values change.
    let variants: [(&str, &str, &[&str]); 5] = [
        ("prod with the paper port", "prod", &["tws.port=7497"]),
        ("dev with the live port", "dev", &["tws.port=7496"]),
        (
            "prod with one replica and no budget",
            "prod",
            &[
                "pythonOrch.replicas=1",
                "pythonOrch.podDisruptionBudget.enabled=false",
                "pythonOrch.autoscaling.enabled=false",
            ],
        ),
        (
            "staging without limits",
            "staging",
            &["goScanner.resources.limits=null"],
        ),
        // (An untagged image: the chart refuses it itself; misc.yaml's Pod has one.)
        (
            "prod with a latest tag",
            "prod",
            &["image.pythonOrch=ghcr.io/acme/python-orch:latest"],
        ),
    ];
    for (name, env, set) in variants {
        manifests.push((name.to_string(), render(helm, env, set), env.to_string()));
    }
    let misc = std::fs::read_to_string(repo().join("tests/fixtures/policies/misc.yaml")).unwrap();
    manifests.push((
        "misc objects in prod".into(),
        documents(&misc),
        "prod".into(),
    ));
    manifests.push(("misc objects in dev".into(), documents(&misc), "dev".into()));
    Corpus { manifests }
}

#[test]
fn the_action_and_conftest_give_the_same_verdicts() {
    let (Some(conftest), Some(helm)) = (conftest(), helm()) else {
        return;
    };
    let folders = [
        (repo().join("examples/policies"), RegoVersion::V1),
        (
            repo().join("tests/fixtures/policies/v1-forms"),
            RegoVersion::V1,
        ),
        (
            repo().join("tests/fixtures/policies/v0-legacy"),
            RegoVersion::V0,
        ),
        (
            repo().join("tests/fixtures/policies/builtins"),
            RegoVersion::V1,
        ),
    ];
    let corpus = corpus(&helm);
    let mut cases = 0;
    let mut verdicts = 0;
    let mut mismatches = Vec::new();
    for (folder, version) in &folders {
        for (name, docs, env) in &corpus.manifests {
            let facts = facts(env);
            let theirs = conftest_verdicts(&conftest, folder, *version, docs, &facts);
            let ours = action_verdicts(folder, *version, docs, &facts);
            cases += 1;
            verdicts += ours.iter().map(|(d, w)| d.len() + w.len()).sum::<usize>();
            for (i, (t, o)) in theirs.iter().zip(&ours).enumerate() {
                if t != o {
                    mismatches.push(format!(
                        "{} × {name}, document {i} ({}):\n  conftest: {t:?}\n  action:   {o:?}",
                        folder.file_name().unwrap().to_string_lossy(),
                        docs[i]["kind"]
                    ));
                }
            }
            assert_eq!(theirs.len(), ours.len());
        }
    }
    assert!(cases >= 25, "{cases} cases");
    // The corpus must exercise the rules: a comparison of empty verdicts proves nothing.
    assert!(
        verdicts >= 60,
        "only {verdicts} messages in the whole corpus"
    );
    assert!(
        mismatches.is_empty(),
        "{} of {cases} cases differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

/// The example policies say what they are for: the live port only in prod, limits, tags, and
/// prod's replicas and disruption budgets (their verdicts, beyond agreeing with conftest's).
#[test]
fn the_example_policies_refuse_what_they_are_for() {
    let Some(helm) = helm() else { return };
    let folder = repo().join("examples/policies");
    let denies = |env: &str, set: &[&str]| -> Vec<String> {
        let docs = render(&helm, env, set);
        let p = Policies::load(&folder, Path::new("examples/policies"), RegoVersion::V1).unwrap();
        p.evaluate_documents(&docs, &facts(env))
            .unwrap()
            .deny_lines()
    };
    for env in ["dev", "staging", "prod"] {
        assert_eq!(denies(env, &[]), Vec::<String>::new(), "{env}");
    }
    let d = denies("prod", &["tws.port=7497"]);
    assert!(
        d.iter()
            .any(|m| m.starts_with("ConfigMap/traderadmin") && m.contains("paper port 7497")),
        "{d:?}"
    );
    let d = denies("staging", &["tws.port=7496"]);
    assert!(d.iter().any(|m| m.contains("live port 7496")), "{d:?}");
    let d = denies(
        "prod",
        &[
            "pythonOrch.replicas=1",
            "pythonOrch.podDisruptionBudget.enabled=false",
            "pythonOrch.autoscaling.enabled=false",
        ],
    );
    assert!(d.iter().any(|m| m.contains("runs 1 replica(s)")), "{d:?}");
    assert!(
        d.iter().any(|m| m.contains("has no PodDisruptionBudget")),
        "{d:?}"
    );
    let d = denies("dev", &["goScanner.resources.limits=null"]);
    assert!(d.iter().any(|m| m.contains("has no cpu limit")), "{d:?}");
    let d = denies("dev", &["image.goScanner=ghcr.io/acme/go-scanner:latest"]);
    assert!(d.iter().any(|m| m.contains("uses the latest tag")), "{d:?}");
}
