#!/usr/bin/env bash
# run.sh: the one entry point: install what is missing, build, test, run nodes, benchmark.
#   ./run.sh build | test | demo | bench | bootstrap [flags] | join HOST:PORT [flags]
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
BUILD=$ROOT/build
ASAN_BUILD=$ROOT/build-asan

# What building needs (the unit tests' cmocka and the integration tests' Python are small enough
# to come with it), then what benchmarks need. clang and libclang-rt-14-dev are only for -Dfuzz=true.
DEB_PACKAGES=(gcc pkg-config meson ninja-build libuv1-dev libsodium-dev libmsgpack-dev
  libsqlite3-dev libjwt-dev libjansson-dev libcurl4-openssl-dev libssl-dev node-llhttp libcmocka-dev
  python3 python3-msgpack)
# What the tests drive besides the build: node + npm for the interop clients (ws, jose,
# secret-handshake; tests/interop/package-lock.json), a real Prometheus and promtool, curl and
# openssl (certificates for the TLS test).
TEST_PACKAGES=(prometheus curl openssl)
BENCH_PACKAGES=(redis-server redis-tools hyperfine valgrind linux-perf)
BENCH_PACKAGES+=(nginx prometheus-node-exporter wrk) # peers and load of the HTTP benches (issue 5)

need_root() { if [ "$(id -u)" -ne 0 ]; then echo sudo; fi; }

install_debs() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "run.sh: installing ${missing[*]}" >&2
    $(need_root) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null ||
      { $(need_root) apt-get update -q >/dev/null && $(need_root) env DEBIAN_FRONTEND=noninteractive \
          apt-get install -y -q "${missing[@]}" >/dev/null; }
  fi
}

build_dir() { # build_dir DIR [meson options]
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then meson setup "$dir" "$@" >/dev/null; fi
  ninja -C "$dir" >/dev/null || ninja -C "$dir"
}

cmd_build() {
  install_debs "${DEB_PACKAGES[@]}"
  build_dir "$BUILD" --buildtype=debugoptimized
}

# The pinned npm packages of tests/interop (npm ci from the committed lock; the npm registry only).
npm_deps() {
  local dir=$ROOT/tests/interop
  if [ ! -f "$dir/node_modules/.package-lock.json" ] ||
     [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) >&2
  fi
}

cmd_test() {
  cmd_build
  install_debs "${TEST_PACKAGES[@]}"
  command -v npm >/dev/null || install_debs nodejs npm
  npm_deps
  build_dir "$ASAN_BUILD" --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false
  local rc=0
  echo "== tests (release build)"
  meson test -C "$BUILD" --suite unit --suite fuzz --suite integration --print-errorlogs \
    --num-processes 2 || rc=1
  echo "== tests (address and undefined-behaviour sanitizers)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    meson test -C "$ASAN_BUILD" --suite unit --suite fuzz --suite integration --print-errorlogs \
    --num-processes 2 --timeout-multiplier 3 || rc=1
  if [ $rc -ne 0 ]; then echo "run.sh test: FAILED" >&2; else echo "run.sh test: all passed"; fi
  return $rc
}

cmd_bootstrap() {
  cmd_build >&2
  exec "$BUILD/p2p-node" "$@"
}

