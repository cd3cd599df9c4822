//! Test support shared by the bed's stand-in programs.
pub mod github;
pub mod github_comments;
pub mod github_jobs;
pub mod github_json;
