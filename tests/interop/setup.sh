#!/usr/bin/env bash
# Set up the real peers for the interop tests (see tests/interop/README.md):
#   1. tests/interop/js: `npm install` from the committed lockfile (checked unchanged after); it
#      pins js-libp2p 3.x and the `node` npm package, which brings a Node 22 binary to
#      node_modules/.bin/node. Not `npm ci`: it refuses a lockfile that pins
#      @chainsafe/libp2p-quic, whose six other platform packages this registry does not serve.
#   2. .interop/py-venv: a separate venv holding py-libp2p 0.8.1 (kept out of the project venv).
#   3. .interop/p2pclient-venv: p2pclient 0.3.0, Python bindings of the p2pd control protocol
#      (it pins protobuf < 7 and multiaddr < 1.0, so it cannot share either venv).
#   4. nftables (`nft`), for the NAT routers of the hole-punching tests: installed with apt-get
#      when missing and running as root; otherwise a warning (those tests then fail, not skip).
# Idempotent: each step is skipped when its stamp matches (lockfile hash / pinned version and
# interpreter) and redone when anything changed. Works unattended (CI=true, no stdin, root).
# Env: PYTHON (default python3) for the py venv; NPM (default npm).
set -euo pipefail

PY_LIBP2P_VERSION="0.8.1"
P2PCLIENT_VERSION="0.3.0"
NODE_MAJOR="22"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
js_dir="$here/js"
venv="$repo/.interop/py-venv"
p2pclient_venv="$repo/.interop/p2pclient-venv"
log_dir="$repo/.interop/logs"
python="${PYTHON:-python3}"
npm="${NPM:-npm}"

