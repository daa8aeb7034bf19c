#!/usr/bin/env bash
# bench-pacing.sh runs every pacing scenario with every pacer through `turbina sim` and
# rewrites the part of BENCHMARKS.md between <!-- pacing:begin --> and <!-- pacing:end -->
# (appending the markers if they are missing). Run it from anywhere; `make bench-pacing`
# calls it. SCENARIO_DIR overrides the scenario directory (default ../shared/pacing,
# relative to the repository root).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scenario_dir=${SCENARIO_DIR:-../shared/pacing}
pacers=(predictive progressive vicidial ratio:1.5 ratio:2 ratio:3)
bench=BENCHMARKS.md
begin='<!-- pacing:begin -->'
end='<!-- pacing:end -->'

shopt -s nullglob
files=("$scenario_dir"/*.json)
if [ ${#files[@]} -eq 0 ]; then
	echo "bench-pacing: no scenarios (*.json) in $scenario_dir" >&2
	exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/turbina" ./cmd/turbina

args=()
for p in "${pacers[@]}"; do
	args+=(--pacer "$p")
done
for f in "${files[@]}"; do
	"$tmp/turbina" sim --scenario "$f" "${args[@]}" --json
done >"$tmp/results.jsonl"

{
	echo "$begin"
	echo "Every scenario in \`$scenario_dir\` × every pacer, one simulated shift each."
	echo "Generated on $(date -u '+%Y-%m-%d %H:%M UTC') with $(go env GOVERSION) on $(nproc) cores by:"
	echo
	echo '```'
	echo "make bench-pacing   # bash scripts/bench-pacing.sh (SCENARIO_DIR=$scenario_dir)"
	echo '```'
	echo
	echo "| scenario | pacer | dials | answered | connected | abandoned | abandon_rate | max_hour_abandon_rate | occupancy | occupancy_limit | efficiency | mean_agent_wait_s | sim_wall_s |"
	echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
	# The result objects are flat and their fields come in the contract's order, so
	# stripping the keys leaves the values in column order.
	sed -e 's/^{//' -e 's/}$//' -e 's/"[a-z_]*"://g' -e 's/"//g' "$tmp/results.jsonl" |
		awk -F, '{ printf "| %s | %s | %d | %d | %d | %d | %.4f | %.4f | %.4f | %.4f | %.4f | %.1f | %.3f |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 }'
	echo
	echo "abandon_rate = abandoned / answered over the run; max_hour_abandon_rate is the worst whole hour;"
	echo "efficiency = occupancy / occupancy_limit. The target abandonment is each scenario's target_abandon."
	echo "$end"
} >"$tmp/section.md"

touch "$bench"
if grep -qxF "$begin" "$bench" && grep -qxF "$end" "$bench"; then
	awk -v begin="$begin" -v end="$end" -v section="$tmp/section.md" '
		$0 == begin { while ((getline line < section) > 0) print line; skip = 1; next }
		$0 == end { skip = 0; next }
		!skip { print }
	' "$bench" >"$tmp/bench.md"
else
	{ cat "$bench"; [ -s "$bench" ] && echo; cat "$tmp/section.md"; } >"$tmp/bench.md"
fi
cp "$tmp/bench.md" "$bench"
echo "bench-pacing: wrote $(wc -l <"$tmp/results.jsonl") results to $bench"
