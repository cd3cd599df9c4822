//! JSON shapes of the GitHub REST objects the stand-in serves (users, repositories, environments,
//! workflow runs, commits, deployments, statuses, errors), complete enough to pass the schemas of
//! GitHub's OpenAPI description that Prism checks them against. Also small helpers: RFC 3339
//! timestamps without a date crate, and percent-encoding for URL path segments.

use serde_json::{Map, Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

/// The two URL roots every object's links are built from.
#[derive(Clone, Debug)]
pub struct Urls {
    /// REST root as the client sees it, e.g. `http://127.0.0.1:45010` (Prism) or `https://api.github.com`.
    pub api: String,
    /// Web root, e.g. `https://github.com`.
    pub web: String,
}

impl Urls {
    /// `{api}/repos/{owner}/{repo}`.
    pub fn repo_api(&self, owner: &str, repo: &str) -> String {
        format!("{}/repos/{}/{}", self.api, enc(owner), enc(repo))
    }
    /// `{web}/{owner}/{repo}`.
    pub fn repo_web(&self, owner: &str, repo: &str) -> String {
        format!("{}/{}/{}", self.web, enc(owner), enc(repo))
    }
}

/// Percent-encodes everything outside RFC 3986's unreserved set (for one path segment or query value).
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (and `+` as space when `plus` is set, for query strings).
pub fn dec(s: &str, plus: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' if plus => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// RFC 3339 UTC timestamp (`2024-05-01T12:00:00Z`) for a time.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    rfc3339_secs(secs)
}

/// RFC 3339 UTC timestamp for seconds since the epoch.
pub fn rfc3339_secs(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Fixed creation time for fixture objects (repository, environments): 2024-01-02T03:04:05Z.
pub const FIXTURE_EPOCH: i64 = 1_704_164_645;

/// A stable fake user id for a login not listed in the fixture.
pub fn derived_user_id(login: &str) -> i64 {
    let mut h: u64 = 1_469_598_103_934_665_603;
    for b in login.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(1_099_511_628_211);
    }
    10_000_000 + (h % 80_000_000) as i64
}

/// `simple-user` (also used for organisations as repository owners, with `kind` = "Organization").
pub fn user(u: &Urls, login: &str, id: i64, kind: &str) -> Value {
    let api = format!("{}/users/{}", u.api, enc(login));
    json!({
        "login": login,
        "id": id,
        "node_id": format!("U_kgDO{id:08}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        "gravatar_id": "",
        "url": api,
        "html_url": format!("{}/{}", u.web, enc(login)),
        "followers_url": format!("{api}/followers"),
        "following_url": format!("{api}/following{{/other_user}}"),
        "gists_url": format!("{api}/gists{{/gist_id}}"),
        "starred_url": format!("{api}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{api}/subscriptions"),
        "organizations_url": format!("{api}/orgs"),
        "repos_url": format!("{api}/repos"),
        "events_url": format!("{api}/events{{/privacy}}"),
        "received_events_url": format!("{api}/received_events"),
        "type": kind,
        "user_view_type": "public",
        "site_admin": false
    })
}

/// The user kind GitHub gives a login: `Bot` for `name[bot]`, else `User`.
pub fn user_kind(login: &str) -> &'static str {
    if login.ends_with("[bot]") {
        "Bot"
    } else {
        "User"
    }
}

/// What a repository object is built from.
pub struct RepoInfo<'a> {
    pub id: i64,
    pub owner: &'a str,
    pub owner_id: i64,
    pub owner_type: &'a str,
    pub name: &'a str,
    pub private: bool,
    pub description: Option<&'a str>,
    pub default_branch: &'a str,
}

/// `minimal-repository`: the fields every repository shape has.
pub fn repo_minimal(u: &Urls, r: &RepoInfo) -> Map<String, Value> {
    let api = u.repo_api(r.owner, r.name);
    let web = u.repo_web(r.owner, r.name);
    let mut m = Map::new();
    m.insert("id".into(), json!(r.id));
    m.insert("node_id".into(), json!(format!("R_kgDO{:08}", r.id)));
    m.insert("name".into(), json!(r.name));
    m.insert("full_name".into(), json!(format!("{}/{}", r.owner, r.name)));
    m.insert("owner".into(), user(u, r.owner, r.owner_id, r.owner_type));
    m.insert("private".into(), json!(r.private));
    m.insert("html_url".into(), json!(web));
    m.insert("description".into(), json!(r.description));
    m.insert("fork".into(), json!(false));
    m.insert("url".into(), json!(api));
    const LINKS: &[(&str, &str)] = &[
        ("archive_url", "/{archive_format}{/ref}"),
        ("assignees_url", "/assignees{/user}"),
        ("blobs_url", "/git/blobs{/sha}"),
        ("branches_url", "/branches{/branch}"),
        ("collaborators_url", "/collaborators{/collaborator}"),
        ("comments_url", "/comments{/number}"),
        ("commits_url", "/commits{/sha}"),
        ("compare_url", "/compare/{base}...{head}"),
        ("contents_url", "/contents/{+path}"),
        ("contributors_url", "/contributors"),
        ("deployments_url", "/deployments"),
        ("downloads_url", "/downloads"),
        ("events_url", "/events"),
        ("forks_url", "/forks"),
        ("git_commits_url", "/git/commits{/sha}"),
        ("git_refs_url", "/git/refs{/sha}"),
        ("git_tags_url", "/git/tags{/sha}"),
        ("hooks_url", "/hooks"),
        ("issue_comment_url", "/issues/comments{/number}"),
        ("issue_events_url", "/issues/events{/number}"),
        ("issues_url", "/issues{/number}"),
        ("keys_url", "/keys{/key_id}"),
        ("labels_url", "/labels{/name}"),
        ("languages_url", "/languages"),
        ("merges_url", "/merges"),
        ("milestones_url", "/milestones{/number}"),
        (
            "notifications_url",
            "/notifications{?since,all,participating}",
        ),
        ("pulls_url", "/pulls{/number}"),
        ("releases_url", "/releases{/id}"),
        ("stargazers_url", "/stargazers"),
        ("statuses_url", "/statuses/{sha}"),
        ("subscribers_url", "/subscribers"),
        ("subscription_url", "/subscription"),
        ("tags_url", "/tags"),
        ("teams_url", "/teams"),
        ("trees_url", "/git/trees{/sha}"),
    ];
    for (k, suffix) in LINKS {
        m.insert((*k).into(), json!(format!("{api}{suffix}")));
    }
    m
}

