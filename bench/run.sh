#!/bin/sh
# bench/run.sh BUILD_DIR: the benchmarks behind `./run.sh bench` (issue 2, "What must be measured").
#   1. dht-sim: 10,000 nodes x 2,000 lookups (plain; 50 ms / 1 % loss; 20 % churn), then 100,000 nodes.
#   2. DHT request rate of one p2p-node on loopback with crypto on (bench/dht-load.c drives it from
#      another process pinned to another core), with the node's CPU split user/system and its
#      hottest symbols (perf) to say what bounds it.
#   3. Idle RSS and start-to-ready time of p2p-node (bench/node_ready.py).
#   4. What proving an identity costs: pairwise key + AEAD vs a signature per datagram.
#   5-7. The RPC paths and a 100-node mesh (issue 3).
#   8. The local services (issue 4): bench/process_list.py, monitor_status.py, transfer.py.
#   9. issue 5 without wrk: /metrics scrape vs nginx and node_exporter, 1,000 WebSocket subscribers,
#      login throughput (bench/metrics_scrape.py, ws_clients.py, login_rate.py).
#  10. GET /health under wrk against nginx in the same run, /metrics under wrk (issue 5): bench/http_bench.py.
# Prints tables; raw JSON goes to BUILD_DIR/bench-out/. Set BENCH_QUICK=1 to skip the 100k run.
set -eu

