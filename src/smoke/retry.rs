//! One check's retries and the cutover-blip rule: attempts every `interval` until `successes`
//! consecutive successes, within a time budget and an optional attempt cap (smoke's own loop:
//! a failure resets the streak, which the shared `crate::http::Retry` has no notion of).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
pub(crate) const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The least time a retry gets for its request (or `request_timeout` when that is shorter):
/// no attempt starts that the budget would cut short.
const MIN_ATTEMPT: Duration = Duration::from_secs(1);
/// How a request that timed out is reported (the transport's words, which the loop recognises).
pub(crate) const NO_ANSWER: &str = "no answer within";

/// Retries of one check: attempts every `interval` until `successes` consecutive successes, at
/// most `max_attempts`, within the `timeout` budget; each request within `request_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    pub(crate) timeout: Duration,
    pub(crate) interval: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) successes: u32,
    pub(crate) max_attempts: Option<u32>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            timeout: DEFAULT_TIMEOUT,
            interval: DEFAULT_INTERVAL,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            successes: 1,
            max_attempts: None,
        }
    }
}

/// Time as the retry loop sees it (a fake in tests).
pub(crate) trait Clock: Send + Sync {
    /// Time since an arbitrary fixed start.
    fn now(&self) -> Duration;
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The real clock (tokio's).
pub(crate) struct TokioClock(tokio::time::Instant);

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock(tokio::time::Instant::now())
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// How one check's attempts ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) passed: bool,
    pub(crate) attempts: u32,
    pub(crate) elapsed: Duration,
    /// The last success's summary when passed; else what went wrong.
    pub(crate) detail: String,
}

/// Runs `probe` under `policy`: passes after `successes` consecutive successes; a failure resets
/// the streak; gives up when the attempts or the time budget run out. `probe` gets the timeout
/// for its request; `log` hears about each failed attempt.
pub(crate) async fn retry<F, Fut>(
    policy: &Policy,
    clock: &dyn Clock,
    log: &(dyn Fn(u32, &str) + Send + Sync),
    mut probe: F,
) -> Outcome
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Result<String, String>>,
{
    let start = clock.now();
    let mut streak = 0u32;
    let mut attempts = 0u32;
    let mut last_failure: Option<String> = None;
    // The last failure that was an answer, so a final timeout does not hide a 503.
    let mut answered_failure: Option<String> = None;
    loop {
        attempts += 1;
        let remaining = policy.timeout.saturating_sub(clock.now() - start);
        let request_timeout = policy
            .request_timeout
            .min(remaining.max(Duration::from_millis(100)));
        match probe(request_timeout).await {
            Ok(summary) => {
                streak += 1;
                if streak >= policy.successes {
                    let detail = if attempts > streak {
                        format!(
                            "{summary}; passed after {} failed attempt{}",
                            attempts - streak,
                            if attempts - streak == 1 { "" } else { "s" }
                        )
                    } else {
                        summary
                    };
                    return Outcome {
                        passed: true,
                        attempts,
                        elapsed: clock.now() - start,
                        detail,
                    };
                }
            }
            Err(why) => {
                streak = 0;
                log(attempts, &why);
                if !why.starts_with(NO_ANSWER) {
                    answered_failure = Some(why.clone());
                }
                last_failure = Some(why);
            }
        }
        let out_of_attempts = policy.max_attempts.is_some_and(|m| attempts >= m);
        // Another attempt only when it still gets a fair slice of the budget after the pause.
        let slice = policy.request_timeout.min(MIN_ATTEMPT);
        let out_of_time = clock.now() - start + policy.interval + slice > policy.timeout;
        if out_of_attempts || out_of_time {
            let mut detail = last_failure.unwrap_or_else(|| "no failure".into());
            if detail.starts_with(NO_ANSWER)
                && let Some(earlier) = answered_failure
            {
                detail = format!("{detail} (earlier: {earlier})");
            }
            if streak > 0 {
                detail = format!(
                    "{streak} of {} consecutive successes before the {} ran out; last failure: {detail}",
                    policy.successes,
                    if out_of_attempts {
                        "retries"
                    } else {
                        "time budget"
                    }
                );
            }
            return Outcome {
                passed: false,
                attempts,
                elapsed: clock.now() - start,
                detail,
            };
        }
        clock.sleep(policy.interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A clock that only moves when slept on, or when a probe says a request took time.
    #[derive(Default)]
    struct FakeClock(Mutex<Duration>);

    impl FakeClock {
        fn advance(&self, d: Duration) {
            *self.0.lock().unwrap() += d;
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> Duration {
            *self.0.lock().unwrap()
        }
        fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
            self.advance(d);
            Box::pin(async {})
        }
    }

    fn policy(timeout: u64, interval: u64, successes: u32, max_attempts: Option<u32>) -> Policy {
        Policy {
            timeout: Duration::from_secs(timeout),
            interval: Duration::from_secs(interval),
            request_timeout: Duration::from_secs(1),
            successes,
            max_attempts,
        }
    }

    /// Runs `retry` with a scripted sequence of probe results (true = success), each taking 100ms.
    fn script(p: Policy, results: &[bool]) -> (Outcome, Vec<String>) {
        let clock = FakeClock::default();
        let logged = Mutex::new(Vec::new());
        let log = |n: u32, why: &str| logged.lock().unwrap().push(format!("{n}: {why}"));
        let mut i = 0usize;
        let outcome = futures::executor::block_on(retry(&p, &clock, &log, |_| {
            let ok = results.get(i).copied().unwrap_or(false);
            i += 1;
            clock.advance(Duration::from_millis(100));
            async move {
                if ok {
                    Ok("status 200".to_string())
                } else {
                    Err(format!("got status 503, expected 200 (#{i})"))
                }
            }
        }));
        (outcome, logged.into_inner().unwrap())
    }

    #[test]
    fn first_success_passes_at_once() {
        let (o, log) = script(policy(60, 2, 1, None), &[true]);
        assert!(o.passed);
        assert_eq!((o.attempts, o.detail.as_str()), (1, "status 200"));
        assert!(log.is_empty());
    }

    #[test]
    fn a_transient_503_then_200_passes() {
        let (o, log) = script(policy(60, 2, 1, None), &[false, true]);
        assert!(o.passed);
        assert_eq!(o.attempts, 2);
        assert_eq!(o.detail, "status 200; passed after 1 failed attempt");
        assert_eq!(log, ["1: got status 503, expected 200 (#1)"]);
        assert_eq!(o.elapsed, Duration::from_millis(2200));
    }

    #[test]
    fn consecutive_successes_rule_resets_on_a_failure() {
        // success, blip, then three in a row: passes on attempt 5.
        let (o, _) = script(policy(60, 1, 3, None), &[true, false, true, true, true]);
        assert!(o.passed);
        assert_eq!(o.attempts, 5);
        // Alternating never gets three in a row: fails when the retries run out.
        let (o, _) = script(
            policy(60, 1, 3, Some(6)),
            &[true, true, false, true, true, false],
        );
        assert!(!o.passed);
        assert_eq!(o.attempts, 6);
        assert_eq!(o.detail, "got status 503, expected 200 (#6)");
        let (o, _) = script(
            policy(60, 1, 3, Some(5)),
            &[false, false, false, true, true],
        );
        assert!(!o.passed);
        assert_eq!(
            o.detail,
            "2 of 3 consecutive successes before the retries ran out; last failure: got status 503, expected 200 (#3)"
        );
    }

    #[test]
    fn the_time_budget_ends_the_attempts() {
        // 10 s budget, 2 s interval, 100 ms per request: attempts at 0, 2.1, 4.2, 6.3, 8.4 s.
        let (o, log) = script(policy(10, 2, 1, None), &[false; 20]);
        assert!(!o.passed);
        assert_eq!(o.attempts, 5);
        assert_eq!(log.len(), 5);
        assert!(o.elapsed <= Duration::from_secs(10), "{:?}", o.elapsed);
        // A success just before the end still counts.
        let mut r = vec![false; 4];
        r.push(true);
        let (o, _) = script(policy(10, 2, 1, None), &r);
        assert!(o.passed && o.attempts == 5);
    }

    #[test]
    fn a_last_attempt_gets_a_fair_slice_and_an_earlier_different_failure_is_kept() {
        // 6 s budget, 500 ms pauses, 1 s requests that each take 100 ms: no attempt starts with
        // less than 1 s left.
        let clock = FakeClock::default();
        let starts = Mutex::new(Vec::new());
        let p = Policy {
            timeout: Duration::from_secs(6),
            interval: Duration::from_millis(500),
            request_timeout: Duration::from_secs(1),
            successes: 1,
            max_attempts: None,
        };
        let log = |_: u32, _: &str| {};
        let n = Mutex::new(0);
        let o = futures::executor::block_on(retry(&p, &clock, &log, |t| {
            starts.lock().unwrap().push((clock.now(), t));
            clock.advance(Duration::from_millis(100));
            let mut n = n.lock().unwrap();
            *n += 1;
            let why = if *n < 8 {
                "got status 503, expected 200".to_string()
            } else {
                "no answer within 1s".to_string()
            };
            async move { Err::<String, _>(why) }
        }));
        let starts = starts.into_inner().unwrap();
        assert!(
            starts
                .iter()
                .all(|(at, t)| *t == Duration::from_secs(1) && *at + *t <= p.timeout),
            "{starts:?}"
        );
        assert_eq!(o.attempts, 9);
        assert_eq!(
            o.detail,
            "no answer within 1s (earlier: got status 503, expected 200)"
        );
    }

    #[test]
    fn retries_cap_the_attempts() {
        let (o, _) = script(policy(60, 1, 1, Some(3)), &[false; 10]);
        assert!(!o.passed);
        assert_eq!(o.attempts, 3);
    }

    #[test]
    fn the_request_timeout_shrinks_to_the_remaining_budget() {
        let clock = FakeClock::default();
        let seen = Mutex::new(Vec::new());
        let p = Policy {
            timeout: Duration::from_secs(5),
            interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(3),
            successes: 1,
            max_attempts: None,
        };
        let log = |_: u32, _: &str| {};
        let o = futures::executor::block_on(retry(&p, &clock, &log, |t| {
            seen.lock().unwrap().push(t);
            clock.advance(t);
            async { Err::<String, _>("timeout".to_string()) }
        }));
        assert!(!o.passed);
        assert_eq!(
            seen.into_inner().unwrap(),
            [Duration::from_secs(3), Duration::from_secs(1)]
        );
    }
}