/// `full-repository`, as GET /repos/{owner}/{repo} answers.
pub fn repo_full(u: &Urls, r: &RepoInfo) -> Value {
    let mut m = repo_minimal(u, r);
    let host = u
        .web
        .split("://")
        .nth(1)
        .unwrap_or("github.com")
        .trim_end_matches('/');
    let web = u.repo_web(r.owner, r.name);
    let created = rfc3339_secs(FIXTURE_EPOCH);
    let extra = json!({
        "git_url": format!("git://{host}/{}/{}.git", r.owner, r.name),
        "ssh_url": format!("git@{host}:{}/{}.git", r.owner, r.name),
        "clone_url": format!("{web}.git"),
        "svn_url": web,
        "mirror_url": null,
        "homepage": null,
        "language": "Rust",
        "forks_count": 0,
        "forks": 0,
        "stargazers_count": 0,
        "watchers_count": 0,
        "watchers": 0,
        "size": 1024,
        "default_branch": r.default_branch,
        "open_issues_count": 0,
        "open_issues": 0,
        "is_template": false,
        "topics": [],
        "has_issues": true,
        "has_projects": false,
        "has_wiki": false,
        "has_pages": false,
        "has_downloads": true,
        "has_discussions": false,
        "archived": false,
        "disabled": false,
        "visibility": if r.private { "private" } else { "public" },
        "pushed_at": created,
        "created_at": created,
        "updated_at": created,
    });
    let extra2 = json!({
        "permissions": {"admin": false, "maintain": false, "push": true, "triage": true, "pull": true},
        "allow_rebase_merge": true,
        "allow_squash_merge": true,
        "allow_merge_commit": true,
        "allow_auto_merge": false,
        "delete_branch_on_merge": true,
        "allow_forking": false,
        "web_commit_signoff_required": false,
        "temp_clone_token": null,
        "license": null,
        "network_count": 0,
        "subscribers_count": 3
    });
    for e in [extra, extra2] {
        if let Value::Object(e) = e {
            m.extend(e);
        }
    }
    if r.owner_type == "Organization" {
        m.insert("organization".into(), m["owner"].clone());
    }
    Value::Object(m)
}

/// GitHub's `basic-error` body.
pub fn basic_error(message: &str, doc: &str, status: u16) -> Value {
    json!({"message": message, "documentation_url": doc, "status": status.to_string()})
}

/// GitHub's `validation-error` body (422).
pub fn validation_error(message: &str, doc: &str, errors: Vec<Value>) -> Value {
    let mut v = json!({"message": message, "documentation_url": doc, "status": "422"});
    if !errors.is_empty() {
        v["errors"] = Value::Array(errors);
    }
    v
}

/// A fake 40-hex tree id derived from a commit sha.
pub fn tree_of(sha: &str) -> String {
    sha.chars().rev().collect()
}

/// A `git-user` (author/committer inside a commit) for a login.
pub fn git_user(login: &str, id: i64, date: &str) -> Value {
    let clean: String = login
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    json!({"name": login, "email": format!("{id}+{clean}@users.noreply.github.com"), "date": date})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339_secs(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_secs(FIXTURE_EPOCH), "2024-01-02T03:04:05Z");
        assert_eq!(rfc3339_secs(1_709_164_800), "2024-02-29T00:00:00Z");
        assert_eq!(rfc3339_secs(1_735_689_599), "2024-12-31T23:59:59Z");
    }

    #[test]
    fn path_segments_round_trip() {
        assert_eq!(enc("github-actions[bot]"), "github-actions%5Bbot%5D");
        assert_eq!(enc("feature/x y"), "feature%2Fx%20y");
        assert_eq!(dec("feature%2Fx%20y", false), "feature/x y");
        assert_eq!(dec("a+b%", true), "a b%");
        assert_eq!(dec("%zz%4", false), "%zz%4");
    }
}
