#!/usr/bin/env bash
# bench-sip.sh: a fair SIP benchmark of the whole product (issue 16, item 8).
#
# One sipp UAS (internal/sipptest/scenarios/bench-answer.xml: 100, 180, 200 at once, then
# waits for the caller's BYE; an INVITE retransmitted before the ACK gets the 200 again)
# is the carrier. Two callers are offered the same series of
# rates, open-loop, each against a fresh UAS:
#   - sipp's own UAC: `sipp -sn uac -r RATE -d HOLD`;
#   - the whole product: `turbina demo --trunk … --max-cps RATE` (the server of `turbina
#     serve` with SQLite on a temporary data dir, a campaign of synthetic contacts on the
#     SIP rung alone, BENCH_AGENTS simulated WebRTC agents in the same process who talk
#     HOLD and wrap up at once). The trunk's max_cps is the offered rate: with agents to
#     spare the pacer asks for more lines than the trunk allows, so the trunk's token
#     bucket sets the pace, as sipp's -r does.
# Each rate runs BENCH_WARMUP seconds, then BENCH_STEP seconds measured. For each side:
#   - rate reached = new calls counted at the UAS over the measured window;
#   - failed = the larger of the UAS's failed calls and the caller's own (sipp's
#     "Failed call"; the product's turbina_sip_calls_total outcomes other than answered),
#     over all calls of the step;
#   - a rate passes when failed < 0.1 % and the rate reached is ≥ 95 % of the offered one;
#     the knee is the highest offered rate that passes, and the ratio is the product's knee
#     over sipp's. A loaded shared machine stalls sipp now and then, and one stall loses
#     more than 0.1 % of a step's calls, so a second knee with < 1 % failed is reported
#     beside it, labelled; a side's sweep stops at its first rate failing that one.
# Then the library alone (dialer/sip, closed-loop, BENCH_LIB_CONC calls at once) against
# a sipp UAS on answer.xml, as before: BenchmarkSustainedRate and BenchmarkMemoryPerCall.
#
#   make bench-sip                                   # the whole run, under ~10 minutes
#   BENCH_QUICK=1 scripts/bench-sip.sh               # a short run (~3 minutes)
#   BENCH_RATES="500 1000" BENCH_STEP=10 BENCH_SIP_UPDATE=0 scripts/bench-sip.sh
#   BENCH_PROFILE=/tmp/prof scripts/bench-sip.sh     # a CPU profile of each product step
#
# BENCH_SIP_UPDATE=1 (the default) writes the summary into BENCHMARKS.md between
# <!-- bench-sip:begin --> and <!-- bench-sip:end -->. All traffic stays on 127.0.0.1;
# every process is bounded by a call count, a --duration or a -timeout.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${BENCH_QUICK:-}" ]; then
	RATES=${BENCH_RATES:-"100 400 1000 2000 4000"} STEP=${BENCH_STEP:-6} WARMUP=${BENCH_WARMUP:-2}
else
	RATES=${BENCH_RATES:-"100 200 400 700 1000 1500 2000 3000 4000 6000"} STEP=${BENCH_STEP:-15} WARMUP=${BENCH_WARMUP:-3}
fi
HOLD=${BENCH_HOLD:-50}          # ms between the 200's ACK and the caller's BYE
AGENTS=${BENCH_AGENTS:-200}     # simulated agents (the demo takes at most 500; each costs CPU in the same process)
LIB_CALLS=${BENCH_LIB_CALLS:-5000}
LIB_CONC=${BENCH_LIB_CONC:-50}
BIN=${BENCH_BIN:-bin/turbina}
UPDATE=${BENCH_SIP_UPDATE:-1}
SIDES=${BENCH_SIDES:-"sipp turbina library"} # which callers to run (a debugging run may leave some out)
SCEN=internal/sipptest/scenarios/bench-answer.xml

for tool in sipp curl python3; do
	command -v "$tool" >/dev/null || { echo "bench-sip: $tool is missing (scripts/deps.sh bench installs it)" >&2; exit 2; }
done
[ -x "$BIN" ] || { echo "bench-sip: $BIN is missing (make build)" >&2; exit 2; }
for r in $RATES; do
	[[ $r =~ ^[1-9][0-9]*$ ]] || { echo "bench-sip: BENCH_RATES: $r is not a positive whole rate" >&2; exit 2; }
