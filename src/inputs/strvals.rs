//! helm's `--set` syntax, read the way helm reads it (its `strvals` parser): which value paths
//! one `key=value` entry sets, so that a `set` entry cannot override a key `images` resolved
//! (issue #17, finding 4). helm splits an entry on commas (`a=x,image.tag=evil` sets two keys),
//! keys on dots, reads `name[n]` as a list index, takes `{a,b}` as one list value, and a
//! backslash makes the next character literal (`a\.b` is one key, `x\,y` one value).

use std::fmt;

/// One step of a value path: a map key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    Name(String),
    Index(usize),
}

/// A value path, e.g. `image.tags[0]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyPath(pub(crate) Vec<Segment>);

impl KeyPath {
    /// True when setting one of the two paths replaces (part of) the other: the same key, a
    /// parent map of it, or a key inside its subtree.
    pub(crate) fn overlaps(&self, other: &KeyPath) -> bool {
        let n = self.0.len().min(other.0.len());
        n > 0 && self.0[..n] == other.0[..n]
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Segment::Name(n) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    // Written back in helm's syntax: special characters escaped.
                    for c in n.chars() {
                        if matches!(c, '.' | '[' | ',' | '=' | '\\') {
                            f.write_str("\\")?;
                        }
                        write!(f, "{c}")?;
                    }
                }
                Segment::Index(x) => write!(f, "[{x}]")?,
            }
        }
        Ok(())
    }
}

/// The paths one `--set` argument sets, in order, as helm parses it. An error says what helm
/// would refuse (helm's own message would come only after the cluster was touched).
pub(crate) fn set_paths(entry: &str) -> Result<Vec<KeyPath>, String> {
    let mut chars = entry.chars().peekable();
    let mut out = Vec::new();
    while chars.peek().is_some() {
        let mut path = Vec::new();
        let mut name = String::new();
        loop {
            match chars.next() {
                None => {
                    // `a` or `a.b` with no `=`: helm sets it to "" and fails; it is still a key.
                    path.push(Segment::Name(std::mem::take(&mut name)));
                    out.push(KeyPath(path));
                    return Ok(out);
                }
                Some('\\') => match chars.next() {
                    Some(c) => name.push(c),
                    None => return Err("ends with a lone backslash".into()),
                },
                Some('.') => path.push(Segment::Name(std::mem::take(&mut name))),
                Some('[') => {
                    if !name.is_empty() || path.is_empty() {
                        path.push(Segment::Name(std::mem::take(&mut name)));
                    }
                    let mut digits = String::new();
                    loop {
                        match chars.next() {
                            Some(']') => break,
                            Some(c) => digits.push(c),
                            None => return Err(format!("list index [{digits} is not closed")),
                        }
                    }
                    let index = digits
                        .parse::<usize>()
                        .map_err(|_| format!("list index [{digits}] is not a number"))?;
                    path.push(Segment::Index(index));
                    // After `]`: `.`, `[`, `=` (or `,`/end, which helm refuses as no value).
                    match chars.peek() {
                        Some('.') => {
                            chars.next();
                        }
                        Some('[' | '=' | ',') | None => {}
                        Some(c) => {
                            return Err(format!("unexpected {c:?} after list index [{index}]"));
                        }
                    }
                }
                Some(',') => {
                    path.push(Segment::Name(std::mem::take(&mut name)));
                    out.push(KeyPath(path));
                    break;
                }
                Some('=') => {
                    if !name.is_empty() || !matches!(path.last(), Some(Segment::Index(_))) {
                        path.push(Segment::Name(std::mem::take(&mut name)));
                    }
                    out.push(KeyPath(path));
                    skip_value(&mut chars)?;
                    break;
                }
                Some(c) => name.push(c),
            }
        }
    }
    Ok(out)
}

/// Consumes one value and the comma after it: `{a,b}` (a list) or text up to an unescaped comma.
fn skip_value(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<(), String> {
    if chars.peek() == Some(&'{') {
        chars.next();
        loop {
            match chars.next() {
                Some('\\') => {
                    chars.next();
                }
                Some('}') => break,
                Some(_) => {}
                None => return Err("a list value {… is not closed".into()),
            }
        }
        return match chars.next() {
            None | Some(',') => Ok(()),
            Some(c) => Err(format!("unexpected {c:?} after a list value {{…}}")),
        };
    }
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            ',' => break,
            _ => {}
        }
    }
    Ok(())
}

