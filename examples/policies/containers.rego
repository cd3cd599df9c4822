# Every container has CPU and memory limits, and every image names a tag (not `latest`) or a
# digest.
package main

import rego.v1

pod_spec := input.spec.template.spec if input.kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}

pod_spec := input.spec.jobTemplate.spec.template.spec if input.kind == "CronJob"

pod_spec := input.spec if input.kind == "Pod"

containers contains c if some c in pod_spec.containers

containers contains c if some c in pod_spec.initContainers

deny_limits contains msg if {
	some c in containers
	some resource in ["cpu", "memory"]
	not c.resources.limits[resource]
	msg := sprintf("container %q has no %s limit", [c.name, resource])
}

# The tag of an image reference: after the last ':' that follows the last '/' (a registry's
# port is not a tag); none for a reference by digest.
tag(image) := t if {
	not contains(image, "@")
	parts := split(image, "/")
	last := parts[count(parts) - 1]
	contains(last, ":")
	t := split(last, ":")[1]
}

deny_image_tag contains msg if {
	some c in containers
	not contains(c.image, "@")
	not tag(c.image)
	msg := sprintf("container %q: image %q has no tag", [c.name, c.image])
}

deny_image_tag contains msg if {
	some c in containers
	tag(c.image) == "latest"
	msg := sprintf("container %q: image %q uses the latest tag", [c.name, c.image])
}
