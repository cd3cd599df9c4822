//! GitHub: the REST client and its error and retry rules, and what the action does with it
//! (the approval check, the deployment records, the session that ties them to one run, the
//! plan's pull-request comment), and the job's OIDC token for the clouds' federated sign-ins.

pub(crate) mod approval;
mod client;
pub(crate) mod comment;
pub(crate) mod deployments;
mod error;
pub(crate) mod job_deployment;
pub(crate) mod oidc;
pub(crate) mod provenance;
mod retry;
pub(crate) mod session;

pub(crate) use client::{GitHub, encode};
pub(crate) use error::GitHubError;
pub(crate) use retry::RetryPolicy;
