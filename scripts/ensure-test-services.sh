#!/usr/bin/env bash
# Installs the Debian packages whose servers the tests start privately (in temp dirs, on free ports):
# redis-server, and PostgreSQL's server binaries (initdb, pg_ctl) for the production-backend tests.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null 2>&1 || need+=(postgresql)
((${#need[@]})) || exit 0
echo "installing ${need[*]} (Debian packages) for the test suite"
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
