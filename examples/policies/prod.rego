# Production keeps two replicas of each Deployment and a PodDisruptionBudget that covers it.
# data.trader_deploy.manifests holds every rendered object, so a rule on one object can look at
# the others.
package main

import rego.v1

protected_environment if data.trader_deploy.environment == "prod"

deny_prod_replicas contains msg if {
	protected_environment
	input.kind == "Deployment"
	replicas := object.get(input.spec, "replicas", 1)
	replicas < 2
	msg := sprintf("Deployment %q runs %d replica(s) in prod: at least 2", [input.metadata.name, replicas])
}

covers(pdb, deployment) if {
	pdb.kind == "PodDisruptionBudget"
	object.get(pdb.metadata, "namespace", "") == object.get(deployment.metadata, "namespace", "")
	labels := deployment.spec.template.metadata.labels
	every k, v in pdb.spec.selector.matchLabels {
		labels[k] == v
	}
}

deny_prod_disruption_budget contains msg if {
	protected_environment
	input.kind == "Deployment"
	not any_pdb_covers
	msg := sprintf("Deployment %q has no PodDisruptionBudget in prod", [input.metadata.name])
}

any_pdb_covers if {
	some pdb in data.trader_deploy.manifests
	covers(pdb, input)
}

warn_autoscaling contains msg if {
	protected_environment
	input.kind == "HorizontalPodAutoscaler"
	object.get(input.spec, "minReplicas", 1) < 2
	msg := sprintf("HorizontalPodAutoscaler %q may scale prod down to %d", [input.metadata.name, object.get(input.spec, "minReplicas", 1)])
}
