//! What a response must satisfy (status, body text or regex, JSON pointers, Prometheus
//! metrics) and the check of one response against it, saying what it got against what it expected.

use std::collections::BTreeSet;

/// How much of a body a failure message quotes.
const QUOTE: usize = 160;

/// What a response must satisfy.
#[derive(Debug, Clone, Default)]
pub(crate) struct Expect {
    /// Accepted status codes; empty = any 2xx.
    pub(crate) status: Vec<u16>,
    pub(crate) body_contains: Vec<String>,
    pub(crate) body_matches: Option<regex::Regex>,
    /// JSON pointer → expected value.
    pub(crate) json: Vec<(String, serde_json::Value)>,
    /// Prometheus metric names that must be present.
    pub(crate) metrics: Vec<String>,
}

/// A response as the expectations see it.
#[derive(Debug, Clone, Default)]
pub(crate) struct HttpResponse {
    pub(crate) status: u16,
    pub(crate) body: String,
}

fn quote(body: &str) -> String {
    let t = body.trim();
    if t.chars().count() <= QUOTE {
        format!("{t:?}")
    } else {
        let cut: String = t.chars().take(QUOTE).collect();
        format!("{cut:?}…")
    }
}

fn json_equal(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a, b) {
        (serde_json::Value::Number(x), serde_json::Value::Number(y)) => {
            x == y || x.as_f64().is_some_and(|x| y.as_f64() == Some(x))
        }
        (serde_json::Value::Array(x), serde_json::Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y))
        }
        (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// True when the Prometheus text exposition has a sample named `name` (or declares its TYPE).
pub(crate) fn has_metric(text: &str, name: &str) -> bool {
    text.lines().map(str::trim).any(|line| {
        if let Some(rest) = line.strip_prefix('#') {
            let mut words = rest.split_whitespace();
            words.next() == Some("TYPE") && words.next() == Some(name)
        } else {
            let sample = line
                .split(|c: char| c == '{' || c.is_whitespace())
                .next()
                .unwrap_or("");
            !sample.is_empty() && sample == name
        }
    })
}

/// Checks a response against the expectations: `Ok(summary)` or `Err("got …, expected …")`.
pub(crate) fn evaluate(expect: &Expect, resp: &HttpResponse) -> Result<String, String> {
    let status_ok = if expect.status.is_empty() {
        (200..300).contains(&resp.status)
    } else {
        expect.status.contains(&resp.status)
    };
    if !status_ok {
        let wanted = if expect.status.is_empty() {
            "2xx".to_string()
        } else {
            expect
                .status
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(" or ")
        };
        return Err(format!(
            "got status {} (body {}), expected {wanted}",
            resp.status,
            quote(&resp.body)
        ));
    }
    for needle in &expect.body_contains {
        if !resp.body.contains(needle.as_str()) {
            return Err(format!(
                "got body {}, expected it to contain {needle:?}",
                quote(&resp.body)
            ));
        }
    }
    if let Some(re) = &expect.body_matches
        && !re.is_match(&resp.body)
    {
        return Err(format!(
            "got body {}, expected it to match /{}/",
            quote(&resp.body),
            re.as_str()
        ));
    }
    if !expect.json.is_empty() {
        let doc: serde_json::Value = serde_json::from_str(&resp.body).map_err(|e| {
            format!(
                "got body {} that is not JSON ({e}), expected JSON",
                quote(&resp.body)
            )
        })?;
        for (pointer, want) in &expect.json {
            match doc.pointer(pointer) {
                None => {
                    return Err(format!(
                        "got JSON without {pointer} ({}), expected {pointer} = {want}",
                        quote(&doc.to_string())
                    ));
                }
                Some(got) if !json_equal(got, want) => {
                    return Err(format!(
                        "got {pointer} = {got}, expected {pointer} = {want}"
                    ));
                }
                Some(_) => {}
            }
        }
    }
    for m in &expect.metrics {
        if !has_metric(&resp.body, m) {
            let names: BTreeSet<&str> = resp
                .body
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split(|c: char| c == '{' || c.is_whitespace()).next())
                .filter(|n| !n.is_empty())
                .collect();
            let names: Vec<&str> = names.into_iter().take(10).collect();
            return Err(format!(
                "got metrics [{}], expected metric {m} to be present",
                names.join(", ")
            ));
        }
    }
    Ok(format!("status {}", resp.status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smoke::spec::testing::parse;

    fn expect(yaml: &str) -> Expect {
        let spec = parse(&format!(
            "checks: [{{name: a, service: x, port: 80, expect: {yaml}}}]"
        ))
        .unwrap();
        spec.checks[0].expect.clone()
    }

    fn resp(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            body: body.into(),
        }
    }

    #[test]
    fn status_expectations() {
        let any2xx = expect("{}");
        assert_eq!(evaluate(&any2xx, &resp(204, "")), Ok("status 204".into()));
        assert_eq!(
            evaluate(&any2xx, &resp(503, "not ready")).unwrap_err(),
            "got status 503 (body \"not ready\"), expected 2xx"
        );
        let listed = expect("{status: [200, 301]}");
        assert!(evaluate(&listed, &resp(301, "")).is_ok());
        assert_eq!(
            evaluate(&listed, &resp(500, "")).unwrap_err(),
            "got status 500 (body \"\"), expected 200 or 301"
        );
        let long = "x".repeat(500);
        let e = evaluate(&any2xx, &resp(500, &long)).unwrap_err();
        assert!(e.len() < 250 && e.contains('…'), "{e}");
    }

    #[test]
    fn body_expectations() {
        let e = expect("{body_contains: [ok, ready]}");
        assert!(evaluate(&e, &resp(200, "ok and ready")).is_ok());
        assert_eq!(
            evaluate(&e, &resp(200, "ok")).unwrap_err(),
            "got body \"ok\", expected it to contain \"ready\""
        );
        let e = expect(r#"{body_matches: '^v\d+\.\d+'}"#);
        assert!(evaluate(&e, &resp(200, "v1.2 up")).is_ok());
        assert_eq!(
            evaluate(&e, &resp(200, "down")).unwrap_err(),
            r#"got body "down", expected it to match /^v\d+\.\d+/"#
        );
    }

    #[test]
    fn json_pointer_expectations() {
        let e = expect("{json: {/status: ok, /version: '${version}', /replicas: 2, /ready: true}}");
        let good = r#"{"status":"ok","version":"v1.2.0","replicas":2.0,"ready":true}"#;
        assert!(evaluate(&e, &resp(200, good)).is_ok());
        let bad = r#"{"status":"degraded","version":"v1.2.0","replicas":2,"ready":true}"#;
        assert_eq!(
            evaluate(&e, &resp(200, bad)).unwrap_err(),
            r#"got /status = "degraded", expected /status = "ok""#
        );
        let missing = r#"{"status":"ok","replicas":2,"ready":true}"#;
        assert!(
            evaluate(&e, &resp(200, missing))
                .unwrap_err()
                .starts_with("got JSON without /version")
        );
        assert!(
            evaluate(&e, &resp(200, "<html>"))
                .unwrap_err()
                .contains("that is not JSON")
        );
    }

    #[test]
    fn metric_expectations() {
        let text = "# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\nhttp_requests_total{path=\"/\",code=\"200\"} 3\nprocess_up 1\n# TYPE latency_seconds histogram\nlatency_seconds_bucket{le=\"1\"} 1\n";
        assert!(has_metric(text, "http_requests_total"));
        assert!(has_metric(text, "process_up"));
        assert!(has_metric(text, "latency_seconds"));
        assert!(has_metric(text, "latency_seconds_bucket"));
        assert!(!has_metric(text, "http_requests"));
        assert!(!has_metric(text, "Requests."));
        let e = expect("{metrics: [http_requests_total, orders_total]}");
        assert_eq!(
            evaluate(&e, &resp(200, text)).unwrap_err(),
            "got metrics [http_requests_total, latency_seconds_bucket, process_up], expected metric orders_total to be present"
        );
    }
}
