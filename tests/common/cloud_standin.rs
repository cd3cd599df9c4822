//! Local stand-ins for the clouds' token services (issue #15): Google's OAuth token endpoint,
//! STS and IAM Credentials, the Microsoft identity platform's v2.0 token endpoint (with its
//! OpenID configuration), and GitHub's OIDC token service. One HTTP/1.1 server (TLS with a test
//! CA when asked: azure-identity takes only https authorities) that records every request and
//! checks it strictly against the services' documented formats (`cloud_routes`): a request the
//! real service would refuse gets the real service's refusal, and is recorded as refused.
//!
//! Tokens it issues are `ya29.standin.<claims>.<HMAC>` (Google) and HS256 JWTs (Microsoft,
//! GitHub), keyed with a key the bed's token webhook shares (testbed/README.md), so the bed's
//! kube-apiserver accepts exactly what this stand-in issued and nothing expired.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{Value, json};

pub use super::cloud_routes::Config;

/// One request as it came.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Lower-cased names.
    pub headers: BTreeMap<String, String>,
    pub body: String,
    /// The status answered.
    pub status: u16,
    /// Why it was refused, when it was.
    pub refusal: Option<String>,
}

impl Recorded {
    /// The form body's fields.
    pub fn form(&self) -> BTreeMap<String, String> {
        form_fields(&self.body)
    }
}

/// `a=b&c=d` decoded (`+` is a space).
pub fn form_fields(body: &str) -> BTreeMap<String, String> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let d = |x: &str| {
                percent_encoding::percent_decode_str(&x.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (d(k), d(v))
        })
        .collect()
}

/// A running stand-in.
pub struct Standin {
    pub url: String,
    pub config: Arc<Config>,
    pub log: Arc<Mutex<Vec<Recorded>>>,
}

impl Standin {
    /// Serves `config` on 127.0.0.1 (https with `tls`), until the process ends.
    pub fn start(config: Config, tls: Option<&Pki>) -> Standin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{port}");
        let mut config = config;
        config.base = url.clone();
        let config = Arc::new(config);
        let log = Arc::new(Mutex::new(Vec::new()));
        let tls = tls.map(|p| Arc::new(p.server_config()));
        let (c, l) = (config.clone(), log.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (c, l, tls) = (c.clone(), l.clone(), tls.clone());
                std::thread::spawn(move || serve(stream, &c, &l, tls));
            }
        });
        Standin { url, config, log }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    /// Forgets the requests so far.
    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
    }
}

fn serve(
    stream: TcpStream,
    config: &Config,
    log: &Mutex<Vec<Recorded>>,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    match tls {
        Some(cfg) => {
            let Ok(conn) = rustls::ServerConnection::new(cfg) else {
                return;
            };
            let mut s = rustls::StreamOwned::new(conn, stream);
            one(&mut s, config, log);
            s.conn.send_close_notify();
            let _ = s.flush();
        }
        None => {
            let mut s = stream;
            one(&mut s, config, log);
        }
    }
}

/// Reads one request, answers it, and closes (`connection: close`).
fn one(s: &mut (impl Read + Write), config: &Config, log: &Mutex<Vec<Recorded>>) {
    let mut r = BufReader::new(&mut *s);
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    if r.read_exact(&mut body).is_err() {
        return;
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.clone(), String::new()),
    };
    let mut rec = Recorded {
        method,
        path,
        query,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        status: 0,
        refusal: None,
    };
    let (status, answer) = match super::cloud_routes::route(config, &rec) {
        Ok(v) => (200, v),
        Err(refusal) => {
            rec.refusal = Some(refusal.why.clone());
            (refusal.status, refusal.body)
        }
    };
    rec.status = status;
    log.lock().unwrap().push(rec);
    // A string answer is an XML document (STS's); anything else is JSON.
    let (text, content_type) = match answer {
        Value::String(xml) => (xml, "text/xml"),
        v => (v.to_string(), "application/json; charset=utf-8"),
    };
    let reply = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{text}",
        if status == 200 { "OK" } else { "Refused" },
        text.len()
    );
    let _ = s.write_all(reply.as_bytes());
    let _ = s.flush();
}

/// A refusal as the service writes it.
pub struct Refusal {
    pub status: u16,
    pub why: String,
    pub body: Value,
}

