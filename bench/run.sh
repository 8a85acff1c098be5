#!/bin/sh
# bench/run.sh - every benchmark of saslgate, each against its baseline in the
# same run (rounds alternate between the two so that machine noise hits both).
# Run from the build directory after `make` (make bench does both):
#   sh bench/run.sh [ROUNDS] [SECONDS]
# Prints the figures recorded in bench/README.md. BENCH_ONLY=engine, writer,
# policyd, http, milter or pg runs one part; HTTP_LOAD adds options to the http
# part's bench/authpolicy_load (e.g. HTTP_LOAD="-R 100": a report after every login).
# The pg part (bench/pg_bench.py) runs its own PostgreSQL, and is skipped
# with the reason when PostgreSQL's binaries are missing; PG_PARTS and
# PG_CHANGES select its rounds and the number of pickup changes.
set -eu
ROUNDS=${1:-3}
SECS=${2:-5}
B=$(pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
W=$(mktemp -d /tmp/saslgate-bench-XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$W"' EXIT INT TERM

wait_socket() { i=0; while [ ! -S "$1" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done; }
field() { echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
# baseline_round SERVER SERVER_FLAG LOAD LOAD_FLAG CONNECTIONS SOCKET: starts
# bench/SERVER on unix:SOCKET, loads it with bench/LOAD for a second of warm-up
# and then SECS, stops it; the measured run's output is left in $out.
baseline_round() {
	rm -f "$6"
	"$B/bench/$1" "$2" "unix:$6" & BASE_PID=$!
	wait_socket "$6"
	"$B/bench/$3" "$4" "unix:$6" -c "$5" -d 1 >/dev/null
	out=$("$B/bench/$3" "$4" "unix:$6" -c "$5" -d "$SECS")
	kill $BASE_PID; wait $BASE_PID 2>/dev/null || true
}
# free_port: a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# wait_port PORT: until something accepts on 127.0.0.1:PORT (at most 10 s).
wait_port() {
	python3 -c 'import socket, sys, time
for i in range(200):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()
        break
    except OSError:
        time.sleep(0.05)' "$1"
}
# cpu_ticks PID: the process's user + system CPU so far (all threads), in ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# cpu_us TICKS REQUESTS: CPU microseconds a request.
cpu_us() { awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", (n > 0 ? t * 1e6 / hz / n : 0) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
# summary LABEL FILE: FILE holds "rate baseline_rate" per round; prints the
# median of the per-round ratios and the ratio of the summed rates.
summary() {
	awk '{ print $1 / $2, $1, $2 }' "$2" | sort -n | awk -v label="$1" '
		{ r[NR] = $1; a += $2; b += $3 }
		END { m = NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
		      printf "%s: median ratio %.2f over %d rounds (lowest %.2f, highest %.2f), summed rates %.2f\n",
		             label, m, NR, r[1], r[NR], a / b }'
}

ONLY=${BENCH_ONLY:-all}
part() { [ "$ONLY" = all ] || [ "$ONLY" = "$1" ]; }

if part engine; then
echo "== engine"
"$B/bench/engine" -n 500000
fi

if part writer; then
echo
echo "== activity writer: CPU per decision (rows, usage sums, decision lines to /dev/null)"
"$B/bench/activity_writer" -n 300000
"$B/bench/activity_writer" -n 300000 -q
fi

echo
if part policyd || part http || part milter; then
echo "== store for the daemons: 10 policies, 100,000 exceptions"
SASLGATE_BUILDDIR=$B python3 "$SRC/bench/make_store.py" "$W/store" 100000
fi

if part policyd; then
echo
echo "== saslgate-policyd vs bench/baseline_policy: 100 connections, ${SECS}s x $ROUNDS rounds"
echo "   (policyd: default settings; policyd/n0: activity_nice=0, the writer at the deciding thread's priority)"
changes=0
# policyd_round LABEL [-o SETTING]: one measured run, then its activity figures.
policyd_round() {
	label=$1
	shift
	rm -f "$W/pd.sock" "$W/store/activity.db"*
	"$B/saslgate-policyd" -f -d "$W/store" -l "unix:$W/pd.sock" -o socket_mode=0666 "$@" \
		2>"$W/policyd.log" & PP=$!
	wait_socket "$W/pd.sock"
	"$B/bench/policyd_load" -l "unix:$W/pd.sock" -c 100 -d 1 >/dev/null
	out=$("$B/bench/policyd_load" -l "unix:$W/pd.sock" -c 100 -d "$SECS")
	rss=$(sed -n 's/^VmRSS:[[:space:]]*//p' /proc/$PP/status)
	# Rebuild time after one change (the heartbeat records it).
	changes=$((changes + 1))
	"$B/saslgatectl" -d "$W/store" exception add --user "bench$changes@example.test" \
		--permanent --reason bench >/dev/null
	"$B/bench/policyd_load" -l "unix:$W/pd.sock" -c 1 -d 1 >/dev/null
	kill $PP; wait $PP 2>/dev/null || true
	printf '%-10s round %s: ' "$label" "$r"
	echo "$(field rps "$out") $base" >>"$W/ratios.$(echo "$label" | tr / _)"
	echo "ratio=$(ratio "$(field rps "$out")" "$base") rps=$(field rps "$out") p50_us=$(field p50_us "$out") p99_us=$(field p99_us "$out") rss=$rss" \
		"$(sqlite3 "$W/store/activity.db" "SELECT 'rebuild_ms=' || (last_rebuild_us / 1000) || ' decisions=' || requests || ' dropped_activity=' || dropped || ' (' || (100 * dropped / max(requests, 1)) || '%)' FROM heartbeats ORDER BY last_seen DESC LIMIT 1")"
}
for r in $(seq "$ROUNDS"); do
	baseline_round baseline_policy -l policyd_load -l 100 "$W/base.sock"
	base=$(field rps "$out")
	echo "baseline   round $r: rps=$base p50_us=$(field p50_us "$out") p99_us=$(field p99_us "$out")"
	policyd_round policyd
	policyd_round policyd/n0 -o activity_nice=0
done
summary "policyd vs baseline" "$W/ratios.policyd"
summary "policyd/n0 vs baseline" "$W/ratios.policyd_n0"

fi

if part http; then
HTTP_LOAD=${HTTP_LOAD:-}
echo
echo "== saslgate-policyd -l http: vs bench/noop_authpolicy: 100 keep-alive connections, ${SECS}s x $ROUNDS rounds"
echo "   (bench/authpolicy_load ${HTTP_LOAD:-(every request a POST /?command=allow, a decision)}; http: default"
echo "   settings, decisions logged and recorded; http/n0: activity_nice=0; cpu_us: the server's"
echo "   CPU, all its threads, per request of the measured run)"
# http_round LABEL [-o SETTING]: one measured run of saslgate-policyd on an
# http: endpoint, then its activity figures.
http_round() {
	label=$1
	shift
	rm -f "$W/store/activity.db"*
	port=$(free_port)
	"$B/saslgate-policyd" -f -d "$W/store" -l "http:127.0.0.1:$port" "$@" \
		2>"$W/policyd-http.log" & PP=$!
	wait_port "$port"
	"$B/bench/authpolicy_load" -l "http:127.0.0.1:$port" -c 100 -d 1 $HTTP_LOAD >/dev/null
	t0=$(cpu_ticks $PP)
	out=$("$B/bench/authpolicy_load" -l "http:127.0.0.1:$port" -c 100 -d "$SECS" -w 0 $HTTP_LOAD)
	t1=$(cpu_ticks $PP)
	rss=$(sed -n 's/^VmRSS:[[:space:]]*//p' /proc/$PP/status)
	kill $PP; wait $PP 2>/dev/null || true
	printf '%-10s round %s: ' "$label" "$r"
	echo "$(field rps "$out") $base" >>"$W/ratios.$(echo "$label" | tr / _)"
	echo "ratio=$(ratio "$(field rps "$out")" "$base") rps=$(field rps "$out") p50_us=$(field p50_us "$out") p99_us=$(field p99_us "$out") cpu_us=$(cpu_us $((t1 - t0)) "$(field requests "$out")") refused=$(field refused "$out") rss=$rss" \
		"$(sqlite3 "$W/store/activity.db" "SELECT 'decisions=' || requests || ' dropped_activity=' || dropped || ' (' || (100 * dropped / max(requests, 1)) || '%)' FROM heartbeats ORDER BY last_seen DESC LIMIT 1")"
}
for r in $(seq "$ROUNDS"); do
	port=$(free_port)
	"$B/bench/noop_authpolicy" -l "http:127.0.0.1:$port" & NP=$!
	wait_port "$port"
	"$B/bench/authpolicy_load" -l "http:127.0.0.1:$port" -c 100 -d 1 $HTTP_LOAD >/dev/null
	t0=$(cpu_ticks $NP)
	out=$("$B/bench/authpolicy_load" -l "http:127.0.0.1:$port" -c 100 -d "$SECS" -w 0 $HTTP_LOAD)
	t1=$(cpu_ticks $NP)
	kill $NP; wait $NP 2>/dev/null || true
	base=$(field rps "$out")
	noop_cpu=$(cpu_us $((t1 - t0)) "$(field requests "$out")")
	echo "$noop_cpu" >>"$W/noop_cpu.http"
	echo "noop       round $r: rps=$base p50_us=$(field p50_us "$out") p99_us=$(field p99_us "$out") cpu_us=$noop_cpu"
	http_round http
	http_round http/n0 -o activity_nice=0
done
summary "http vs noop" "$W/ratios.http"
summary "http/n0 vs noop" "$W/ratios.http_n0"
# What the JSON alone costs (bench/authpolicy_parse: Jansson's json_loadb and
# the mapping, on bodies of the same shape), beside the no-op's whole request:
# the highest ratio saslgate could reach if it decided and logged for free.
parse_ns=$(field parse_ns "$("$B/bench/authpolicy_parse" -n 500000)")
noop_cpu=$(sort -n "$W/noop_cpu.http" | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }')
awk -v p="$parse_ns" -v c="$noop_cpu" 'BEGIN {
	printf "JSON parse + mapping (bench/authpolicy_parse): %.2f us a request; the no-op: %.1f us of CPU a request (median);\n", p / 1000, c
	printf "  ceiling of the ratio with the parse alone (nothing decided, nothing logged): %.2f\n", c / (c + p / 1000) }'
fi

if part milter; then
# Two stores: the default one (saslgatectl init) and the daemons' store with
# 100,000 exceptions. The no-op runs libmilter's workers on 256 KiB stacks,
# as saslgate-milter does (milter_thread_stack): the ratio is the filter's.
SASLGATE_BUILDDIR=$B "$B/saslgatectl" -d "$W/store-default" init >/dev/null
for store in default 100k; do
	dir=$W/store
	[ "$store" = default ] && dir=$W/store-default
	echo
	echo "== saslgate-milter vs bench/noop_milter ($store store): 50 connections, ${SECS}s x $ROUNDS rounds"
	for r in $(seq "$ROUNDS"); do
		baseline_round noop_milter -p milter_load -p 50 "$W/noop.sock"
		base=$(field sessions_per_s "$out")
		base_p99=$(field p99_us "$out")
		echo "noop      round $r: $out"

		rm -f "$W/m.sock" "$dir/activity.db"*
		"$B/saslgate-milter" -f -d "$dir" -p "unix:$W/m.sock" -o socket_mode=0666 \
			2>"$W/milter.log" & MP=$!
		wait_socket "$W/m.sock"
		"$B/bench/milter_load" -p "unix:$W/m.sock" -c 50 -d 1 >/dev/null
		out=$("$B/bench/milter_load" -p "unix:$W/m.sock" -c 50 -d "$SECS")
		kill $MP; wait $MP 2>/dev/null || true
		echo "$(field sessions_per_s "$out") $base" >>"$W/ratios.milter.$store"
		echo "$(field p99_us "$out") $base_p99" >>"$W/p99.milter.$store"
		echo "saslgate  round $r: ratio=$(ratio "$(field sessions_per_s "$out")" "$base") p99_ratio=$(ratio "$(field p99_us "$out")" "$base_p99") $out" \
			"$(sqlite3 "$dir/activity.db" "SELECT 'decisions=' || requests || ' dropped_activity=' || dropped FROM heartbeats ORDER BY last_seen DESC LIMIT 1")"
	done
	summary "saslgate-milter vs no-op ($store store)" "$W/ratios.milter.$store"
	summary "saslgate-milter p99 vs no-op p99 ($store store)" "$W/p99.milter.$store"
done
fi

if part pg; then
echo
# 77: PostgreSQL cannot run here (pg_bench.py printed why): not a failure.
SASLGATE_BUILDDIR=$B python3 "$SRC/bench/pg_bench.py" "$B" "$W/pg" "$ROUNDS" "$SECS" || [ $? -eq 77 ]
fi