die() { echo "setup.sh: ERROR: $*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
hash_files() { cat "$@" | sha256sum | cut -d' ' -f1; }
lock_hash() { hash_files "$js_dir/package-lock.json"; }

mkdir -p "$log_dir"
t_all="$(now)"

# ---------------------------------------------------------------- js peer (Node 22 + libp2p 3)
setup_js() {
    local t stamp want node_bin version log
    t="$(now)"
    command -v "$npm" >/dev/null || die "npm not found on PATH (any npm >= 8 will do; it fetches Node $NODE_MAJOR itself)"
    [[ -f "$js_dir/package-lock.json" ]] || die "missing $js_dir/package-lock.json"
    stamp="$js_dir/node_modules/.p2pstack-setup-stamp"
    want="$(hash_files "$js_dir/package.json" "$js_dir/package-lock.json")"
    node_bin="$js_dir/node_modules/.bin/node"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$node_bin" ]] \
        && "$node_bin" --version 2>/dev/null | grep -q "^v$NODE_MAJOR\."; then
        echo "js: up to date ($("$node_bin" --version), lockfile unchanged) - skipped"
        return
    fi
    log="$log_dir/npm-install.log"
    echo "js: npm install (locked) in tests/interop/js (log: $log) ..."
    lock_before="$(lock_hash)"
    # The `node` package installs its binary from a preinstall script: scripts must run.
    if ! (cd "$js_dir" && npm_config_ignore_scripts=false CI=true \
            "$npm" install --no-audit --no-fund --loglevel=warn </dev/null >"$log" 2>&1); then
        tail -n 30 "$log" >&2
        die "npm install failed in $js_dir (full log: $log)"
    fi
    [[ "$(lock_hash)" == "$lock_before" ]] \
        || die "npm install changed $js_dir/package-lock.json: package.json and the lockfile disagree"
    [[ -x "$node_bin" ]] || die "npm install did not produce $node_bin (were install scripts blocked?)"
    version="$("$node_bin" --version)" || die "$node_bin does not run"
    [[ "$version" == v$NODE_MAJOR.* ]] || die "$node_bin is $version, need Node $NODE_MAJOR"
    (cd "$js_dir" && "$node_bin" -e "import('libp2p').then(() => process.exit(0), e => { console.error(e); process.exit(1) })") \
        || die "libp2p does not load under $version"
    echo "$want" >"$stamp"
    echo "js: installed, Node $version, libp2p $("$node_bin" -p "require('$js_dir/node_modules/libp2p/package.json').version") ($(since "$t") s)"
}

# ---------------------------------------------------------------- py peer (py-libp2p venv)
setup_py() {
    local t stamp want log
    t="$(now)"
    "$python" -c 'import sys' >/dev/null 2>&1 \
        || die "cannot run '$python' (set PYTHON=...; py-libp2p needs Python >= 3.10)"
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
        || die "'$python' is Python $("$python" -c 'import sys; print(sys.version.split()[0])'): py-libp2p $PY_LIBP2P_VERSION needs >= 3.10"
    want="libp2p==$PY_LIBP2P_VERSION $("$python" -c 'import sys; print(sys.version.split()[0])')"
    stamp="$venv/.p2pstack-setup-stamp"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
        && "$venv/bin/python" -c "import libp2p, sys; sys.exit(libp2p.__version__ != '$PY_LIBP2P_VERSION')" 2>/dev/null; then
        echo "py: up to date ($want in .interop/py-venv) - skipped"
        return
    fi
    log="$log_dir/pip-install.log"
    echo "py: creating .interop/py-venv with $want (log: $log) ..."
    rm -rf "$venv"
    "$python" -m venv "$venv" || die "python -m venv failed (is the venv module installed?)"
    if ! "$venv/bin/python" -m pip install -q --disable-pip-version-check \
            "libp2p==$PY_LIBP2P_VERSION" </dev/null >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "pip install libp2p==$PY_LIBP2P_VERSION failed (full log: $log; it builds fastecdsa, which needs libgmp-dev)"
    fi
    "$venv/bin/python" -c "import libp2p, trio; assert libp2p.__version__ == '$PY_LIBP2P_VERSION'" \
        || die "libp2p $PY_LIBP2P_VERSION does not import in $venv"
    echo "$want" >"$stamp"
    echo "py: installed $want ($(since "$t") s)"
}

# ---------------------------------------------------------------- p2pclient (daemon bindings)
setup_p2pclient() {
    local t stamp want log
    t="$(now)"
    want="p2pclient==$P2PCLIENT_VERSION $("$python" -c 'import sys; print(sys.version.split()[0])')"
    stamp="$p2pclient_venv/.p2pstack-setup-stamp"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
        && "$p2pclient_venv/bin/python" -c "import p2pclient" 2>/dev/null; then
        echo "p2pclient: up to date ($want in .interop/p2pclient-venv) - skipped"
        return
    fi
    log="$log_dir/pip-install-p2pclient.log"
    echo "p2pclient: creating .interop/p2pclient-venv with $want (log: $log) ..."
    rm -rf "$p2pclient_venv"
    "$python" -m venv "$p2pclient_venv" || die "python -m venv failed"
    if ! "$p2pclient_venv/bin/python" -m pip install -q --disable-pip-version-check \
            "p2pclient==$P2PCLIENT_VERSION" </dev/null >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "pip install p2pclient==$P2PCLIENT_VERSION failed (full log: $log)"
    fi
    "$p2pclient_venv/bin/python" -c "import p2pclient" || die "p2pclient does not import in $p2pclient_venv"
    echo "$want" >"$stamp"
    echo "p2pclient: installed $want ($(since "$t") s)"
}

# ---------------------------------------------------------------- nftables (NAT routers)
setup_nft() {
    if command -v nft >/dev/null; then
        echo "nft: present ($(nft --version 2>/dev/null | head -n1))"
        return
    fi
    if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
        echo "nft: WARNING: nftables is missing and cannot be installed here (needs root and apt-get); the NAT tests will fail" >&2
        return
    fi
    local log="$log_dir/apt-nftables.log"
    echo "nft: apt-get install nftables (log: $log) ..."
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q nftables </dev/null >"$log" 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null >>"$log" 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q nftables </dev/null >>"$log" 2>&1 \
            || { tail -n 20 "$log" >&2; die "apt-get install nftables failed (full log: $log)"; }
    fi
    command -v nft >/dev/null || die "nftables installed but nft is not on PATH"
    echo "nft: installed ($(nft --version 2>/dev/null | head -n1))"
}

setup_js
setup_py
setup_p2pclient
setup_nft
echo "interop setup done in $(since "$t_all") s"
echo "  js peer: $js_dir/node_modules/.bin/node $js_dir/peer.mjs"
echo "  py peer: $venv/bin/python $here/py/peer.py"
echo "  p2pclient: $p2pclient_venv/bin/python"
