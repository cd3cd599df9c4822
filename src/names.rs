//! Name validators shared by every module that checks a name: Kubernetes DNS labels, OCI image
//! tags, registry hosts in an image repository, Service port names. One copy of each rule.

/// An RFC 1123 label of at most `max` characters: lower-case letters, digits and `-`, not
/// starting or ending with `-` (namespaces and Services: 63; a helm release's parts: 53).
pub(crate) fn is_dns_label(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// An OCI image tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub(crate) fn is_image_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() || c == '_' => {}
        _ => return false,
    }
    tag.len() <= 128 && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The registry host of an image repository and the path after it, when the first component
/// names one (it has a `.` or a `:`, or is `localhost`, as docker reads it): `ghcr.io/acme/x` →
/// `("ghcr.io", "acme/x")`; `acme/x` and `x` (Docker Hub short names) → None.
pub(crate) fn split_registry_host(repository: &str) -> Option<(&str, &str)> {
    let (first, rest) = repository.split_once('/')?;
    (first.contains('.') || first.contains(':') || first == "localhost").then_some((first, rest))
}

/// A Service port name (IANA service name as Kubernetes checks it): 1-15 lower-case letters,
/// digits and `-`, at least one letter.
pub(crate) fn is_port_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && s.chars().any(|c| c.is_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        for ok in ["trader", "a", "a-1", &"a".repeat(63)] {
            assert!(is_dns_label(ok, 63), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a.b", "a_b", &"a".repeat(64)] {
            assert!(!is_dns_label(bad, 63), "{bad}");
        }
        assert!(!is_dns_label(&"a".repeat(54), 53));
    }

    #[test]
    fn image_tag_syntax() {
        assert!(is_image_tag("v1.2.0"));
        assert!(is_image_tag("sha-01234567"));
        assert!(is_image_tag("_x"));
        assert!(!is_image_tag(""));
        assert!(!is_image_tag(".x"));
        assert!(!is_image_tag("-x"));
        assert!(!is_image_tag("a:b"));
        assert!(!is_image_tag("a/b"));
        assert!(!is_image_tag(&"a".repeat(129)));
        assert!(is_image_tag(&"a".repeat(128)));
    }

    #[test]
    fn registry_hosts() {
        assert_eq!(
            split_registry_host("ghcr.io/acme/x"),
            Some(("ghcr.io", "acme/x"))
        );
        assert_eq!(
            split_registry_host("127.0.0.1:5000/x"),
            Some(("127.0.0.1:5000", "x"))
        );
        assert_eq!(
            split_registry_host("localhost/a/b"),
            Some(("localhost", "a/b"))
        );
        assert_eq!(split_registry_host("acme/x"), None);
        assert_eq!(split_registry_host("nginx"), None);
        assert_eq!(split_registry_host("ghcr.io"), None);
    }

    #[test]
    fn port_names() {
        assert!(is_port_name("http"));
        assert!(is_port_name("metrics-2"));
        assert!(!is_port_name("8080"));
        assert!(!is_port_name("Http"));
        assert!(!is_port_name(&"a".repeat(16)));
    }
}
