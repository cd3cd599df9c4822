//! The runner protocol: outputs, job summary, `::group::`, `::error::`, `::add-mask::`; plain
//! readable lines when not running under GitHub Actions. The only workflow commands on stdout
//! are the ones written here: every other line is neutralized (a line the runner would read as a
//! command is escaped), and untrusted blocks go verbatim between `::stop-commands::` and their
//! fresh resume token (docs/security.md).

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rand::RngExt as _;

use crate::redact::Redactor;

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
    redactor: Redactor,
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
            redactor: Redactor::default(),
        }
    }

    pub fn in_actions(&self) -> bool {
        self.actions
    }

    /// Writes lines as they are: only for the workflow commands built here.
    fn command(&self, s: &str) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "{s}");
        let _ = out.flush();
    }

    /// Writes text that is not a command: redacted, each line neutralized.
    fn text(&self, s: &str) {
        let s = self.redactor.text(s);
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        for line in runner_lines(&s) {
            let _ = writeln!(out, "{}", neutralize_line(line));
        }
        let _ = out.flush();
    }

    /// Hides a secret from the log. Also remembered by the run's [`Redactor`], so plain-mode
    /// lines, the summary, outputs, the webhook and GitHub bodies are redacted by this program.
    pub fn mask(&self, secret: &str) {
        if self.redactor.add(secret) && self.actions {
            self.command(&format!("::add-mask::{}", escape_data(secret.trim())));
        }
    }

    /// The run's one redaction point, for what leaves other than through this runner.
    pub fn redactor(&self) -> Redactor {
        self.redactor.clone()
    }

    /// Replaces every masked secret in `text` with `***`.
    pub(crate) fn redact(&self, text: &str) -> String {
        self.redactor.text(text)
    }

    /// A block of text this program does not control (pod logs, helm's output, a diff), shown
    /// verbatim (redacted) between `::stop-commands::<token>` and `::<token>::` under Actions,
    /// with a fresh token that does not occur in it, so no line of it is read as a command.
    /// Written under one lock: no other line of this program can land inside the block.
    pub(crate) fn untrusted(&self, text: &str) {
        let text = self.redactor.text(text.trim_end());
        if text.is_empty() {
            return;
        }
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if self.actions {
            let token = stop_token(&text);
            let _ = writeln!(out, "::stop-commands::{token}");
            let _ = writeln!(out, "{text}");
            let _ = writeln!(out, "::{token}::");
        } else {
            let _ = writeln!(out, "{text}");
        }
        let _ = out.flush();
    }

    /// A writer for the diagnostic log (`tracing`, on stderr): the runner reads stderr for
    /// commands too, so its lines are redacted and neutralized like every other line.
    pub fn log_writer(&self) -> LogWriter {
        LogWriter {
            redactor: self.redactor.clone(),
            buf: Vec::new(),
        }
    }

    /// Starts a collapsible group; ends when the guard drops.
    pub(crate) fn group(&self, title: &str) -> Group<'_> {
        if self.actions {
            self.command(&format!("::group::{}", escape_data(&self.redact(title))));
        } else {
            self.text(&format!("==> {title}"));
        }
        Group { runner: self }
    }

    /// A plain log line (or lines), which may quote untrusted text: a line of it that the
    /// runner would read as a command is escaped.
    pub(crate) fn info(&self, msg: &str) {
        self.text(msg);
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
            self.command(&format!(
                "::{level} title={}::{}",
                escape_property(&title),
                escape_data(&msg)
            ));
        } else {
            self.text(&format!("{level}: {title}: {msg}"));
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
                    self.text(&format!("output {name}={value}"));
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
                self.text(&markdown);
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
            self.runner.command("::endgroup::");
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

/// The lines the runner reads from `s`: it splits on `\n`, `\r\n` and a lone `\r`
/// (.NET's `ReadLine`). A trailing line break ends the last line; empty text is one empty line.
pub(crate) fn runner_lines(s: &str) -> Vec<&str> {
    let b = s.as_bytes();
    let (mut out, mut start, mut i) = (Vec::new(), 0, 0);
    while i < b.len() {
        match b[i] {
            b'\n' => {
                out.push(&s[start..i]);
                i += 1;
                start = i;
            }
            b'\r' => {
                out.push(&s[start..i]);
                i += if b.get(i + 1) == Some(&b'\n') { 2 } else { 1 };
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < b.len() || out.is_empty() {
        out.push(&s[start..]);
    }
    out
}

/// Characters a culture-sensitive comparison may skip (.NET's `StartsWith`/`IndexOf` on a
/// string, which the runner's parser uses, can ignore them under ICU): control characters and
/// Unicode's default-ignorable code points. Treated as invisible when looking for a command.
fn ignorable(c: char) -> bool {
    c.is_control()
        || matches!(c as u32,
            0x00AD | 0x034F | 0x061C | 0x115F..=0x1160 | 0x17B4..=0x17B5 | 0x180B..=0x180F
            | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
            | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFFB | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF)
}

/// One line of text made unreadable as a workflow command, changed as little as possible:
/// - `::` at its start (after whitespace, which the runner trims: `char::is_whitespace` is the
///   same set as .NET's `char.IsWhiteSpace`) gets a `\` in front: `\::error::x`;
/// - every legacy `##[` (anywhere in the line) becomes `##\[`.
///
/// Ignorable characters (see [`ignorable`]) are looked through, so `:\u{AD}:` counts as `::`.
/// A line that is no command comes back unchanged.
pub(crate) fn neutralize_line(line: &str) -> std::borrow::Cow<'_, str> {
    let mut visible = line
        .chars()
        .skip_while(|&c| c.is_whitespace() || ignorable(c))
        .filter(|&c| !ignorable(c));
    let v2 = visible.next() == Some(':') && visible.next() == Some(':');
    let mut last = ['\0', '\0'];
    let mut legacy = false;
    for c in line.chars().filter(|&c| !ignorable(c)) {
        if c == '[' && last == ['#', '#'] {
            legacy = true;
            break;
        }
        last = [last[1], c];
    }
    if !v2 && !legacy {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 4);
    if v2 {
        out.push('\\');
    }
    let mut last = ['\0', '\0'];
    for c in line.chars() {
        if c == '[' && last == ['#', '#'] {
            out.push('\\');
        }
        out.push(c);
        if !ignorable(c) {
            last = [last[1], c];
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A resume token for `::stop-commands::` that does not occur in `text`. The runner compares
/// it case-insensitively; it is lowercase hex, so an ASCII-lowercased `text` is checked.
fn stop_token(text: &str) -> String {
    let mut rng = rand::rng();
    stop_token_with(text, || format!("{:032x}", rng.random::<u128>()))
}

fn stop_token_with(text: &str, mut next: impl FnMut() -> String) -> String {
    let lower = text.to_ascii_lowercase();
    loop {
        let token = next();
        if !lower.contains(&token.to_ascii_lowercase()) {
            return token;
        }
    }
}

/// One diagnostic log record on its way to stderr: redacted and neutralized when complete.
pub struct LogWriter {
    redactor: Redactor,
    buf: Vec<u8>,
}

impl Write for LogWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let text = self.redactor.text(&String::from_utf8_lossy(&self.buf));
        let mut out = String::new();
        for line in runner_lines(text.trim_end_matches(['\r', '\n'])) {
            out.push_str(&neutralize_line(line));
            out.push('\n');
        }
        let _ = io::stderr().lock().write_all(out.as_bytes());
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

/// The model of what GitHub's runner reads as commands, shared with the e2e tests.
#[cfg(test)]
#[allow(dead_code)]
#[path = "../tests/common/commands.rs"]
mod runner_model;

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

    #[test]
    fn the_model_reads_what_the_runner_reads() {
        let out = "plain\n  ::error::x\n::nope::y\nz ##[set-output name=a;]b\n::stop-commands::T1\n\
                   ::error::hidden\n::t1::\n::group::g\r::endgroup::";
        let got: Vec<(usize, String)> = runner_model::read(out)
            .into_iter()
            .map(|r| (r.line, r.command))
            .collect();
        assert_eq!(
            got,
            [
                (1, "error".to_string()),
                (3, "set-output".into()),
                (4, "stop-commands".into()),
                (6, "t1".into()),
                (7, "group".into()),
                (8, "endgroup".into()),
            ]
        );
    }

    /// Lines carrying commands, as pods, helm, smoke bodies and approvers may write them.
    const FORGED: &[&str] = &[
        "::error::forged",
        "  \t::warning file=x::forged",
        "\u{3000}::set-output name=x::forged",
        "::stop-commands::forged",
        "log ##[set-output name=x;]forged",
        "##[error]forged ##[add-mask]forged",
        "::ERROR::forged",
        "\u{AD}::error::forged",
        "#\u{200B}#[error]forged",
        "###[error]forged",
        "a\r::error::forged",
    ];

    #[test]
    fn neutralized_lines_are_no_commands_and_plain_lines_stay() {
        for f in FORGED {
            // Each is a command as written (to an ordinal or a culture-sensitive reading).
            let visible: String = f.chars().filter(|&c| !ignorable(c) || c == '\r').collect();
            assert!(
                !runner_model::read(f).is_empty() || !runner_model::read(&visible).is_empty(),
                "{f:?} is no command to begin with"
            );
            for line in runner_lines(f) {
                let n = neutralize_line(line);
                assert!(
                    runner_model::read(&n).is_empty(),
                    "{line:?} -> {n:?} is still a command"
                );
                // Looked at without its ignorable characters (a culture-sensitive comparison).
                let visible: String = n.chars().filter(|&c| !ignorable(c)).collect();
                assert!(runner_model::read(&visible).is_empty(), "{line:?} -> {n:?}");
            }
        }
        assert_eq!(neutralize_line("::error::forged"), "\\::error::forged");
        assert_eq!(neutralize_line("x ##[group]y"), "x ##\\[group]y");
        for plain in ["ok", "a :: b", "# [x]", "## [x]", "key: value", ""] {
            assert_eq!(neutralize_line(plain), plain);
        }
    }

    #[test]
    fn runner_lines_split_like_dotnet_readline() {
        assert_eq!(runner_lines("a\r\nb\rc\nd\n"), ["a", "b", "c", "d"]);
        assert_eq!(runner_lines(""), [""]);
        assert_eq!(runner_lines("a\n\nb"), ["a", "", "b"]);
    }

    #[test]
    fn info_never_writes_a_command() {
        let (r, buf) = capture(true);
        r.info(&FORGED.join("\n"));
        r.info("approved by alice (\"ship it\n::error::forged\")");
        let out = text(&buf);
        assert!(runner_model::read(&out).is_empty(), "{out}");
        assert!(out.contains("\\::error::forged"), "{out}");
    }

    #[test]
    fn untrusted_blocks_are_verbatim_between_stop_commands() {
        let (r, buf) = capture(true);
        r.mask("canary-secret");
        let block = format!("{}\ncanary-secret in a log", FORGED.join("\n"));
        r.untrusted(&block);
        r.error("Deploy failed", "after the block");
        let out = text(&buf);
        let lines: Vec<&str> = out.lines().collect();
        let token = lines[1].strip_prefix("::stop-commands::").unwrap();
        assert_eq!(token.len(), 32);
        assert!(!block.to_ascii_lowercase().contains(token));
        assert!(out.contains("\n::error::forged\n"), "verbatim: {out}");
        assert!(!out.contains("canary-secret in"), "redacted: {out}");
        assert!(out.contains("*** in a log"));
        assert!(lines.contains(&format!("::{token}::").as_str()));
        // The runner reads the block's own lines and the annotation after it, nothing else.
        let read: Vec<String> = runner_model::read(&out)
            .into_iter()
            .map(|c| c.command)
            .collect();
        assert_eq!(read, ["add-mask", "stop-commands", token, "error"]);
        runner_model::assert_only_own_commands(&out, "forged");
    }

    #[test]
    fn the_resume_token_never_occurs_in_the_block() {
        // The first candidates occur in the block (in another case): they are skipped.
        let block = "x ::ABC123:: y Feed";
        let mut candidates = ["abc123", "FEED", "c0ffee"].into_iter();
        let token = stop_token_with(block, || candidates.next().unwrap().to_string());
        assert_eq!(token, "c0ffee");
        let out = format!("::stop-commands::{token}\n{block}\n::{token}::");
        assert_eq!(runner_model::read(&out).len(), 2, "only stop and resume");
    }

    #[test]
    fn plain_mode_prints_blocks_as_they_are() {
        let (r, buf) = capture(false);
        r.untrusted("::error::forged\n");
        assert_eq!(text(&buf), "::error::forged\n");
    }
}
