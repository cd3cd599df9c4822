//! Policies on the rendered release: a folder of Rego in conftest's convention (`package main`,
//! `deny`/`violation`/`warn` rules, `exception`), evaluated in-process by regorus on each
//! rendered object, with the run's environment and plan under `data.trader_deploy`.

mod load;
pub mod rules;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

/// The package conftest checks by default (`--namespace main`).
pub const NAMESPACE: &str = "main";

/// Which Rego the policies are written in (conftest's `--rego-version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RegoVersion {
    /// OPA 1.x's Rego: `deny contains msg if { … }`.
    #[default]
    V1,
    /// OPA 0.x's Rego: `deny[msg] { … }` (and, with `import rego.v1` or the future keywords,
    /// the v1 forms too).
    V0,
}

impl RegoVersion {
    pub fn parse(s: &str) -> Option<RegoVersion> {
        match s {
            "v1" | "V1" => Some(RegoVersion::V1),
            "v0" | "V0" => Some(RegoVersion::V0),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("failed to read policy file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no .rego policies in {0}")]
    Empty(String),
    #[error("failed to parse policy {0}")]
    Parse(String),
    #[error(
        "policy rule `{rule}` in {file} at line {line} uses `if` without `contains`: write `{rule} contains msg if {{ … }}`"
    )]
    IfWithoutContains {
        rule: String,
        file: String,
        line: usize,
    },
    #[error("failed to load policy data file {file}: {message}")]
    Data { file: String, message: String },
    #[error("failed to evaluate the policies on {object}: {message}")]
    Eval { object: String, message: String },
    #[error(
        "policy rule `{rule}` gave {value} for {object}: a message object needs a string `msg`"
    )]
    NoMsg {
        rule: String,
        object: String,
        value: String,
    },
}

/// What the policies may know of the run, as `data.trader_deploy` (with `manifests`: every
/// rendered object, so that a rule on one object can look at the others).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunFacts {
    pub environment: String,
    pub protected: bool,
    pub release: String,
    pub namespace: String,
    pub version: String,
    /// helm key → image reference, as the deploy sets them.
    pub images: BTreeMap<String, String>,
}

/// The verdict on one rendered object.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ObjectVerdict {
    /// `Kind/name` (or `document N` for one without them).
    pub object: String,
    pub denies: Vec<String>,
    pub warns: Vec<String>,
}

/// The verdicts on a rendered release, in the order of its documents.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdicts {
    pub objects: Vec<ObjectVerdict>,
}

impl Verdicts {
    pub fn denied(&self) -> bool {
        self.objects.iter().any(|o| !o.denies.is_empty())
    }
    /// `Kind/name: message`, one per deny.
    pub fn deny_lines(&self) -> Vec<String> {
        self.lines(|o| &o.denies)
    }
    /// `Kind/name: message`, one per warn.
    pub fn warn_lines(&self) -> Vec<String> {
        self.lines(|o| &o.warns)
    }
    fn lines(&self, pick: impl Fn(&ObjectVerdict) -> &Vec<String>) -> Vec<String> {
        self.objects
            .iter()
            .flat_map(|o| pick(o).iter().map(move |m| format!("{}: {m}", o.object)))
            .collect()
    }
}

/// A loaded, parsed policy folder.
#[derive(Clone)]
pub struct Policies {
    engine: regorus::Engine,
    data: Map<String, Value>,
    /// The check rules (and `exception`) the package declares.
    rules: Vec<String>,
    /// The folder as shown in messages.
    pub shown: String,
    pub files: usize,
}

impl std::fmt::Debug for Policies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Policies({}, {} files)", self.shown, self.files)
    }
}

impl Policies {
    /// Reads and parses every policy in `dir` (`shown` names it in messages): a syntax error
    /// fails here, with its file and line.
    pub fn load(dir: &Path, shown: &Path, version: RegoVersion) -> Result<Policies, PolicyError> {
        let files = load::read(dir, shown)?;
        let mut engine = regorus::Engine::new();
        engine.set_rego_v0(version == RegoVersion::V0);
        // A built-in's error (a bad regex, a type error) fails the evaluation, as `conftest
        // --show-builtin-errors` would; silently undefined would pass a broken check.
        engine.set_strict_builtin_errors(true);
        let mut declared = Vec::new();
        for (path, text) in &files.policies {
            declared.extend(rules::declared(text, NAMESPACE));
            if let Some((rule, line)) = rules::if_without_contains(text, version == RegoVersion::V1)
            {
                return Err(PolicyError::IfWithoutContains {
                    rule,
                    file: path.clone(),
                    line,
                });
            }
            engine
                .add_policy(path.clone(), text.clone())
                .map_err(|e| PolicyError::Parse(one_line(&format!("{e:#}"))))?;
        }
        declared.sort();
        declared.dedup();
        Ok(Policies {
            engine,
            rules: declared,
            data: files.data,
            shown: shown.display().to_string(),
            files: files.policies.len(),
        })
    }

