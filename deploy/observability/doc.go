// Package observability holds the federation's Prometheus alert rules
// (alerts.yml) and Grafana dashboard (dashboard.json). Its tests check that
// they name only metrics and labels the gateways, the feed routers and the
// control plane register, and, with Prometheus's promtool (Debian's
// prometheus package), that every query parses and every alert fires on the
// series histories of testdata/alerts_test.yml and not on their near
// misses. See docs/operations.md, "Watching a federation".
package observability
