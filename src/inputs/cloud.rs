//! The cloud sign-in inputs (`aws_role_arn`, `gcp_workload_identity_provider`,
//! `gcp_service_account`, `azure_client_id`, `azure_tenant_id`): checked, and turned into the
//! environment the rewritten kubeconfig's exec entries give `kube-token`, which then signs in
//! with GitHub's OIDC token with no setup step.

use super::raw::RawInputs;
use super::{InputError, bad};
use crate::env::vars;

/// The exec entries' environment the inputs stand for, in input order.
pub(super) fn exec_env(raw: &RawInputs) -> Result<Vec<(&'static str, String)>, InputError> {
    let get = |name: &'static str| raw.get(name).map(|v| v.trim().to_string());
    let mut env = Vec::new();
    if let Some(arn) = get("aws_role_arn") {
        if !arn.starts_with("arn:") || !arn.contains(":role/") {
            return Err(bad(
                "aws_role_arn",
                format!("{arn:?} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)"),
            ));
        }
        env.push((vars::AWS_ROLE_ARN, arn));
    }
    match (
        get("gcp_workload_identity_provider"),
        get("gcp_service_account"),
    ) {
        (Some(p), sa) => {
            let path = p.trim_start_matches("//iam.googleapis.com/");
            let parts: Vec<&str> = path.split('/').collect();
            if !matches!(
                parts[..],
                [
                    "projects",
                    _,
                    "locations",
                    _,
                    "workloadIdentityPools",
                    _,
                    "providers",
                    _
                ]
            ) {
                return Err(bad(
                    "gcp_workload_identity_provider",
                    format!(
                        "{p:?} is not a provider's name (projects/<number>/locations/global/\
                         workloadIdentityPools/<pool>/providers/<provider>)"
                    ),
                ));
            }
            env.push((vars::TRADER_DEPLOY_GCP_WORKLOAD_IDENTITY_PROVIDER, p));
            if let Some(sa) = sa {
                if !sa.contains('@') {
                    return Err(bad(
                        "gcp_service_account",
                        format!("{sa:?} is not a service account's email"),
                    ));
                }
                env.push((vars::TRADER_DEPLOY_GCP_SERVICE_ACCOUNT, sa));
            }
        }
        (None, Some(_)) => {
            return Err(bad(
                "gcp_service_account",
                "needs gcp_workload_identity_provider (the pool that may impersonate it)",
            ));
        }
        (None, None) => {}
    }
    match (get("azure_client_id"), get("azure_tenant_id")) {
        (Some(c), Some(t)) => {
            env.push((vars::AZURE_CLIENT_ID, c));
            env.push((vars::AZURE_TENANT_ID, t));
        }
        (Some(_), None) => return Err(bad("azure_client_id", "needs azure_tenant_id")),
        (None, Some(_)) => return Err(bad("azure_tenant_id", "needs azure_client_id")),
        (None, None) => {}
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&'static str, &str)]) -> RawInputs {
        RawInputs::from_pairs(pairs.iter().map(|(k, v)| (*k, v.to_string())))
    }

    #[test]
    fn the_inputs_become_kube_tokens_environment() {
        let p = "projects/123/locations/global/workloadIdentityPools/gh/providers/trader";
        let env = exec_env(&raw(&[
            ("aws_role_arn", "arn:aws:iam::111122223333:role/deploy"),
            ("gcp_workload_identity_provider", p),
            ("gcp_service_account", "d@prod.iam.gserviceaccount.com"),
            ("azure_client_id", "c1"),
            ("azure_tenant_id", "t1"),
        ]))
        .unwrap();
        assert_eq!(
            env,
            [
                (
                    "AWS_ROLE_ARN",
                    "arn:aws:iam::111122223333:role/deploy".to_string()
                ),
                (
                    "TRADER_DEPLOY_GCP_WORKLOAD_IDENTITY_PROVIDER",
                    p.to_string()
                ),
                (
                    "TRADER_DEPLOY_GCP_SERVICE_ACCOUNT",
                    "d@prod.iam.gserviceaccount.com".into()
                ),
                ("AZURE_CLIENT_ID", "c1".into()),
                ("AZURE_TENANT_ID", "t1".into()),
            ]
        );
        assert!(exec_env(&raw(&[])).unwrap().is_empty());
    }

    #[test]
    fn bad_or_lone_inputs_are_one_line_naming_them() {
        let e = |pairs: &[(&'static str, &str)]| exec_env(&raw(pairs)).unwrap_err().to_string();
        assert!(e(&[("aws_role_arn", "deploy")]).starts_with("input `aws_role_arn`: "));
        assert!(
            e(&[("gcp_workload_identity_provider", "projects/1/pools/x")])
                .starts_with("input `gcp_workload_identity_provider`: ")
        );
        assert_eq!(
            e(&[("gcp_service_account", "d@p")]),
            "input `gcp_service_account`: needs gcp_workload_identity_provider (the pool that \
             may impersonate it)"
        );
        assert_eq!(
            e(&[("azure_client_id", "c")]),
            "input `azure_client_id`: needs azure_tenant_id"
        );
    }
}
