//! trader-deploy: deploys trading systems to Kubernetes with helm, as a GitHub Action and a CLI.

pub mod cancel;
pub mod chart;
pub mod cli;
pub mod context;
pub mod diff;
pub mod env;
pub mod github;
pub mod helm;
mod http;
pub mod inputs;
pub mod kube_client;
pub mod kube_token;
pub mod lease;
pub mod manifest;
mod names;
pub mod notify;
pub mod outputs;
pub mod pipeline;
mod plan_live;
mod plan_report;
pub mod policy;
pub mod portforward;
pub mod redact;
pub mod registry;
pub mod resolve;
pub mod rollout;
pub mod runner;
pub mod secret;
pub mod smoke;

pub mod summary;
mod timeline;
pub mod version;
pub mod window;
