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

port=$(python3 -c 'import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
(cd "$work" && sipp -sf "$OLDPWD/$SCEN" -i 127.0.0.1 -p "$port" -m "$CALLS" -timeout 120s -nostdin \
	-key contact_port "$port" -key contact_transport udp >uas.log 2>&1) &
sleep 0.5
start=$(date +%s.%N)
(cd "$work" && sipp -sn uac 127.0.0.1:"$port" -i 127.0.0.1 -m "$CALLS" -r 100000 -l "$CONC" -d 0 \
	-timeout 120s -nostdin -trace_stat -stf uac.csv >uac.log 2>&1) || true
end=$(date +%s.%N)
wait || true
ok=$(grep -a "Successful call" "$work/uac.log" | tail -1 | awk -F'|' '{gsub(/ /,"",$3); print $3}')
bad=$(grep -a "Failed call" "$work/uac.log" | tail -1 | awk -F'|' '{gsub(/ /,"",$3); print $3}')
python3 -c "print(f'BENCH sipp uac: $CALLS calls in {($end-$start):.3f}s = {$CALLS/($end-$start):.0f} calls/s, successful $ok, failed $bad (concurrency $CONC)')"

TURBINA_SIP_BENCH=1 SIP_BENCH_CALLS=$CALLS SIP_BENCH_CONCURRENCY=$CONC SIP_BENCH_HOLD=$HOLD \
	go test -count=1 -run 'TestBench' -v ./dialer/sip/ 2>&1 | grep -E 'BENCH|^(ok|FAIL|--- FAIL)'
