//! A chart's values as helm computes them before rendering: the chart's `values.yaml`, then each
//! given values file merged over it (maps merge key by key, anything else replaces, a `null`
//! removes the key), as helm's `coalesce` does for the parent chart.

use std::path::Path;

use crate::manifest::Yaml;

/// Reads `values.yaml` of the chart in `dir` (none: no defaults) and merges `files` over it.
pub fn merged_from_dir(dir: &Path, files: &[&Path]) -> Result<Yaml, String> {
    let defaults = dir.join("values.yaml");
    let text = if defaults.is_file() {
        std::fs::read_to_string(&defaults)
            .map_err(|e| format!("failed to read {}: {e}", defaults.display()))?
    } else {
        String::new()
    };
    merged(&text, files)
}

/// The defaults `defaults` (YAML text) with `files` merged over them in order.
pub fn merged(defaults: &str, files: &[&Path]) -> Result<Yaml, String> {
    let mut out = parse(defaults).map_err(|e| format!("the chart's values are not YAML: {e}"))?;
    for f in files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| format!("failed to read values file {}: {e}", f.display()))?;
        // The file may hold secrets (`secret_values`): the parse error is not quoted.
        let over = parse(&text)
            .map_err(|_| format!("values file {} is not a YAML mapping", f.display()))?;
        merge(&mut out, over);
    }
    Ok(out)
}

fn parse(text: &str) -> Result<Yaml, String> {
    if text.trim().is_empty() {
        return Ok(Yaml::Mapping(Default::default()));
    }
    match crate::manifest::parse::<Yaml>(text) {
        Ok(Yaml::Null) => Ok(Yaml::Mapping(Default::default())),
        Ok(v @ Yaml::Mapping(_)) => Ok(v),
        Ok(_) => Err("not a mapping".into()),
        Err(e) => Err(e.to_string().lines().next().unwrap_or("").to_string()),
    }
}

/// Merges `over` into `base` as helm does: maps key by key, `null` removes, the rest replaces.
pub fn merge(base: &mut Yaml, over: Yaml) {
    match (base, over) {
        (Yaml::Mapping(b), Yaml::Mapping(o)) => {
            for (k, v) in o {
                match (b.get_mut(&k), v) {
                    (_, Yaml::Null) => {
                        b.shift_remove(&k);
                    }
                    (Some(existing @ Yaml::Mapping(_)), v @ Yaml::Mapping(_)) => merge(existing, v),
                    (_, v) => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(text: &str) -> Yaml {
        crate::manifest::parse(text).unwrap()
    }

    #[test]
    fn files_merge_over_the_defaults_as_helm_merges_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("values.yaml"),
            "image:\n  repository: nginx\n  tag: \"\"\n  pullPolicy: IfNotPresent\nreplicas: 1\nextra: {a: 1}\n",
        )
        .unwrap();
        let f1 = dir.path().join("a.yaml");
        std::fs::write(&f1, "image:\n  registry: docker.io\nreplicas: 2\n").unwrap();
        let f2 = dir.path().join("b.yaml");
        std::fs::write(&f2, "image:\n  pullPolicy: null\nextra: plain\n").unwrap();
        let v = merged_from_dir(dir.path(), &[&f1, &f2]).unwrap();
        assert_eq!(
            v,
            y(
                "image:\n  repository: nginx\n  tag: \"\"\n  registry: docker.io\nreplicas: 2\nextra: plain\n"
            )
        );
    }

    #[test]
    fn a_chart_without_values_has_none_and_a_bad_file_is_named_not_quoted() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(merged_from_dir(dir.path(), &[]).unwrap(), y("{}"));
        let f = dir.path().join("s.yaml");
        std::fs::write(&f, "- hunter2-secret\n").unwrap();
        let e = merged_from_dir(dir.path(), &[&f]).unwrap_err();
        assert!(e.contains("s.yaml") && !e.contains("hunter2"), "{e}");
    }
}
