//! `mode: resolve`: the resolved plan, printed and written as outputs, without any network.

use std::fmt::Write as _;

use crate::context::RunContext;
use crate::inputs::Config;
use crate::outputs::Outputs;

/// The outputs a resolve run writes: what a deploy would use.
pub(crate) fn outputs(config: &Config) -> Outputs {
    Outputs {
        environment: config.environment.clone(),
        version: config.version.clone(),
        images: config
            .images
            .iter()
            .map(|i| (i.key.clone(), i.reference.clone()))
            .collect(),
        ..Outputs::default()
    }
}

/// Where a fetched chart comes from: ` from <repository>` and ` version <v>`.
fn chart_source(config: &Config) -> String {
    let mut out = String::new();
    if let Some(r) = &config.chart_repository {
        let _ = write!(out, " from {r}");
    }
    if let Some(v) = &config.chart_version {
        let _ = write!(out, " version {v}");
    }
    out
}

/// For an image the chart takes as a map: the fields `images` sets (` → image.repository,
/// image.tag`); nothing for one string.
fn fields_set(i: &crate::inputs::ImageSetting) -> String {
    match i.shape {
        crate::chart::Shape::Reference => String::new(),
        crate::chart::Shape::Fields { .. } => format!(" → {}", i.keys().join(", ")),
    }
}

fn display_path(config: &Config, p: &std::path::Path) -> String {
    p.strip_prefix(&config.workspace)
        .unwrap_or(p)
        .display()
        .to_string()
}

/// The plan as readable lines.
pub(crate) fn render_text(config: &Config, ctx: &RunContext) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Plan: {} release {:?} in namespace {:?}",
        config.mode.as_str(),
        config.release,
        config.namespace
    );
    let protection = if config.protected {
        "protected: approval and immutable semver tags required"
    } else {
        "not protected"
    };
    let _ = writeln!(
        s,
        "  environment   {} (from {}; {protection})",
        config.environment, config.environment_source
    );
    let _ = writeln!(
        s,
        "  version       {} (from {})",
        config.version, config.version_source
    );
    if let Some(r) = &config.git_ref {
        let _ = writeln!(s, "  ref           {r}");
    }
    if let Some(sha) = &ctx.sha {
        let _ = writeln!(s, "  commit        {sha}");
    }
    let _ = writeln!(
        s,
        "  chart         {}{}",
        config.chart,
        chart_source(config)
    );
    if config.values_files.is_empty() {
        let _ = writeln!(s, "  values files  (none)");
    }
    for (n, f) in config.values_files.iter().enumerate() {
        let label = if n == 0 { "values files" } else { "" };
        let _ = writeln!(s, "  {label:<13} {}", display_path(config, f));
    }
    if config.images.is_empty() {
        let _ = writeln!(s, "  images        (none)");
    }
    for (n, i) in config.images.iter().enumerate() {
        let label = if n == 0 { "images" } else { "" };
        let _ = writeln!(
            s,
            "  {label:<13} {} = {}{}",
            i.key,
            i.reference,
            fields_set(i)
        );
    }
    if let Some(v) = &config.inline_values {
        let names: Vec<String> = v
            .files
            .iter()
            .filter_map(|f| f.file_stem().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        let _ = writeln!(s, "  inline values {} (after the files)", names.join(", "));
    }
    for (k, v) in &config.set {
        let _ = writeln!(s, "  set           {k}={v}");
    }
    for (k, v) in &config.set_string {
        let _ = writeln!(s, "  set-string    {k}={v}");
    }
    let _ = writeln!(
        s,
        "  timeout       {}   rollback on failure: {}   history max: {}   verify images: {}",
        humantime::format_duration(config.timeout),
        config.rollback_on_failure,
        config.history_max,
        config.verify_images
    );
    if let Some(w) = window_verdict(config, ctx) {
        let _ = writeln!(s, "  deploy window {w}");
    }
    s
}

/// The deploy window's verdict for the plan: `while XNYS is closed: refused now (…); next
/// allowed: …`.
pub(crate) fn window_verdict(config: &Config, ctx: &RunContext) -> Option<String> {
    let policy = config.deploy_window.as_ref()?;
    let at = ctx.now.unwrap_or_else(jiff::Timestamp::now);
    let rule = policy.describe();
    Some(match policy.verdict(at) {
        Ok(v) if v.allowed => format!("{rule}: allowed at {at} ({})", v.reason),
        Ok(v) => format!(
            "{rule}: refused at {at} ({}); next allowed: {}{}",
            v.reason,
            v.next.unwrap_or_default(),
            if config.window_override {
                " (window_override is on)"
            } else {
                ""
            }
        ),
        Err(e) => format!("{rule}: cannot be decided: {e}"),
    })
}

/// The plan as a job-summary section.
pub(crate) fn render_markdown(config: &Config, ctx: &RunContext) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### Resolved plan for `{}` in `{}`\n\n| | |\n|---|---|",
        config.release, config.namespace
    );
    let _ = writeln!(
        s,
        "| Environment | `{}` (from {}){} |",
        config.environment,
        config.environment_source,
        if config.protected { ", protected" } else { "" }
    );
    let _ = writeln!(
        s,
        "| Version | `{}` (from {}) |",
        config.version, config.version_source
    );
    let _ = writeln!(s, "| Chart | `{}`{} |", config.chart, chart_source(config));
    let files: Vec<String> = config
        .values_files
        .iter()
        .map(|f| format!("`{}`", display_path(config, f)))
        .collect();
    let _ = writeln!(
        s,
        "| Values files | {} |",
        if files.is_empty() {
            "none".to_string()
        } else {
            files.join("<br>")
        }
    );
    let images: Vec<String> = config
        .images
        .iter()
        .map(|i| format!("`{}` = `{}`{}", i.key, i.reference, fields_set(i)))
        .collect();
    let _ = writeln!(
        s,
        "| Images | {} |",
        if images.is_empty() {
            "none".to_string()
        } else {
            images.join("<br>")
        }
    );
    if let Some(w) = window_verdict(config, ctx) {
        let _ = writeln!(s, "| Deploy window | {w} |");
    }
    s
}
