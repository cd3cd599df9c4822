//! The deploy windows' exchange calendars against exchange-calendars, the Python package they are
//! generated from (issue #18): for every supported calendar, 20,000 random minutes from 2024 to
//! 2030 plus every session's open, close and lunch-break bounds ± 1 minute, the action's
//! `trader-deploy calendar <MIC> --at -` and the package's `is_open_on_minute` must agree.
//! Disagreements are listed by instant.

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};

use common::tools;

const MICS: &[&str] = &["XNYS", "XNAS", "XLON", "XETR", "XTKS", "XHKG", "24/7"];
const RANDOM: usize = 20_000;

fn python() -> Option<std::path::PathBuf> {
    let version = tools::pinned("EXCHANGE_CALENDARS_VERSION");
    let venv = tools::cache().join("venv-calendars");
    tools::require(
        &format!("exchange-calendars {version}"),
        venv.join(format!(".stamp-{version}")),
    )?;
    Some(venv.join("bin/python"))
}

#[test]
fn every_calendar_agrees_with_exchange_calendars() {
    let Some(py) = python() else { return };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/calendars/reference.py");
    let mut report = Vec::new();
    for (i, mic) in MICS.iter().enumerate() {
        let out = Command::new(&py)
            .args([script, mic, &RANDOM.to_string(), &(18 + i).to_string()])
            .output()
            .expect("run reference.py");
        assert!(
            out.status.success(),
            "reference.py {mic}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let reference = String::from_utf8(out.stdout).unwrap();
        let cases: Vec<(&str, &str)> = reference
            .lines()
            .map(|l| l.split_once('\t').expect("instant<TAB>state"))
            .collect();
        assert!(cases.len() >= RANDOM, "{mic}: only {} cases", cases.len());
        let instants: String = cases.iter().map(|(t, _)| format!("{t}\n")).collect();
        let mut child = Command::new(env!("CARGO_BIN_EXE_trader-deploy"))
            .args(["calendar", mic, "--at", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn trader-deploy calendar");
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(instants.as_bytes()));
        let answer = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(
            answer.status.success(),
            "trader-deploy calendar {mic}: {}",
            String::from_utf8_lossy(&answer.stderr)
        );
        let ours: Vec<String> = String::from_utf8(answer.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(ours.len(), cases.len(), "{mic}: one answer per instant");
        let wrong: Vec<String> = cases
            .iter()
            .zip(&ours)
            .filter(|((_, want), got)| want != got)
            .map(|((t, want), got)| {
                format!("{mic} {t}: exchange-calendars {want}, trader-deploy {got}")
            })
            .collect();
        println!(
            "{mic}: {} instants, {} disagreements",
            cases.len(),
            wrong.len()
        );
        report.extend(wrong);
    }
    assert!(
        report.is_empty(),
        "{} disagreements:\n{}",
        report.len(),
        report
            .iter()
            .take(50)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
