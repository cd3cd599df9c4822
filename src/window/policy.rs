//! A deploy window policy and its verdict at an instant: a calendar (deploy only while that
//! market is closed, `margin` away from every open and close, lunch breaks included) and/or
//! weekly windows in a named time zone; both must allow when both are given. The verdict names
//! the session the instant falls in and the next instant a deploy would be allowed.

use std::time::Duration;

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

use super::calendar::{Calendar, CalendarError};
use super::command::describe;

/// The policy as written (the `deploy_window` input, or `deploy_windows.<environment>` of
/// deploy/policy.yaml).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    /// ISO MIC (or `24/7`): deploy only while this market is closed.
    #[serde(default)]
    calendar: Option<String>,
    /// Keep this far from any open or close (`30m`).
    #[serde(default)]
    margin: Option<String>,
    /// Weekly windows: `Sat 00:00-24:00`, `Mon-Fri 22:00-23:30`, `Fri 22:00-02:00`.
    #[serde(default)]
    windows: Vec<String>,
    /// The windows' time zone (IANA name); default: the calendar's, else UTC.
    #[serde(default)]
    timezone: Option<String>,
    /// `anytime` (default: rolling back is the safe move) or `window`.
    #[serde(default)]
    rollback: Option<String>,
}

/// A validated policy.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    calendar: Option<&'static Calendar>,
    margin: SignedDuration,
    windows: Vec<Weekly>,
    tz: TimeZone,
    tz_name: String,
    /// `mode: rollback` ignores the window.
    pub(crate) rollback_anytime: bool,
}

/// One weekly window: on the listed weekdays (Monday = 0), from `start` for `length`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Weekly {
    text: String,
    days: [bool; 7],
    start: Time,
    length: SignedDuration,
}

/// The answer at an instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub(crate) allowed: bool,
    /// Why (the session the instant falls in, or the window it is in or out of).
    pub(crate) reason: String,
    /// The next instant a deploy would be allowed, in UTC and the policy's local time (when
    /// refused).
    pub(crate) next: Option<String>,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn parse_day(s: &str) -> Option<usize> {
    let s = s.trim().to_ascii_lowercase();
    DAYS.iter()
        .position(|d| s.starts_with(d) && d.len() <= s.len())
}

fn parse_hm(s: &str) -> Option<SignedDuration> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    if !(0..=24).contains(&h) || !(0..60).contains(&m) || (h == 24 && m != 0) {
        return None;
    }
    Some(SignedDuration::from_mins(h * 60 + m))
}

fn parse_weekly(text: &str) -> Result<Weekly, String> {
    let bad = || {
        format!(
            "window {text:?} is not `DAYS HH:MM-HH:MM` (e.g. `Sat 00:00-24:00`, `Mon-Fri 22:00-23:30`)"
        )
    };
    let (days_part, hours) = text.trim().split_once(' ').ok_or_else(bad)?;
    let mut days = [false; 7];
    for part in days_part.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (parse_day(a).ok_or_else(bad)?, parse_day(b).ok_or_else(bad)?);
                let mut d = a;
                loop {
                    days[d] = true;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days[parse_day(part).ok_or_else(bad)?] = true,
        }
    }
    let (from, to) = hours.trim().split_once('-').ok_or_else(bad)?;
    let (from, to) = (
        parse_hm(from).ok_or_else(bad)?,
        parse_hm(to).ok_or_else(bad)?,
    );
    if from == SignedDuration::from_hours(24) {
        return Err(bad());
    }
    // `22:00-02:00` runs past midnight.
    let length = if to > from {
        to - from
    } else {
        to + SignedDuration::from_hours(24) - from
    };
    let start = Time::midnight().checked_add(from).map_err(|_| bad())?;
    Ok(Weekly {
        text: text.trim().to_string(),
        days,
        start,
        length,
    })
}

/// Reads a policy from YAML (a mapping). `what` names where it came from, for messages.
pub(crate) fn parse(yaml: &str, what: &str) -> Result<Policy, String> {
    let file: PolicyFile = serde_saphyr::from_str(yaml).map_err(|e| {
        let first = e.to_string();
        format!(
            "{what} is not a deploy window (keys: calendar, margin, windows, timezone, rollback): {}",
            first.lines().next().unwrap_or("")
        )
    })?;
    from_file(file, what)
}

