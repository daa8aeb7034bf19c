#!/usr/bin/env bash
# bench-sip.sh: call attempts per second from Turbina's dialer/sip to a sipp
# UAS that answers at once, against sipp's own UAC on the same UAS scenario in
# the same run; plus live heap per concurrent answered call.
# All traffic stays on 127.0.0.1; every run is bounded by a call count and a timeout.
#   CALLS=5000 CONC=50 HOLD=1000 scripts/bench-sip.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS=${CALLS:-5000}
CONC=${CONC:-50}
HOLD=${HOLD:-1000}
SCEN=internal/sipptest/scenarios/answer.xml
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# sipp's own UAC against the same UAS: it loses calls when asked for more than it can
# sustain, so sweep its rate and keep the best rate that completed every call.
best=0
for rate in 1000 2000 3000 4000 6000; do
	port=$(python3 -c 'import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
	(cd "$work" && sipp -sf "$OLDPWD/$SCEN" -i 127.0.0.1 -p "$port" -m "$CALLS" -timeout 60s -nostdin \
		-key contact_port "$port" -key contact_transport udp >uas.log 2>&1) &
	uas=$!
	sleep 0.5
	start=$(date +%s.%N)
	(cd "$work" && sipp -sn uac 127.0.0.1:"$port" -i 127.0.0.1 -m "$CALLS" -r "$rate" -l "$CONC" -d 0 \
		-timeout 60s -nostdin >uac.log 2>&1) || true
	end=$(date +%s.%N)
	kill "$uas" 2>/dev/null || true
	wait "$uas" 2>/dev/null || true
	ok=$(grep -a "Successful call" "$work/uac.log" | tail -1 | awk -F'|' '{gsub(/ /,"",$3); print $3}')
	bad=$(grep -a "Failed call" "$work/uac.log" | tail -1 | awk -F'|' '{gsub(/ /,"",$3); print $3}')
	got=$(python3 -c "print(round($CALLS/($end-$start)))")
	echo "BENCH sipp uac at -r $rate: $CALLS calls in $(python3 -c "print(f'{$end-$start:.3f}')")s = $got calls/s, successful $ok, failed $bad (concurrency $CONC)"
	if [ "${bad:-1}" = 0 ] && [ "$got" -gt "$best" ]; then best=$got; fi
done
echo "BENCH sipp uac best rate with 0 failed calls: $best calls/s"

SIP_BENCH_CALLS=$CALLS SIP_BENCH_CONCURRENCY=$CONC SIP_BENCH_HOLD=$HOLD \
	go test -count=1 -run '^$' -bench 'SustainedRate|MemoryPerCall' -benchtime=1x -v ./dialer/sip/ 2>&1 | grep -E 'BENCH|^(ok|FAIL|--- FAIL)'
