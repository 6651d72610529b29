#!/usr/bin/env bash
# Installs the Debian packages whose servers the tests start privately (in temp dirs, on free ports):
# redis-server, PostgreSQL's server binaries (initdb, pg_ctl) for the production-backend tests, and the Prometheus
# Pushgateway that drift metrics are pushed to; Chromium and its driver for the dashboard's browser tests.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null 2>&1 || need+=(postgresql)
command -v prometheus-pushgateway >/dev/null 2>&1 || command -v pushgateway >/dev/null 2>&1 || need+=(prometheus-pushgateway)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
((${#need[@]})) || exit 0
echo "installing ${need[*]} (Debian packages) for the test suite"
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
