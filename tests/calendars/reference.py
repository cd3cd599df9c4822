#!/usr/bin/env python3
"""The reference answers for tests/calendars.rs, from exchange-calendars itself.

Usage: reference.py MIC N SEED
Prints one `<RFC 3339 instant>\t<open|closed>` line per instant: N random minutes from
2024-01-02 to 2030-12-30 (UTC, seeded), then every session's open, close and lunch-break bounds
from 2024-01-02 to 2030-12-30, each exactly and one minute either side. `open` is
exchange-calendars' `is_open_on_minute` (a session's open minute is open, its close minute is
not, a lunch break is closed).
"""
import random
import sys

import exchange_calendars as xc
import pandas as pd

mic, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cal = xc.get_calendar(mic, start="2024-01-01", end="2030-12-31")
lo = pd.Timestamp("2024-01-02T00:00Z").value // 60_000_000_000
hi = pd.Timestamp("2030-12-30T00:00Z").value // 60_000_000_000
rng = random.Random(seed)
minutes = [pd.Timestamp(rng.randrange(lo, hi) * 60_000_000_000, tz="UTC") for _ in range(n)]
sched = cal.schedule.loc["2024-01-02":"2030-12-29"]
one = pd.Timedelta(minutes=1)
for col in ["open", "close", "break_start", "break_end"]:
    for t in sched[col].dropna():
        minutes.extend([t - one, t, t + one])
first, last = cal.first_minute, cal.last_minute
out = sys.stdout
for m in minutes:
    if m < first or m > last:
        continue
    state = "open" if cal.is_open_on_minute(m) else "closed"
    out.write(f"{m.strftime('%Y-%m-%dT%H:%M:%SZ')}\t{state}\n")
