// Package observability holds the federation's Prometheus alert rules
// (alerts.yml) and Grafana dashboard (dashboard.json); its tests check that
// they parse and name only metrics the gateways and the control plane
// register. See docs/operations.md, "Watching a federation".
package observability
