//! The command line: one subcommand per mode, one flag per action input (`values_files` ↔
//! `--values-files`), built from the input table so the two cannot drift apart. A secret flag
//! takes `@path` (the file's content) or `-` (standard input), so the secret stays off argv,
//! which every local user can read in /proc.

use std::ffi::OsString;
use std::io::Read;

use clap::{Arg, ArgAction, Command};

use crate::inputs::{INPUTS, InputError, Mode, RawInputs, SECRET_INPUTS, bad};

/// Why the command line was not taken.
#[derive(Debug)]
pub enum CliError {
    /// clap's own: a usage error, or `--help` (printed by the caller).
    Usage(clap::Error),
    /// A secret flag's file or standard input could not be read.
    Input(InputError),
}

/// The flag that carries an input.
pub(crate) fn flag_name(input: &str) -> String {
    input.replace('_', "-")
}

/// The clap command: `trader-deploy <mode> [--input value]…`.
pub(crate) fn command() -> Command {
    let mut cmd = Command::new("trader-deploy")
        .about("Deploys trading systems to Kubernetes with helm: a GitHub Action and a CLI.")
        .long_about(
            "Deploys trading systems to Kubernetes with helm.\n\n\
             In a workflow (GITHUB_ACTIONS=true, no arguments) it reads the INPUT_* variables. \
             On the command line, each subcommand is a mode and each flag an action input.",
        )
        // `trader-deploy --version` prints the crate's version; a subcommand's `--version` is the
        // action input of that name (clap does not propagate this flag to subcommands).
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(true)
        .arg_required_else_help(true);
    for mode in Mode::ALL {
        let mut sub = Command::new(mode.as_str()).about(mode_about(mode));
        for spec in INPUTS.iter().filter(|i| i.name != "mode") {
            let help = if SECRET_INPUTS.contains(&spec.name) {
                format!(
                    "{} Give @path to read it from a file, - from standard input (keeps it off \
                     the process list). [default: {}]",
                    spec.description, spec.default
                )
            } else {
                format!("{} [default: {}]", spec.description, spec.default)
            };
            let mut arg = Arg::new(spec.name)
                .long(flag_name(spec.name))
                .value_name(spec.name.to_uppercase())
                .help(help);
            arg = if spec.list {
                arg.action(ArgAction::Append)
            } else {
                arg.action(ArgAction::Set)
            };
            sub = sub.arg(arg);
        }
        cmd = cmd.subcommand(sub);
    }
    // Tools beside the modes (main.rs runs them before parsing inputs); listed for --help.
    cmd.subcommand(crate::window::command::command())
}

fn mode_about(mode: Mode) -> &'static str {
    match mode {
        Mode::Deploy => "Upgrade (or install) the release, watch the rollout, roll back on failure",
        Mode::Rollback => "Roll back to rollback_revision or the previous good revision",
        Mode::Plan => "Render the chart with the new values and diff it against the live release",
        Mode::Validate => "helm lint and template for every environment's values",
        Mode::Resolve => "Print the resolved plan without touching the network",
    }
}

/// Parses the command line into raw inputs (the subcommand is the `mode` input); a secret
/// flag's `@path` or `-` is read here.
pub fn parse<I, T>(args: I) -> Result<RawInputs, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    parse_with(args, &mut std::io::stdin().lock())
}

fn parse_with<I, T>(args: I, stdin: &mut dyn Read) -> Result<RawInputs, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = command()
        .try_get_matches_from(args)
        .map_err(CliError::Usage)?;
    let (mode, sub) = matches
        .subcommand()
        .expect("subcommand_required guarantees a subcommand");
    let mut pairs: Vec<(&str, String)> = vec![("mode", mode.to_string())];
    let mut stdin_read_by: Option<&str> = None;
    for spec in INPUTS.iter().filter(|i| i.name != "mode") {
        if let Some(values) = sub.get_many::<String>(spec.name) {
            let mut joined = values.cloned().collect::<Vec<_>>().join("\n");
            if SECRET_INPUTS.contains(&spec.name) {
                joined = secret_value(spec.name, &joined, stdin, &mut stdin_read_by)
                    .map_err(CliError::Input)?;
            }
            pairs.push((spec.name, joined));
        }
    }
    Ok(RawInputs::from_pairs(pairs))
}

