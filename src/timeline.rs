//! The run's timeline: each step that ran (resolve, verify, approve, lock, upgrade, each
//! workload's rollout, smoke, rollback and its verification) with its start, end and outcome,
//! rendered as the Mermaid gantt chart the job summary shows (GitHub renders it).

use std::time::{Duration, Instant};

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Done,
    Failed,
}

/// One bar of the chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) section: String,
    pub(crate) name: String,
    /// Since the run started.
    pub(crate) start: Duration,
    pub(crate) end: Duration,
    pub(crate) outcome: Outcome,
}

/// The steps of one run, in the order they ended.
#[derive(Debug, Clone)]
pub(crate) struct Timeline {
    origin: Instant,
    entries: Vec<Entry>,
}

/// The section of the run's own steps.
pub(crate) const RUN: &str = "run";

impl Timeline {
    /// An empty timeline of a run that started at `origin`.
    pub(crate) fn new(origin: Instant) -> Timeline {
        Timeline {
            origin,
            entries: Vec::new(),
        }
    }

    /// A step of the run that started at `started` and ends now.
    pub(crate) fn step(&mut self, name: &str, started: Instant, ok: bool) {
        self.add(RUN, name, started, Instant::now(), ok);
    }

    /// A bar in `section` from `start` to `end`.
    pub(crate) fn add(
        &mut self,
        section: &str,
        name: &str,
        start: Instant,
        end: Instant,
        ok: bool,
    ) {
        let since = |t: Instant| t.saturating_duration_since(self.origin);
        let (start, end) = (since(start), since(end));
        self.entries.push(Entry {
            section: section.to_string(),
            name: name.to_string(),
            start,
            end: end.max(start),
            outcome: if ok { Outcome::Done } else { Outcome::Failed },
        });
    }

    #[cfg(test)]
    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The chart as a fenced ```mermaid block, or None when no step ran. Times are milliseconds
    /// since the run started (`dateFormat x`); the axis shows minutes and seconds. Failed steps
    /// are `crit` (red), the others `done`.
    pub(crate) fn mermaid(&self, title: &str) -> Option<String> {
        if self.entries.is_empty() {
            return None;
        }
        let mut md = String::from("```mermaid\ngantt\n");
        md.push_str(&format!("  title {}\n", text(title)));
        md.push_str("  dateFormat x\n  axisFormat %M:%S\n");
        // Sections in the order they first appear, each with its bars in the order they ended.
        let mut sections: Vec<&str> = Vec::new();
        for e in &self.entries {
            if !sections.contains(&e.section.as_str()) {
                sections.push(&e.section);
            }
        }
        let mut n = 0;
        for section in sections {
            md.push_str(&format!("  section {}\n", text(section)));
            for e in self.entries.iter().filter(|e| e.section == section) {
                let ms = |d: Duration| d.as_millis();
                // A bar of under a millisecond still shows as one.
                let end = ms(e.end).max(ms(e.start) + 1);
                let (tag, suffix) = match e.outcome {
                    Outcome::Done => ("done", ""),
                    Outcome::Failed => ("crit", " (failed)"),
                };
                md.push_str(&format!(
                    "  {}{suffix} ({}) :{tag}, s{n}, {}, {end}\n",
                    text(&e.name),
                    seconds(e.end.saturating_sub(e.start)),
                    ms(e.start),
                ));
                n += 1;
            }
        }
        md.push_str("```\n");
        Some(md)
    }
}

/// A duration as the bar's label shows it.
fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Text inside the chart: the characters Mermaid's gantt grammar gives a meaning (`:` ends a
/// task's name, `;` and newlines end a statement, `#` and `%%` start entities and comments) and
/// backticks (they would end the fence) become spaces.
fn text(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| match c {
            ':' | ';' | '#' | '%' | '`' | '\n' | '\r' => ' ',
            c => c,
        })
        .collect();
    t.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_sections_in_order_with_failed_steps_crit() {
        let origin = Instant::now();
        let at = |ms: u64| origin + Duration::from_millis(ms);
        let mut t = Timeline::new(origin);
        t.add(RUN, "resolve", at(0), at(2), true);
        t.add(RUN, "upgrade", at(2), at(1500), true);
        t.add("watch", "Deployment/app-orch", at(1500), at(4000), true);
        t.add(RUN, "watch", at(1500), at(4200), false);
        t.add("rollback", "rollback to 1", at(4300), at(4300), true);
        let md = t.mermaid("deploy v1.1.0 → dev").unwrap();
        assert_eq!(
            md,
            "```mermaid\ngantt\n  title deploy v1.1.0 → dev\n  dateFormat x\n  axisFormat %M:%S\n\
             \x20 section run\n\
             \x20 resolve (0.0s) :done, s0, 0, 2\n\
             \x20 upgrade (1.5s) :done, s1, 2, 1500\n\
             \x20 watch (failed) (2.7s) :crit, s2, 1500, 4200\n\
             \x20 section watch\n\
             \x20 Deployment/app-orch (2.5s) :done, s3, 1500, 4000\n\
             \x20 section rollback\n\
             \x20 rollback to 1 (0.0s) :done, s4, 4300, 4301\n```\n"
        );
    }

    #[test]
    fn grammar_characters_never_reach_the_chart() {
        let origin = Instant::now();
        let mut t = Timeline::new(origin);
        t.add("a:b", "x: y; z # w %% v `q`\nnext", origin, origin, true);
        let md = t.mermaid("t:1\n2").unwrap();
        assert!(md.contains("  title t 1 2\n"), "{md}");
        assert!(md.contains("  section a b\n"), "{md}");
        assert!(
            md.contains("  x  y  z   w    v  q  next (0.0s) :done"),
            "{md}"
        );
        assert_eq!(md.matches("```").count(), 2);
    }

    #[test]
    fn nothing_ran_no_chart() {
        assert_eq!(Timeline::new(Instant::now()).mermaid("x"), None);
    }

    #[test]
    fn a_start_before_the_origin_counts_from_the_origin() {
        let origin = Instant::now();
        let mut t = Timeline::new(origin + Duration::from_secs(1));
        t.step("resolve", origin, true);
        assert_eq!(t.entries()[0].start, Duration::ZERO);
        assert_eq!(t.entries()[0].outcome, Outcome::Done);
    }
}
