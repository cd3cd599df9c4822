//! The test bed's real application, run by the real node's containerd: a std-only HTTP server
//! (static musl binary, packed into an image with no base by testbed/node/images.sh) answering
//! `/health`, `/healthz`, `/ready`, `/readyz`, `/metrics` and `/api/v1/status` like the fake app.
//!
//! Its behaviour comes from its environment, which the image config sets per tag (and a chart
//! may override): `APP_MODE` is one of
//! - `healthy`: everything answers 200;
//! - `crash`: logs a few lines and exits 1 at start (a real CrashLoopBackOff);
//! - `never-ready`: `/ready` and `/readyz` answer 503 for ever (the readiness probe fails);
//! - `unready`: `/readyz` (the kubelet's probe) answers 200 but the app's own `/ready` 503;
//! - `slow-start`: `/ready` and `/readyz` answer 503 for `APP_START_DELAY` seconds (default 10);
//! - `pause`: serves nothing and sleeps until a signal (the node's sandbox image).
//!
//! A trading desk's drain endpoints (issue #18): `GET /api/v1/orders/open` answers
//! `{"count": N}` with N from `APP_OPEN_ORDERS` (default 0); `POST /admin/pause-new-orders` and
//! `POST /admin/resume` answer 200 with `{"paused": true|false}` and are logged like every request.
//!
//! `APP_VERSION` is the version `/api/v1/status` and `app_info` report, `APP_PORT` (else
//! `HTTP_PORT`) the port (default 8080), `POD_NAMESPACE` the namespace reported. SIGTERM and
//! SIGINT end it at once with exit code 0 (as PID 1 in a container a signal without a handler
//! would be ignored).
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

unsafe extern "C" {
    fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    fn _exit(code: i32) -> !;
    fn write(fd: i32, buf: *const u8, count: usize) -> isize;
}

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

extern "C" fn on_signal(_signum: i32) {
    const MSG: &[u8] = b"testapp: signal received, exiting\n";
    // SAFETY: write(2) and _exit(2) are async-signal-safe; MSG is a valid static buffer.
    unsafe {
        write(2, MSG.as_ptr(), MSG.len());
        _exit(0);
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Healthy,
    Crash,
    NeverReady,
    Unready,
    SlowStart,
    Pause,
}

impl Mode {
    fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "" | "healthy" => Mode::Healthy,
            "crash" => Mode::Crash,
            "never-ready" => Mode::NeverReady,
            "unready" => Mode::Unready,
            "slow-start" => Mode::SlowStart,
            "pause" => Mode::Pause,
            _ => return None,
        })
    }
}

struct App {
    mode: Mode,
    version: String,
    namespace: String,
    started: Instant,
    start_delay: Duration,
    open_orders: u64,
    paused: Mutex<bool>,
    counters: Mutex<BTreeMap<(String, u16), u64>>,
}

impl App {
    fn warming_up(&self) -> bool {
        self.mode == Mode::SlowStart && self.started.elapsed() < self.start_delay
    }

    /// (status, content type, body) of one POST.
    fn post(&self, path: &str) -> (u16, &'static str, String) {
        let paused = match path {
            "/admin/pause-new-orders" => true,
            "/admin/resume" => false,
            _ => {
                return (
                    405,
                    "text/plain; charset=utf-8",
                    "method not allowed\n".into(),
                );
            }
        };
        *self.paused.lock().unwrap() = paused;
        *self
            .counters
            .lock()
            .unwrap()
            .entry((path.to_string(), 200))
            .or_insert(0) += 1;
        (200, "application/json", format!("{{\"paused\":{paused}}}"))
    }

    /// (status, content type, body) of one request.
    fn answer(&self, path: &str) -> (u16, &'static str, String) {
        const TEXT: &str = "text/plain; charset=utf-8";
        let (status, ctype, body) = match path {
            "/api/v1/orders/open" => (
                200,
                "application/json",
                format!(
                    "{{\"count\":{},\"paused\":{}}}",
                    self.open_orders,
                    *self.paused.lock().unwrap()
                ),
            ),
            "/health" | "/healthz" => (200, TEXT, "ok\n".to_string()),
            "/ready" | "/readyz" => {
                let ready = match self.mode {
                    Mode::NeverReady => false,
                    // The kubelet probes /readyz (the shallow check); the app's own /ready is
                    // its deep readiness, which this mode never reaches.
                    Mode::Unready => path == "/readyz",
                    _ => !self.warming_up(),
                };
                if ready {
                    (200, TEXT, "ready\n".to_string())
                } else {
                    (503, TEXT, "not ready\n".to_string())
                }
            }
            "/api/v1/status" => (
                200,
                "application/json",
                format!(
                    "{{\"status\":\"ok\",\"version\":\"{}\",\"namespace\":\"{}\"}}",
                    json_escape(&self.version),
                    json_escape(&self.namespace)
                ),
            ),
            "/metrics" => (
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                self.metrics(),
            ),
            _ => (404, TEXT, "not found\n".to_string()),
        };
        *self
            .counters
            .lock()
            .unwrap()
            .entry((path.to_string(), status))
            .or_insert(0) += 1;
        (status, ctype, body)
    }

    fn metrics(&self) -> String {
        let mut out = String::from(
            "# HELP http_requests_total HTTP requests served by the test app.\n\
             # TYPE http_requests_total counter\n",
        );
        for ((path, code), n) in self.counters.lock().unwrap().iter() {
            out.push_str(&format!(
                "http_requests_total{{path=\"{path}\",code=\"{code}\"}} {n}\n"
            ));
        }
        out.push_str("# HELP app_info Version of the test app.\n# TYPE app_info gauge\n");
        out.push_str(&format!("app_info{{version=\"{}\"}} 1\n", self.version));
        out
    }
}