    /// Evaluates every document of a rendered manifest stream, each as `input`.
    pub fn evaluate(&self, manifest: &str, facts: &RunFacts) -> Result<Verdicts, PolicyError> {
        let documents: Vec<Value> = crate::manifest::documents(manifest)
            .iter()
            .filter_map(|d| serde_json::to_value(d).ok())
            .collect();
        self.evaluate_documents(&documents, facts)
    }

    /// Evaluates each document as `input`.
    pub fn evaluate_documents(
        &self,
        documents: &[Value],
        facts: &RunFacts,
    ) -> Result<Verdicts, PolicyError> {
        let mut engine = self.engine.clone();
        let mut data = self.data.clone();
        let mut facts = serde_json::to_value(facts).expect("run facts serialize");
        facts["manifests"] = Value::Array(documents.to_vec());
        load::merge_at(
            &mut data,
            &[],
            serde_json::json!({ "trader_deploy": facts }),
        )
        .map_err(|message| PolicyError::Data {
            file: self.shown.clone(),
            message: format!("{message} (data.trader_deploy is the action's)"),
        })?;
        engine
            .add_data(regorus::Value::from(Value::Object(data)))
            .map_err(|e| PolicyError::Data {
                file: self.shown.clone(),
                message: format!("{e:#}"),
            })?;
        let mut objects = Vec::new();
        for (i, doc) in documents.iter().enumerate() {
            let object = object_name(doc, i);
            engine.set_input(regorus::Value::from(doc.clone()));
            let eval_err = |e: anyhow::Error| PolicyError::Eval {
                object: object.clone(),
                message: format!("{e:#}"),
            };
            // Each rule on its own, as conftest queries them: regorus 0.14 can get a rule wrong
            // when it evaluates a whole package spread over several files (a `not` of a rule
            // defined in one of them came out true; tests/policies.rs compares with conftest).
            let mut rules = Map::new();
            for name in &self.rules {
                let results = engine
                    .eval_query(format!("data.{NAMESPACE}.{name}"), false)
                    .map_err(eval_err)?;
                let value = results
                    .result
                    .first()
                    .and_then(|r| r.expressions.first())
                    .map(|e| serde_json::to_value(&e.value).unwrap_or(Value::Null));
                if let Some(value) = value {
                    rules.insert(name.clone(), value);
                }
            }
            objects.push(verdict(&Value::Object(rules), object)?);
        }
        Ok(Verdicts { objects })
    }
}

/// The verdict on one object from its evaluated package (`data.main`).
fn verdict(package: &Value, object: String) -> Result<ObjectVerdict, PolicyError> {
    let mut out = ObjectVerdict {
        object,
        ..ObjectVerdict::default()
    };
    let Some(rules) = package.as_object() else {
        return Ok(out);
    };
    let excepted = rules::excepted(rules.get("exception"));
    for (rule, value) in rules {
        let Some(kind) = rules::kind(rule) else {
            continue;
        };
        if excepted.iter().any(|e| e == rules::exception_name(rule)) {
            continue;
        }
        let messages = rules::messages(value).map_err(|e| match e {
            rules::ValueError::Boolean => PolicyError::Eval {
                object: out.object.clone(),
                message: format!(
                    "rule `{rule}` is a boolean: write `{rule} contains msg if {{ … }}`"
                ),
            },
            rules::ValueError::NoMsg(v) => PolicyError::NoMsg {
                rule: rule.clone(),
                object: out.object.clone(),
                value: v,
            },
        })?;
        match kind {
            rules::Kind::Failure => out.denies.extend(messages),
            rules::Kind::Warning => out.warns.extend(messages),
        }
    }
    out.denies.sort();
    out.warns.sort();
    Ok(out)
}

