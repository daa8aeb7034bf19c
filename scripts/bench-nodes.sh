#!/usr/bin/env bash
# bench-nodes.sh: the whole product as one node, and as several side by side on the same
# machine, in one run, against one sipp UAS (internal/sipptest/scenarios/bench-answer.xml).
# Each node is bench-sip.sh's product side: `turbina demo --trunk … --max-cps RATE` with
# BENCH_AGENTS simulated agents who talk BENCH_HOLD ms and wrap up at once. The demo seeds
# its own campaign, users and agents in its database, so each node has a database of its
# own: with TURBINA_DATABASE_URL=postgres://… node i uses a fresh database bench_nodes_PID_i
# on that PostgreSQL server (created, dropped after); else a SQLite file each. The nodes
# share the machine's cores, the UAS and the PostgreSQL server, not a campaign: this
# measures what a node costs the machine and the server, not the lease spread.
#
#   BENCH_NODES="1 2" BENCH_RATE=100 scripts/bench-nodes.sh
#   BENCH_NODES=2 BENCH_BIN="old/turbina bin/turbina" scripts/bench-nodes.sh   # two builds, one load
#   TURBINA_DATABASE_URL='postgres://postgres@/bench?host=/tmp/pg&sslmode=disable' \
#     TURBINA_TOKEN_KEY=$(openssl rand -hex 32) BENCH_NODES="1 2" scripts/bench-nodes.sh
#
# For each node count: the calls reached at the UAS per second over the measured window
# (all nodes together), the nodes' CPU (cores, summed), the PostgreSQL server's CPU (its
# postmaster and children), its transactions (the nodes' databases) and WAL syncs per
# call, the agents' occupancy (the demo's report, averaged over the nodes) and each node's
# answered calls per second by its own counters: on a machine shared with others, two
# builds run side by side (BENCH_BIN) see the same load, which runs one after the other
# do not. All
# traffic stays on 127.0.0.1; every process is bounded by --duration or -timeout.
set -euo pipefail
cd "$(dirname "$0")/.."

NODES=${BENCH_NODES:-"1 2"}
RATE=${BENCH_RATE:-100}     # offered per node (the trunk's max_cps)
STEP=${BENCH_STEP:-10}
WARMUP=${BENCH_WARMUP:-3}
HOLD=${BENCH_HOLD:-50}
AGENTS=${BENCH_AGENTS:-200} # per node
BINS=(${BENCH_BIN:-bin/turbina}) # node i runs the i-th (the last one for the rest): two builds side by side share one load
URL=${TURBINA_DATABASE_URL:-}
SCEN=internal/sipptest/scenarios/bench-answer.xml

for tool in sipp curl python3; do
	command -v "$tool" >/dev/null || { echo "bench-nodes: $tool is missing (scripts/deps.sh bench installs it)" >&2; exit 2; }
done
for b in "${BINS[@]}"; do [ -x "$b" ] || { echo "bench-nodes: $b is missing (make build)" >&2; exit 2; }; done
for v in RATE STEP WARMUP HOLD AGENTS; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "bench-nodes: BENCH_$v=${!v}: want a positive whole number" >&2; exit 2; }
done
for n in $NODES; do
	[[ $n =~ ^[1-8]$ ]] || { echo "bench-nodes: BENCH_NODES: $n is not 1 to 8 nodes" >&2; exit 2; }