B=$(cd "${1:-build}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
OUT="$B/bench-out"
mkdir -p "$OUT"
PY=/usr/bin/python3

find_bin() { # name candidates...
    for c in "$@"; do
        if [ -x "$c" ]; then echo "$c"; return 0; fi
    done
    return 1
}
SIM=$(find_bin "$B/dht-sim" "$B/src/sim/dht-sim") || { echo "bench: dht-sim not built in $B" >&2; exit 1; }
LOAD=$(find_bin "$B/dht-load" "$B/src/sim/dht-load") || LOAD=
NODE=$(find_bin "$B/p2p-node" "$B/src/node/p2p-node") || NODE=

echo "== machine"
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p') x $(nproc) cores; mem: $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u +%Y-%m-%dT%H:%MZ)"
echo

# ---- 1. simulator ----
table() { # json files...
    $PY - "$@" <<'EOF'
import json, sys
cols = ["nodes", "lookups", "churn", "success_rate", "hops_p50", "hops_p99", "latency_ms_p50",
        "latency_ms_p99", "messages_per_lookup", "wall_seconds", "peak_rss_bytes"]
rows = []
for path in sys.argv[1:]:
    with open(path) as f:
        d = json.load(f)
    label = open(path + ".args").read().strip()
    d["peak_rss_bytes"] = "%.0f MiB" % (d["peak_rss_bytes"] / 2**20)
    rows.append([label] + [str(d[c]) for c in cols])
head = ["args"] + cols
w = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
for r in [head] + rows:
    print("  ".join(x.ljust(w[i]) for i, x in enumerate(r)))
EOF
}

run_sim() { # name args...
    name=$1
    shift
    echo "$*" >"$OUT/sim-$name.json.args"
    echo "bench: dht-sim $*" >&2
    "$SIM" "$@" >"$OUT/sim-$name.json" 2>"$OUT/sim-$name.log"
}

echo "== dht-sim (the real DHT core on a virtual network; without --crypto the datagrams keep their layout but skip the AEAD)"
run_sim 10k --nodes 10000 --lookups 2000 --seed 1
run_sim 10k-lat --nodes 10000 --lookups 2000 --latency-ms 50 --loss 0.01 --seed 1
run_sim 10k-churn --nodes 10000 --lookups 2000 --churn 0.2 --seed 1
files="$OUT/sim-10k.json $OUT/sim-10k-lat.json $OUT/sim-10k-churn.json"
if [ "${BENCH_QUICK:-0}" != 1 ]; then
    run_sim 100k --nodes 100000 --lookups 2000 --seed 1
    files="$files $OUT/sim-100k.json"
fi
table $files
echo

# ---- 2. request rate of one node ----
free_port() {
    $PY -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
cpu_ticks() { # pid -> "utime stime"
    awk '{print $14, $15}' "/proc/$1/stat"
}

if [ -n "$NODE" ] && [ -n "$LOAD" ]; then
    echo "== DHT request rate: one p2p-node (pinned to cpu 0) under dht-load (cpu 1), crypto on"
    T=$(mktemp -d /tmp/p2p-bench.XXXXXX)
    $PY -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())' >"$T/net.key"
    DP=$(free_port)
    HP=$(free_port)
    taskset -c 0 "$NODE" --name loadbench --data-dir "$T/data" --dht-host 127.0.0.1 --dht-port "$DP" \
        --port "$HP" --network-key-file "$T/net.key" --log-level ERROR >"$OUT/node.log" 2>&1 &
    NPID=$!
    i=0
    while [ ! -S "$T/data/rpc.sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    sleep 0.5
    HZ=$(getconf CLK_TCK)
    for type in ping find_node; do
        set -- $(cpu_ticks $NPID)
        u0=$1 s0=$2
        t0=$(date +%s.%N)
        taskset -c 1 "$LOAD" --target "127.0.0.1:$DP" --network-key-file "$T/net.key" --type $type \
            --seconds 5 >"$OUT/load-$type.json" 2>"$OUT/load-$type.log" || true
        t1=$(date +%s.%N)
        set -- $(cpu_ticks $NPID)
        u1=$1 s1=$2
        $PY - "$OUT/load-$type.json" "$u0" "$s0" "$u1" "$s1" "$t0" "$t1" "$HZ" <<'EOF' || cat "$OUT/load-$type.log"
import json, sys
d = json.load(open(sys.argv[1]))
u0, s0, u1, s1 = (int(x) for x in sys.argv[2:6])
t0, t1, hz = float(sys.argv[6]), float(sys.argv[7]), int(sys.argv[8])
wall = t1 - t0  # includes the generator's set-up (hello, precompute) when the node is idle
print(f"{d['type']:9}  replies/s {d['replies_per_s']:>9.0f}  sent/s {d['requests_per_s']:>9.0f}  "
      f"replies {d['replies']}/{d['sent']}  valid {d['replies_valid']}/{d['replies_checked']}  "
      f"node cpu: user {(u1-u0)/hz:.2f}s sys {(s1-s0)/hz:.2f}s over {wall:.1f}s "
      f"(blast {d['seconds']:.1f}s)")
EOF
    done
    if command -v perf >/dev/null 2>&1; then
        taskset -c 1 "$LOAD" --target "127.0.0.1:$DP" --network-key-file "$T/net.key" --seconds 6 \
            >/dev/null 2>&1 &
        LPID=$!
        sleep 2.5 # skip the generator's precompute
        perf record -q -g -p $NPID -o "$OUT/node.perf" -- sleep 3 >/dev/null 2>&1 || true
        wait $LPID || true
        echo "node profile under PING load (perf, self time, top entries):"
        perf report -i "$OUT/node.perf" --no-children --stdio --sort dso,sym 2>/dev/null |
            grep -E '^ +[0-9.]+%' | head -15 || true
        echo "by library:"
        perf report -i "$OUT/node.perf" --no-children --stdio --sort dso 2>/dev/null |
            grep -E '^ +[0-9.]+%' | head -6 || true
    fi
    kill $NPID 2>/dev/null || true
    wait $NPID 2>/dev/null || true
    rm -rf "$T"
    echo
else
    echo "== DHT request rate: skipped (p2p-node or dht-load not built)"
    echo
fi

# ---- 3. idle node ----
if [ -n "$NODE" ]; then
    echo "== p2p-node start to ready (rpc.sock answers rpc.ping) and idle RSS"
    $PY "$HERE/node_ready.py" "$NODE" 10 | tee "$OUT/node-ready.json"
else
    echo "== p2p-node start/RSS: skipped (p2p-node not built)"
fi

# ---- 4. what proving an identity costs (the design choice of docs/dht.md) ----
CRYPTO=$(find_bin "$B/src/sim/dht-crypto") || CRYPTO=
if [ -n "$CRYPTO" ]; then
    echo
    echo "== identity proof: pairwise key once per peer + AEAD per datagram, vs Ed25519 per datagram"
    "$CRYPTO" | tee "$OUT/crypto.json"
fi

# ---- 5. local socket: rpc.ping pipelined vs redis-server PING (issue 3) ----
# The same client shape on both sides: C connections, P calls written together, the next P once
# all P were answered (redis-benchmark -P semantics); server on cpu 0, client on cpu 1.
RPCB=$(find_bin "$B/src/sim/rpc-bench" "$B/rpc-bench") || RPCB=
RPC=$(find_bin "$B/p2p-rpc" "$B/src/cli/p2p-rpc") || RPC=
b64key() { $PY -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())'; }
wait_sock() { # path
    i=0
    while [ ! -S "$1" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    sleep 0.3
}
if [ -n "$NODE" ] && [ -n "$RPCB" ] && command -v redis-server >/dev/null 2>&1 &&
    command -v redis-benchmark >/dev/null 2>&1; then
    echo
    echo "== local socket rpc.ping vs redis PING (same machine, same run; server cpu 0, client cpu 1)"
    T=$(mktemp -d /tmp/p2p-bench.XXXXXX)
    NETWORK_KEY=$(b64key) AUTH_SECRET=$(b64key)
    export NETWORK_KEY AUTH_SECRET
    DP=$(free_port)
    HP=$(free_port)
    taskset -c 0 "$NODE" --name pingbench --data-dir "$T/data" --dht-host 127.0.0.1 --dht-port "$DP" \
        --port "$HP" --log-level ERROR >"$OUT/pingbench-node.log" 2>&1 &
    NPID=$!
    taskset -c 0 redis-server --port 0 --unixsocket "$T/redis.sock" --save '' --appendonly no \
        >"$OUT/redis.log" 2>&1 &
    RPID=$!
    wait_sock "$T/data/rpc.sock"
    wait_sock "$T/redis.sock"
    TOKEN=$("$NODE" token --role admin --data-dir "$T/data" | tail -n 1)
    printf '%-9s %-6s %14s %14s %7s   %s\n' pipeline conns "p2p-node/s" "redis/s" ratio "p2p-node latency p50/p99 us"
    for cp in "1 1" "16 1" "64 1" "16 8"; do
        set -- $cp
        P=$1 C=$2
        taskset -c 1 "$RPCB" --socket "$T/data/rpc.sock" --token "$TOKEN" --inflight "$P" --conns "$C" \
            --batch --seconds 3 --warmup 0.5 >"$OUT/ping-p$P-c$C.json" 2>"$OUT/ping-p$P-c$C.log" || true
        N=$((P * C * 20000))
        [ $N -gt 3000000 ] && N=3000000
        taskset -c 1 redis-benchmark -s "$T/redis.sock" -t ping -P "$P" -c "$C" -n "$N" --csv \
            >"$OUT/redis-p$P-c$C.csv" 2>&1 || true
        $PY - "$OUT/ping-p$P-c$C.json" "$OUT/redis-p$P-c$C.csv" "$P" "$C" <<'PYEOF' || cat "$OUT/ping-p$P-c$C.log"
import csv, json, sys
d = json.load(open(sys.argv[1]))
rps = None
for row in csv.reader(open(sys.argv[2])):
    if row and row[0] == "PING_MBULK":  # PING as a RESP array, like a msgpack request
        rps = float(row[1])
ratio = d["calls_per_s"] / rps if rps else float("nan")
print("%-9s %-6s %14.0f %14.0f %7.2f   %.1f / %.1f" % (sys.argv[3], sys.argv[4], d["calls_per_s"], rps or 0,
                                                   ratio, d["lat_us_p50"], d["lat_us_p99"]))
if d["errors"]:
    print("  errors: %d (first: %s)" % (d["errors"], d.get("first_error")))
PYEOF
    done
    echo "target: ratio >= 0.5"
    kill $NPID $RPID 2>/dev/null || true
    wait $NPID $RPID 2>/dev/null || true
    rm -rf "$T"
else
    echo
    echo "== local rpc.ping vs redis: skipped (p2p-node, rpc-bench, redis-server or redis-benchmark missing)"
fi

# ---- 6. remote node.info n01 -> n02 over the peer channel (issue 3) ----
if [ -n "$NODE" ] && [ -n "$RPCB" ]; then
    echo
    echo "== remote system.n02.node.info from n01's socket (peer channel on loopback, 2 nodes, unpinned)"
    T=$(mktemp -d /tmp/p2p-bench.XXXXXX)
    NETWORK_KEY=$(b64key) AUTH_SECRET=$(b64key)
    export NETWORK_KEY AUTH_SECRET
    D1=$(free_port) D2=$(free_port) H1=$(free_port) H2=$(free_port)
    "$NODE" --name n01 --data-dir "$T/n01" --dht-host 127.0.0.1 --dht-port "$D1" --port "$H1" \
        --log-level ERROR >"$OUT/remote-n01.log" 2>&1 &
    P1=$!
    wait_sock "$T/n01/rpc.sock"
    "$NODE" --name n02 --data-dir "$T/n02" --dht-host 127.0.0.1 --dht-port "$D2" --port "$H2" \
        --bootstrap "127.0.0.1:$D1" --log-level ERROR >"$OUT/remote-n02.log" 2>&1 &
    P2=$!
    wait_sock "$T/n02/rpc.sock"
    TOKEN=$("$NODE" token --role admin --data-dir "$T/n01" | tail -n 1)
    ok=0 i=0
    while [ $i -lt 60 ]; do # until n01 reaches n02 (membership, then the peer channel)
        if "$RPCB" --socket "$T/n01/rpc.sock" --token "$TOKEN" --method system.n02.node.info --inflight 1 \
            --count 1 --seconds 2 2>/dev/null | grep -q '"errors": 0'; then
            ok=1
            break
        fi
        sleep 0.5
        i=$((i + 1))
    done
    if [ $ok = 1 ]; then
        "$RPCB" --socket "$T/n01/rpc.sock" --token "$TOKEN" --method system.n02.node.info --inflight 64 \
            --seconds 5 --warmup 1 >"$OUT/remote-max.json" 2>"$OUT/remote-max.log" || true
        HALF=$($PY -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["calls_per_s"] / 2))' \
            "$OUT/remote-max.json" 2>/dev/null || echo 0)
        if [ "$HALF" -gt 0 ]; then
            "$RPCB" --socket "$T/n01/rpc.sock" --token "$TOKEN" --method system.n02.node.info --inflight 64 \
                --rate "$HALF" --seconds 5 --warmup 1 >"$OUT/remote-half.json" 2>"$OUT/remote-half.log" || true
        fi
        "$RPCB" --socket "$T/n01/rpc.sock" --token "$TOKEN" --method system.n02.node.info --inflight 64 \
            --rate 10000 --seconds 5 --warmup 1 >"$OUT/remote-10k.json" 2>"$OUT/remote-10k.log" || true
        $PY - "$OUT/remote-max.json" "$OUT/remote-half.json" "$OUT/remote-10k.json" <<'PYEOF'
import json, sys
print("%-34s %10s %8s %9s %9s %9s %9s" % ("run", "calls/s", "errors", "p50 us", "p90 us", "p99 us", "max us"))
for label, path in (("64 in flight (max rate)", sys.argv[1]), ("open loop at half that rate", sys.argv[2]),
                    ("open loop at 10,000/s", sys.argv[3])):
    try:
        d = json.load(open(path))
    except (OSError, ValueError):
        print("%-34s (no result)" % label)
        continue
    print("%-34s %10.0f %8d %9.1f %9.1f %9.1f %9.1f" % (label, d["calls_per_s"], d["errors"], d["lat_us_p50"],
                                                     d["lat_us_p90"], d["lat_us_p99"], d["lat_us_max"]))
    if d["errors"]:
        print("  first error: %s %s" % (d.get("first_error_code"), d.get("first_error")))
print("targets: >= 20,000 calls/s with 64 in flight; p99 <= 2,000 us at half that rate\n"
      "(open loop: one write per call, latency counted from when each call was due)")
PYEOF
    else
        echo "n01 never reached n02 in 30 s: skipped (see $OUT/remote-n0*.log)"
    fi
    kill $P1 $P2 2>/dev/null || true
    wait $P1 $P2 2>/dev/null || true
    rm -rf "$T"
fi

# ---- 7. 100 nodes: fan-out, idle RSS, time until a new node is listed everywhere (issue 3) ----
if [ -n "$NODE" ]; then
    echo
    echo "== mesh of 100 p2p-node processes on loopback (bench/mesh.py)"
    $PY "$HERE/mesh.py" "$B" --nodes "${MESH_NODES:-100}" --json "$OUT/mesh.json" 2>"$OUT/mesh.log" ||
        { echo "mesh.py failed:"; tail -n 20 "$OUT/mesh.log"; }
    echo "targets: fan-out <= 1 s; 100 idle nodes <= 1 GB RSS; listed by every node <= 10 s"
fi

# ---- 8. local services (issue 4): process.list with 1,000 processes, monitor.status, 1 GB push/pull ----
if [ -n "$NODE" ]; then
    for s in process_list monitor_status transfer; do
        [ -f "$HERE/$s.py" ] || continue
        echo
        echo "== $s (bench/$s.py)"
        $PY "$HERE/$s.py" "$B" >"$OUT/$s.json" 2>"$OUT/$s.log" && cat "$OUT/$s.json" ||
            { echo "$s.py failed:"; tail -n 20 "$OUT/$s.log"; }
    done
    echo
    echo "== transfer with the peer channel in box-stream only (bench/transfer.py --peer-bulk false)"
    $PY "$HERE/transfer.py" "$B" --peer-bulk false >"$OUT/transfer-box.json" 2>"$OUT/transfer-box.log" &&
        cat "$OUT/transfer-box.json" || { echo "transfer.py failed:"; tail -n 20 "$OUT/transfer-box.log"; }
    echo "targets: process.list <= 20 ms with 1,000 processes; monitor.status <= 2 ms;"
    echo "         push/pull of 1 GB >= 200 MB/s with checksum, both nodes' RSS flat"
fi

# ---- 9. issue 5 without wrk: /metrics scrape vs peers, 1,000 WebSocket subscribers, logins ----
# Each script starts its own nodes and takes under 2 minutes; raw JSON in $OUT.
if [ -n "$NODE" ]; then
    echo
    echo "== GET /metrics x 1,000 on one node of 3, against nginx serving a copy of the same text and node_exporter (bench/metrics_scrape.py)"
    $PY "$HERE/metrics_scrape.py" "$B" 1000 --json "$OUT/metrics_scrape.json" 2>"$OUT/metrics_scrape.log" ||
        { echo "metrics_scrape.py failed:"; tail -n 20 "$OUT/metrics_scrape.log"; }
    echo "target: /metrics scrape p99 <= 5 ms"
    echo
    echo "== 1,000 WebSocket clients subscribed to metrics: node CPU over 20 s windows (bench/ws_clients.py)"
    $PY "$HERE/ws_clients.py" "$B" --clients 1000 --seconds 20 --json "$OUT/ws_clients.json" \
        2>"$OUT/ws_clients.log" || { echo "ws_clients.py failed:"; tail -n 20 "$OUT/ws_clients.log"; }
    echo
    echo "== POST /api/auth/login at 1, 2, 8 concurrent clients vs bare Argon2id verify (bench/login_rate.py)"
    $PY "$HERE/login_rate.py" "$B" --seconds 8 --json "$OUT/login_rate.json" 2>"$OUT/login_rate.log" ||
        { echo "login_rate.py failed:"; tail -n 20 "$OUT/login_rate.log"; }
    echo "login throughput is bound by Argon2id by design (ratio: node logins/s over bare verifications/s)"
fi

# ---- 10. HTTP: GET /health under wrk against nginx in the same run, /metrics latency (issue 5) ----
if [ -n "$NODE" ] && [ -f "$HERE/http_bench.py" ]; then
    echo
    if command -v wrk >/dev/null 2>&1; then
        echo "== HTTP GET /health: p2p-node vs nginx under wrk (bench/http_bench.py; servers on cpu 0, wrk on the others)"
        $PY "$HERE/http_bench.py" "$B" --json "$OUT/http_bench.json" 2>"$OUT/http_bench.log" |
            grep -v '^{' || { echo "http_bench.py failed:"; tail -n 20 "$OUT/http_bench.log"; }
        command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || echo "(nginx not installed: no ratio)"
        echo "targets: ratio node/nginx reported (same wrk threads, connections, duration); /metrics p99 <= 5 ms"
    else
        echo "== HTTP vs nginx: skipped (wrk not installed; apt-get install wrk nginx)"
    fi
fi
