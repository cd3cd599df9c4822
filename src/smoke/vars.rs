//! The variables a smoke spec may use (`${release}`, `${namespace}`, `${version}`,
//! `${environment}`; `$$` is a `$`) and their substitution into strings and JSON values.

/// The values `${name}` stands for in a spec.
#[derive(Debug, Clone, Default)]
pub(crate) struct Vars {
    pub(crate) release: String,
    pub(crate) namespace: String,
    pub(crate) version: String,
    pub(crate) environment: String,
}

impl Vars {
    fn get(&self, name: &str) -> Option<&str> {
        match name {
            "release" => Some(&self.release),
            "namespace" => Some(&self.namespace),
            "version" => Some(&self.version),
            "environment" => Some(&self.environment),
            _ => None,
        }
    }

    /// Replaces `${release}`, `${namespace}`, `${version}`, `${environment}`; `$$` is a `$`.
    pub(crate) fn substitute(&self, text: &str) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(r) = after.strip_prefix('$') {
                out.push('$');
                rest = r;
            } else if let Some(r) = after.strip_prefix('{') {
                let end = r
                    .find('}')
                    .ok_or_else(|| format!("unclosed ${{ in {text:?}"))?;
                let name = &r[..end];
                let value = self.get(name).ok_or_else(|| {
                    format!(
                        "unknown variable ${{{name}}} in {text:?} (known: release, namespace, \
                         version, environment)"
                    )
                })?;
                out.push_str(value);
                rest = &r[end + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
        Ok(out)
    }
}

pub(crate) fn substitute_json(
    v: &serde_json::Value,
    vars: &Vars,
) -> Result<serde_json::Value, String> {
    Ok(match v {
        serde_json::Value::String(s) => serde_json::Value::String(vars.substitute(s)?),
        serde_json::Value::Array(a) => serde_json::Value::Array(
            a.iter()
                .map(|x| substitute_json(x, vars))
                .collect::<Result<_, _>>()?,
        ),
        serde_json::Value::Object(o) => serde_json::Value::Object(
            o.iter()
                .map(|(k, x)| Ok((k.clone(), substitute_json(x, vars)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars {
            release: "traderadmin".into(),
            namespace: "trader".into(),
            version: "v1.2.0".into(),
            environment: "prod".into(),
        }
    }

    #[test]
    fn variables() {
        let v = vars();
        assert_eq!(
            v.substitute("${release}-${namespace}").unwrap(),
            "traderadmin-trader"
        );
        assert_eq!(v.substitute("$$ $x ${version}").unwrap(), "$ $x v1.2.0");
        assert!(v.substitute("${release").unwrap_err().contains("unclosed"));
    }
}
