//! The raw string inputs, from `INPUT_*` variables (a container action) or CLI flags, before
//! any validation; and the raw secret values, to be masked before anything can echo them.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use super::defs::{INPUTS, SECRET_INPUTS, spec};
use super::kubeconfig::parse_kubeconfig;
use super::registry_auth::registry_auth_masks;
use crate::env::{Env, vars};
use crate::secret::secret_fragments;

/// The name of the variable that carries an input: `INPUT_` + upper case, spaces to `_`.
pub fn input_var(name: &str) -> String {
    format!(
        "{}{}",
        vars::INPUT_PREFIX,
        name.to_uppercase().replace(' ', "_")
    )
}

/// The raw string inputs, from INPUT_* or the CLI. Records which inputs were read, so a test
/// proves that every declared input is used.
#[derive(Debug, Default)]
pub struct RawInputs {
    values: BTreeMap<&'static str, String>,
    read: RefCell<BTreeSet<&'static str>>,
}

impl RawInputs {
    /// From `INPUT_<NAME>` variables, as a docker action receives them.
    pub fn from_env(env: &Env) -> Self {
        let values = INPUTS
            .iter()
            .filter_map(|i| Some((i.name, env.get(&input_var(i.name))?.to_string())))
            .collect();
        Self {
            values,
            read: RefCell::default(),
        }
    }

    /// From name → value pairs (CLI flags, tests). Unknown names are a programming error.
    pub(crate) fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, String)>) -> Self {
        let values = pairs
            .into_iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| {
                let spec = spec(k).unwrap_or_else(|| panic!("unknown input {k:?}"));
                (spec.name, v)
            })
            .collect();
        Self {
            values,
            read: RefCell::default(),
        }
    }

    pub(crate) fn get(&self, name: &'static str) -> Option<&str> {
        debug_assert!(spec(name).is_some(), "unknown input {name:?}");
        self.read.borrow_mut().insert(name);
        self.values.get(name).map(String::as_str)
    }

    /// The names read so far.
    #[cfg(test)]
    pub(crate) fn read_names(&self) -> BTreeSet<&'static str> {
        self.read.borrow().clone()
    }

    /// The raw values of the secret inputs, to be masked before validation can echo anything.
    pub fn secret_values(&self) -> Vec<String> {
        let mut out = Vec::new();
        for name in SECRET_INPUTS {
            match (*name, self.values.get(name)) {
                (_, None) => {}
                ("kubeconfig", Some(v)) => match parse_kubeconfig(v) {
                    Ok(k) => out.extend(k.masks()),
                    // Unreadable: its content is unknown, so every line of it is masked.
                    Err(_) => out.extend(secret_fragments(v)),
                },
                ("registry_auth", Some(v)) => out.extend(registry_auth_masks(v)),
                ("secret_values", Some(v)) => out.extend(super::values::secret_values_masks(v)),
                (_, Some(v)) => out.extend(secret_fragments(v)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_strings_are_unset() {
        let env = Env::from_pairs([("INPUT_ENVIRONMENT", ""), ("INPUT_VERSION", "  ")]);
        let r = RawInputs::from_env(&env);
        assert_eq!(r.get("environment"), None);
        assert_eq!(r.get("version"), None);
    }
}