fn json_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Serves one connection: one request, answered with Content-Length and `Connection: close`.
fn serve(app: &App, stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    // Skip the headers (up to the empty line).
    let mut agent = String::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line == "\r\n" || line == "\n" => break,
            Ok(_) => {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("user-agent:") {
                    agent = v.trim().to_string();
                }
            }
        }
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/");
    let (status, ctype, body) = if method == "GET" || method == "HEAD" {
        app.answer(path)
    } else if method == "POST" {
        app.post(path)
    } else {
        (
            405,
            "text/plain; charset=utf-8",
            "method not allowed\n".to_string(),
        )
    };
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let mut out = stream;
    let _ = out.write_all(head.as_bytes());
    if method != "HEAD" {
        let _ = out.write_all(body.as_bytes());
    }
    let _ = out.flush();
    // Probes come every few seconds: log only what is not a passing probe, so the log keeps the
    // requests a test made.
    if !(agent.starts_with("kube-probe/") && status == 200) {
        println!(
            "testapp {} {method} {path} -> {status} ({agent})",
            app.version
        );
    }
}

fn main() {
    // SAFETY: installs a handler that only calls async-signal-safe functions.
    unsafe {
        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
    }
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let mode_s = std::env::args().nth(1).unwrap_or_else(|| env("APP_MODE"));
    let Some(mode) = Mode::parse(&mode_s) else {
        eprintln!("testapp: unknown APP_MODE {mode_s:?}");
        std::process::exit(2);
    };
    if mode == Mode::Pause {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    let version = match env("APP_VERSION") {
        v if v.is_empty() => "unknown".to_string(),
        v => v,
    };
    // APP_PORT, else HTTP_PORT (what the traderadmin chart sets), else 8080.
    let port: u16 = [env("APP_PORT"), env("HTTP_PORT")]
        .iter()
        .find_map(|p| p.parse().ok())
        .unwrap_or(8080);
    println!("testapp {version}: starting (mode {mode_s}, port {port})");
    if mode == Mode::Crash {
        println!("testapp {version}: loading strategy config");
        eprintln!("testapp {version}: FATAL: cannot reach the broker gateway: connection refused");
        eprintln!("testapp {version}: exiting with code 1");
        std::process::exit(1);
    }
    let app = Arc::new(App {
        mode,
        version: version.clone(),
        namespace: env("POD_NAMESPACE"),
        started: Instant::now(),
        start_delay: Duration::from_secs(env("APP_START_DELAY").parse().unwrap_or(10)),
        open_orders: env("APP_OPEN_ORDERS").parse().unwrap_or(0),
        paused: Mutex::new(false),
        counters: Mutex::new(BTreeMap::new()),
    });
    let listener = match TcpListener::bind(("0.0.0.0", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("testapp {version}: cannot listen on port {port}: {e}");
            std::process::exit(1);
        }
    };
    println!("testapp {version}: listening on port {port}");
    for stream in listener.incoming().flatten() {
        let app = Arc::clone(&app);
        std::thread::spawn(move || serve(&app, stream));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(mode: Mode, delay: u64) -> App {
        App {
            mode,
            version: "v1.2.0".into(),
            namespace: "ns".into(),
            started: Instant::now(),
            start_delay: Duration::from_secs(delay),
            open_orders: 2,
            paused: Mutex::new(false),
            counters: Mutex::new(BTreeMap::new()),
        }
    }

    #[test]
    fn open_orders_and_pause_resume() {
        let a = app(Mode::Healthy, 0);
        assert_eq!(
            a.answer("/api/v1/orders/open").2,
            r#"{"count":2,"paused":false}"#
        );
        assert_eq!(
            a.post("/admin/pause-new-orders"),
            (200, "application/json", r#"{"paused":true}"#.into())
        );
        assert_eq!(
            a.answer("/api/v1/orders/open").2,
            r#"{"count":2,"paused":true}"#
        );
        assert_eq!(a.post("/admin/resume").2, r#"{"paused":false}"#);
        assert_eq!(a.post("/health").0, 405);
    }

    #[test]
    fn modes_answer_as_documented() {
        let a = app(Mode::Healthy, 0);
        assert_eq!(a.answer("/ready").0, 200);
        let body = a.answer("/api/v1/status").2;
        assert_eq!(
            body,
            r#"{"status":"ok","version":"v1.2.0","namespace":"ns"}"#
        );
        assert_eq!(app(Mode::NeverReady, 0).answer("/readyz").0, 503);
        let u = app(Mode::Unready, 0);
        assert_eq!((u.answer("/readyz").0, u.answer("/ready").0), (200, 503));
        let s = app(Mode::SlowStart, 3600);
        assert_eq!((s.answer("/ready").0, s.answer("/health").0), (503, 200));
        assert_eq!(Mode::parse("bogus"), None);
    }

    #[test]
    fn metrics_count_requests_by_path_and_code() {
        let a = app(Mode::NeverReady, 0);
        a.answer("/ready");
        a.answer("/ready");
        let m = a.answer("/metrics").2;
        assert!(
            m.contains("http_requests_total{path=\"/ready\",code=\"503\"} 2\n"),
            "{m}"
        );
        assert!(m.contains("app_info{version=\"v1.2.0\"} 1\n"), "{m}");
    }
}
