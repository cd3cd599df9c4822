//! The release lock: a coordination.k8s.io Lease per release, held and renewed while a run
//! works on the release, released at the end, taken over once it has expired (a killed run).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams, Preconditions};

use crate::cancel::Cancel;
use crate::runner::Runner;

/// How long a lease stays valid without renewal.
pub const LEASE_SECONDS: i32 = 30;
/// How often the holder renews it.
const RENEW_EVERY: Duration = Duration::from_secs(10);
/// How often a waiting run looks again.
const POLL: Duration = Duration::from_secs(2);

/// A failure to take, renew or give back the release's lease.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(
        "failed to lock release {release:?} in namespace {namespace:?}: it is still held by \
         {holder:?} after waiting {}",
        humantime::format_duration(*.waited)
    )]
    Busy {
        release: String,
        namespace: String,
        holder: String,
        waited: Duration,
    },
    #[error("failed to lock release {release:?} in namespace {namespace:?}: cancelled ({signal})")]
    Cancelled {
        release: String,
        namespace: String,
        signal: &'static str,
    },
    #[error("failed to {action} lease {name:?} in namespace {namespace:?}")]
    Kube {
        action: &'static str,
        name: String,
        namespace: String,
        source: kube::Error,
    },
    #[error("failed to make sure namespace {namespace:?} exists")]
    Namespace {
        namespace: String,
        source: kube::Error,
    },
}

/// The lease's name for a release.
pub fn lease_name(release: &str) -> String {
    format!("trader-deploy-{release}")
}

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// Can `holder` take this lease at `now`: unheld, held by `holder` already, or expired.
pub fn is_free(lease: &Lease, holder: &str, now: Timestamp) -> bool {
    let Some(spec) = &lease.spec else {
        return true;
    };
    match spec.holder_identity.as_deref() {
        None | Some("") => return true,
        Some(h) if h == holder => return true,
        Some(_) => {}
    }
    let secs = spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS) as i64;
    let last = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map(|t| t.0);
    match last {
        None => true,
        Some(t) => t.as_second() + secs < now.as_second(),
    }
}

fn holder_of(lease: &Lease) -> String {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .unwrap_or_default()
}

fn held_spec(holder: &str, transitions: i32) -> LeaseSpec {
    let now = MicroTime(Timestamp::now());
    LeaseSpec {
        holder_identity: Some(holder.to_string()),
        lease_duration_seconds: Some(LEASE_SECONDS),
        acquire_time: Some(now.clone()),
        renew_time: Some(now),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    }
}

/// Creates the namespace when it does not exist (the lease lives in it).
pub async fn ensure_namespace(client: &kube::Client, namespace: &str) -> Result<(), LeaseError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let err = |source| LeaseError::Namespace {
        namespace: namespace.to_string(),
        source,
    };
    match api.get_opt(namespace).await.map_err(err)? {
        Some(_) => Ok(()),
        None => {
            let ns = Namespace {
                metadata: ObjectMeta {
                    name: Some(namespace.to_string()),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            };
            match api.create(&PostParams::default(), &ns).await {
                Ok(_) => Ok(()),
                Err(e) if status_code(&e) == Some(409) => Ok(()),
                Err(e) => Err(err(e)),
            }
        }
    }
}

/// The held lease. Renewed in the background until [`LeaseGuard::release`].
pub struct LeaseGuard {
    api: Api<Lease>,
    name: String,
    namespace: String,
    holder: String,
    renewer: tokio::task::JoinHandle<()>,
    /// The holder whose expired lease this run took over (a run that was killed), if any.
    pub took_over_from: Option<String>,
}

