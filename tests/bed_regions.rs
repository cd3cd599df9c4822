//! One release across two regions (issue #19), as examples/workflows/release-regions.yml runs it:
//! a matrix job deploys the same version to each region's cluster (the bed's cluster and its
//! second one, TD_REGION2_KUBECONFIG), and when a region fails, a final job runs `mode: rollback`
//! with `only_if_version` in every region. Each region pulls from its own registry mirror; the
//! EU mirror lacks the new version (its replication lagged), so EU fails before its upgrade.

mod common;

use std::path::PathBuf;

use common::case::{Case, Finished, assert_success, chart_with_image_ref};
use common::{Bed, unique_name};
use serde_json::Value;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Copies `tags` of acme/python-orch into the repository `to` of the bed's registry (blobs
/// mounted, manifests put): a region's mirror, as far as its replication got.
async fn mirror(bed: &Bed, to: &str, tags: &[&str]) {
    let http = reqwest::Client::new();
    let base = format!("http://{}/v2", bed.registry);
    for tag in tags {
        let manifest = http
            .get(format!("{base}/acme/python-orch/manifests/{tag}"))
            .header("Accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        assert!(
            manifest.status().is_success(),
            "{tag}: {}",
            manifest.status()
        );
        let body = manifest.bytes().await.unwrap();
        let m: Value = serde_json::from_slice(&body).unwrap();
        let digests = std::iter::once(&m["config"])
            .chain(m["layers"].as_array().unwrap())
            .map(|d| d["digest"].as_str().unwrap().to_string());
        for digest in digests {
            let r = http
                .post(format!(
                    "{base}/{to}/blobs/uploads/?mount={digest}&from=acme/python-orch"
                ))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 201, "mount {digest} into {to}");
        }
        let r = http
            .put(format!("{base}/{to}/manifests/{tag}"))
            .header("Content-Type", OCI_MANIFEST)
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "put {to}:{tag}: {}", r.status());
    }
}

struct Region {
    name: &'static str,
    kubeconfig: PathBuf,
    repository: String,
}

struct Release<'a> {
    case: &'a Case,
    chart: PathBuf,
}

