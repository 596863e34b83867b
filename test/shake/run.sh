#!/usr/bin/env bash
# Shake the control-plane tests: run them N times in a row (default 5) under
# CPU contention harsher than CI's, and stop at the first failure.
#
#   - a CPU hog (a busy shell loop) on every core, all along;
#   - the test caches cleaned first, and -count=1: nothing is cached;
#   - every control-plane package at once (-p = their number), as
#     `go test ./...` runs them, each with its own control plane.
#
# Usage: test/shake/run.sh [N]   (or: make shake N=5)
# Prints one line per run with its time; exits non-zero on the first red run.
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-5}
pkgs=(./test/e2e ./test/deploy ./localcluster)
hogs=()
stop_hogs() {
	# Only the hogs this script started, by PID.
	for pid in "${hogs[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${hogs[@]}"; do wait "$pid" 2>/dev/null || true; done
	hogs=()
}
trap stop_hogs EXIT INT TERM

go build -o /dev/null ./distribution # compile errors fail fast, not N times
go clean -testcache
for _ in $(seq "$(nproc)"); do
	( while :; do :; done ) &
	hogs+=("$!")
done
echo "shake: $n runs of ${pkgs[*]} at once (-p ${#pkgs[@]}), ${#hogs[@]} CPU hogs on $(nproc) cores"
for i in $(seq "$n"); do
	start=$(date +%s)
	log=$(mktemp)
	if CGO_ENABLED=0 go test -count=1 -p "${#pkgs[@]}" -timeout 60m "${pkgs[@]}" >"$log" 2>&1; then
		echo "shake: run $i/$n passed in $(( $(date +%s) - start ))s"
		rm -f "$log"
	else
		echo "shake: run $i/$n FAILED after $(( $(date +%s) - start ))s; its output:"
		cat "$log"
		rm -f "$log"
		exit 1
	fi
done
echo "shake: $n of $n passed"