/// Takes the release's lease, waiting up to `wait` for another run to finish (or for its lease
/// to expire, if that run was killed).
pub async fn acquire(
    client: &kube::Client,
    runner: &Runner,
    namespace: &str,
    release: &str,
    holder: &str,
    wait: Duration,
    cancel: &Cancel,
) -> Result<LeaseGuard, LeaseError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let name = lease_name(release);
    let kube_err = |action: &'static str| {
        let (name, namespace) = (name.clone(), namespace.to_string());
        move |source| LeaseError::Kube {
            action,
            name,
            namespace,
            source,
        }
    };
    let started = tokio::time::Instant::now();
    let mut announced = String::new();
    let mut took_over_from = None;
    loop {
        let existing = api.get_opt(&name).await.map_err(kube_err("read"))?;
        let taken = match existing {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        labels: Some(
                            [
                                (
                                    "app.kubernetes.io/managed-by".to_string(),
                                    "trader-deploy".to_string(),
                                ),
                                ("trader-deploy/release".to_string(), release.to_string()),
                            ]
                            .into(),
                        ),
                        ..ObjectMeta::default()
                    },
                    spec: Some(held_spec(holder, 0)),
                };
                match api.create(&PostParams::default(), &lease).await {
                    Ok(_) => true,
                    Err(e) if status_code(&e) == Some(409) => false,
                    Err(e) => return Err(kube_err("create")(e)),
                }
            }
            Some(lease) if is_free(&lease, holder, Timestamp::now()) => {
                let previous = holder_of(&lease);
                let transitions = lease
                    .spec
                    .as_ref()
                    .and_then(|s| s.lease_transitions)
                    .unwrap_or(0);
                let mut next = lease.clone();
                next.spec = Some(held_spec(holder, transitions + 1));
                match api.replace(&name, &PostParams::default(), &next).await {
                    Ok(_) => {
                        if !previous.is_empty() && previous != holder {
                            runner.info(&format!(
                                "Took over the expired lease of release {release:?} from {previous:?} (it stopped renewing it)."
                            ));
                            took_over_from = Some(previous);
                        }
                        true
                    }
                    Err(e) if status_code(&e) == Some(409) => false,
                    Err(e) => return Err(kube_err("take")(e)),
                }
            }
            Some(lease) => {
                let other = holder_of(&lease);
                if announced != other {
                    runner.info(&format!(
                        "Release {release:?} is locked by another run ({other:?}); waiting for it to finish (lease {name:?})."
                    ));
                    announced = other.clone();
                }
                if started.elapsed() >= wait {
                    return Err(LeaseError::Busy {
                        release: release.to_string(),
                        namespace: namespace.to_string(),
                        holder: other,
                        waited: wait,
                    });
                }
                false
            }
        };
        if taken {
            runner.info(&format!(
                "Locked release {release:?} (lease {name:?} in namespace {namespace:?}, held by {holder:?})."
            ));
            let renewer = tokio::spawn(renew(api.clone(), name.clone(), holder.to_string()));
            return Ok(LeaseGuard {
                api,
                name,
                namespace: namespace.to_string(),
                holder: holder.to_string(),
                renewer,
                took_over_from,
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            signal = cancel.cancelled() => {
                return Err(LeaseError::Cancelled {
                    release: release.to_string(),
                    namespace: namespace.to_string(),
                    signal,
                });
            }
        }
    }
}

/// Renews the lease every few seconds while it is ours.
async fn renew(api: Api<Lease>, name: String, holder: String) {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        let lease = match api.get_opt(&name).await {
            Ok(Some(l)) => l,
            Ok(None) => {
                tracing::warn!("lease {name} disappeared while held");
                return;
            }
            Err(e) => {
                tracing::warn!("failed to read lease {name} to renew it: {e}");
                continue;
            }
        };
        if holder_of(&lease) != holder {
            tracing::warn!("lease {name} is now held by {:?}", holder_of(&lease));
            return;
        }
        let mut next = lease;
        if let Some(spec) = next.spec.as_mut() {
            spec.renew_time = Some(MicroTime(Timestamp::now()));
        }
        if let Err(e) = api.replace(&name, &PostParams::default(), &next).await {
            tracing::warn!("failed to renew lease {name}: {e}");
        }
    }
}

impl LeaseGuard {
    /// Stops renewing and deletes the lease (only if it is still this run's).
    pub async fn release(self) -> Result<(), LeaseError> {
        self.renewer.abort();
        let err = |source| LeaseError::Kube {
            action: "release",
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            source,
        };
        let Some(lease) = self.api.get_opt(&self.name).await.map_err(err)? else {
            return Ok(());
        };
        if holder_of(&lease) != self.holder {
            return Ok(());
        }
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: lease.metadata.resource_version.clone(),
                uid: lease.metadata.uid.clone(),
            }),
            ..DeleteParams::default()
        };
        match self.api.delete(&self.name, &dp).await {
            Ok(_) => Ok(()),
            Err(e) if matches!(status_code(&e), Some(404 | 409)) => Ok(()),
            Err(e) => Err(err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, renewed_secs_ago: i64) -> Lease {
        let t = Timestamp::from_second(Timestamp::now().as_second() - renewed_secs_ago).unwrap();
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_string),
                lease_duration_seconds: Some(30),
                renew_time: Some(MicroTime(t)),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn who_may_take_the_lease() {
        let now = Timestamp::now();
        assert!(is_free(&lease(None, 0), "me", now));
        assert!(is_free(&lease(Some(""), 0), "me", now));
        assert!(is_free(&lease(Some("me"), 0), "me", now));
        assert!(!is_free(&lease(Some("other"), 5), "me", now));
        assert!(!is_free(&lease(Some("other"), 29), "me", now));
        assert!(is_free(&lease(Some("other"), 31), "me", now), "expired");
        assert_eq!(lease_name("traderadmin"), "trader-deploy-traderadmin");
    }
}