/// A secret flag's value: the content of the file after `@`, standard input for `-` (once per
/// run), else the value itself. One trailing line break of a file or stdin is dropped.
fn secret_value<'a>(
    input: &'a str,
    value: &str,
    stdin: &mut dyn Read,
    stdin_read_by: &mut Option<&'a str>,
) -> Result<String, InputError> {
    let flag = format!("--{}", flag_name(input));
    let read = if value == "-" {
        if let Some(first) = stdin_read_by {
            return Err(bad(
                spec_name(input),
                format!(
                    "{flag} - reads standard input, which --{} already read; give @path instead",
                    flag_name(first)
                ),
            ));
        }
        *stdin_read_by = Some(input);
        let mut s = String::new();
        stdin.read_to_string(&mut s).map_err(|e| {
            bad(
                spec_name(input),
                format!("failed to read {flag} from standard input: {e}"),
            )
        })?;
        s
    } else if let Some(path) = value.strip_prefix('@') {
        std::fs::read_to_string(path).map_err(|e| {
            bad(
                spec_name(input),
                format!("failed to read {flag} from the file {path:?}: {e}"),
            )
        })?
    } else {
        return Ok(value.to_string());
    };
    let trimmed = read
        .strip_suffix('\n')
        .map(|s| s.strip_suffix('\r').unwrap_or(s))
        .unwrap_or(&read);
    Ok(trimmed.to_string())
}

/// The input's name with the table's lifetime.
fn spec_name(input: &str) -> &'static str {
    INPUTS
        .iter()
        .find(|i| i.name == input)
        .map(|i| i.name)
        .expect("a secret input is in the table")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_mirror_inputs_one_to_one() {
        let cmd = command();
        for mode in Mode::ALL {
            let sub = cmd.find_subcommand(mode.as_str()).unwrap();
            let flags: Vec<String> = sub
                .get_arguments()
                .filter_map(|a| a.get_long().map(str::to_string))
                .filter(|l| l != "help")
                .collect();
            let inputs: Vec<String> = INPUTS
                .iter()
                .filter(|i| i.name != "mode")
                .map(|i| flag_name(i.name))
                .collect();
            assert_eq!(flags, inputs, "mode {}", mode.as_str());
        }
        cmd.debug_assert();
    }

    #[test]
    fn version_flag_prints_the_crate_version_and_stays_an_input_in_a_mode() {
        let err = match parse(["trader-deploy", "--version"]) {
            Err(CliError::Usage(e)) => e,
            other => panic!("not clap's version display: {other:?}"),
        };
        assert_eq!(err.kind(), clap::error::ErrorKind::DisplayVersion);
        assert_eq!(
            err.to_string(),
            format!("trader-deploy {}\n", env!("CARGO_PKG_VERSION"))
        );
        let raw = parse(["trader-deploy", "resolve", "--version", "v2.0.0"]).unwrap();
        assert_eq!(raw.get("version"), Some("v2.0.0"));
    }

    #[test]
    fn repeated_list_flags_join_lines() {
        let raw = parse([
            "trader-deploy",
            "resolve",
            "--values-files",
            "a.yaml",
            "--values-files",
            "b.yaml",
            "--version",
            "v1.0.0",
        ])
        .unwrap();
        assert_eq!(raw.get("mode"), Some("resolve"));
        assert_eq!(raw.get("values_files"), Some("a.yaml\nb.yaml"));
        assert_eq!(raw.get("version"), Some("v1.0.0"));
    }

    #[test]
    fn secret_flags_read_at_path_and_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let kc = dir.path().join("kubeconfig");
        std::fs::write(&kc, "apiVersion: v1\nkind: Config\n").unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "ghp_from_file\r\n").unwrap();
        let at = |p: &std::path::Path| format!("@{}", p.display());
        let mut stdin: &[u8] = b"https://hooks.example/T0/secret\n";
        let raw = parse_with(
            [
                "trader-deploy".to_string(),
                "resolve".into(),
                "--kubeconfig".into(),
                at(&kc),
                "--github-token".into(),
                at(&token),
                "--notify-webhook".into(),
                "-".into(),
                "--registry-password".into(),
                "literal-pw".into(),
                "--version".into(),
                "@not-a-secret-input".into(),
            ],
            &mut stdin,
        )
        .unwrap();
        assert_eq!(raw.get("kubeconfig"), Some("apiVersion: v1\nkind: Config"));
        assert_eq!(raw.get("github_token"), Some("ghp_from_file"));
        assert_eq!(
            raw.get("notify_webhook"),
            Some("https://hooks.example/T0/secret")
        );
        assert_eq!(raw.get("registry_password"), Some("literal-pw"));
        assert_eq!(raw.get("version"), Some("@not-a-secret-input"));
    }

    #[test]
    fn an_unreadable_secret_source_is_an_input_error() {
        let run = |args: &[&str]| {
            let mut all = vec!["trader-deploy", "resolve"];
            all.extend_from_slice(args);
            match parse_with(all, &mut &b"x"[..]) {
                Err(CliError::Input(e)) => e,
                other => panic!("{other:?}"),
            }
        };
        let e = run(&["--kubeconfig", "@/nonexistent/kc"]);
        assert_eq!(e.input, "kubeconfig");
        assert!(
            e.to_string().starts_with(
                "input `kubeconfig`: failed to read --kubeconfig from the file \"/nonexistent/kc\": "
            ),
            "{e}"
        );
        let e = run(&["--github-token", "-", "--registry-password", "-"]);
        assert_eq!(
            e.to_string(),
            "input `registry_password`: --registry-password - reads standard input, which \
             --github-token already read; give @path instead"
        );
    }
}