/// OAuth 2.0's error answer (RFC 6749 §5.2), 400 unless `status` says otherwise.
pub fn oauth_error(status: u16, error: &str, description: &str) -> Refusal {
    Refusal {
        status,
        why: format!("{error}: {description}"),
        body: json!({"error": error, "error_description": description}),
    }
}

/// Google APIs' error answer (`google.rpc.Status`).
pub fn google_error(status: u16, code: &str, message: &str) -> Refusal {
    Refusal {
        status,
        why: format!("{code}: {message}"),
        body: json!({"error": {"code": status, "message": message, "status": code}}),
    }
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn mac(key: &[u8], data: &str) -> String {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    b64(ring::hmac::sign(&k, data.as_bytes()).as_ref())
}

/// A Google-style access token for `claims` (`sub`, `scope`, `exp`…).
pub fn google_token(key: &[u8], claims: &Value) -> String {
    let payload = b64(claims.to_string().as_bytes());
    format!("ya29.standin.{payload}.{}", mac(key, &payload))
}

/// The claims of a Google-style token this key issued.
pub fn google_claims(key: &[u8], token: &str) -> Option<Value> {
    let rest = token.strip_prefix("ya29.standin.")?;
    let (payload, sig) = rest.split_once('.')?;
    (mac(key, payload) == sig).then_some(())?;
    serde_json::from_slice(&unb64(payload)?).ok()
}

/// An HS256 JWT of `claims`.
pub fn hs256(key: &[u8], claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    );
    let sig = mac(key, &input);
    format!("{input}.{sig}")
}

/// The claims of an HS256 JWT this key signed.
pub fn hs256_claims(key: &[u8], jwt: &str) -> Option<Value> {
    let (input, sig) = jwt.rsplit_once('.')?;
    (mac(key, input) == sig).then_some(())?;
    let (header, claims) = input.split_once('.')?;
    let header: Value = serde_json::from_slice(&unb64(header)?).ok()?;
    (header["alg"] == "HS256").then_some(())?;
    serde_json::from_slice(&unb64(claims)?).ok()
}

/// A JWT's header and claims, unverified.
pub fn jwt_parts(jwt: &str) -> Option<(Value, Value)> {
    let mut it = jwt.split('.');
    let h = serde_json::from_slice(&unb64(it.next()?)?).ok()?;
    let c = serde_json::from_slice(&unb64(it.next()?)?).ok()?;
    Some((h, c))
}

/// Runs openssl; panics with its output when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (Debian's openssl package)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA and a certificate it signed for 127.0.0.1 and localhost.
pub struct Pki {
    pub ca_pem: PathBuf,
    cert_pem: PathBuf,
    key_pem: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        let o = |args: &[&str]| openssl(dir, args);
        o(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=trader-deploy test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        o(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        o(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        Pki {
            ca_pem: dir.join("ca.pem"),
            cert_pem: dir.join("server.pem"),
            key_pem: dir.join("server.key"),
        }
    }

    fn server_config(&self) -> rustls::ServerConfig {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert_pem)
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
        let key = PrivateKeyDer::from_pem_file(&self.key_pem).unwrap();
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap()
    }
}

/// A service-account key file as Google writes it (a fresh RSA key), its token_uri at `token_uri`.
pub fn service_account_key(dir: &Path, email: &str, key_id: &str, token_uri: &str) -> PathBuf {
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "sa.key",
        ],
    );
    let pem = std::fs::read_to_string(dir.join("sa.key")).unwrap();
    let file = dir.join(format!("{key_id}.json"));
    let v = json!({
        "type": "service_account",
        "project_id": "prod",
        "private_key_id": key_id,
        "private_key": pem,
        "client_email": email,
        "client_id": "109876543210987654321",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": format!("https://www.googleapis.com/robot/v1/metadata/x509/{email}"),
        "universe_domain": "googleapis.com",
    });
    std::fs::write(&file, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    file
}

/// The public key (PKCS#1 DER) of a service-account key file, as Google keeps it.
pub fn public_key_of(key_file: &Path) -> Vec<u8> {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(key_file).unwrap()).unwrap();
    let pem = v["private_key"].as_str().unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let pair = ring::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
    use ring::signature::KeyPair as _;
    pair.public_key().as_ref().to_vec()
}
