//! The command line: one subcommand per mode, one flag per action input (`values_files` ↔
//! `--values-files`), built from the input table so the two cannot drift apart.

use std::ffi::OsString;

use clap::{Arg, ArgAction, Command};

use crate::inputs::{INPUTS, Mode, RawInputs};

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
            let mut arg = Arg::new(spec.name)
                .long(flag_name(spec.name))
                .value_name(spec.name.to_uppercase())
                .help(format!("{} [default: {}]", spec.description, spec.default));
            arg = if spec.list {
                arg.action(ArgAction::Append)
            } else {
                arg.action(ArgAction::Set)
            };
            sub = sub.arg(arg);
        }
        cmd = cmd.subcommand(sub);
    }
    cmd
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

/// Parses the command line into raw inputs (the subcommand is the `mode` input).
pub fn parse<I, T>(args: I) -> Result<RawInputs, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = command().try_get_matches_from(args)?;
    let (mode, sub) = matches
        .subcommand()
        .expect("subcommand_required guarantees a subcommand");
    let mut pairs: Vec<(&str, String)> = vec![("mode", mode.to_string())];
    for spec in INPUTS.iter().filter(|i| i.name != "mode") {
        if let Some(values) = sub.get_many::<String>(spec.name) {
            let joined = values.cloned().collect::<Vec<_>>().join("\n");
            pairs.push((spec.name, joined));
        }
    }
    Ok(RawInputs::from_pairs(pairs))
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
        let err = parse(["trader-deploy", "--version"]).unwrap_err();
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
}