/// Reads the policy of `environment` from deploy/policy.yaml's `deploy_windows` mapping;
/// `Ok(None)` when the file names none for it.
pub(crate) fn parse_for_environment(
    yaml: &str,
    environment: &str,
    what: &str,
) -> Result<Option<Policy>, String> {
    #[derive(Deserialize)]
    struct Root {
        #[serde(default)]
        deploy_windows: std::collections::BTreeMap<String, PolicyFile>,
    }
    let root: Root = serde_saphyr::from_str(yaml).map_err(|e| {
        format!(
            "{what}: `deploy_windows` is not a mapping of environments to deploy windows: {}",
            e.to_string().lines().next().unwrap_or("")
        )
    })?;
    match root.deploy_windows.get(environment) {
        None => Ok(None),
        Some(f) => {
            from_file(f.clone(), &format!("{what} (deploy_windows.{environment})")).map(Some)
        }
    }
}

fn from_file(f: PolicyFile, what: &str) -> Result<Policy, String> {
    let calendar = match &f.calendar {
        None => None,
        Some(mic) => Some(Calendar::get(mic).map_err(|e| format!("{what}: {e}"))?),
    };
    if matches!(calendar, Some(Calendar::AlwaysOpen)) && f.windows.is_empty() {
        return Err(format!(
            "{what}: calendar 24/7 never closes, so it allows no deploy: give `windows` (a weekly \
             maintenance window) instead"
        ));
    }
    if calendar.is_none() && f.windows.is_empty() {
        return Err(format!("{what}: give a `calendar`, `windows`, or both"));
    }
    let margin = match &f.margin {
        None => SignedDuration::ZERO,
        Some(m) => {
            let d: Duration = humantime::parse_duration(m.trim())
                .map_err(|e| format!("{what}: margin {m:?} is not a duration like 30m: {e}"))?;
            if d > Duration::from_secs(12 * 3600) {
                return Err(format!("{what}: margin {m} is longer than 12h"));
            }
            SignedDuration::try_from(d).map_err(|e| format!("{what}: margin {m}: {e}"))?
        }
    };
    let windows = f
        .windows
        .iter()
        .map(|w| parse_weekly(w).map_err(|e| format!("{what}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let (tz, tz_name) = match (&f.timezone, calendar) {
        (Some(name), _) => (
            TimeZone::get(name.trim()).map_err(|_| {
                format!(
                    "{what}: timezone {name:?} is not an IANA time zone (e.g. America/New_York)"
                )
            })?,
            name.trim().to_string(),
        ),
        (None, Some(c)) => {
            let (tz, name) = c.tz();
            (tz, name.to_string())
        }
        (None, None) => (TimeZone::UTC, "UTC".to_string()),
    };
    let rollback_anytime = match f.rollback.as_deref().map(str::trim) {
        None | Some("anytime") => true,
        Some("window") => false,
        Some(other) => {
            return Err(format!(
                "{what}: rollback {other:?} is not `anytime` or `window`"
            ));
        }
    };
    Ok(Policy {
        calendar,
        margin,
        windows,
        tz,
        tz_name,
        rollback_anytime,
    })
}

impl Policy {
    /// One line for the plan: `XNYS closed, 30m from any open or close; Sat 00:00-24:00 (America/New_York)`.
    pub(crate) fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(c) = self.calendar {
            let margin = if self.margin.is_zero() {
                String::new()
            } else {
                format!(
                    ", {} from any open or close",
                    humantime::format_duration(self.margin.unsigned_abs())
                )
            };
            parts.push(format!("while {} is closed{margin}", c.name()));
        }
        if !self.windows.is_empty() {
            let list: Vec<&str> = self.windows.iter().map(|w| w.text.as_str()).collect();
            parts.push(format!("within {} ({})", list.join(", "), self.tz_name));
        }
        parts.join(" and ")
    }

    /// The blocked span `[from, to)` of the calendar that holds `at`, if any.
    fn calendar_block(
        &self,
        at: Timestamp,
    ) -> Result<Option<(Timestamp, Timestamp)>, CalendarError> {
        let Some(cal) = self.calendar else {
            return Ok(None);
        };
        let m = self.margin;
        let horizon = at
            .checked_add(SignedDuration::from_hours(24 * 16))
            .unwrap_or(Timestamp::MAX);
        let list = cal.intervals(at, horizon)?.unwrap_or_default();
        // Blocked spans around each session part, merged when they touch.
        let mut spans: Vec<(Timestamp, Timestamp)> = Vec::new();
        for (a, b) in list {
            let (a, b) = (
                a.saturating_sub(m).unwrap_or(a),
                b.saturating_add(m).unwrap_or(b),
            );
            match spans.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => spans.push((a, b)),
            }
        }
        Ok(spans.into_iter().find(|(a, b)| *a <= at && at < *b))
    }

    /// The weekly window holding `at` (`Ok(None)` when outside all) and, when outside, the
    /// next start.
    fn window_at(&self, at: Timestamp) -> (Option<&Weekly>, Option<Timestamp>) {
        if self.windows.is_empty() {
            return (None, None);
        }
        let today = at.to_zoned(self.tz.clone()).date();
        let mut next: Option<Timestamp> = None;
        let mut day = today.yesterday().unwrap_or(today);
        for _ in 0..9 {
            let weekday = day.weekday().to_monday_zero_offset() as usize;
            for w in &self.windows {
                if !w.days[weekday] {
                    continue;
                }
                let Some(start) = instant(day, w.start, &self.tz) else {
                    continue;
                };
                let end = start.checked_add(w.length).unwrap_or(Timestamp::MAX);
                if start <= at && at < end {
                    return (Some(w), None);
                }
                if start > at && next.is_none_or(|n| start < n) {
                    next = Some(start);
                }
            }
            day = match day.tomorrow() {
                Ok(d) => d,
                Err(_) => break,
            };
        }
        (None, next)
    }

    /// Whether a deploy may run at `at`, why, and when it next may.
    pub(crate) fn verdict(&self, at: Timestamp) -> Result<Verdict, CalendarError> {
        let mut reasons = Vec::new();
        let mut allowed = true;
        if let Some(cal) = self.calendar {
            let state = cal.state(at)?;
            let text = describe(cal, &state);
            if let Some((_, to)) = self.calendar_block(at)? {
                allowed = false;
                if state.is_open() {
                    reasons.push(text);
                } else {
                    reasons.push(format!(
                        "{text}, within {} of an open or close (until {})",
                        humantime::format_duration(self.margin.unsigned_abs()),
                        super::both_clocks(cal, to)
                    ));
                }
            } else {
                reasons.push(text);
            }
        }
        if !self.windows.is_empty() {
            match self.window_at(at) {
                (Some(w), _) => {
                    reasons.push(format!("inside window {} ({})", w.text, self.tz_name))
                }
                (None, _) => {
                    allowed = false;
                    let list: Vec<&str> = self.windows.iter().map(|w| w.text.as_str()).collect();
                    reasons.push(format!(
                        "outside the windows {} ({})",
                        list.join(", "),
                        self.tz_name
                    ));
                }
            }
        }
        let next = if allowed {
            None
        } else {
            Some(match self.next_allowed(at)? {
                Some(t) => self.clocks(t),
                None => "none in the next 30 days".to_string(),
            })
        };
        Ok(Verdict {
            allowed,
            reason: reasons.join("; "),
            next,
        })
    }

    /// The first instant at or after `at` that every part of the policy allows (30 days ahead).
    pub(crate) fn next_allowed(&self, at: Timestamp) -> Result<Option<Timestamp>, CalendarError> {
        let limit = at
            .checked_add(SignedDuration::from_hours(24 * 30))
            .unwrap_or(Timestamp::MAX);
        let mut t = at;
        for _ in 0..200 {
            if t > limit {
                return Ok(None);
            }
            if let Some((_, to)) = self.calendar_block(t)? {
                t = to;
                continue;
            }
            match self.window_at(t) {
                (None, Some(next)) if !self.windows.is_empty() => {
                    t = next;
                    continue;
                }
                (None, None) if !self.windows.is_empty() => return Ok(None),
                _ => return Ok(Some(t)),
            }
        }
        Ok(None)
    }

    /// `2026-11-30T21:30:00Z (2026-11-30 16:30 America/New_York)`.
    fn clocks(&self, at: Timestamp) -> String {
        let local = at.to_zoned(self.tz.clone());
        format!(
            "{at} ({} {:02}:{:02} {})",
            local.date(),
            local.hour(),
            local.minute(),
            self.tz_name
        )
    }
}

