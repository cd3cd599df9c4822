//! The plan as a reviewer reads it: the headline ("3 changed, 1 added, 0 removed in prod"), the
//! resolved plan (environment, version, images and digests, whether approval is needed) and the
//! diff folded per object, as one markdown document for the job summary, the pull-request
//! comment (within GitHub's size limit) and the `plan_markdown_path` file.

use std::fmt::Write as _;

use crate::diff::ManifestDiff;

/// One image the plan deploys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedImage {
    pub(crate) key: String,
    pub(crate) reference: String,
    pub(crate) digest: Option<String>,
    /// The `--set-string` pairs it becomes in the chart's shape.
    pub(crate) values: Vec<(String, String)>,
}

/// What the plan resolved to, beside the diff.
#[derive(Debug, Clone, Default)]
pub(crate) struct Resolved {
    pub(crate) environment: String,
    pub(crate) version: String,
    pub(crate) release: String,
    pub(crate) namespace: String,
    pub(crate) images: Vec<PlannedImage>,
    /// A protected environment: the deploy needs an approval.
    pub(crate) protected: bool,
    /// The environment's deploy window and whether it is open now (None: it has none).
    pub(crate) window: Option<String>,
    /// The revision the diff is against (None: not deployed yet).
    pub(crate) live_revision: Option<u32>,
    pub(crate) run_url: Option<String>,
}

/// Objects the plan changes, adds or removes.
pub(crate) fn changes(d: &ManifestDiff) -> usize {
    d.changed.len() + d.added.len() + d.removed.len()
}

/// `3 changed, 1 added, 0 removed in prod` (`; 1 object edited by hand` when there is drift).
pub(crate) fn headline(d: &ManifestDiff, environment: &str) -> String {
    let drift = match d.drift.len() {
        0 => String::new(),
        1 => "; 1 object edited by hand".to_string(),
        n => format!("; {n} objects edited by hand"),
    };
    format!(
        "{} changed, {} added, {} removed in {environment}{drift}",
        d.changed.len(),
        d.added.len(),
        d.removed.len()
    )
}

/// The document, at most about `limit` characters: objects that do not fit are named in one
/// line that points to the job summary.
pub(crate) fn markdown(plan: &Resolved, d: &ManifestDiff, limit: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### trader-deploy plan: {}\n",
        headline(d, &cell(&plan.environment))
    );
    s.push_str("| | |\n|---|---|\n");
    let mut row = |k: &str, v: String| {
        let _ = writeln!(s, "| {k} | {v} |");
    };
    row(
        "Environment",
        format!(
            "`{}`{}",
            cell(&plan.environment),
            if plan.protected { " (protected)" } else { "" }
        ),
    );
    row("Version", format!("`{}`", cell(&plan.version)));
    row(
        "Release",
        format!(
            "`{}` in `{}`, {}",
            cell(&plan.release),
            cell(&plan.namespace),
            match plan.live_revision {
                Some(r) => format!("diffed against the live objects of revision {r}"),
                None => "not deployed yet".to_string(),
            }
        ),
    );
    let images = if plan.images.is_empty() {
        "–".to_string()
    } else {
        plan.images
            .iter()
            .map(|i| match &i.digest {
                Some(d) => format!("{}: `{}` (`{}`)", cell(&i.key), cell(&i.reference), cell(d)),
                None => format!("{}: `{}`", cell(&i.key), cell(&i.reference)),
            })
            .collect::<Vec<_>>()
            .join("<br>")
    };
    row("Images", images);
    row(
        "Approval",
        if plan.protected {
            format!(
                "needed: a required reviewer of `{}` approves the deploy's run",
                cell(&plan.environment)
            )
        } else {
            "not needed".to_string()
        },
    );
    row(
        "Deploy window",
        match &plan.window {
            Some(w) => cell(w),
            None => "none".to_string(),
        },
    );
    row("Unchanged objects", d.unchanged.to_string());
    if let Some(u) = &plan.run_url {
        row("Run", format!("[log]({u})"));
    }
    if !d.drift.is_empty() {
        s.push_str("\n**Drift**: edited by hand on the live objects, outside the release (a change below on the same field is the deploy putting it back):\n\n");
        for (k, fields) in &d.drift {
            let _ = writeln!(s, "- `{}`: {}", cell(k), cell(&fields.join(", ")));
        }
    }
    if d.is_empty() {
        s.push_str("\nNo changes: what would be applied matches the live objects.\n");
        return s;
    }
    s.push('\n');
    for k in &d.added {
        let _ = writeln!(s, "- added `{}`", cell(k));
    }
    for k in &d.removed {
        let _ = writeln!(s, "- removed `{}`", cell(k));
    }
    let mut left = d.changed.len();
    for (k, text) in &d.changed {
        let fence = fence(text);
        let section = format!(
            "\n<details><summary>changed <code>{}</code></summary>\n\n{fence}diff\n{}{}{fence}\n\n</details>\n",
            html(k),
            text,
            if text.ends_with('\n') { "" } else { "\n" }
        );
        // Room for the closing line.
        if s.len() + section.len() + 200 > limit {
            break;
        }
        s.push_str(&section);
        left -= 1;
    }
    if left > 0 {
        let _ = writeln!(
            s,
            "\n{left} more changed object(s) do not fit here: the job summary of the run has the whole diff."
        );
    }
    s
}

