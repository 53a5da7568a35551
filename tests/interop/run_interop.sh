#!/bin/sh
# run_interop.sh BUILD_DIR: installs the pinned npm packages into tests/interop/node_modules when
# they are missing (npm ci from the committed package-lock.json; only the npm registry is needed),
# then runs interop.js against BUILD_DIR.
set -e
here=$(cd "$(dirname "$0")" && pwd)
build=$1
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "interop: node and npm are required (apt-get install -y nodejs npm)" >&2
    exit 1
fi
if [ ! -f "$here/node_modules/.package-lock.json" ] || \
   [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error) >&2
fi
exec node "$here/interop.js" "$build"
