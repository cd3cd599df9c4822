//! How a check's request travels: a URL through the crate's HTTP client, a Service port through
//! a port-forward to one of its Ready pods (one HTTP/1.1 exchange over the stream), each within
//! the check's request timeout.

use std::time::Duration;

use http_body_util::BodyExt as _;

use super::expect::HttpResponse;
use super::retry::NO_ANSWER;
use super::spec::{Check, Target};
use super::{SmokeError, one_line};
use crate::portforward::{self, PortRef};

/// Largest response body read (the rest is a failure: smoke endpoints answer small bodies).
const MAX_BODY: usize = 4 << 20;

/// Sends checks' requests: URLs directly, services through port-forwards.
pub(crate) struct Transport {
    http: reqwest::Client,
    kube: Option<kube::Client>,
    namespace: String,
}

impl Transport {
    pub(crate) fn new(
        kube: Option<kube::Client>,
        namespace: &str,
    ) -> Result<Transport, SmokeError> {
        // Each request is bounded by its check's own timeout (`send`).
        let http = crate::http::client(None).map_err(SmokeError::Client)?;
        Ok(Transport {
            http,
            kube,
            namespace: namespace.to_string(),
        })
    }

    /// One request of `check`, within `timeout`.
    pub(crate) async fn send(
        &self,
        check: &Check,
        timeout: Duration,
    ) -> Result<HttpResponse, String> {
        let fut = async {
            match &check.target {
                Target::Url(url) => self.send_url(check, url).await,
                Target::Service {
                    service,
                    port,
                    path,
                } => self.send_service(check, service, port, path).await,
            }
        };
        tokio::time::timeout(timeout, fut)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "{NO_ANSWER} {}",
                    humantime::format_duration(timeout)
                ))
            })
    }

    async fn send_url(&self, check: &Check, url: &str) -> Result<HttpResponse, String> {
        let mut req = self.http.request(check.method.clone(), url);
        for (k, v) in &check.headers {
            req = req.header(k, v);
        }
        if let Some(b) = &check.body {
            req = req.body(b.clone());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("request failed: {}", one_line(&e.without_url())))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| format!("reading the body failed: {}", one_line(&e.without_url())))?;
        if bytes.len() > MAX_BODY {
            return Err(format!("the body is over {MAX_BODY} bytes"));
        }
        Ok(HttpResponse {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    async fn send_service(
        &self,
        check: &Check,
        service: &str,
        port: &PortRef,
        path: &str,
    ) -> Result<HttpResponse, String> {
        let client = self
            .kube
            .as_ref()
            .ok_or_else(|| "no Kubernetes client to port-forward with".to_string())?;
        let fwd = portforward::connect_service(client, &self.namespace, service, port)
            .await
            .map_err(|e| e.to_string())?;
        let pod = fwd.pod.clone();
        let target_port = fwd.target_port;
        let result = exchange_over(fwd, check, service, &self.namespace, path).await;
        result.map_err(|e| format!("{e} (pod {pod}, port {target_port})"))
    }
}

/// One HTTP/1.1 exchange over a port-forward stream.
async fn exchange_over(
    fwd: portforward::Forwarded,
    check: &Check,
    service: &str,
    namespace: &str,
    path: &str,
) -> Result<HttpResponse, String> {
    let portforward::Forwarded {
        stream, forwarder, ..
    } = fwd;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP handshake over the port-forward failed: {e}"))?;
    let conn_task = tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(check.method.clone())
        .uri(path)
        .header(http::header::HOST, format!("{service}.{namespace}.svc"))
        .header(
            http::header::USER_AGENT,
            concat!("trader-deploy-smoke/", env!("CARGO_PKG_VERSION")),
        );
    for (k, v) in &check.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let body = check.body.clone().unwrap_or_default();
    let req = req
        .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
        .map_err(|e| format!("building the request failed: {e}"))?;
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request over the port-forward failed: {e}"))?;
        let status = resp.status().as_u16();
        let bytes = http_body_util::Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("reading the body failed: {e}"))?
            .to_bytes();
        Ok(HttpResponse {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }
    .await;
    drop(sender);
    conn_task.abort();
    let _ = conn_task.await;
    forwarder.abort();
    let _ = tokio::time::timeout(Duration::from_secs(5), forwarder.join()).await;
    result
}
