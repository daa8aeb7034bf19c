#!/usr/bin/env bash
# Benchmark: import a generated 1,000,000-row CSV of Brazilian numbers through the
# HTTP endpoint of a real `turbina serve`, and load the same rows, already normalised,
# with sqlite3's own .import as the baseline. Rewrites the import section of
# BENCHMARKS.md. Usage: scripts/bench-import.sh [ROWS]
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
work=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

go run ./scripts/gencsv -rows "$rows" -out "$work/contacts.csv" -normalized "$work/contacts-e164.csv"
size=$(du -h "$work/contacts.csv" | cut -f1)

token=bench-admin-token-0123456789
port=$((20000 + RANDOM % 20000))
TURBINA_DATA_DIR="$work/data" TURBINA_ADMIN_TOKEN=$token TURBINA_HTTP_ADDR=127.0.0.1:$port \
  ./bin/turbina serve --log-level warn &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done

api() { curl -sS -H "Authorization: Bearer $token" "$@"; }
id=$(api -H 'Content-Type: application/json' -d '{"name":"bench","caller_id":"+551130000000"}' \
  "http://127.0.0.1:$port/api/v1/campaigns" | sed -E 's/.*"id":"([0-9]+)".*/\1/')

start=$(date +%s.%N)
api -H 'Content-Type: text/csv' --data-binary "@$work/contacts.csv" \
  "http://127.0.0.1:$port/api/v1/campaigns/$id/contacts" -o "$work/report.json"
end=$(date +%s.%N)
import_s=$(echo "$end - $start" | bc -l)
imported=$(grep -o '"imported":[0-9]*' "$work/report.json" | head -1 | cut -d: -f2)
rejected=$(grep -o '"rejected_count":[0-9]*' "$work/report.json" | head -1 | cut -d: -f2)
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
kill "$pid"; wait "$pid" 2>/dev/null || true

# Baseline: sqlite3 loading the normalised rows into a table with the same kind of
# uniqueness constraint, in WAL mode like Turbina's database.
sqlite3 "$work/baseline.db" 'PRAGMA journal_mode=WAL;' \
  'CREATE TABLE contacts(name TEXT, phone TEXT NOT NULL UNIQUE, plano TEXT, valor TEXT);' >/dev/null
start=$(date +%s.%N)
sqlite3 "$work/baseline.db" '.import --csv --skip 1 '"$work/contacts-e164.csv"' contacts'
end=$(date +%s.%N)
base_s=$(echo "$end - $start" | bc -l)
base_rows=$(sqlite3 "$work/baseline.db" 'SELECT count(*) FROM contacts')

ratio=$(echo "$import_s / $base_s" | bc -l)
rate=$(echo "$imported / $import_s" | bc -l)
table=$(cat <<MD
Command: \`make bench-import\` (\`scripts/bench-import.sh $rows\`), run on $(date -u +%Y-%m-%d) on $(nproc) cores.
File: $rows data rows ($size), \`;\`-delimited, CRLF, numbers mixed as \`(11) 96000-0000\`,
\`+55 11 96000-0001\`, \`5511960000002\` and \`011 96000-0003\`.

| measure | value |
|---|---|
| rows imported / rejected | $imported / $rejected |
| HTTP import wall time (curl upload → full report received) | $(printf %.2f "$import_s") s |
| import rate | $(printf %.0f "$rate") rows/s |
| server peak RSS (VmHWM) | $((rss_kb / 1024)) MB |
| baseline: \`sqlite3 .import\` of the same rows already in E.164 ($base_rows rows) | $(printf %.2f "$base_s") s |
| ratio Turbina / sqlite3 .import | $(printf %.2f "$ratio") × |

Targets: ≤ 30 s and ≤ 250 MB peak RSS.
MD
)
awk -v t="$table" '/<!-- import:begin -->/ {print; print t; skip=1; next}
  /<!-- import:end -->/ {skip=0} !skip' BENCHMARKS.md > "$work/BENCHMARKS.md"
cp "$work/BENCHMARKS.md" BENCHMARKS.md
echo "$table"