done
for v in STEP WARMUP HOLD AGENTS; do
	[[ ${!v} =~ ^[0-9]+$ ]] || { echo "bench-sip: BENCH_$v=${!v}: want a whole number" >&2; exit 2; }
done
[ "$STEP" -ge 2 ] || { echo "bench-sip: BENCH_STEP must be at least 2 s" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/turbina-bench-sip.XXXXXX")
uas_pid= caller_pid=
stop() { # stop our two processes, if running
	for p in $caller_pid $uas_pid; do kill "$p" 2>/dev/null || true; done
	for p in $caller_pid $uas_pid; do wait "$p" 2>/dev/null || true; done
	caller_pid= uas_pid=
}
cleanup() {
	stop
	if [ -n "${BENCH_KEEP:-}" ]; then echo "bench-sip: files kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

. scripts/free-port.sh # the working directory is the repository root

# start_uas DIR: a fresh UAS for one step, its stats every second in DIR/uas.csv.
start_uas() {
	local dir=$1 limit=$2
	uas_port=$(free_port)
	cp "$SCEN" "$dir/"
	(cd "$dir" && exec sipp -sf "$(basename "$SCEN")" -i 127.0.0.1 -p "$uas_port" -t u1 -m 100000000 \
		-timeout "${limit}s" -nostdin -key contact_port "$uas_port" -key contact_transport udp \
		-trace_stat -stf uas.csv -fd 1 -trace_err -error_file uas-errors.log >uas.log 2>&1) &
	uas_pid=$!
	for _ in $(seq 100); do
		if python3 -c "import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
try: s.bind(('127.0.0.1',$uas_port))
except OSError: sys.exit(0)
sys.exit(1)"; then return 0; fi
		kill -0 "$uas_pid" 2>/dev/null || { echo "bench-sip: the UAS exited:" >&2; tail -20 "$dir/uas.log" >&2; exit 1; }
		sleep 0.1
	done
	echo "bench-sip: the UAS did not bind 127.0.0.1:$uas_port" >&2
	exit 1
}

# cpu PID: CPU seconds the process has used so far (user + system).
cpu() {
	awk -v hz="$(getconf CLK_TCK)" '{sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / hz}' "/proc/$1/stat" 2>/dev/null || echo 0
}

# metrics FILE: the product's SIP counters now, as "epoch total answered".
metrics() {
	local m
	m=$(curl -sf --max-time 5 "http://127.0.0.1:$http_port/metrics") || return 1
	awk -v t="$(date +%s.%N)" '/^turbina_sip_calls_total\{/ {n=$NF+0; total+=n; if ($0 ~ /outcome="answered"/) ans+=n}
		END {printf "%s %d %d\n", t, total, ans}' <<<"$m"
}

# pgstats: when TURBINA_DATABASE_URL is a PostgreSQL database and psql is at hand,
# "transactions WAL-flushes" so far: the database's committed transactions (reads
# included: each statement outside a transaction is one) and the server's WAL syncs
# (pg_stat_wal, PostgreSQL 14+), what a durable commit waits for; else "- -".
pgstats() {
	case "${TURBINA_DATABASE_URL:-}" in postgres://* | postgresql://*) ;; *) echo "- -"; return ;; esac
	command -v psql >/dev/null || { echo "- -"; return; }
	psql -XAtq -F ' ' "$TURBINA_DATABASE_URL" -c "SELECT pg_stat_force_next_flush()" \
		-c "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()), wal_sync FROM pg_stat_wal" 2>/dev/null |
		tail -1 || echo "- -"
}

results=$work/results.txt # side rate dir t0 t1 [extra]
: >"$results"
started=$(date -u '+%Y-%m-%d %H:%M UTC')
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
t_begin=$(date +%s)

# verdict DIR T0 T1 CALLER_TOTAL CALLER_FAILED RATE: "pass|fail reached failed_pct" from the UAS's stats.
verdict() {
	python3 - "$@" <<'EOF'
import sys
d, t0, t1, ctot, cfail, rate = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
rows = [l.rstrip("\n").split(";") for l in open(d + "/uas.csv", errors="replace")]
head, rows = rows[0], [r for r in rows[1:] if len(r) > 20]
col = lambda r, name: r[head.index(name)]
pts = [(float(col(r, "CurrentTime").split("\t")[-1]), int(col(r, "IncomingCall(C)")), int(col(r, "FailedCall(C)"))) for r in rows]
inside = [p for p in pts if t0 <= p[0] <= t1 + 0.5]
if len(inside) < 2:
    print("fail 0 100 0 0"); sys.exit()
(a, na, _), (b, nb, _) = inside[0], inside[-1]
reached = (nb - na) / (b - a)
# The UAS's failures up to the window's end: calls cut when the step stops are not counted.
uas_in, uas_fail = inside[-1][1], inside[-1][2]
failed = max(uas_fail / uas_in if uas_in else 1, cfail / ctot if ctot else 1)
enough = reached >= 0.95 * rate
print("pass" if enough and failed < 0.001 else "loose" if enough and failed < 0.01 else "fail",
      round(reached), f"{100 * failed:.3f}", uas_in, uas_fail)
EOF
}

# --- sipp's own UAC -----------------------------------------------------------------
for rate in $RATES; do
	[[ " $SIDES " == *" sipp "* ]] || break
	dir=$work/sipp-$rate && mkdir -p "$dir"
	start_uas "$dir" $((WARMUP + STEP + 60))
	calls=$((rate * (WARMUP + STEP + 1)))
	t0=$(python3 -c "import time;print(time.time()+$WARMUP)")
	(cd "$dir" && exec sipp -sn uac 127.0.0.1:"$uas_port" -i 127.0.0.1 -t u1 -m "$calls" -r "$rate" -rp 1000 \
		-d "$HOLD" -l $((rate * 4 + 100)) -timeout $((WARMUP + STEP + 40))s -nostdin \
		-trace_stat -stf uac.csv -fd 1 >uac.log 2>&1) &
	caller_pid=$!
	sleep "$WARMUP"
	c0=$(cpu "$caller_pid") u0=$(cpu "$uas_pid")
	sleep "$STEP"
	c1=$(cpu "$caller_pid") u1=$(cpu "$uas_pid")
	cpus=$(python3 -c "print(f'{($c1-$c0)/$STEP:.2f} {($u1-$u0)/$STEP:.2f}')")
	wait "$caller_pid" || true
	caller_pid=
	t1=$(python3 -c "print($t0+$STEP)")
	sleep 1.5 # the UAS's last stats line
	stop
	read -r ctot cfail < <(python3 - "$dir/uac.csv" <<'EOF'
import sys
rows = [l.rstrip("\n").split(";") for l in open(sys.argv[1], errors="replace")]
head, last = rows[0], [r for r in rows if len(r) > 20][-1]
print(last[head.index("TotalCallCreated")], last[head.index("FailedCall(C)")])
EOF
	) || { ctot=0 cfail=0; }
	read -r ok reached pct uas_in uas_fail < <(verdict "$dir" "$t0" "$t1" "$ctot" "$cfail" "$rate")
	echo "sipp $rate $ok $reached $pct $ctot $cfail $uas_in $uas_fail $(cut -d' ' -f1 /proc/loadavg) $cpus -" >>"$results"
	echo "bench-sip: sipp UAC offered $rate/s: reached $reached/s at the UAS, failed $pct % (UAC $cfail of $ctot, UAS $uas_fail of $uas_in): $ok" >&2
	[ "$ok" != fail ] || break
done

# --- the whole product ----------------------------------------------------------------
for rate in $RATES; do
	[[ " $SIDES " == *" turbina "* ]] || break
	dir=$work/turbina-$rate && mkdir -p "$dir"
	# Contacts for the step and a margin; the import and the agents' audio come first.
	contacts=$((rate * (WARMUP + STEP + 10) + 1000))
	dur=$((WARMUP + STEP + 120))
	start_uas "$dir" $((dur + 60))
	http_port=$(free_port)
	cmd=("$BIN" demo --trunk "127.0.0.1:$uas_port" --max-cps "$rate" --agents "$AGENTS" --contacts "$contacts"
		--duration "${dur}s" --report --json --talk "${HOLD}ms" --wrap 0s --no-whatsapp --pacing progressive
		--http-addr "127.0.0.1:$http_port" --data-dir "$dir/data" --log-level warn)
	if [ -n "${BENCH_PROFILE:-}" ]; then cmd+=(--pprof); fi
	TURBINA_CONFIG= "${cmd[@]}" >"$dir/report.json" 2>"$dir/turbina.log" &
	caller_pid=$!
	# Wait for the first dial (the import and the agents' audio come first), bounded.
	first=
	for _ in $(seq 600); do
		kill -0 "$caller_pid" 2>/dev/null || break
		if m=$(metrics) && [ "$(cut -d' ' -f2 <<<"$m")" -gt 0 ]; then first=$m; break; fi
		sleep 0.2
	done
	if [ -z "$first" ]; then
		echo "bench-sip: turbina demo did not dial at $rate/s:" >&2
		tail -20 "$dir/turbina.log" >&2
		stop
		echo "turbina $rate fail 0 100 0 0 0 0 $(cut -d' ' -f1 /proc/loadavg) 0 0 n/a" >>"$results"
		break
	fi
	sleep "$WARMUP"
	t0=$(date +%s.%N)
	c0=$(cpu "$caller_pid") u0=$(cpu "$uas_pid") x0=$(pgstats)
	prof_pid=
	if [ -n "${BENCH_PROFILE:-}" ]; then
		mkdir -p "$BENCH_PROFILE"
		curl -sf --max-time $((STEP + 10)) -o "$BENCH_PROFILE/cpu-$rate.prof" \
			"http://127.0.0.1:$http_port/debug/pprof/profile?seconds=$STEP" &
		prof_pid=$!
		for kind in block mutex; do # the waits over the step (a delta: ?seconds)
			curl -sf --max-time $((STEP + 10)) -o "$BENCH_PROFILE/$kind-$rate.prof" \
				"http://127.0.0.1:$http_port/debug/pprof/$kind?seconds=$STEP" &
			prof_pid="$prof_pid $!"
		done
	fi
	sleep "$STEP"
	t1=$(date +%s.%N)
	c1=$(cpu "$caller_pid") u1=$(cpu "$uas_pid") x1=$(pgstats)
	end=$(metrics) || end="0 0 0"
	if [ -n "$prof_pid" ]; then wait $prof_pid || true; fi
	sleep 1.5 # the UAS's last stats line
	load_now=$(cut -d' ' -f1 /proc/loadavg)
	stop
	read -r _ ctot cans <<<"$end"
	occ=$(python3 -c "import json,sys
try: print(round(100*json.load(open('$dir/report.json'))['occupancy']))
except Exception: print('n/a')")
	cpus=$(python3 -c "d=$t1-$t0; print(f'{($c1-$c0)/d:.2f} {($u1-$u0)/d:.2f}')")
	read -r ok reached pct uas_in uas_fail < <(verdict "$dir" "$t0" "$t1" "$ctot" "$((ctot - cans))" "$rate")
	# A call still ringing when the counters were read is no failure: the product's count
	# of outcomes other than answered is what matters, and the UAS's.
	# Per call reached over the window: PostgreSQL's transactions and WAL syncs.
	per_call=$(python3 -c "import sys
a, b, n = '$x0'.split(), '$x1'.split(), $reached * ($t1 - $t0)
print(' '.join(f'{(int(y) - int(x)) / n:.1f}' if x != '-' and y != '-' and n else '-' for x, y in zip(a, b)))")
	echo "turbina $rate $ok $reached $pct $ctot $((ctot - cans)) $uas_in $uas_fail $load_now $cpus $occ $per_call" >>"$results"
	echo "bench-sip: turbina offered $rate/s: reached $reached/s at the UAS, failed $pct % (product $((ctot - cans)) of $ctot not answered, UAS $uas_fail of $uas_in), occupancy $occ %, CPU $cpus, PostgreSQL transactions and WAL syncs per call $per_call: $ok" >&2
	[ "$ok" != fail ] || break
done

# --- the library alone ----------------------------------------------------------------------
lib=
[[ " $SIDES " != *" library "* ]] || lib=$(SIP_BENCH_CALLS=$LIB_CALLS SIP_BENCH_CONCURRENCY=$LIB_CONC SIP_BENCH_HOLD=1000 \
	go test -count=1 -run '^$' -bench 'SustainedRate|MemoryPerCall' -benchtime=1x -v ./dialer/sip/ 2>&1 |
	grep -E 'BENCH|^(ok|FAIL|--- FAIL)' || true)
echo "$lib" >&2
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
secs=$(($(date +%s) - t_begin))

export B_STARTED="$started" B_LOAD_START="$load_start" B_LOAD_END="$load_end" B_SECS="$secs" B_HOLD="$HOLD" \
	B_AGENTS="$AGENTS" B_STEP="$STEP" B_WARMUP="$WARMUP" B_RATES="$RATES" B_LIB="$lib" B_LIB_CONC="$LIB_CONC" \
	B_QUICK="${BENCH_QUICK:-}" B_CMD="${BENCH_COMMAND:-}"
python3 - "$results" >"$work/summary.md" <<'EOF'
import os, re, sys
env = os.environ
rows = [l.split() for l in open(sys.argv[1])]
def knee(side, ok):
    best = 0
    for r in rows:
        if r[0] == side and r[2] in ok:
            best = max(best, int(r[1]))
    return best
ks, kt = knee("sipp", ("pass",)), knee("turbina", ("pass",))
ls, lt = knee("sipp", ("pass", "loose")), knee("turbina", ("pass", "loose"))
cmd = env["B_CMD"] or ("BENCH_QUICK=1 scripts/bench-sip.sh" if env["B_QUICK"] else "make bench-sip")
p = print
p(f"Command: `{cmd}`, run on {env['B_STARTED']} on {os.cpu_count()} cores (load average {env['B_LOAD_START']} at the start,")
p(f"{env['B_LOAD_END']} at the end; {int(env['B_SECS']) // 60} min {int(env['B_SECS']) % 60} s). Offered rates {env['B_RATES'].split()[0]}…{env['B_RATES'].split()[-1]}/s, each")
p(f"{env['B_WARMUP']} s warm-up + {env['B_STEP']} s measured; hold {env['B_HOLD']} ms; {env['B_AGENTS']} simulated agents; a side stops at its first rate with ≥ 1 % failed or < 95 % reached.")
p("")
p("| caller | offered /s | reached at the UAS /s | calls (caller) | failed: caller / UAS | failed % | | CPU cores: caller, UAS | load (1 min) | agents' occupancy |")
p("|---|--:|--:|--:|--:|--:|---|--:|--:|--:|")
for r in rows:
    side = "sipp UAC `-r`" if r[0] == "sipp" else "Turbina (demo, `--max-cps`)"
    p(f"| {side} | {int(r[1]):,} | {int(r[3]):,} | {int(r[5]):,} | {r[6]} / {r[8]} of {int(r[7]):,} | {r[4]} | { {'pass': 'pass', 'loose': '< 1 %'}.get(r[2], '**fail**') } | {r[10]}, {r[11]} | {r[9]} | {r[12] + ' %' if r[12] not in ('-', 'n/a') else r[12]} |")
p("")
ratio = lambda a, b: f"{a / b:.2f}" if b else "n/a (sipp passed no rate)"
p(f"**Knee** (highest offered rate with < 0.1 % failed and ≥ 95 % of it reached): sipp UAC {ks:,}/s, Turbina {kt:,}/s; **ratio Turbina / sipp {ratio(kt, ks)}**.")
p(f"With < 1 % failed instead (for a loaded machine, not the issue's criterion): sipp UAC {ls:,}/s, Turbina {lt:,}/s; ratio {ratio(lt, ls)}.")
p("")
lib = {}
for l in env["B_LIB"].splitlines():
    m = re.search(r"BENCH (.*)", l)
    if m:
        lib.setdefault("lines", []).append(m.group(1).strip())
p(f"Library alone (`dialer/sip` → a sipp UAS on `answer.xml`, which answers as `bench-answer.xml` does, closed-loop, {env['B_LIB_CONC']} calls at once; not comparable with the open-loop figures):")
p("")
for l in lib.get("lines", ["(no BENCH lines: see the run's output)"]):
    p(f"- {l}")
EOF
cat "$work/summary.md"

if [ "$UPDATE" = 1 ]; then
	grep -q '<!-- bench-sip:begin -->' BENCHMARKS.md ||
		printf '\n## SIP: the whole product against sipp\n\n<!-- bench-sip:begin -->\n<!-- bench-sip:end -->\n' >>BENCHMARKS.md
	awk -v f="$work/summary.md" '/<!-- bench-sip:begin -->/ {print; while ((getline l < f) > 0) print l; skip=1; next}
		/<!-- bench-sip:end -->/ {skip=0} !skip' BENCHMARKS.md >"$work/BENCHMARKS.md"
	cat "$work/BENCHMARKS.md" >BENCHMARKS.md
	echo "bench-sip: BENCHMARKS.md updated (bench-sip section)" >&2
fi
