//! conftest's conventions, as pure functions: which rules are checks, what a rule's value says,
//! which rules an exception covers, and the `if` without `contains` it refuses.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

static FAILURE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(deny|violation)(_[a-zA-Z0-9]+)*$").expect("a valid regex"));
static WARNING: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^warn(_[a-zA-Z0-9]+)*$").expect("a valid regex"));

/// What a rule of the checked package is to conftest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `deny`, `violation`, `deny_*`, `violation_*`: refuses.
    Failure,
    /// `warn`, `warn_*`: reported.
    Warning,
}

/// The kind of a rule by its name; `None` for every other rule (helpers, `exception`).
pub fn kind(rule: &str) -> Option<Kind> {
    if FAILURE.is_match(rule) {
        Some(Kind::Failure)
    } else if WARNING.is_match(rule) {
        Some(Kind::Warning)
    } else {
        None
    }
}

/// The name an `exception` rule lists for a rule: its name without the severity prefix
/// (`deny_latest_tag` → `latest_tag`; `deny` itself → the empty name).
pub fn exception_name(rule: &str) -> &str {
    if matches!(rule, "deny" | "violation" | "warn") {
        return "";
    }
    ["violation_", "deny_", "warn_"]
        .iter()
        .find_map(|p| rule.strip_prefix(p))
        .unwrap_or(rule)
}

/// The names `exception` lists (`exception contains rules if { … rules := ["latest_tag"] }`):
/// conftest's query `exception[_][_] == name`.
pub fn excepted(exception: Option<&Value>) -> Vec<String> {
    let Some(Value::Array(sets)) = exception else {
        return Vec::new();
    };
    sets.iter()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// What went wrong reading a rule's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueError {
    /// `deny if { … }`: a boolean where a set of messages belongs.
    Boolean,
    /// An object in the set without a string `msg`.
    NoMsg(String),
}

/// The messages of a rule's value, as conftest reads them: a set of strings, or of objects
/// with a string `msg` (other members are metadata). A value that is not a set (a partial
/// object, a string) holds no message; other elements of a set are skipped.
pub fn messages(value: &Value) -> Result<Vec<String>, ValueError> {
    match value {
        Value::Bool(_) => Err(ValueError::Boolean),
        Value::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                match item {
                    Value::String(s) => out.push(s.clone()),
                    Value::Object(o) => match o.get("msg") {
                        Some(Value::String(m)) => out.push(m.clone()),
                        _ => return Err(ValueError::NoMsg(item.to_string())),
                    },
                    _ => {}
                }
            }
            Ok(out)
        }
        _ => Ok(Vec::new()),
    }
}

/// The check rules (and `exception`) that `source` declares when it is in package `namespace`:
/// the rules conftest queries one by one. Read from the rule heads at the start of a line.
pub fn declared(source: &str, namespace: &str) -> Vec<String> {
    static PACKAGE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?m)^\s*package\s+([A-Za-z0-9_.]+)").expect("a valid regex"));
    static HEAD: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"(?m)^\s*((?:deny|violation|warn)(?:_[a-zA-Z0-9]+)*|exception)\s*(?:\[|contains\b|:=|=|if\b|\{)",
        )
        .expect("a valid regex")
    });
    if PACKAGE
        .captures(source)
        .map(|c| c[1].to_string())
        .as_deref()
        != Some(namespace)
    {
        return Vec::new();
    }
    let mut names: Vec<String> = HEAD
        .captures_iter(source)
        .map(|c| c[1].to_string())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The line (1-based) of the first rule head in `source` that conftest refuses: a check rule
/// with `if` and no `contains` (`deny if { … }`, and in Rego v1 `deny[msg] if { … }`, which
/// defines an object, not a set of messages). Returns the rule's name and its line.
pub fn if_without_contains(source: &str, rego_v1: bool) -> Option<(String, usize)> {
    static HEAD: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^\s*((?:deny|violation|warn)(?:_[a-zA-Z0-9]+)*)\s*(\[[^\]]*\])?\s*if\b")
            .expect("a valid regex")
    });
    source.lines().enumerate().find_map(|(i, line)| {
        let c = HEAD.captures(line)?;
        if c.get(2).is_some() && !rego_v1 {
            // Rego v0 with `future.keywords.if`: `deny[msg] if` is a partial set.
            return None;
        }
        Some((c[1].to_string(), i + 1))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rule_kinds_follow_conftest_s_names() {
        assert_eq!(kind("deny"), Some(Kind::Failure));
        assert_eq!(kind("violation_limits"), Some(Kind::Failure));
        assert_eq!(kind("deny_latest_tag_2"), Some(Kind::Failure));
        assert_eq!(kind("warn"), Some(Kind::Warning));
        assert_eq!(kind("warn_replicas"), Some(Kind::Warning));
        assert_eq!(kind("denied"), None);
        assert_eq!(kind("deny_"), None);
        assert_eq!(kind("exception"), None);
        assert_eq!(kind("warning"), None);
    }

    #[test]
    fn exceptions_name_rules_without_their_prefix() {
        assert_eq!(exception_name("deny_latest_tag"), "latest_tag");
        assert_eq!(exception_name("violation_x"), "x");
        assert_eq!(exception_name("warn_y"), "y");
        assert_eq!(exception_name("deny"), "");
        let ex = json!([["latest_tag", "limits"], ["ports"]]);
        assert_eq!(excepted(Some(&ex)), ["latest_tag", "limits", "ports"]);
        assert!(excepted(None).is_empty());
        assert!(excepted(Some(&json!(true))).is_empty());
    }

    #[test]
    fn messages_are_strings_or_msg_members() {
        let v = json!(["a", {"msg": "b", "details": {"x": 1}}, 3]);
        assert_eq!(messages(&v).unwrap(), ["a", "b"]);
        assert_eq!(messages(&json!({"k": true})).unwrap(), Vec::<String>::new());
        assert_eq!(messages(&json!(true)), Err(ValueError::Boolean));
        assert!(matches!(
            messages(&json!([{"message": "x"}])),
            Err(ValueError::NoMsg(_))
        ));
    }

    #[test]
    fn declared_rules_of_the_package() {
        let src = "# c\npackage main\n\nimport rego.v1\n\ndeny contains msg if { true }\ndeny_x[msg] {\n}\nwarn_y := {\"a\"}\nexception contains r if { r := [\"x\"] }\nhelper if { true }\n  deny contains \"z\" if { false }\n";
        assert_eq!(
            declared(src, "main"),
            ["deny", "deny_x", "exception", "warn_y"]
        );
        assert!(declared(&src.replace("package main", "package other"), "main").is_empty());
        assert!(declared("package main.sub\ndeny contains 1 if { true }", "main").is_empty());
    }

    #[test]
    fn if_without_contains_is_found_with_its_line() {
        let v1 = "package main\n\ndeny contains msg if {\n  true\n}\n\nwarn_x[msg] if {\n msg := \"x\"\n}\n";
        assert_eq!(if_without_contains(v1, true), Some(("warn_x".into(), 7)));
        assert_eq!(if_without_contains(v1, false), None);
        let bool_rule = "package main\ndeny if { input.kind == \"Pod\" }\n";
        assert_eq!(
            if_without_contains(bool_rule, false),
            Some(("deny".into(), 2))
        );
        assert_eq!(if_without_contains("deny[msg] {\n}\n", false), None);
        assert_eq!(if_without_contains("denying if { true }", true), None);
    }
}
