//! What a container action can see of the runner's disk: the four mounts GitHub's runner gives
//! a docker action, and the mapping of a host path (as an earlier step wrote it) onto them.
//!
//! The runner (actions/runner, `ContainerActionHandler`) mounts the workspace at
//! `/github/workspace` and three directories of its temp dir at `/github/home`,
//! `/github/workflow` and `/github/file_commands`, and rewrites every environment value that
//! *starts with* one of those host directories. A value it does not rewrite (the second entry of a
//! `KUBECONFIG` list, a path under `RUNNER_TEMP`) still names the host.

use std::path::{Component, Path, PathBuf};

/// Where the runner mounts the workspace inside a docker action.
pub(crate) const WORKSPACE: &str = "/github/workspace";
/// The four directories a docker action gets from the runner's disk.
pub(crate) const MOUNTS: [&str; 4] = [
    WORKSPACE,
    "/github/home",
    "/github/workflow",
    "/github/file_commands",
];

/// How this run sees the runner's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum View {
    /// On the host (the CLI, or an action run outside a container): paths are what they say.
    Host,
    /// Inside GitHub's docker action container. `host_workspace` is the workspace's path on the
    /// runner (`$RUNNER_WORKSPACE/<repository name>`, GitHub's default checkout path), when known.
    Container { host_workspace: Option<PathBuf> },
}

/// A path as this run can use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mapped {
    /// A path this process can open (it may still not exist).
    Visible(PathBuf),
    /// A host path that no mount covers: the container cannot see it.
    Outside(PathBuf),
}

impl View {
    /// Maps `path` (relative paths are relative to `workspace`) onto what this run can see.
    pub(crate) fn map(&self, path: &str, workspace: &Path) -> Mapped {
        let p = Path::new(path);
        if p.is_relative() {
            return Mapped::Visible(workspace.join(p));
        }
        let p = normalize(p);
        match self {
            View::Host => Mapped::Visible(p),
            View::Container { host_workspace } => {
                if MOUNTS.iter().any(|m| p.starts_with(m)) {
                    return Mapped::Visible(p);
                }
                if let Some(host) = host_workspace
                    && let Ok(rest) = p.strip_prefix(host)
                {
                    return Mapped::Visible(Path::new(WORKSPACE).join(rest));
                }
                Mapped::Outside(p)
            }
        }
    }
}

/// `a/./b/../c` → `a/c`, lexically (no file system access), so `..` cannot leave a mount unseen.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// Why a container action cannot read `path`, and what to do instead: one line.
pub(crate) fn outside_message(path: &Path) -> String {
    format!(
        "{} is not visible inside the action's container: GitHub's runner mounts only the \
         workspace ({WORKSPACE}), /github/home, /github/workflow and /github/file_commands into a \
         docker action (RUNNER_TEMP and the runner's home are not mounted); write the kubeconfig \
         under $GITHUB_WORKSPACE, or pass its content in the `kubeconfig` input",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container() -> View {
        View::Container {
            host_workspace: Some("/home/runner/work/app/app".into()),
        }
    }

    #[test]
    fn host_paths_are_taken_as_they_are() {
        let ws = Path::new("/ws");
        assert_eq!(
            View::Host.map("/tmp/kc", ws),
            Mapped::Visible("/tmp/kc".into())
        );
        assert_eq!(
            View::Host.map("kc.yaml", ws),
            Mapped::Visible("/ws/kc.yaml".into())
        );
    }

    #[test]
    fn container_maps_the_host_workspace_and_refuses_the_rest() {
        let ws = Path::new(WORKSPACE);
        let v = container();
        // Already translated by the runner, or one of the other mounts.
        assert_eq!(
            v.map("/github/workspace/kc", ws),
            Mapped::Visible("/github/workspace/kc".into())
        );
        assert_eq!(
            v.map("/github/home/.kube/config", ws),
            Mapped::Visible("/github/home/.kube/config".into())
        );
        // The host workspace path the runner did not rewrite (e.g. a list's second entry).
        assert_eq!(
            v.map("/home/runner/work/app/app/gha-kubeconfig-1", ws),
            Mapped::Visible("/github/workspace/gha-kubeconfig-1".into())
        );
        assert_eq!(
            v.map("deploy/kc", ws),
            Mapped::Visible("/github/workspace/deploy/kc".into())
        );
        // RUNNER_TEMP (azure/k8s-set-context) is not mounted.
        assert_eq!(
            v.map("/home/runner/work/_temp/kubeconfig_1.yaml", ws),
            Mapped::Outside("/home/runner/work/_temp/kubeconfig_1.yaml".into())
        );
        // `..` cannot climb out of a mount unseen, nor a lookalike prefix pass.
        assert_eq!(
            v.map("/github/workspace/../../etc/kc", ws),
            Mapped::Outside("/etc/kc".into())
        );
        assert_eq!(
            v.map("/github/workspace2/kc", ws),
            Mapped::Outside("/github/workspace2/kc".into())
        );
        assert_eq!(
            v.map("/home/runner/work/app/app2/kc", ws),
            Mapped::Outside("/home/runner/work/app/app2/kc".into())
        );
        let no_host = View::Container {
            host_workspace: None,
        };
        assert!(matches!(
            no_host.map("/home/runner/work/app/app/kc", ws),
            Mapped::Outside(_)
        ));
    }

    #[test]
    fn the_outside_message_says_which_path_why_and_what_to_do() {
        let m = outside_message(Path::new("/home/runner/work/_temp/kc"));
        assert!(!m.contains('\n'));
        for part in [
            "/home/runner/work/_temp/kc",
            "not visible inside the action's container",
            "/github/workspace",
            "$GITHUB_WORKSPACE",
            "`kubeconfig` input",
        ] {
            assert!(m.contains(part), "{part:?} missing from {m}");
        }
    }
}
