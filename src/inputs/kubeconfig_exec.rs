//! The exec credential plugin of the user the run connects as: one `kube-token` answers (the
//! connection then runs this binary in its place, src/kube_client.rs), or a one-line refusal
//! before anything touches the cluster: the image has no cloud CLI to run any other.

use super::kubeconfig_source::KubeconfigSource;
use super::{InputError, bad};
use crate::manifest::Yaml;

/// The command line of the exec plugin the chosen context's user runs, if it runs one: the
/// context is `context`, else the first current-context set; each name is looked up in the
/// documents in order, the first to define it winning (kubectl's merge).
pub(super) fn chosen_exec(docs: &[Yaml], context: Option<&str>) -> Option<(String, Vec<String>)> {
    let context = match context {
        Some(c) => c.to_string(),
        None => docs.iter().find_map(|d| {
            d.get("current-context")
                .and_then(Yaml::as_str)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
        })?,
    };
    let named = |list: &str, name: &str| -> Option<Yaml> {
        docs.iter().find_map(|d| {
            d.get(list)?
                .as_sequence()?
                .iter()
                .find(|e| e.get("name").and_then(Yaml::as_str) == Some(name))
                .cloned()
        })
    };
    let user = named("contexts", &context)?
        .get("context")?
        .get("user")?
        .as_str()?
        .to_string();
    let exec = named("users", &user)?.get("user")?.get("exec")?.clone();
    let command = exec.get("command")?.as_str()?.to_string();
    let args = exec
        .get("args")
        .and_then(Yaml::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    Some((command, args))
}

/// Refuses, naming `input`, a kubeconfig whose chosen user runs an exec plugin `kube-token` does
/// not answer.
pub(super) fn check_exec_plugin(
    source: &KubeconfigSource,
    context: Option<&str>,
    input: &'static str,
) -> Result<(), InputError> {
    let Some((command, args)) = chosen_exec(&source.documents(), context) else {
        return Ok(());
    };
    if crate::kube_token::recognise(&command, &args).is_some()
        || already_kube_token(&command, &args)
    {
        return Ok(());
    }
    let line = std::iter::once(command.as_str())
        .chain(args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    Err(bad(input, crate::kube_token::unsupported_line(&line)))
}

/// An entry that already runs `trader-deploy kube-token <a supported plugin>`.
fn already_kube_token(command: &str, args: &[String]) -> bool {
    std::path::Path::new(command).file_name() == Some(std::ffi::OsStr::new("trader-deploy"))
        && args.first().map(String::as_str) == Some(crate::cli::KUBE_TOKEN)
        && args
            .get(1)
            .is_some_and(|c| crate::kube_token::recognise(c, &args[2..]).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(texts: &[&str]) -> Vec<Yaml> {
        texts
            .iter()
            .map(|t| crate::manifest::parse(t).unwrap())
            .collect()
    }

    const KC: &str = r#"apiVersion: v1
kind: Config
current-context: eks
contexts:
- name: eks
  context: {cluster: prod, user: eks-user}
- name: gke
  context: {cluster: prod, user: gke-user}
- name: plain
  context: {cluster: prod, user: token-user}
clusters:
- name: prod
  cluster: {server: "https://k8s.example"}
users:
- name: eks-user
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: aws
      args: [--region, eu-west-1, eks, get-token, --cluster-name, prod]
- name: gke-user
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: kubelogin
      args: [get-token, --login, devicecode]
- name: token-user
  user: {token: abc}
"#;

    #[test]
    fn the_chosen_users_plugin_is_found_as_kubectl_merges() {
        let d = docs(&[KC]);
        let (cmd, args) = chosen_exec(&d, None).unwrap();
        assert_eq!(cmd, "aws");
        assert_eq!(args[2..4], ["eks", "get-token"]);
        assert_eq!(chosen_exec(&d, Some("gke")).unwrap().0, "kubelogin");
        assert_eq!(chosen_exec(&d, Some("plain")), None);
        assert_eq!(chosen_exec(&d, Some("nope")), None);
        // A first file's current-context and user win over the second's.
        let first = "current-context: gke\nusers:\n- name: gke-user\n  user:\n    exec: {command: kubelogin, args: [get-token]}\n";
        let d = docs(&[first, KC]);
        assert_eq!(
            chosen_exec(&d, None),
            Some(("kubelogin".to_string(), vec!["get-token".to_string()]))
        );
    }

    #[test]
    fn an_unsupported_plugin_is_refused_in_one_line_naming_the_input() {
        let kc = super::super::kubeconfig::parse_kubeconfig(KC).unwrap();
        let source = KubeconfigSource::Inline(kc);
        assert!(check_exec_plugin(&source, None, "kubeconfig").is_ok());
        assert!(check_exec_plugin(&source, Some("plain"), "kubeconfig").is_ok());
        let e = check_exec_plugin(&source, Some("gke"), "kubeconfig_path").unwrap_err();
        assert_eq!(
            e.to_string(),
            "input `kubeconfig_path`: the exec credential plugin `kubelogin get-token --login \
             devicecode` is not supported (supported: `aws eks get-token`, \
             `aws-iam-authenticator token`, `gke-gcloud-auth-plugin`, `kubelogin get-token \
             --login spn|workloadidentity`); give a kubeconfig with a token instead (e.g. from \
             `kubectl create token`)"
        );
        assert!(check_exec_plugin(&KubeconfigSource::Default, None, "kubeconfig").is_ok());
        let ours = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            already_kube_token("/usr/local/bin/trader-deploy", &args)
        };
        assert!(ours(&[
            "kube-token",
            "aws-iam-authenticator",
            "token",
            "-i",
            "p"
        ]));
        assert!(ours(&["kube-token", "gke-gcloud-auth-plugin"]));
        assert!(!ours(&[
            "kube-token",
            "kubelogin",
            "get-token",
            "-l",
            "devicecode"
        ]));
        assert!(!ours(&["deploy"]));
    }
}
