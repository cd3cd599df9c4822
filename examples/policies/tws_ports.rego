# The live TWS port only where live trading is meant to happen, and never the paper port there:
# a paper build pointed at a live broker port (or the reverse) is visible in the rendered
# ConfigMap and NetworkPolicy before anything is applied.
package main

import rego.v1

live_environment if data.trader_deploy.environment in data.tws.live_environments

# The port the app connects to (the chart's ConfigMap: TWS_PORT).
tws_ports contains port if {
	input.kind == "ConfigMap"
	port := input.data.TWS_PORT
}

# The port the NetworkPolicy lets it reach.
tws_ports contains port if {
	input.kind == "NetworkPolicy"
	some rule in input.spec.egress
	some p in rule.ports
	port := sprintf("%v", [p.port])
	port in {data.tws.live_port, data.tws.paper_port}
}

deny_live_port contains msg if {
	not live_environment
	data.tws.live_port in tws_ports
	msg := sprintf("TWS live port %s in environment %q: only %v may trade live", [data.tws.live_port, data.trader_deploy.environment, data.tws.live_environments])
}

deny_paper_port contains msg if {
	live_environment
	data.tws.paper_port in tws_ports
	msg := sprintf("TWS paper port %s in live environment %q", [data.tws.paper_port, data.trader_deploy.environment])
}
