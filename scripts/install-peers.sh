#!/usr/bin/env bash
# Installs the reference peers the peer tests and benchmarks run beside watchkeeper:
# Prometheus, Alertmanager (with amtool), VictoriaMetrics and node_exporter (a scrape target)
# from Debian packages. Does nothing when they are present.
# Without root (and so without apt), it says what is missing; peer tests then skip locally
# and fail under CI=true.
set -euo pipefail
missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v victoria-metrics >/dev/null 2>&1 || missing+=(victoria-metrics)
command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
command -v prometheus-node-exporter >/dev/null 2>&1 || missing+=(prometheus-node-exporter)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-peers: missing ${missing[*]} (needs root and apt-get); peer tests will skip" >&2
  exit 0
fi
echo "install-peers: installing ${missing[*]} from Debian packages" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