fn instant(day: Date, time: Time, tz: &TimeZone) -> Option<Timestamp> {
    day.to_datetime(time)
        .to_zoned(tz.clone())
        .ok()
        .map(|z| z.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn xnys() -> Policy {
        parse("{calendar: XNYS, margin: 30m}", "deploy_window").unwrap()
    }

    #[test]
    fn market_hours_are_refused_with_the_next_allowed_instant() {
        let v = xnys().verdict(ts("2026-11-30T15:00:00Z")).unwrap();
        assert!(!v.allowed);
        assert_eq!(
            v.reason,
            "XNYS is open (session of 2026-11-30, 09:30-16:00 America/New_York)"
        );
        // 16:00 close + 30m margin.
        assert_eq!(
            v.next.as_deref(),
            Some("2026-11-30T21:30:00Z (2026-11-30 16:30 America/New_York)")
        );
    }

    #[test]
    fn margins_around_opens_and_closes() {
        let p = xnys();
        // 09:10 New York: 20 minutes before the open.
        let v = p.verdict(ts("2026-11-30T14:10:00Z")).unwrap();
        assert!(!v.allowed);
        assert!(
            v.reason.contains("within 30m of an open or close"),
            "{}",
            v.reason
        );
        // 16:31 New York: past the margin.
        assert!(p.verdict(ts("2026-11-30T21:31:00Z")).unwrap().allowed);
        // A weekend.
        let v = p.verdict(ts("2026-11-28T15:00:00Z")).unwrap();
        assert!(v.allowed);
        assert_eq!(v.reason, "XNYS is closed (weekend, 2026-11-28)");
    }

    #[test]
    fn lunch_breaks_shorter_than_two_margins_are_not_windows() {
        let p = parse("{calendar: XTKS, margin: 45m}", "w").unwrap();
        // Tokyo's lunch 11:30-12:30: 12:00 is 30m from both.
        let v = p.verdict(ts("2026-03-04T03:00:00Z")).unwrap();
        assert!(!v.allowed);
        let p = parse("{calendar: XTKS, margin: 20m}", "w").unwrap();
        assert!(p.verdict(ts("2026-03-04T03:00:00Z")).unwrap().allowed);
    }

    #[test]
    fn weekly_windows_in_their_time_zone() {
        let p = parse(
            "{windows: ['Sat 00:00-24:00', 'Mon-Fri 22:00-02:00'], timezone: Europe/London}",
            "w",
        )
        .unwrap();
        assert!(
            p.verdict(ts("2026-11-28T12:00:00Z")).unwrap().allowed,
            "Saturday"
        );
        assert!(
            p.verdict(ts("2026-12-01T01:30:00Z")).unwrap().allowed,
            "Monday night past midnight"
        );
        let v = p.verdict(ts("2026-12-01T12:00:00Z")).unwrap();
        assert!(!v.allowed);
        assert_eq!(
            v.next.as_deref(),
            Some("2026-12-01T22:00:00Z (2026-12-01 22:00 Europe/London)")
        );
        // Summer time: 22:00 London is 21:00 UTC.
        let v = p.verdict(ts("2026-07-07T12:00:00Z")).unwrap();
        assert_eq!(
            v.next.as_deref(),
            Some("2026-07-07T21:00:00Z (2026-07-07 22:00 Europe/London)")
        );
    }

    #[test]
    fn a_calendar_and_windows_must_both_allow() {
        // Crypto-style maintenance window on a Saturday, but XNYS must be closed too.
        let p = parse(
            "{calendar: XNYS, windows: ['Fri 15:00-18:00'], timezone: America/New_York}",
            "w",
        )
        .unwrap();
        // Friday 15:30 New York: inside the window, but the market is open.
        let v = p.verdict(ts("2026-12-04T20:30:00Z")).unwrap();
        assert!(!v.allowed);
        assert_eq!(
            v.next.as_deref(),
            Some("2026-12-04T21:00:00Z (2026-12-04 16:00 America/New_York)")
        );
    }

    #[test]
    fn bad_policies_name_what_is_wrong() {
        let err = |y: &str| parse(y, "deploy_window").unwrap_err();
        assert!(err("{calendar: XPAR}").contains("unknown exchange calendar \"XPAR\""));
        assert!(err("{calendar: 24/7}").contains("24/7 never closes"));
        assert!(err("{}").contains("give a `calendar`, `windows`, or both"));
        assert!(
            err("{calendar: XNYS, margin: soon}").contains("margin \"soon\" is not a duration")
        );
        assert!(err("{windows: ['Someday 10:00-11:00']}").contains("is not `DAYS HH:MM-HH:MM`"));
        assert!(
            err("{windows: ['Sat 00:00-24:00'], timezone: Mars/Olympus}")
                .contains("not an IANA time zone")
        );
        assert!(err("{calendar: XNYS, rollback: never}").contains("`anytime` or `window`"));
        assert!(err("{calender: XNYS}").starts_with("deploy_window is not a deploy window"));
    }

    #[test]
    fn a_policy_file_is_keyed_by_environment() {
        let y = "deploy_windows:\n  prod: {calendar: XNYS, margin: 30m}\n";
        assert!(
            parse_for_environment(y, "prod", "deploy/policy.yaml")
                .unwrap()
                .is_some()
        );
        assert!(
            parse_for_environment(y, "dev", "deploy/policy.yaml")
                .unwrap()
                .is_none()
        );
        assert!(
            parse_for_environment("other: 1\n", "prod", "f")
                .unwrap()
                .is_none()
        );
    }
}
