#!/usr/bin/env bash
# Runs a command with LocalStack up: starts it if it is not running, and then stops it again.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if "$here/localstack.sh" status >/dev/null 2>&1; then
  exec "$@"
fi
"$here/localstack.sh" start
trap '"$here/localstack.sh" stop' EXIT
"$@"
