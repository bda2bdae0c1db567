#!/usr/bin/env bash
# Host-mode LocalStack for Inlet: install | start | stop | status | env.
# No Docker here, so Lambda functions run through our local executor plugin.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
venv="${INLET_LOCALSTACK_VENV:-$root/.venv/localstack}"
state="${INLET_LOCALSTACK_STATE:-$root/.localstack}"
port="${LOCALSTACK_PORT:-4566}"
python="${PYTHON:-python3}"
pidfile="$state/localstack.pid"
logfile="$state/localstack.log"

install() {
  local stamp="$venv/.inlet-installed"
  if [[ -f "$stamp" && "$stamp" -nt "$here/requirements.txt" && "$stamp" -nt "$here/local_executor/pyproject.toml" ]] &&
    ! find "$here/local_executor/inlet_local_executor" -name '*.py' -newer "$stamp" | grep -q .; then
    return 0
  fi
  echo "localstack: creating virtualenv $venv"
  [[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps "$here/local_executor"
  touch "$stamp"
}

running() {
  [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

healthy() {
  "$venv/bin/python" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" \
    "http://127.0.0.1:$port/_localstack/health" >/dev/null 2>&1
}

start() {
  install
  if running && healthy; then
    echo "localstack: already running on port $port (pid $(cat "$pidfile"))"
    return 0
  fi
  if healthy; then
    echo "localstack: port $port already answers but is not ours; set LOCALSTACK_PORT" >&2
    return 1
  fi
  mkdir -p "$state/lambda-logs"
  echo "localstack: starting on 127.0.0.1:$port (log: $logfile)"
  # Settings that make it work offline without Docker (see ../shared/guide/environment.md).
  GATEWAY_LISTEN="127.0.0.1:$port" \
  LOCALSTACK_HOST="127.0.0.1:$port" \
  SQS_ENDPOINT_STRATEGY=off \
  DISABLE_EVENTS=1 \
  SERVICES=s3,sqs,lambda,events,iam,sts,logs,cloudwatch,sns \
  LAMBDA_RUNTIME_EXECUTOR=local \
  INLET_LAMBDA_LOG_DIR="$state/lambda-logs" \
  RUST_BACKTRACE=1 \
    setsid "$venv/bin/python" -m localstack.runtime.main >"$logfile" 2>&1 &
  echo $! >"$pidfile"
  local waited=0
  until healthy && grep -q "Ready." "$logfile"; do
    if ! running; then
      echo "localstack: exited during start; last log lines:" >&2
      tail -n 30 "$logfile" >&2
      return 1
    fi
    if (( waited >= 120 )); then
      echo "localstack: not ready after 120 s; last log lines:" >&2
      tail -n 30 "$logfile" >&2
      stop
      return 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
  echo "localstack: ready after ${waited}s (pid $(cat "$pidfile"))"
}

stop() {
  if ! running; then
    rm -f "$pidfile"
    return 0
  fi
  local pid
  pid="$(cat "$pidfile")"
  echo "localstack: stopping pid $pid"
  # setsid made it a process group leader: signal the group so Lambda children go too.
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 20); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

status() {
  if running && healthy; then
    echo "localstack: running on port $port (pid $(cat "$pidfile"))"
  else
    echo "localstack: not running"
    return 1
  fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
