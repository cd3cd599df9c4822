//! INPUT_* variables or CLI flags, plus the GITHUB_* context → one typed, validated [`Config`]:
//! the input table (`defs`), the raw strings (`raw`), each input's parser (`parse`), helm's
//! `--set` syntax (`strvals`), the kubeconfig (`kubeconfig`) and where it comes from
//! (`kubeconfig_source`), its user's exec credential plugin (`kubeconfig_exec`), what a container action sees of the runner's disk (`mounts`), the
//! registry credentials per host (`registry_auth`) and the resolution into a [`Config`]
//! (`config`).

mod cloud;
mod config;
mod defs;
mod kubeconfig;
mod kubeconfig_exec;
mod kubeconfig_source;
mod mounts;
mod parse;
mod policies;
mod raw;
mod registry_auth;
pub(crate) mod strvals;
mod values;
mod window;

pub(crate) use config::image_shapes;
pub use config::{Config, resolve};
pub use defs::{INPUTS, InputSpec};
pub(crate) use defs::{Mode, SECRET_INPUTS};
pub(crate) use kubeconfig_source::KubeconfigSource;
pub use parse::ImageSetting;
pub use raw::{RawInputs, input_var};

use crate::version::PolicyError;

// The environment moved to `crate::env`; its old path still works.
pub use crate::env::Env;

/// A bad input: names the input and says what is wrong, on one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("input `{input}`: {message}")]
pub struct InputError {
    pub(crate) input: &'static str,
    pub(crate) message: String,
}

impl From<PolicyError> for InputError {
    fn from(e: PolicyError) -> Self {
        InputError {
            input: e.input,
            message: e.message,
        }
    }
}

pub(crate) fn bad(input: &'static str, message: impl Into<String>) -> InputError {
    InputError {
        input,
        message: message.into(),
    }
}
