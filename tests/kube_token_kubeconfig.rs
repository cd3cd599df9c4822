//! A kubeconfig whose user runs an exec credential plugin that `kube-token` does not answer
//! stops the run with one line before anything reaches the cluster (issue #15); one it answers
//! goes on to connect.

use std::net::TcpListener;
use std::process::Command;

fn kubeconfig(server: &str, command: &str, args: &[&str]) -> String {
    format!(
        r#"apiVersion: v1
kind: Config
current-context: prod
clusters:
- name: prod
  cluster: {{server: "{server}"}}
contexts:
- name: prod
  context: {{cluster: prod, user: deployer, namespace: trader}}
users:
- name: deployer
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: {command}
      args: {args:?}
      interactiveMode: Never
"#
    )
}

/// Runs a plan (a mode that reaches the cluster) with `kc`, outside Actions.
fn plan(kc: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, kc).unwrap();
    std::fs::write(
        dir.path().join("Chart.yaml"),
        "apiVersion: v2\nname: app\nversion: 0.1.0\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_trader-deploy"))
        .args(["plan", "--environment", "dev", "--version", "v1.0.0"])
        .args([
            "--verify-images",
            "false",
            "--chart",
            dir.path().to_str().unwrap(),
        ])
        .arg("--kubeconfig")
        .arg(format!("@{}", path.display()))
        .env_remove("GITHUB_ACTIONS")
        .env("HOME", dir.path())
        .current_dir(dir.path())
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn an_unsupported_exec_plugin_stops_the_run_in_one_line_before_the_cluster() {
    let apiserver = TcpListener::bind("127.0.0.1:0").unwrap();
    apiserver.set_nonblocking(true).unwrap();
    let server = format!("https://{}", apiserver.local_addr().unwrap());
    for (command, args, shown) in [
        (
            "kubectl",
            &["oidc-login", "get-token"][..],
            "`kubectl oidc-login get-token`",
        ),
        (
            "kubelogin",
            &["get-token", "--login", "devicecode"][..],
            "`kubelogin get-token --login devicecode`",
        ),
        (
            "/usr/local/bin/aws",
            &["eks", "describe-cluster", "--name", "prod"][..],
            "`/usr/local/bin/aws eks describe-cluster --name prod`",
        ),
    ] {
        let (code, out) = plan(&kubeconfig(&server, command, args));
        assert_eq!(code, Some(1), "{out}");
        let lines: Vec<&str> = out
            .lines()
            .filter(|l| l.contains("exec credential"))
            .collect();
        assert_eq!(lines.len(), 1, "{out}");
        assert!(
            lines[0].contains(&format!(
                "input `kubeconfig`: the exec credential plugin {shown} is not supported \
                 (supported: `aws eks get-token`, `aws-iam-authenticator token`, \
                 `gke-gcloud-auth-plugin`, `kubelogin get-token --login spn|workloadidentity`); \
                 give a kubeconfig with a token instead"
            )),
            "{out}"
        );
        assert!(
            matches!(apiserver.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "something reached the cluster"
        );
    }
}

#[test]
fn a_supported_exec_plugin_passes_the_inputs() {
    let apiserver = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = format!("https://{}", apiserver.local_addr().unwrap());
    drop(apiserver); // nothing listens: the run fails connecting, past the inputs
    let (code, out) = plan(&kubeconfig(
        &server,
        "aws",
        &["eks", "get-token", "--cluster-name", "prod"],
    ));
    assert_eq!(code, Some(1), "{out}");
    assert!(!out.contains("Invalid input"), "{out}");
    assert!(!out.contains("is not supported"), "{out}");
}