impl Release<'_> {
    fn run(&self, region: &Region, version: &str, extra: &[(&str, &str)]) -> Finished {
        let images = format!("image.ref={}", region.repository);
        let environment = format!("region-{}", region.name);
        let mut inputs = vec![
            ("chart", self.chart.to_str().unwrap()),
            ("environment", environment.as_str()),
            ("images", images.as_str()),
            ("verify_images", "true"),
            ("set", "scanner.enabled=false"),
        ];
        inputs.extend_from_slice(extra);
        let mut cmd = self.case.action(version, &inputs);
        let kubeconfig = std::fs::read_to_string(&region.kubeconfig).unwrap();
        cmd.env("INPUT_KUBECONFIG", kubeconfig);
        common::case::Running::start(cmd, self.case.ws.path()).wait()
    }

    fn deploy(&self, region: &Region, version: &str) -> Finished {
        self.run(region, version, &[])
    }

    /// The final job's step in one region.
    fn undo(&self, region: &Region, version: &str) -> Finished {
        self.run(
            region,
            "",
            &[("mode", "rollback"), ("only_if_version", version)],
        )
    }

    /// `helm <args> <release> -n <ns> -o json` against `region`'s cluster.
    fn helm_json(&self, region: &Region, args: &[&str]) -> Value {
        let mut cmd = self.case.bed.helm(self.case.major);
        cmd.env("KUBECONFIG", &region.kubeconfig).args(args).args([
            self.case.release.as_str(),
            "-n",
            &self.case.ns,
            "-o",
            "json",
        ]);
        let out = self
            .case
            .bed
            .run(&mut cmd, std::time::Duration::from_secs(60));
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// (revision, status, description) of the release in `region`.
    fn history(&self, region: &Region) -> Vec<(u64, String, String)> {
        let v = self.helm_json(region, &["history"]);
        v.as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                (
                    r["revision"].as_u64().unwrap(),
                    r["status"].as_str().unwrap().to_string(),
                    r["description"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    /// The orchestrator image the deployed revision runs in `region`.
    fn running(&self, region: &Region) -> String {
        let v = self.helm_json(region, &["get", "values"]);
        v["image"]["ref"].as_str().unwrap_or("").to_string()
    }
}

#[tokio::test]
async fn a_failed_region_returns_every_region_to_the_version_before() {
    let case = Case::new("regions", 3).await;
    let Some(region2) = case
        .bed
        .vars
        .get("TD_REGION2_KUBECONFIG")
        .map(PathBuf::from)
    else {
        panic!("the bed has no second cluster (TD_REGION2_KUBECONFIG): testbed/up.sh starts it");
    };
    let eu_repo = format!("acme/{}", unique_name("orch-eu"));
    mirror(&case.bed, &eu_repo, &["v1.0.0", "v1.1.0"]).await;
    let us = Region {
        name: "us",
        kubeconfig: case.bed.kubeconfig.clone(),
        repository: format!("{}/acme/python-orch", case.bed.registry),
    };
    let eu = Region {
        name: "eu",
        kubeconfig: region2,
        repository: format!("{}/{eu_repo}", case.bed.registry),
    };
    let rel = Release {
        chart: chart_with_image_ref(case.ws.path()),
        case: &case,
    };
    let regions = [&us, &eu];

    // Both succeed: v1.0.0, then v1.1.0 everywhere (the final job does not run).
    for version in ["v1.0.0", "v1.1.0"] {
        for r in regions {
            assert_success(&rel.deploy(r, version));
            assert_eq!(rel.running(r), format!("{}:{version}", r.repository));
        }
    }

    // v1.2.0: US upgrades; EU's mirror has no v1.2.0, so EU fails before its upgrade.
    assert_success(&rel.deploy(&us, "v1.2.0"));
    let eu_before = rel.history(&eu);
    let failed = rel.deploy(&eu, "v1.2.0");
    assert_eq!(failed.code, Some(1), "{}", failed.log());
    assert!(failed.log().contains("v1.2.0"), "{}", failed.log());
    assert_eq!(rel.history(&eu), eu_before, "EU was touched");

    // The final job: every region back to the version it ran before this workflow.
    let us_undo = rel.undo(&us, "v1.2.0");
    assert_eq!(us_undo.code, Some(0), "{}", us_undo.log());
    assert_eq!(us_undo.out("rolled_back"), "true", "{}", us_undo.log());
    let eu_undo = rel.undo(&eu, "v1.2.0");
    assert_success(&eu_undo);
    assert!(
        eu_undo.log().contains("runs v1.1.0") && eu_undo.log().contains("not v1.2.0"),
        "{}",
        eu_undo.log()
    );
    for r in regions {
        assert_eq!(
            rel.running(r),
            format!("{}:v1.1.0", r.repository),
            "{}",
            r.name
        );
    }
    assert_eq!(rel.history(&eu), eu_before, "EU was touched by the undo");

    // A re-run of the final job changes nothing.
    let settled: Vec<_> = regions.iter().map(|r| rel.history(r)).collect();
    for r in regions {
        let again = rel.undo(r, "v1.2.0");
        assert_success(&again);
        assert_eq!(again.out("rolled_back"), "false", "{}", again.log());
    }
    let after: Vec<_> = regions.iter().map(|r| rel.history(r)).collect();
    assert_eq!(after, settled);

    // A region the action already rolled back itself (its rollout crashlooped) is left alone.
    let crashed = rel.deploy(&us, "crashloop");
    assert_eq!(crashed.code, Some(1), "{}", crashed.log());
    assert_eq!(crashed.out("rolled_back"), "true", "{}", crashed.log());
    let before = rel.history(&us);
    let undo = rel.undo(&us, "crashloop");
    assert_success(&undo);
    assert_eq!(rel.history(&us), before);
    assert_eq!(rel.running(&us), format!("{}:v1.1.0", us.repository));
}