done
pg=
case "$URL" in postgres://* | postgresql://*) pg=1 ;; esac
if [ -n "$pg" ]; then
	command -v psql >/dev/null || { echo "bench-nodes: psql is missing" >&2; exit 2; }
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/turbina-bench-nodes.XXXXXX")
pids=() dbs=()
stop() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	pids=()
}
cleanup() {
	stop
	for db in "${dbs[@]}"; do psql -XAtq "$URL" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; done
	if [ -n "${BENCH_KEEP:-}" ]; then echo "bench-nodes: files kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
. scripts/free-port.sh

# cpu PID…: CPU seconds the processes have used so far (user + system).
cpu() {
	local hz total=0
	hz=$(getconf CLK_TCK)
	for p in "$@"; do
		total=$(awk -v hz="$hz" -v t="$total" '{sub(/^.*\) /, ""); printf "%.2f\n", t + ($12 + $13) / hz}' "/proc/$p/stat" 2>/dev/null || echo "$total")
	done
	echo "$total"
}
# pgcpu: CPU seconds the PostgreSQL server has used so far: its postmaster, with the
# children it has reaped (cutime, cstime), and its live children (backends come and go).
pgcpu() {
	[ -n "$pg" ] || { echo 0; return; }
	local dir pm
	dir=$(psql -XAtq "$URL" -c "SHOW data_directory") && pm=$(head -1 "$dir/postmaster.pid") || { echo 0; return; }
	awk -v hz="$(getconf CLK_TCK)" '{sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13 + $14 + $15) / hz}' "/proc/$pm/stat" |
		{ read -r reaped; awk -v a="$reaped" -v b="$(cpu $(ps -o pid= --ppid "$pm"))" 'BEGIN {printf "%.2f\n", a + b}'; }
}
# pgstats DB…: the databases' committed transactions and the server's WAL syncs.
pgstats() {
	[ -n "$pg" ] || { echo "0 0"; return; }
	local list
	list=$(printf "'%s'," "$@")
	psql -XAtq -F ' ' "$URL" -c "SELECT pg_stat_force_next_flush()" \
		-c "SELECT (SELECT sum(xact_commit) FROM pg_stat_database WHERE datname IN (${list%,})), wal_sync FROM pg_stat_wal" | tail -1
}
# sipCalls PORT: the node's SIP calls so far, "total answered".
sipCalls() {
	curl -sf --max-time 5 "http://127.0.0.1:$1/metrics" |
		awk '/^turbina_sip_calls_total\{/ {n=$NF+0; t+=n; if ($0 ~ /outcome="answered"/) a+=n} END {printf "%d %d\n", t, a}'
}

results=$work/results.txt
: >"$results"
echo "bench-nodes: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for n in $NODES; do
	dir=$work/nodes-$n && mkdir -p "$dir"
	dur=$((WARMUP + STEP + 300)) # the nodes are stopped after the window; this bounds a stuck one
	uas_port=$(free_port)
	cp "$SCEN" "$dir/"
	(cd "$dir" && exec sipp -sf "$(basename "$SCEN")" -i 127.0.0.1 -p "$uas_port" -t u1 -m 100000000 -timeout "$((dur + 60))s" \
		-nostdin -key contact_port "$uas_port" -key contact_transport udp -trace_stat -stf uas.csv -fd 1 >uas.log 2>&1) &
	uas_pid=$!
	pids+=("$uas_pid")
	sleep 1
	ports=() names=() demo_pids=()
	for i in $(seq "$n"); do
		port=$(free_port)
		env=(TURBINA_CONFIG=)
		if [ -n "$pg" ]; then
			name=bench_nodes_$$_$i
			psql -XAtq "$URL" -c "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name" >/dev/null
			dbs+=("$name") names+=("$name")
			env+=("TURBINA_DATABASE_URL=$(python3 -c "import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path='/' + sys.argv[2])))" "$URL" "$name")")
		fi
		bin=${BINS[$((i <= ${#BINS[@]} ? i - 1 : ${#BINS[@]} - 1))]}
		env "${env[@]}" "$bin" demo --trunk "127.0.0.1:$uas_port" --max-cps "$RATE" --agents "$AGENTS" \
			--contacts $((RATE * (WARMUP + STEP + 10) + 1000)) --duration "${dur}s" --report --json --talk "${HOLD}ms" --wrap 0s \
			--no-whatsapp --pacing progressive --http-addr "127.0.0.1:$port" --data-dir "$dir/data-$i" --log-level warn \
			>"$dir/report-$i.json" 2>"$dir/turbina-$i.log" &
		demo_pids+=($!) ports+=("$port")
		pids+=($!)
	done
	# Every node dialling first (the import and the agents' audio come first), bounded.
	for i in $(seq 0 $((n - 1))); do
		for _ in $(seq 1500); do
			kill -0 "${demo_pids[$i]}" 2>/dev/null || { echo "bench-nodes: node $((i + 1)) exited:" >&2; tail -5 "$dir/turbina-$((i + 1)).log" >&2; exit 1; }
			m=$(sipCalls "${ports[$i]}" 2>/dev/null) && [ "${m%% *}" -gt 0 ] && break
			sleep 0.2
		done
	done
	sleep "$WARMUP"
	a0=() a1=()
	for port in "${ports[@]}"; do read -r _ ans < <(sipCalls "$port" || echo "0 0"); a0+=("$ans"); done
	t0=$(date +%s.%N) c0=$(cpu "${demo_pids[@]}") p0=$(pgcpu) x0=$(pgstats "${names[@]}")
	sleep "$STEP"
	t1=$(date +%s.%N) c1=$(cpu "${demo_pids[@]}") p1=$(pgcpu) x1=$(pgstats "${names[@]}")
	fails=0
	for port in "${ports[@]}"; do read -r tot ans < <(sipCalls "$port" || echo "0 0"); fails=$((fails + tot - ans)) a1+=("$ans"); done
	# Each node's answered calls per second over the window, by its own counters.
	each=$(python3 -c "import sys; a0, a1, d = sys.argv[1].split(), sys.argv[2].split(), $t1 - $t0
print('/'.join(f'{(int(y) - int(x)) / d:.1f}' for x, y in zip(a0, a1)))" "${a0[*]}" "${a1[*]}")
	load=$(cut -d' ' -f1 /proc/loadavg)
	sleep 1.5 # the UAS's last stats line
	stop
	read -r reached uas_fail < <(python3 - "$dir/uas.csv" "$t0" "$t1" <<'EOF'
import sys
rows = [l.rstrip("\n").split(";") for l in open(sys.argv[1], errors="replace")]
head, rows = rows[0], [r for r in rows[1:] if len(r) > 20]
t0, t1 = float(sys.argv[2]), float(sys.argv[3])
pts = [(float(r[head.index("CurrentTime")].split("\t")[-1]), int(r[head.index("IncomingCall(C)")]), int(r[head.index("FailedCall(C)")])) for r in rows]
inside = [p for p in pts if t0 <= p[0] <= t1 + 0.5]
(a, na, _), (b, nb, fb) = inside[0], inside[-1]
print(round((nb - na) / (b - a), 1), fb)
EOF
	)
	occ=$(python3 - "$dir" "$n" <<'EOF'
import json, sys
o = []
for i in range(1, int(sys.argv[2]) + 1):
    try: o.append(json.load(open(f"{sys.argv[1]}/report-{i}.json"))["occupancy"])
    except Exception: pass
print(round(100 * sum(o) / len(o)) if o else "n/a")
EOF
	)
	python3 - "$n" "$RATE" "$reached" "$t0" "$t1" "$c0" "$c1" "$p0" "$p1" "$x0" "$x1" "$fails" "$uas_fail" "$occ" "$load" "$pg" "$each" >>"$results" <<'EOF'
import sys
n, rate, reached, t0, t1, c0, c1, p0, p1 = sys.argv[1:10]
x0, x1 = sys.argv[10].split(), sys.argv[11].split()
fails, uas_fail, occ, load, pg, each = sys.argv[12:18]
d, reached = float(t1) - float(t0), float(reached)
calls = reached * d
node_cpu, pg_cpu = (float(c1) - float(c0)) / d, (float(p1) - float(p0)) / d
per = lambda k: f"{(int(x1[k]) - int(x0[k])) / calls:.1f}" if pg and calls else "-"
per100 = lambda c: f"{100 * c / reached:.2f}" if reached else "-"
print(n, int(rate) * int(n), reached, f"{node_cpu:.2f}", f"{pg_cpu:.2f}" if pg else "-", per100(node_cpu), per100(node_cpu + pg_cpu),
      per(0), per(1), fails, uas_fail, occ, load, each)
EOF
	echo "bench-nodes: $n node(s): $(tail -1 "$results")" >&2
done

base=$(awk 'NR == 1 {print $3}' "$results")
echo "| nodes | offered /s (all) | reached at the UAS /s | nodes' CPU (cores) | PostgreSQL's CPU (cores) | cores per 100 calls/s: nodes, with PostgreSQL | PostgreSQL transactions per call | WAL syncs per call | calls not answered: nodes, UAS | agents' occupancy | load (1 min) | reached / one node's | each node's answered /s |"
echo "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
while read -r n off reached ncpu pcpu c1 c2 xa ws f uf occ load each; do
	echo "| $n | $off | $reached | $ncpu | $pcpu | $c1, $c2 | $xa | $ws | $f, $uf | $occ % | $load | $(python3 -c "print(f'{$reached / $base:.2f}' if $base else '-')") | $each |"
done <"$results"