/// regorus' located message (`--> file:line:col`, the line quoted, a caret, `error: …`) as one
/// line: `file:line:col: …`.
fn one_line(message: &str) -> String {
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let location = lines.iter().find_map(|l| l.strip_prefix("--> "));
    let what = lines.iter().rev().find_map(|l| l.strip_prefix("error: "));
    match (location, what) {
        (Some(at), Some(what)) => format!("{at}: {what}"),
        _ => lines.join("; "),
    }
}

/// `Kind/name` of a rendered object.
fn object_name(doc: &Value, index: usize) -> String {
    let kind = doc.get("kind").and_then(Value::as_str);
    let name = doc
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str);
    match (kind, name) {
        (Some(k), Some(n)) => format!("{k}/{n}"),
        _ => format!("document {}", index + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(env: &str) -> RunFacts {
        RunFacts {
            environment: env.into(),
            protected: env == "prod",
            release: "traderadmin".into(),
            namespace: "trader".into(),
            version: "v1.2.0".into(),
            images: BTreeMap::new(),
        }
    }

    fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: nginx:latest\n";

    #[test]
    fn deny_warn_and_environment_from_data() {
        let dir = folder(&[(
            "main.rego",
            r#"package main

deny contains msg if {
  some c in input.spec.containers
  endswith(c.image, ":latest")
  msg := sprintf("container %s uses latest", [c.name])
}

warn_env contains {"msg": sprintf("deploying to %s", [data.trader_deploy.environment])} if {
  input.kind == "Pod"
}
"#,
        )]);
        let p = Policies::load(dir.path(), Path::new("policies"), RegoVersion::V1).unwrap();
        let v = p.evaluate(POD, &facts("prod")).unwrap();
        assert!(v.denied());
        assert_eq!(v.deny_lines(), ["Pod/p: container c uses latest"]);
        assert_eq!(v.warn_lines(), ["Pod/p: deploying to prod"]);
    }

    #[test]
    fn v0_rules_and_exceptions() {
        let dir = folder(&[
            (
                "a/b.rego",
                "package main\n\ndeny_latest[msg] {\n  input.kind == \"Pod\"\n  msg := \"latest\"\n}\n\nviolation[msg] {\n  input.kind == \"Pod\"\n  msg := data.a.word\n}\n\nexception[rules] {\n  input.metadata.name == \"p\"\n  rules := [\"latest\"]\n}\n",
            ),
            ("a/words.yaml", "word: hello\n"),
        ]);
        let p = Policies::load(dir.path(), Path::new("policies"), RegoVersion::V0).unwrap();
        let v = p.evaluate(POD, &facts("dev")).unwrap();
        assert_eq!(v.deny_lines(), ["Pod/p: hello"]);
    }

    #[test]
    fn a_syntax_error_names_file_and_line() {
        let dir = folder(&[(
            "bad.rego",
            "package main\n\ndeny contains msg if {\n  msg := \n}\n",
        )]);
        let err = Policies::load(dir.path(), Path::new("policies"), RegoVersion::V1).unwrap_err();
        let s = err.to_string();
        assert!(s.contains("policies/bad.rego"), "{s}");
        assert!(s.contains(":5") || s.contains(":4"), "{s}");
    }

    #[test]
    fn v0_syntax_under_v1_is_refused_and_if_without_contains_too() {
        let dir = folder(&[(
            "old.rego",
            "package main\n\ndeny[msg] {\n  msg := \"x\"\n}\n",
        )]);
        assert!(Policies::load(dir.path(), Path::new("p"), RegoVersion::V1).is_err());
        let dir = folder(&[("b.rego", "package main\n\ndeny if {\n  true\n}\n")]);
        let err = Policies::load(dir.path(), Path::new("p"), RegoVersion::V1).unwrap_err();
        assert!(err.to_string().contains("p/b.rego at line 3"), "{err}");
    }

    #[test]
    fn located_messages_become_one_line() {
        let m =
            "\n--> policies/a.rego:4:10\n  |\n4 |   msg := \n  |          ^\nerror: unexpected }";
        assert_eq!(one_line(m), "policies/a.rego:4:10: unexpected }");
        assert_eq!(one_line("a\nb"), "a; b");
    }

    #[test]
    fn other_packages_are_not_checked() {
        let dir = folder(&[(
            "x.rego",
            "package other\n\ndeny contains \"no\" if { true }\n",
        )]);
        let p = Policies::load(dir.path(), Path::new("p"), RegoVersion::V1).unwrap();
        assert!(!p.evaluate(POD, &facts("dev")).unwrap().denied());
    }
}