cmd_join() {
  if [ $# -lt 1 ]; then echo "usage: ./run.sh join HOST:PORT [node flags]" >&2; exit 2; fi
  local contact=$1; shift
  cmd_build >&2
  exec "$BUILD/p2p-node" --bootstrap "$contact" "$@"
}

demo_stop() { # the demo's trap: stop the nodes it started, once; keeps the exit status
  local rc=$?
  trap - EXIT INT TERM
  [ ${#DEMO_PIDS[@]} -gt 0 ] && kill "${DEMO_PIDS[@]}" 2>/dev/null
  wait 2>/dev/null
  echo; echo "demo stopped"
  exit "$rc"
}

cmd_demo() {
  # DEMO_BUILD: an existing build dir to run instead of building build/ (the tests pass theirs)
  local BUILD=$BUILD
  if [ -n "${DEMO_BUILD:-}" ]; then BUILD=$DEMO_BUILD; else cmd_build; fi
  # DEMO_DIR, DEMO_DHT_PORT and DEMO_HTTP_PORT move it (tests/integration/test_demo.py does)
  local base=${DEMO_DIR:-$ROOT/data/demo} dht0=${DEMO_DHT_PORT:-5678} http0=${DEMO_HTTP_PORT:-8000}
  mkdir -p "$base"
  local netkey
  if [ -f "$base/network.key" ]; then netkey=$(cat "$base/network.key"); else
    netkey=$("$BUILD/p2p-node" keygen); echo "$netkey" > "$base/network.key"; chmod 600 "$base/network.key"; fi
  local secret
  if [ -f "$base/auth.secret" ]; then secret=$(cat "$base/auth.secret"); else
    secret=$(head -c 32 /dev/urandom | base64); echo "$secret" > "$base/auth.secret"; chmod 600 "$base/auth.secret"; fi
  DEMO_PIDS=()
  trap demo_stop EXIT INT TERM
  for i in 1 2 3 4 5; do
    local name=node$i dport=$((dht0 + i - 1)) hport=$((http0 + i - 1)) boot=()
    [ "$i" -gt 1 ] && boot=(--bootstrap "127.0.0.1:$dht0")
    NETWORK_KEY=$netkey AUTH_SECRET=$secret LOG_FORMAT=json "$BUILD/p2p-node" --name "$name" \
      --dht-host 127.0.0.1 --dht-port "$dport" --host 127.0.0.1 --port "$hport" \
      --data-dir "$base/$name" "${boot[@]}" >"$base/$name.log" 2>&1 &
    DEMO_PIDS+=($!)
    for _ in $(seq 50); do [ -S "$base/$name/rpc.sock" ] && break; sleep 0.1; done
  done
  local token
  token=$(AUTH_SECRET=$secret "$BUILD/p2p-node" token --role admin --sub demo --ttl 24h --data-dir "$base/node1")
  echo "$token" > "$base/admin.token"
  # an admin login for the dashboard: added on node1, replicated to every node
  local password
  if [ -f "$base/admin.password" ]; then password=$(cat "$base/admin.password"); else
    password=$(head -c 12 /dev/urandom | base64 | tr -d '/+='); echo "$password" > "$base/admin.password"
    chmod 600 "$base/admin.password"; fi
  printf '%s\n' "$password" | "$BUILD/p2p-node" user add admin --role admin --data-dir "$base/node1" \
    >/dev/null 2>&1 || true
  sleep 2
  cat <<MSG

p2p-admin demo: 5 nodes on loopback (logs in $base/NAME.log)
  node   DHT (UDP)          HTTP API and dashboard     local socket
MSG
  for i in 1 2 3 4 5; do
    printf '  node%d  127.0.0.1:%d     http://127.0.0.1:%d/      %s\n' "$i" $((dht0 + i - 1)) \
      $((http0 + i - 1)) "$base/node$i/rpc.sock"
  done
  local rpc=${BUILD#"$ROOT"/}/p2p-rpc # build/p2p-rpc unless DEMO_BUILD names another
  cat <<MSG

Dashboard login (any node): user admin, password $password   (also in $base/admin.password)
  curl -s http://127.0.0.1:$http0/health
  curl -s -X POST http://127.0.0.1:$((http0 + 1))/api/auth/login -d '{"username":"admin","password":"$password"}'
  curl -s http://127.0.0.1:$http0/metrics | head;  curl -s http://127.0.0.1:$http0/api/sd/prometheus

An admin token (24 h) is in $base/admin.token. Try, from any node's socket:
  export P2P_TOKEN=\$(cat $base/admin.token) P2P_SOCKET=$base/node1/rpc.sock
  $rpc nodes                                  # every node of the network, up or down
  $rpc 'system.*.node.info'                   # fan-out to all 5 nodes
  $rpc system.node4.node.info                 # one node, through the peer channel
  $rpc system.local.dht.put key=hello value=world
  $rpc system.node5.dht.get key=hello
  curl -s -H "Authorization: Bearer \$P2P_TOKEN" http://127.0.0.1:$((http0 + 2))/api/nodes
  curl -s -H "Authorization: Bearer \$P2P_TOKEN" http://127.0.0.1:$http0/api/rpc \\
       -d '{"jsonrpc":"2.0","id":1,"method":"system.node3.node.info"}'
Ctrl-C stops the demo.
MSG
  wait
}

cmd_bench() {
  install_debs "${DEB_PACKAGES[@]}" "${BENCH_PACKAGES[@]}"
  build_dir "$BUILD" --buildtype=debugoptimized
  exec bash "$ROOT/bench/run.sh" "$BUILD"
}

verb=${1:-}
[ $# -gt 0 ] && shift
case "$verb" in
  build) cmd_build ;;
  test) cmd_test ;;
  demo) cmd_demo ;;
  bench) cmd_bench ;;
  bootstrap) cmd_bootstrap "$@" ;;
  join) cmd_join "$@" ;;
  *) echo "usage: ./run.sh build|test|demo|bench|bootstrap [flags]|join HOST:PORT [flags]" >&2; exit 2 ;;
esac
