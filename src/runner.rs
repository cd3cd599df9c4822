//! The runner protocol: outputs, job summary, `::group::`, `::error::`, `::add-mask::`; plain
//! readable lines when not running under GitHub Actions.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rand::RngExt as _;

/// Where protocol lines go: stdout in real runs, a buffer in tests.
pub(crate) type Sink = Arc<Mutex<dyn Write + Send>>;

/// A failure to write an output or the summary file.
#[derive(Debug, thiserror::Error)]
#[error("failed to write {what} to {path}: {error}")]
pub struct RunnerError {
    what: &'static str,
    path: PathBuf,
    error: io::Error,
}

/// Speaks the runner protocol (or prints plain lines outside Actions).
#[derive(Clone)]
pub struct Runner {
    actions: bool,
    output_path: Option<PathBuf>,
    summary_path: Option<PathBuf>,
    out: Sink,
    masks: Arc<Mutex<Vec<String>>>,
}

impl Runner {
    pub fn new(actions: bool, output_path: Option<PathBuf>, summary_path: Option<PathBuf>) -> Self {
        Self::with_sink(
            actions,
            output_path,
            summary_path,
            Arc::new(Mutex::new(io::stdout())),
        )
    }

    pub(crate) fn with_sink(
        actions: bool,
        output_path: Option<PathBuf>,
        summary_path: Option<PathBuf>,
        out: Sink,
    ) -> Self {
        Self {
            actions,
            output_path,
            summary_path,
            out,
            masks: Arc::default(),
        }
    }

    pub fn in_actions(&self) -> bool {
        self.actions
    }

    fn line(&self, s: &str) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "{s}");
        let _ = out.flush();
    }

    /// Hides a secret from the log. Also remembered, so plain-mode lines and the summary are
    /// redacted by this program itself.
    pub fn mask(&self, secret: &str) {
        let secret = secret.trim();
        if secret.len() < 4 {
            return;
        }
        {
            let mut masks = self.masks.lock().unwrap_or_else(|e| e.into_inner());
            if masks.iter().any(|m| m == secret) {
                return;
            }
            masks.push(secret.to_string());
            masks.sort_by_key(|m| std::cmp::Reverse(m.len()));
        }
        if self.actions {
            self.line(&format!("::add-mask::{}", escape_data(secret)));
        }
    }

    /// Replaces every masked secret in `text` with `***`.
    pub(crate) fn redact(&self, text: &str) -> String {
        let masks = self.masks.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = text.to_string();
        for m in masks.iter() {
            if out.contains(m.as_str()) {
                out = out.replace(m.as_str(), "***");
            }
        }
        out
    }

    /// Starts a collapsible group; ends when the guard drops.
    pub(crate) fn group(&self, title: &str) -> Group<'_> {
        if self.actions {
            self.line(&format!("::group::{}", escape_data(&self.redact(title))));
        } else {
            self.line(&format!("==> {}", self.redact(title)));
        }
        Group { runner: self }
    }

    /// A plain log line.
    pub(crate) fn info(&self, msg: &str) {
        self.line(&self.redact(msg));
    }

    pub(crate) fn warning(&self, title: &str, msg: &str) {
        self.annotation("warning", title, msg);
    }

    /// The final failure, as one annotation.
    pub fn error(&self, title: &str, msg: &str) {
        self.annotation("error", title, msg);
    }

    fn annotation(&self, level: &str, title: &str, msg: &str) {
        let (title, msg) = (self.redact(title), self.redact(msg));
        if self.actions {
            self.line(&format!(
                "::{level} title={}::{}",
                escape_property(&title),
                escape_data(&msg)
            ));
        } else {
            self.line(&format!("{level}: {title}: {msg}"));
        }
    }

    /// Sets a step output (`name<<DELIMITER` form), or prints it outside Actions.
    pub(crate) fn set_output(&self, name: &str, value: &str) -> Result<(), RunnerError> {
        let value = self.redact(value);
        match &self.output_path {
            Some(path) => append(path, "an output", &format_output(name, &value)),
            // On a terminal, an empty output is noise.
            None => {
                if !value.is_empty() {
                    self.line(&format!("output {name}={value}"));
                }
                Ok(())
            }
        }
    }

    /// Appends markdown to the job summary, or prints it outside Actions.
    pub(crate) fn summary(&self, markdown: &str) -> Result<(), RunnerError> {
        let markdown = self.redact(markdown);
        match &self.summary_path {
            Some(path) => append(path, "the job summary", &markdown),
            None => {
                self.line(&markdown);
                Ok(())
            }
        }
    }
}

