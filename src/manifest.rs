//! YAML documents as the crate reads them: one ordered value type and one multi-document split
//! (serde-saphyr, the pure-Rust YAML stack kube already brings).

use std::fmt;

use indexmap::IndexMap;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A YAML value whose mappings keep their order (so a re-rendered object reads like its source).
#[derive(Debug, Clone, PartialEq)]
pub enum Yaml {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    String(String),
    Sequence(Vec<Yaml>),
    Mapping(IndexMap<String, Yaml>),
}

impl Yaml {
    /// The value under `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Yaml::Mapping(m) => m.get(key),
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Yaml> {
        match self {
            Yaml::Mapping(m) => m.get_mut(key),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Yaml::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Yaml::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_sequence(&self) -> Option<&Vec<Yaml>> {
        match self {
            Yaml::Sequence(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_mapping(&self) -> Option<&IndexMap<String, Yaml>> {
        match self {
            Yaml::Mapping(m) => Some(m),
            _ => None,
        }
    }

    /// The value as YAML text (empty when it cannot be rendered).
    pub(crate) fn to_text(&self) -> String {
        serde_saphyr::to_string(self).unwrap_or_default()
    }
}

/// `value["key"]`: the value under `key`, or null.
impl std::ops::Index<&str> for Yaml {
    type Output = Yaml;
    fn index(&self, key: &str) -> &Yaml {
        self.get(key).unwrap_or(&Yaml::Null)
    }
}

/// `value[n]`: the n-th item of a sequence, or null.
impl std::ops::Index<usize> for Yaml {
    type Output = Yaml;
    fn index(&self, n: usize) -> &Yaml {
        self.as_sequence()
            .and_then(|s| s.get(n))
            .unwrap_or(&Yaml::Null)
    }
}

/// One YAML document.
pub fn parse<T: de::DeserializeOwned>(text: &str) -> Result<T, serde_saphyr::Error> {
    serde_saphyr::from_str(text)
}

/// The documents of a multi-document YAML stream (`helm get manifest`); empty documents are
/// skipped, and a stream that is not YAML has none.
pub(crate) fn documents(text: &str) -> Vec<Yaml> {
    serde_saphyr::from_multiple::<Yaml>(text)
        .unwrap_or_default()
        .into_iter()
        .filter(|d| *d != Yaml::Null)
        .collect()
}

impl<'de> Deserialize<'de> for Yaml {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Yaml;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a YAML value")
            }
            fn visit_unit<E>(self) -> Result<Yaml, E> {
                Ok(Yaml::Null)
            }
            fn visit_none<E>(self) -> Result<Yaml, E> {
                Ok(Yaml::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Yaml, D::Error> {
                Yaml::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Yaml, E> {
                Ok(Yaml::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Yaml, E> {
                Ok(Yaml::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Yaml, E> {
                Ok(Yaml::UInt(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Yaml, E> {
                Ok(Yaml::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Yaml, E> {
                Ok(Yaml::String(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Yaml, E> {
                Ok(Yaml::String(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Yaml, A::Error> {
                let mut out = Vec::new();
                while let Some(x) = a.next_element()? {
                    out.push(x);
                }
                Ok(Yaml::Sequence(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Yaml, A::Error> {
                // Keys are read as strings: `on:` is the key "on", not a YAML 1.1 boolean.
                let mut out = IndexMap::new();
                while let Some((k, v)) = a.next_entry::<String, Yaml>()? {
                    out.insert(k, v);
                }
                Ok(Yaml::Mapping(out))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Yaml {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Yaml::Null => s.serialize_unit(),
            Yaml::Bool(b) => s.serialize_bool(*b),
            Yaml::Int(i) => s.serialize_i64(*i),
            Yaml::UInt(u) => s.serialize_u64(*u),
            Yaml::Float(f) => s.serialize_f64(*f),
            Yaml::String(x) => s.serialize_str(x),
            Yaml::Sequence(v) => v.serialize(s),
            Yaml::Mapping(m) => m.serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_keep_their_order_and_skip_empty_ones() {
        let docs = documents(
            "---\n# Source: a\nkind: Deployment\nmetadata:\n  name: app\n  labels: {z: \"1\", a: \"2\"}\n---\n# only a comment\n---\nkind: X\non: true\n",
        );
        assert_eq!(docs.len(), 2);
        assert_eq!(
            docs[0].get("kind").and_then(Yaml::as_str),
            Some("Deployment")
        );
        let labels: Vec<&str> = docs[0]
            .get("metadata")
            .and_then(|m| m.get("labels"))
            .and_then(Yaml::as_mapping)
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(labels, ["z", "a"]);
        assert_eq!(docs[1].get("on"), Some(&Yaml::Bool(true)));
        assert!(documents("a: [\n").is_empty());
    }

    #[test]
    fn values_render_back_as_yaml() {
        let doc: Yaml = parse("a:\n- name: x\n  image: \"r:1\"\nb: '8080'\n").unwrap();
        assert_eq!(doc.to_text(), "a:\n- name: x\n  image: r:1\nb: \"8080\"\n");
    }
}
