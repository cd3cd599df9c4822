//! Image verification before the upgrade: every resolved image reference (`reference`) is looked
//! up in its registry through the OCI distribution API, HEAD on the manifest (`client`), with
//! bearer-token auth as ghcr.io and Docker Hub do it, Basic, with credentials per registry host
//! (sent only to that host and its own token realm), anonymous otherwise (`auth`); and the digests found, for reporting and optional pinning
//! (`repository@sha256:…`).

mod auth;
mod client;
mod reference;

use std::time::Duration;

pub use auth::{Credentials, HostCredentials, registry_host};
pub use client::{MANIFEST_MEDIA_TYPES, Registry};
pub use reference::ImageRef;
pub(crate) use reference::is_loopback;

use crate::inputs::ImageSetting;
use crate::runner::Runner;

/// A failure to verify an image. Every message names the image reference.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("image reference {reference:?} is not valid: {message}")]
    BadReference { reference: String, message: String },
    #[error(
        "image {reference} does not exist: registry {registry} has no manifest for tag {tag:?} \
         (HEAD {url} answered 404)"
    )]
    NotFound {
        reference: String,
        registry: String,
        tag: String,
        url: String,
    },
    #[error(
        "failed to verify image {reference}: registry {registry} denied access (HTTP {status}); \
         the repository may not exist or may need credentials for {registry} in \
         registry_auth{detail}"
    )]
    Denied {
        reference: String,
        registry: String,
        status: u16,
        detail: String,
    },
    #[error("failed to verify image {reference}: request to {url} failed: {source}")]
    Request {
        reference: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("failed to verify image {reference}: {url} answered HTTP {status}{detail}")]
    Status {
        reference: String,
        url: String,
        status: u16,
        detail: String,
        /// The wait a 429 or 503 asked for in `Retry-After`.
        retry_after: Option<Duration>,
    },
    #[error("failed to get a registry token for image {reference} from {realm}: {message}")]
    Token {
        reference: String,
        realm: String,
        message: String,
    },
    #[error(
        "failed to verify image {reference}: {url} asks for authentication this program does not \
         speak ({challenge:?})"
    )]
    Challenge {
        reference: String,
        url: String,
        challenge: String,
    },
    #[error(
        "failed to verify image {reference}: {url} reported no usable Docker-Content-Digest \
         ({got:?})"
    )]
    NoDigest {
        reference: String,
        url: String,
        got: String,
    },
    #[error("failed to build the registry HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("{} of {total} images failed verification:\n{}", .errors.len(), list(.errors))]
    Several {
        total: usize,
        errors: Vec<RegistryError>,
    },
}

fn list(errors: &[RegistryError]) -> String {
    errors
        .iter()
        .map(|e| format!("  - {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl RegistryError {
    /// True for failures worth another attempt: the network, timeouts, 429 and 5xx.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            RegistryError::Request { .. } => true,
            RegistryError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// The wait the registry asked for before another attempt (`Retry-After` on 429 and 503).
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            RegistryError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// True when the failure is an image that does not exist (as opposed to an access problem).
    pub fn is_not_found(&self) -> bool {
        match self {
            RegistryError::NotFound { .. } => true,
            RegistryError::Several { errors, .. } => errors.iter().all(|e| e.is_not_found()),
            _ => false,
        }
    }
}
/// The result of verifying one `images` entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VerifiedImage {
    /// The helm key it is set to.
    pub(crate) key: String,
    /// `repository:tag`.
    pub reference: String,
    /// The manifest digest the registry reported (`sha256:…`).
    pub digest: String,
    /// What is deployed: `repository@digest` when pinning, else `repository:tag`.
    pub deploy: String,
}
/// Verifies every image of `settings` at once (concurrently) and reports all failures together.
pub async fn verify(
    registry: &Registry,
    settings: &[ImageSetting],
    version: &str,
    pin: bool,
) -> Result<Vec<VerifiedImage>, RegistryError> {
    let mut parsed = Vec::new();
    let mut errors = Vec::new();
    for s in settings {
        match ImageRef::parse(&s.repository, version) {
            Ok(r) => parsed.push((s, r)),
            Err(e) => errors.push(e),
        }
    }
    let results =
        futures::future::join_all(parsed.iter().map(|(_, r)| registry.manifest_digest(r))).await;
    let mut out = Vec::new();
    for ((s, r), res) in parsed.iter().zip(results) {
        match res {
            Ok(digest) => out.push(VerifiedImage {
                key: s.key.clone(),
                reference: r.reference.clone(),
                deploy: if pin {
                    r.pinned(&digest)
                } else {
                    r.reference.clone()
                },
                digest,
            }),
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => Ok(out),
        1 if settings.len() == 1 => Err(errors.remove(0)),
        _ => Err(RegistryError::Several {
            total: settings.len(),
            errors,
        }),
    }
}

/// Verifies `images` at `version` with the credentials of each image's registry host
/// (digest-pinned when `pin_digests`), logs each, and returns them; the pipeline decides whether
/// to verify at all.
pub(crate) async fn verify_images(
    images: &[ImageSetting],
    version: &str,
    pin_digests: bool,
    credentials: HostCredentials,
    runner: &Runner,
) -> Result<Vec<VerifiedImage>, RegistryError> {
    let registry = Registry::new(credentials, runner)?;
    let verified = verify(&registry, images, version, pin_digests).await?;
    for v in &verified {
        runner.info(&format!("{} = {} ({})", v.key, v.deploy, v.digest));
    }
    Ok(verified)
}

#[cfg(test)]
mod tests;
