//! What helm records of a release: its revisions (`helm history`) and the release JSON of
//! `helm status`/`helm upgrade`, parsed; which revision is the latest, the deployed one, the
//! previous good one, and how old one is.

use std::time::Duration;

/// One entry of `helm history -o json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct Revision {
    pub revision: u32,
    #[serde(default)]
    pub updated: String,
    pub status: String,
    #[serde(default)]
    pub chart: String,
    #[serde(default)]
    pub app_version: String,
    #[serde(default)]
    pub description: String,
}

impl Revision {
    pub fn is_deployed(&self) -> bool {
        self.status == "deployed"
    }
    pub fn is_pending(&self) -> bool {
        self.status.starts_with("pending-")
    }
}

/// How long ago a revision was last written, from its `updated` time (`None` when helm's time
/// cannot be read).
pub fn age(r: &Revision) -> Option<Duration> {
    let t: k8s_openapi::jiff::Timestamp = r.updated.trim().parse().ok()?;
    let secs = k8s_openapi::jiff::Timestamp::now()
        .duration_since(t)
        .as_secs_f64();
    Some(Duration::from_secs_f64(secs.max(0.0)))
}

/// The release's newest revision.
pub fn latest(history: &[Revision]) -> Option<&Revision> {
    history.iter().max_by_key(|r| r.revision)
}

/// The newest revision whose status is `deployed` (there is at most one in a healthy history,
/// but a killed run can leave others superseded; the newest wins).
pub fn last_deployed(history: &[Revision]) -> Option<&Revision> {
    history
        .iter()
        .filter(|r| r.is_deployed())
        .max_by_key(|r| r.revision)
}

/// The revision to return to when the newest one is bad: the newest good revision before
/// `current`, where good means `deployed` now or `superseded` (it was deployed once and was
/// replaced by an upgrade). Failed, pending and uninstalled revisions are never chosen.
pub fn previous_good(history: &[Revision], current: u32) -> Option<&Revision> {
    history
        .iter()
        .filter(|r| r.revision < current && (r.is_deployed() || r.status == "superseded"))
        .max_by_key(|r| r.revision)
}

/// The description an upgrade by this action gives its revision: the version it deploys.
pub fn version_description(version: &str) -> String {
    format!("{VERSION_PREFIX}{version}")
}

const VERSION_PREFIX: &str = "trader-deploy: version ";

/// The version `revision` runs, from the descriptions: an upgrade by this action names it; a
/// rollback (`Rollback to N`, helm's own description) runs what revision N ran. `None` when the
/// history cannot tell (a revision made by another tool, or one trimmed from the history).
pub fn version_of(history: &[Revision], revision: u32) -> Option<String> {
    let r = history.iter().find(|r| r.revision == revision)?;
    if let Some(v) = r.description.strip_prefix(VERSION_PREFIX) {
        return Some(v.trim().to_string());
    }
    let to: u32 = r
        .description
        .strip_prefix("Rollback to ")?
        .trim()
        .parse()
        .ok()?;
    // A rollback always goes to an older revision: the recursion ends.
    if to >= revision {
        return None;
    }
    version_of(history, to)
}

/// A release as `helm status/upgrade -o json` describe it (its values are never read: they may
/// hold secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub revision: u32,
    pub status: String,
    pub manifest: Option<String>,
}

/// Parses the release JSON of `helm status -o json` / `helm upgrade -o json` (helm 3 and 4).
pub fn parse_release(json: &str) -> Result<Release, String> {
    let v: serde_json::Value = serde_json::from_str(json.trim()).map_err(|e| e.to_string())?;
    let status = v["info"]["status"].as_str();
    let revision = v["version"].as_u64();
    match (status, revision) {
        (Some(s), Some(n)) => Ok(Release {
            revision: n as u32,
            status: s.to_string(),
            manifest: v["manifest"].as_str().map(str::to_string),
        }),
        _ => Err("no info.status or version in the release JSON".into()),
    }
}

/// Parses `helm history -o json` (helm 3 and 4 write the same fields).
pub fn parse_history(json: &str) -> Result<Vec<Revision>, String> {
    let json = json.trim();
    if json.is_empty() || json == "null" {
        return Ok(Vec::new());
    }
    serde_json::from_str(json).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_json() {
        let r = parse_release(
            r#"{"name":"x","info":{"status":"deployed"},"config":{"password":"p"},
                "manifest":"---\nkind: Deployment\n","version":7,"namespace":"n"}"#,
        )
        .unwrap();
        assert_eq!(r.revision, 7);
        assert_eq!(r.status, "deployed");
        assert_eq!(r.manifest.as_deref(), Some("---\nkind: Deployment\n"));
        assert!(parse_release("{}").is_err());
        assert!(parse_release("Release has been upgraded").is_err());
    }

    const HISTORY: &str = r#"[
      {"revision":1,"updated":"2026-11-22T10:00:00Z","status":"superseded","chart":"testapp-0.1.0","app_version":"1.0","description":"Install complete"},
      {"revision":2,"updated":"2026-11-22T10:05:00Z","status":"superseded","chart":"testapp-0.1.0","app_version":"1.0","description":"Upgrade complete"},
      {"revision":3,"updated":"2026-11-22T10:10:00Z","status":"failed","chart":"testapp-0.1.0","app_version":"1.0","description":"Upgrade failed"},
      {"revision":4,"updated":"2026-11-22T10:15:00Z","status":"deployed","chart":"testapp-0.1.0","app_version":"1.0","description":"Rollback to 2"},
      {"revision":5,"updated":"2026-11-22T10:20:00Z","status":"pending-upgrade","chart":"testapp-0.1.0","app_version":"1.0","description":"Preparing upgrade"}
    ]"#;

    #[test]
    fn revision_age_from_helms_time() {
        let mut r = Revision {
            revision: 2,
            updated: "2020-01-01T10:00:00.123456789+02:00".into(),
            status: "pending-upgrade".into(),
            chart: String::new(),
            app_version: String::new(),
            description: String::new(),
        };
        assert!(age(&r).unwrap() > Duration::from_secs(365 * 24 * 3600));
        r.updated = k8s_openapi::jiff::Timestamp::now().to_string();
        assert!(age(&r).unwrap() < Duration::from_secs(60));
        r.updated = "yesterday".into();
        assert_eq!(age(&r), None);
    }

    #[test]
    fn history_selection() {
        let h = parse_history(HISTORY).unwrap();
        assert_eq!(latest(&h).unwrap().revision, 5);
        assert!(latest(&h).unwrap().is_pending());
        assert_eq!(last_deployed(&h).unwrap().revision, 4);
        // Before 4, the newest good one is 2 (3 failed).
        assert_eq!(previous_good(&h, 4).unwrap().revision, 2);
        assert_eq!(previous_good(&h, 2).unwrap().revision, 1);
        assert!(previous_good(&h, 1).is_none());
        assert!(parse_history("").unwrap().is_empty());
        assert!(parse_history("[]").unwrap().is_empty());
        assert!(parse_history("{").is_err());
    }
}