/// A code fence longer than any run of backticks in `text`.
fn fence(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

/// A table cell: no pipes or newlines.
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
        .replace("\r\n", " ")
        .replace('\n', " ")
}

/// Text inside HTML.
fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Resolved {
        Resolved {
            environment: "prod".into(),
            version: "v1.2.0".into(),
            release: "traderadmin".into(),
            namespace: "trader".into(),
            images: vec![PlannedImage {
                key: "image.pythonOrch".into(),
                reference: "ghcr.io/acme/python-orch@sha256:ab".into(),
                digest: Some("sha256:ab".into()),
                values: vec![],
            }],
            protected: true,
            window: Some("Mon-Fri 08:00-16:00 Europe/London: open now".into()),
            live_revision: Some(4),
            run_url: Some("https://github.com/acme/trader/actions/runs/1/attempts/1".into()),
        }
    }

    fn diff() -> ManifestDiff {
        ManifestDiff {
            added: vec!["Service trader/x".into()],
            removed: vec![],
            changed: vec![
                (
                    "Deployment trader/a".into(),
                    "-  image: a:1\n+  image: a:2\n".into(),
                ),
                ("Deployment trader/b".into(), "```\n-x\n+y\n".into()),
            ],
            unchanged: 9,
            drift: vec![(
                "Deployment trader/a".into(),
                vec!["metadata.annotations.team by kubectl-annotate".into()],
            )],
        }
    }

    #[test]
    fn headline_table_and_folded_objects() {
        let d = diff();
        assert_eq!(changes(&d), 3);
        assert_eq!(
            headline(&d, "prod"),
            "2 changed, 1 added, 0 removed in prod; 1 object edited by hand"
        );
        let md = markdown(&plan(), &d, usize::MAX);
        assert!(
            md.contains("- `Deployment trader/a`: metadata.annotations.team by kubectl-annotate\n"),
            "{md}"
        );
        assert!(
            md.starts_with("### trader-deploy plan: 2 changed, 1 added, 0 removed in prod; 1 object edited by hand\n"),
            "{md}"
        );
        assert!(
            md.contains("| Environment | `prod` (protected) |\n"),
            "{md}"
        );
        assert!(md.contains("| Version | `v1.2.0` |\n"), "{md}");
        assert!(
            md.contains("diffed against the live objects of revision 4"),
            "{md}"
        );
        assert!(
            md.contains("image.pythonOrch: `ghcr.io/acme/python-orch@sha256:ab` (`sha256:ab`)"),
            "{md}"
        );
        assert!(md.contains("| Approval | needed: "), "{md}");
        assert!(
            md.contains("| Deploy window | Mon-Fri 08:00-16:00 Europe/London: open now |"),
            "{md}"
        );
        assert!(md.contains("- added `Service trader/x`\n"), "{md}");
        assert!(md.contains("<details><summary>changed <code>Deployment trader/a</code></summary>\n\n```diff\n-  image: a:1\n+  image: a:2\n```\n"), "{md}");
        // A diff holding a fence gets a longer one.
        assert!(md.contains("````diff\n```\n-x\n+y\n````\n"), "{md}");
    }

    #[test]
    fn a_diff_too_long_for_the_limit_names_what_is_left() {
        let md = markdown(&plan(), &diff(), 900);
        assert!(md.len() <= 900 + 120, "{}", md.len());
        assert!(
            md.contains("more changed object(s) do not fit here"),
            "{md}"
        );
    }

    #[test]
    fn no_changes_says_so() {
        let d = ManifestDiff {
            unchanged: 12,
            ..ManifestDiff::default()
        };
        let md = markdown(&Resolved::default(), &d, usize::MAX);
        assert!(
            md.contains("plan: 0 changed, 0 added, 0 removed in"),
            "{md}"
        );
        assert!(md.contains("No changes"), "{md}");
        assert!(md.contains("| Approval | not needed |"), "{md}");
        assert!(md.contains("not deployed yet"), "{md}");
    }
}
