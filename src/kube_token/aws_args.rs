//! The command lines `kube-token` answers for EKS, as the real plugins read them: the AWS CLI's
//! (`aws [global options] eks get-token …`, its `--option value` and `--option=value`) and
//! aws-iam-authenticator's (pflag's `-i X`, `-i=X`, `--cluster-id X`), into what to sign.

/// The AWS CLI's options that take no value.
const CLI_SWITCHES: &[&str] = &[
    "--debug",
    "--no-verify-ssl",
    "--no-paginate",
    "--no-sign-request",
    "--no-cli-pager",
    "--no-cli-auto-prompt",
];

/// A command line's words and `--option value` pairs (`--option=value` too), in order.
type Split = (Vec<String>, Vec<(String, Option<String>)>);

/// The AWS CLI's command line: its positional words (`eks get-token`) and its options.
pub(super) fn split_cli(args: &[String]) -> Result<Split, String> {
    let mut words = Vec::new();
    let mut opts = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(rest) = a.strip_prefix("--") {
            if let Some((k, v)) = rest.split_once('=') {
                opts.push((format!("--{k}"), Some(v.to_string())));
            } else if CLI_SWITCHES.contains(&a.as_str()) {
                opts.push((a.clone(), None));
            } else {
                let v = it.next().ok_or_else(|| format!("`{a}` needs a value"))?;
                opts.push((a.clone(), Some(v.clone())));
            }
        } else {
            words.push(a.clone());
        }
    }
    Ok((words, opts))
}

/// What to sign: the cluster, the region and the role to assume first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct TokenRequest {
    pub(super) cluster: String,
    pub(super) region: Option<String>,
    pub(super) role_arn: Option<String>,
}

/// `aws [global options] eks get-token --cluster-name N | --cluster-id I [--role-arn R]`.
pub(super) fn parse_eks_get_token(args: &[String]) -> Result<TokenRequest, String> {
    let (_, opts) = split_cli(args)?;
    let mut req = TokenRequest::default();
    let (mut name, mut id) = (None, None);
    for (k, v) in opts {
        let v = v.unwrap_or_default();
        match k.as_str() {
            "--cluster-name" => name = Some(v),
            "--cluster-id" => id = Some(v),
            "--region" => req.region = Some(v),
            "--role-arn" => req.role_arn = Some(v),
            "--output" if v == "json" => {}
            "--profile" => {
                return Err(
                    "`--profile` reads ~/.aws/config, which the action does not have: give the \
                     credentials in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN \
                     and the role in --role-arn"
                        .into(),
                );
            }
            other => {
                let shown = if other == "--output" {
                    format!("`--output {v}`")
                } else {
                    format!("`{other}`")
                };
                return Err(format!(
                    "{shown} is not supported (supported: --cluster-name, --cluster-id, \
                     --region, --role-arn, --output json)"
                ));
            }
        }
    }
    req.cluster = match (name, id) {
        (Some(_), Some(_)) => {
            return Err("--cluster-name and --cluster-id cannot be given together".into());
        }
        (Some(c), None) | (None, Some(c)) if !c.is_empty() => c,
        _ => return Err("give --cluster-name or --cluster-id".into()),
    };
    Ok(req)
}

/// `aws-iam-authenticator token -i CLUSTER [-r ROLE_ARN] [--region R]` (pflag's `-i X`, `-i=X`,
/// `--cluster-id X`, `--cluster-id=X`).
pub(super) fn parse_iam_authenticator(args: &[String]) -> Result<TokenRequest, String> {
    let mut req = TokenRequest::default();
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if a.starts_with('-') => (f, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("`{flag}` needs a value"))
        };
        match flag {
            "-i" | "--cluster-id" => req.cluster = value()?,
            "-r" | "--role" => req.role_arn = Some(value()?),
            "--region" => req.region = Some(value()?),
            other => {
                return Err(format!(
                    "`{other}` is not supported (supported: -i/--cluster-id, -r/--role, --region)"
                ));
            }
        }
    }
    if req.cluster.is_empty() {
        return Err("give the cluster with -i".into());
    }
    Ok(req)
}