/// The path of an `images` key (plain `a.b[0].c`; `images` keys have no escapes).
pub(crate) fn key_path(key: &str) -> KeyPath {
    match set_paths(key) {
        Ok(mut p) if p.len() == 1 => p.remove(0),
        _ => KeyPath(
            key.split('.')
                .map(|s| Segment::Name(s.to_string()))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn shown(entry: &str) -> Vec<String> {
        set_paths(entry)
            .unwrap()
            .iter()
            .map(|p| p.to_string())
            .collect()
    }

    #[test]
    fn entries_split_as_helm_splits_them() {
        assert_eq!(shown("a=x"), ["a"]);
        assert_eq!(shown("a=x,image.tag=evil"), ["a", "image.tag"]);
        assert_eq!(shown("a=x\\,image.tag=evil"), ["a"]);
        assert_eq!(shown("a\\.b=x"), ["a\\.b"]);
        assert_eq!(shown("a\\.b=x").len(), 1);
        assert_eq!(
            shown("list={a,image.tag=b},image.tag=c"),
            ["list", "image.tag"]
        );
        assert_eq!(shown("a[0].b=x,c[1][2]=y"), ["a[0].b", "c[1][2]"]);
        assert_eq!(shown("a=,b=x"), ["a", "b"]);
        assert_eq!(shown("a=x,b"), ["a", "b"]);
        assert_eq!(shown("a=x=y,b=z"), ["a", "b"]);
        assert!(set_paths("a[x]=1").is_err());
        assert!(set_paths("a[0=1").is_err());
        assert!(set_paths("a={x").is_err());
        assert!(set_paths("a\\").is_err());
    }

    #[test]
    fn overlap_is_the_key_its_parents_and_its_subtree() {
        let image = key_path("image.tag");
        let hit = |e: &str| set_paths(e).unwrap().iter().any(|p| p.overlaps(&image));
        assert!(hit("image.tag=x"));
        assert!(hit("image=x"));
        assert!(hit("image.tag.x=y"));
        assert!(hit("a=1,image.tag=evil"));
        assert!(!hit("image.repository=x"));
        assert!(!hit("image\\.tag=x"));
        assert!(!hit("imagetag=x"));
        assert!(!hit("a=image.tag"));
        assert!(!hit("a=x\\,image.tag=evil"));
        let listed = key_path("images[1].ref");
        let hit = |e: &str| set_paths(e).unwrap().iter().any(|p| p.overlaps(&listed));
        assert!(hit("images[1]=x"));
        assert!(hit("images=x"));
        assert!(hit("images[1].ref=x"));
        assert!(!hit("images[0].ref=x"));
    }

    fn name() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9_.,=\\[\\]\\\\{}-]{1,8}"
    }

    fn path() -> impl Strategy<Value = KeyPath> {
        prop::collection::vec(
            prop_oneof![
                3 => name().prop_map(Segment::Name),
                1 => (0usize..20).prop_map(Segment::Index),
            ],
            1..5,
        )
        .prop_filter("starts with a name", |p| {
            matches!(p.first(), Some(Segment::Name(_)))
        })
        .prop_map(KeyPath)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever the entry, the parser answers without panicking.
        #[test]
        fn never_panics(entry in "\\PC{0,40}") {
            let _ = set_paths(&entry);
        }

        /// A path written in helm's syntax reads back as itself, whatever value and whatever
        /// other entries follow it: no value can smuggle in or hide a key.
        #[test]
        fn paths_round_trip(paths in prop::collection::vec(path(), 1..4),
                            values in prop::collection::vec("[a-z,=.\\\\]{0,6}", 4)) {
            let entry = paths
                .iter()
                .zip(&values)
                .map(|(p, v)| format!("{p}={}", escape_value(v)))
                .collect::<Vec<_>>()
                .join(",");
            prop_assert_eq!(set_paths(&entry).unwrap(), paths);
        }
    }

    fn escape_value(v: &str) -> String {
        let mut s = String::new();
        for c in v.chars() {
            if matches!(c, ',' | '\\') {
                s.push('\\');
            }
            s.push(c);
        }
        s
    }
}
