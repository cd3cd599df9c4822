//! Deploy windows: whether a deploy may run now, from an exchange calendar (only while the market
//! is closed, with margins around each open and close) and weekly windows in a named time zone,
//! and the next instant a deploy would be allowed.

pub(crate) mod calendar;
pub mod command;
pub(crate) mod policy;

use jiff::Timestamp;

use calendar::Calendar;

/// An instant in UTC and in the calendar's local time:
/// `2026-11-30T14:30:00Z (2026-11-30 09:30 America/New_York)`.
pub(crate) fn both_clocks(cal: &Calendar, at: Timestamp) -> String {
    let (tz, name) = cal.tz();
    let local = at.to_zoned(tz);
    format!(
        "{at} ({} {:02}:{:02} {name})",
        local.date(),
        local.hour(),
        local.minute()
    )
}
