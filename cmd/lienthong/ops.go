package main

// defaultMetricsListen is where a process serves /metrics, /healthz and
// /readyz unless told otherwise: loopback, on a port the system picks (the
// ready line prints it), so two processes on one host never collide. Give
// a fixed address (e.g. 127.0.0.1:9464) for Prometheus to scrape; an
// address without a host listens on loopback only; "" turns it off.
const defaultMetricsListen = "127.0.0.1:0"

const metricsListenUsage = `serve GET /metrics (Prometheus), /healthz and /readyz over plain HTTP here; a host-less address (":9464") listens on loopback; "" turns it off`
