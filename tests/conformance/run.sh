#!/usr/bin/env bash
# The simulated org judged by real Salesforce clients (issue 13): jsforce and simple-salesforce,
# pinned and unmodified, each against its own fresh `ipguard sim --tls`. Installs both clients
# (npm ci; a venv from requirements.txt), runs each suite, prints each suite's closing line and
# exits non-zero when any client call failed.
#
# Usage: tests/conformance/run.sh [path/to/ipguard]   (default: target/debug/ipguard)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# `run.sh install`: only fetch the pinned clients (.ci/run does this while Rust compiles);
# `run.sh [--installed] [BIN]`: run both suites against BIN (--installed: skip the fetch).
fetch=yes
case "${1:-}" in
  install) fetch=only ;;
  --installed) fetch=no; shift ;;
esac
install_clients() {
  (cd "$here/jsforce" && npm ci --no-audit --no-fund --loglevel=error)
  if [ ! -x "$here/simple-salesforce/.venv/bin/python" ]; then
    python3 -m venv "$here/simple-salesforce/.venv"
  fi
  "$here/simple-salesforce/.venv/bin/pip" install --quiet --disable-pip-version-check \
    -r "$here/simple-salesforce/requirements.txt"
}
if [ "$fetch" = only ]; then install_clients; exit 0; fi
bin="${1:-$here/../../target/debug/ipguard}"
[ -x "$bin" ] || { echo "conformance: no ipguard binary at $bin (cargo build first)" >&2; exit 2; }
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Starts `ipguard sim --tls` on a free port and exports SIM_URL, SIM_KEY_FILE, SIM_CLIENT_ID,
# SIM_USERNAME and SIM_CA_CERT from what it prints.
start_sim() {
  local name="$1" log="$work/$1.log"
  mkdir -p "$work/$name"
  TMPDIR="$work/$name" "$bin" sim --tls --port 0 >"$log" 2>&1 &
  pids+=("$!")
  for _ in $(seq 1 600); do
    grep -q "listening on" "$log" && break
    kill -0 "${pids[-1]}" 2>/dev/null || { cat "$log" >&2; return 1; }
    sleep 0.1
  done
  grep -q "listening on" "$log" || { echo "conformance: sim did not start" >&2; cat "$log" >&2; return 1; }
  value() { sed -n "s/^export $1='\(.*\)'$/\1/p" "$log" | head -n1; }
  SIM_URL="$(sed -n 's/.* listening on \(https:[^ ]*\)$/\1/p' "$log" | head -n1)"
  SIM_KEY_FILE="$(value SALESFORCE_PRIVATE_KEY_FILE)"
  SIM_CLIENT_ID="$(value SALESFORCE_CLIENT_ID)"
  SIM_USERNAME="$(value SALESFORCE_USERNAME)"
  SIM_CA_CERT="$(sed -n 's/^ *SIM_CA_CERT=\([^ ]*\).*/\1/p' "$log" | head -n1)"
  export SIM_URL SIM_KEY_FILE SIM_CLIENT_ID SIM_USERNAME SIM_CA_CERT
}

started=$SECONDS
status=0

[ "$fetch" = yes ] && install_clients

start_sim jsforce
(cd "$here/jsforce" && NODE_EXTRA_CA_CERTS="$SIM_CA_CERT" node suite.mjs) || status=1

start_sim simple-salesforce
REQUESTS_CA_BUNDLE="$SIM_CA_CERT" "$here/simple-salesforce/.venv/bin/python" \
  "$here/simple-salesforce/suite.py" || status=1

echo "conformance: both clients ran in $((SECONDS - started)) s (installs included)"
exit "$status"
