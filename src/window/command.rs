//! `trader-deploy calendar <MIC> [--at <RFC 3339 instant>|-]`: whether a market is open at an
//! instant and its next open or close, for people and for tests (`--at -` reads one instant a
//! line from standard input and answers one `open`/`closed` a line).

use std::io::{BufRead, Write};

use clap::{Arg, Command};
use jiff::Timestamp;

use super::calendar::{Calendar, SUPPORTED, State};

/// The subcommand's name.
pub const NAME: &str = "calendar";

/// The clap definition (also listed in the top-level help).
pub fn command() -> Command {
    Command::new(NAME)
        .about("Whether an exchange is open at an instant, and its next open or close")
        .arg(
            Arg::new("mic")
                .required(true)
                .value_name("MIC")
                .help(format!("Exchange calendar: {}", SUPPORTED.join(", "))),
        )
        .arg(
            Arg::new("at")
                .long("at")
                .value_name("INSTANT")
                .help("RFC 3339 instant (default: now); - reads one instant a line from stdin"),
        )
}

/// Runs the subcommand on `args` (starting with `calendar`); returns the exit code.
pub fn main(args: &[std::ffi::OsString]) -> u8 {
    let m = match command().try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let mic = m.get_one::<String>("mic").expect("required");
    let at = m.get_one::<String>("at").map(String::as_str);
    let out = std::io::stdout();
    let mut out = out.lock();
    match run(mic, at, &mut std::io::stdin().lock(), &mut out) {
        Ok(()) => 0,
        Err(e) => {
            let _ = out.flush();
            eprintln!("error: {e}");
            1
        }
    }
}

fn parse_instant(s: &str) -> Result<Timestamp, String> {
    s.trim().parse::<Timestamp>().map_err(|e| {
        format!("--at {s:?} is not an RFC 3339 instant (e.g. 2026-11-30T15:00:00Z): {e}")
    })
}

fn run(
    mic: &str,
    at: Option<&str>,
    stdin: &mut dyn BufRead,
    out: &mut dyn Write,
) -> Result<(), String> {
    let cal = Calendar::get(mic).map_err(|e| e.to_string())?;
    let io = |e: std::io::Error| format!("failed to write the answer: {e}");
    if at == Some("-") {
        for line in stdin.lines() {
            let line = line.map_err(|e| format!("failed to read standard input: {e}"))?;
            if line.trim().is_empty() {
                continue;
            }
            let state = cal
                .state(parse_instant(&line)?)
                .map_err(|e| e.to_string())?;
            writeln!(out, "{}", if state.is_open() { "open" } else { "closed" }).map_err(io)?;
        }
        return Ok(());
    }
    let at = match at {
        Some(s) => parse_instant(s)?,
        None => Timestamp::now(),
    };
    let state = cal.state(at).map_err(|e| e.to_string())?;
    writeln!(out, "{}", if state.is_open() { "open" } else { "closed" }).map_err(io)?;
    writeln!(out, "{}", describe(cal, &state)).map_err(io)?;
    match cal.next_transition(at).map_err(|e| e.to_string())? {
        Some((when, opens)) => writeln!(
            out,
            "next: {} at {}",
            if opens { "opens" } else { "closes" },
            super::both_clocks(cal, when)
        )
        .map_err(io)?,
        None => writeln!(out, "next: none ({} never closes)", cal.name()).map_err(io)?,
    }
    Ok(())
}

/// The state in words: `XNYS is open (session of 2026-11-30, 09:30-16:00 America/New_York)`.
pub(crate) fn describe(cal: &Calendar, state: &State) -> String {
    let name = cal.name();
    let (_, tz) = cal.tz();
    match state {
        State::Open {
            date,
            times,
            special,
        } => {
            if matches!(cal, Calendar::AlwaysOpen) {
                return format!("{name} is open (it never closes)");
            }
            let lunch = times
                .lunch
                .map(|(a, b)| format!(", lunch {}-{}", hm(a), hm(b)))
                .unwrap_or_default();
            format!(
                "{name} is open (session of {date}, {}-{}{lunch} {tz}{})",
                hm(times.open),
                hm(times.close),
                if *special { ", a special session" } else { "" }
            )
        }
        State::Lunch { date } => format!("{name} is closed (lunch break of {date})"),
        State::BeforeOpen { date } => format!("{name} is closed (before the open of {date})"),
        State::AfterClose { date } => format!("{name} is closed (after the close of {date})"),
        State::Weekend { date } => format!("{name} is closed (weekend, {date})"),
        State::Holiday { date } => format!("{name} is closed (holiday, {date})"),
    }
}

fn hm(t: jiff::civil::Time) -> String {
    format!("{:02}:{:02}", t.hour(), t.minute())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(mic: &str, at: Option<&str>, stdin: &str) -> Result<String, String> {
        let mut out = Vec::new();
        run(mic, at, &mut stdin.as_bytes(), &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn one_instant_with_its_next_transition() {
        let a = answer("XNYS", Some("2026-11-30T15:00:00Z"), "").unwrap();
        assert_eq!(
            a,
            "open\nXNYS is open (session of 2026-11-30, 09:30-16:00 America/New_York)\n\
             next: closes at 2026-11-30T21:00:00Z (2026-11-30 16:00 America/New_York)\n"
        );
        let a = answer("XTKS", Some("2026-03-04T03:00:00Z"), "").unwrap();
        assert!(a.starts_with("closed\nXTKS is closed (lunch break of 2026-03-04)\nnext: opens at 2026-03-04T03:30:00Z"), "{a}");
    }

    #[test]
    fn instants_from_stdin() {
        let a = answer(
            "XLON",
            Some("-"),
            "2026-11-30T09:00:00Z\n\n2026-11-29T09:00:00Z\n",
        )
        .unwrap();
        assert_eq!(a, "open\nclosed\n");
    }

    #[test]
    fn errors_name_what_is_wrong() {
        assert!(
            answer("XXXX", None, "")
                .unwrap_err()
                .starts_with("unknown exchange calendar \"XXXX\"")
        );
        assert!(
            answer("XNYS", Some("tomorrow"), "")
                .unwrap_err()
                .starts_with("--at \"tomorrow\" is not an RFC 3339 instant")
        );
        assert!(
            answer("XNYS", Some("2035-01-02T15:00:00Z"), "")
                .unwrap_err()
                .contains("cover 2024-01-01 to 2030-12-31")
        );
    }
}
