//! A real token-authenticated registry for the bed tests: a second docker-registry on the bed's
//! storage (read-only) with `auth: token`, and a token server here that signs RS256 JWTs with
//! openssl, as ghcr.io's and Docker Hub's token services do. acme/python-orch is public
//! (anonymous tokens); every other repository (acme/go-scanner, charts) is private (tokens only
//! for user:pass). Used by bed_registry.rs (images) and bed_charts.rs (OCI charts).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::Bed;

use base64::Engine as _;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ISSUER: &str = "bed-token-issuer";
const SERVICE: &str = "bed-token-registry";
/// base64("user:pass")
pub const BASIC: &str = "Basic dXNlcjpwYXNz";

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A JWT for `scope` (`repository:<name>:pull`), signed with the key in `dir`.
fn sign(dir: &Path, scope: &str) -> String {
    let der = std::fs::read_to_string(dir.join("cert.pem")).unwrap();
    let cert: String = der
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("");
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [cert]});
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut parts = scope.splitn(3, ':');
    let (kind, name, actions) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": "bed", "aud": SERVICE,
        "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{name}"),
        "access": [{"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}]
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let input = dir.join("jwt-input");
    std::fs::write(&input, &signing_input).unwrap();
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(dir.join("key.pem"))
        .arg(&input)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl dgst: {out:?}");
    format!("{signing_input}.{}", b64url(&out.stdout))
}

/// The token server: GET /token?service=…&scope=…; python-orch for anyone, the rest for
/// user:pass only. Records (scope, authorization) of every request.
/// (scope, Authorization) of every token request.
pub type TokenLog = Arc<Mutex<Vec<(String, Option<String>)>>>;

async fn token_server(dir: PathBuf, ip: &str) -> (u16, TokenLog) {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let (dir, log) = (dir.clone(), log.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 2048];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&buf).to_string();
                let target = text.split_whitespace().nth(1).unwrap_or("").to_string();
                let auth = text.lines().skip(1).find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("authorization")
                        .then(|| v.trim().to_string())
                });
                let url = reqwest::Url::parse(&format!("http://x{target}")).unwrap();
                let q: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
                let scope = q.get("scope").cloned().unwrap_or_default();
                log.lock().unwrap().push((scope.clone(), auth.clone()));
                let public = scope.starts_with("repository:acme/python-orch:");
                let (status, body) = if q.get("service").map(String::as_str) != Some(SERVICE) {
                    (400, r#"{"details":"unknown service"}"#.to_string())
                } else if public || auth.as_deref() == Some(BASIC) {
                    let token = sign(&dir, &scope);
                    (
                        200,
                        serde_json::json!({"token": token, "expires_in": 300}).to_string(),
                    )
                } else {
                    (401, r#"{"details":"authentication required"}"#.to_string())
                };
                let resp = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (port, seen)
}

/// A docker-registry this test started; killed when dropped.
pub struct RegistryProcess(std::process::Child);

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The bed's storage served read-only by a second docker-registry with `auth: token`, its
/// token server on `realm_ip`: the registry's host:port, the token server's port and its log.
pub struct TokenRegistry {
    pub host: String,
    pub token_port: u16,
    pub tokens: TokenLog,
    _process: RegistryProcess,
    _dir: tempfile::TempDir,
}

pub async fn token_registry(bed: &Bed, realm_ip: &str) -> TokenRegistry {
    let storage = PathBuf::from(&bed.vars["TD_BED_DIR"]).join("registry/storage");
    assert!(
        storage.is_dir(),
        "no registry storage at {}",
        storage.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=bed-token-issuer", "-keyout"])
        .arg(dir.path().join("key.pem"))
        .arg("-out")
        .arg(dir.path().join("cert.pem"))
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl req: {out:?}");
    let (token_port, tokens) = token_server(dir.path().to_path_buf(), realm_ip).await;
    let port = free_port();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {storage}\n  maintenance:\n    \
             uploadpurging:\n      enabled: false\n    readonly:\n      enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n\
             auth:\n  token:\n    realm: http://{realm_ip}:{token_port}/token\n    \
             service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {cert}\n",
            storage = storage.display(),
            cert = dir.path().join("cert.pem").display(),
        ),
    )
    .unwrap();
    let process = RegistryProcess(
        Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("registry.log")).unwrap())
            .spawn()
            .expect("docker-registry (Debian's docker-registry package)"),
    );
    let host = format!("127.0.0.1:{port}");
    super::wait_for(
        "the token registry to answer",
        Duration::from_secs(20),
        || {
            let url = format!("http://{host}/v2/");
            async move {
                match reqwest::get(&url).await {
                    Ok(r) if r.status() == 401 => Ok(()),
                    Ok(r) => Err(format!("{url} answered {}", r.status())),
                    Err(e) => Err(e.to_string()),
                }
            }
        },
    )
    .await;
    TokenRegistry {
        host,
        token_port,
        tokens,
        _process: process,
        _dir: dir,
    }
}

/// user:pass for `host` only.
pub fn creds_for(host: &str) -> trader_deploy::registry::HostCredentials {
    let mut c = trader_deploy::registry::HostCredentials::default();
    c.insert(
        host,
        trader_deploy::registry::Credentials {
            username: "user".into(),
            password: trader_deploy::secret::Secret::new("pass"),
        },
    );
    c
}