/// Ends its group when dropped.
pub(crate) struct Group<'a> {
    runner: &'a Runner,
}

impl Drop for Group<'_> {
    fn drop(&mut self) {
        if self.runner.actions {
            self.runner.line("::endgroup::");
        }
    }
}

fn append(path: &Path, what: &'static str, text: &str) -> Result<(), RunnerError> {
    let err = |error| RunnerError {
        what,
        path: path.to_path_buf(),
        error,
    };
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    if !text.ends_with('\n') {
        f.write_all(b"\n").map_err(err)?;
    }
    Ok(())
}

/// `name<<DELIM\nvalue\nDELIM\n` with a random delimiter the value does not contain.
pub(crate) fn format_output(name: &str, value: &str) -> String {
    let mut rng = rand::rng();
    loop {
        let delim = format!("ghadelimiter_{:032x}", rng.random::<u128>());
        if !value.contains(&delim) && !name.contains(&delim) {
            return format!("{name}<<{delim}\n{value}\n{delim}\n");
        }
    }
}

/// Escapes a workflow command's message.
pub(crate) fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow command's property value.
pub(crate) fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// A runner writing into a shared buffer, for tests.
#[cfg(test)]
pub(crate) fn capture(actions: bool) -> (Runner, Arc<Mutex<Vec<u8>>>) {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink: Sink = buf.clone();
    (Runner::with_sink(actions, None, None, sink), buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(buf: &Arc<Mutex<Vec<u8>>>) -> String {
        String::from_utf8(buf.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn escaping() {
        assert_eq!(escape_data("a%b\r\nc"), "a%25b%0D%0Ac");
        assert_eq!(escape_property("a:b,c\n"), "a%3Ab%2Cc%0A");
    }

    #[test]
    fn outputs_use_a_fresh_delimiter() {
        let s = format_output("images", "{\"a\":\"b\"}\nline2");
        let mut lines = s.lines();
        let head = lines.next().unwrap();
        let delim = head.strip_prefix("images<<").unwrap();
        assert!(delim.starts_with("ghadelimiter_"));
        assert_eq!(lines.next(), Some("{\"a\":\"b\"}"));
        assert_eq!(lines.next(), Some("line2"));
        assert_eq!(lines.next(), Some(delim));
        assert_ne!(format_output("a", "b"), format_output("a", "b"));
    }

    #[test]
    fn actions_protocol() {
        let (r, buf) = capture(true);
        r.mask("tok-123456");
        {
            let _g = r.group("Resolve");
            r.info("using tok-123456");
        }
        r.error("Deploy failed", "release \"x\": boom\nmore");
        assert_eq!(
            text(&buf),
            "::add-mask::tok-123456\n::group::Resolve\nusing ***\n::endgroup::\n\
             ::error title=Deploy failed::release \"x\": boom%0Amore\n"
        );
    }

    #[test]
    fn plain_lines_outside_actions() {
        let (r, buf) = capture(false);
        r.mask("tok-123456");
        {
            let _g = r.group("Resolve");
        }
        r.error("Invalid input", "input `x`: tok-123456");
        r.set_output("status", "success").unwrap();
        assert_eq!(
            text(&buf),
            "==> Resolve\nerror: Invalid input: input `x`: ***\noutput status=success\n"
        );
    }

    #[test]
    fn output_and_summary_files() {
        let dir = tempfile::tempdir().unwrap();
        let (o, s) = (dir.path().join("out"), dir.path().join("sum"));
        let r = Runner::with_sink(
            true,
            Some(o.clone()),
            Some(s.clone()),
            Arc::new(Mutex::new(Vec::new())),
        );
        r.set_output("version", "v1.2.0").unwrap();
        r.summary("# Deploy").unwrap();
        assert!(std::fs::read_to_string(&o).unwrap().contains("\nv1.2.0\n"));
        assert_eq!(std::fs::read_to_string(&s).unwrap(), "# Deploy\n");
    }
}
