#!/usr/bin/env bash
# Installs the Debian packages whose servers the tests start privately (in temp dirs, on free ports).
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
((${#need[@]})) || exit 0
echo "installing ${need[*]} (Debian packages) for the test suite"
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
