//! What GitHub's runner would read as workflow commands in a step's output: a model of
//! actions/runner's ActionCommandManager (stop-commands and its resume token) and of its two
//! parsers, `::name props::data` after leading whitespace and the legacy `##[name props]data`
//! anywhere in a line, with lines split like .NET's `ReadLine` (`\n`, `\r\n`, lone `\r`).
//! Shared by the e2e tests (raw stdout of real runs) and src/runner.rs's unit tests.

/// Commands the runner knows (its registered extensions, plus stop-commands).
const REGISTERED: &[&str] = &[
    "stop-commands",
    "set-env",
    "set-output",
    "save-state",
    "add-mask",
    "add-path",
    "warning",
    "error",
    "notice",
    "debug",
    "group",
    "endgroup",
    "echo",
    "add-matcher",
    "remove-matcher",
];

/// A line the runner acted on: its number (from 0, in runner lines), the command, the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub line: usize,
    pub command: String,
    pub text: String,
}

/// The runner's lines of `out`.
pub fn lines(out: &str) -> Vec<&str> {
    let b = out.as_bytes();
    let (mut v, mut start, mut i) = (Vec::new(), 0, 0);
    while i < b.len() {
        if b[i] == b'\n' || b[i] == b'\r' {
            v.push(&out[start..i]);
            i += if b[i] == b'\r' && b.get(i + 1) == Some(&b'\n') {
                2
            } else {
                1
            };
            start = i;
        } else {
            i += 1;
        }
    }
    if start < b.len() {
        v.push(&out[start..]);
    }
    v
}

/// The command name of `line` by the `::` parser (ordinal comparisons), if it has one.
fn v2_name(line: &str) -> Option<&str> {
    let m = line.trim_start();
    let rest = m.strip_prefix("::")?;
    let end = rest.find("::")?;
    let info = &rest[..end];
    Some(info.split(' ').next().unwrap_or(""))
}

/// The command name of `line` by the legacy `##[` parser, if it has one.
fn legacy_name(line: &str) -> Option<&str> {
    let at = line.find("##[")?;
    let rest = &line[at + 3..];
    let end = rest.find(']')?;
    Some(rest[..end].split(' ').next().unwrap_or(""))
}

/// Every command the runner would process in `out`, in order, stop/resume lines included.
pub fn read(out: &str) -> Vec<Read> {
    let mut registered: Vec<String> = REGISTERED.iter().map(|s| s.to_string()).collect();
    let mut stopped: Option<String> = None;
    let mut found = Vec::new();
    for (n, line) in lines(out).into_iter().enumerate() {
        let known = |name: &str| registered.iter().any(|r| r.eq_ignore_ascii_case(name));
        let name = match v2_name(line).filter(|c| known(c)) {
            Some(c) => c,
            None => match legacy_name(line).filter(|c| known(c)) {
                Some(c) => c,
                None => continue,
            },
        };
        let data = || {
            line.trim_start()
                .strip_prefix("::")
                .and_then(|r| r.split_once("::"))
                .map(|(_, d)| d.to_string())
                .or_else(|| line.split_once(']').map(|(_, d)| d.to_string()))
                .unwrap_or_default()
        };
        let read = Read {
            line: n,
            command: name.to_string(),
            text: line.to_string(),
        };
        match &stopped {
            Some(token) => {
                if name.eq_ignore_ascii_case(token) {
                    registered.retain(|r| !r.eq_ignore_ascii_case(token));
                    stopped = None;
                    found.push(read);
                }
            }
            None if name.eq_ignore_ascii_case("stop-commands") => {
                let token = data();
                registered.push(token.clone());
                stopped = Some(token);
                found.push(read);
            }
            None => found.push(read),
        }
    }
    found
}

/// The commands of `out` other than stop-commands blocks' own lines, and whether every block
/// was closed again.
pub fn outside_blocks(out: &str) -> (Vec<Read>, bool) {
    let mut open = false;
    let mut cmds = Vec::new();
    for r in read(out) {
        if r.command.eq_ignore_ascii_case("stop-commands") {
            open = true;
        } else if open {
            open = false;
        } else {
            cmds.push(r);
        }
    }
    (cmds, !open)
}

/// Asserts that the runner reads no command in `out` but the action's own: `::add-mask::`,
/// `::group::`/`::endgroup::` without `marker` in them, `::warning title=…::`/`::error title=…::`
/// annotations (the action always gives a title; the message may quote the forged text, escaped
/// into that one annotation) whose title lacks `marker`, at most one `::error`, and closed
/// stop-commands blocks whose token is 32 hex digits (the action's).
pub fn assert_only_own_commands(out: &str, marker: &str) {
    for r in read(out) {
        if r.command.eq_ignore_ascii_case("stop-commands") {
            let token = r.text.trim_start().trim_start_matches("::stop-commands::");
            assert!(
                token.len() == 32 && token.chars().all(|c| c.is_ascii_hexdigit()),
                "a stop-commands the action did not write (line {}): {:?}\n{out}",
                r.line,
                r.text
            );
        }
    }
    let (cmds, closed) = outside_blocks(out);
    assert!(closed, "a stop-commands block never resumed:\n{out}");
    for r in &cmds {
        let own = match r.command.as_str() {
            "add-mask" | "group" | "endgroup" => {
                r.text.starts_with(&format!("::{}::", r.command)) && !r.text.contains(marker)
            }
            "warning" | "error" => r
                .text
                .strip_prefix(&format!("::{} title=", r.command))
                .and_then(|rest| rest.split_once("::"))
                .is_some_and(|(title, _)| !title.contains(marker)),
            _ => false,
        };
        assert!(
            own,
            "the runner would read a forged command (line {}): {:?}\n{out}",
            r.line, r.text
        );
    }
    let errors = cmds.iter().filter(|r| r.command == "error").count();
    assert!(errors <= 1, "{errors} error annotations:\n{out}");
}
