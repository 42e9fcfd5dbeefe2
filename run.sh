#!/usr/bin/env bash
# One entry point for set-up and the two jobs in README.md:
#   ./run.sh serve   start pushgate on the embedded default (a local moto server)
#   ./run.sh test    lint, type-check and run the whole test suite
# Each creates .venv on first use and installs what its job needs (serve: the `local`
# extra; test: `dev`, which includes `local`), again only when pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"
VENV=".venv"
STAMP="$VENV/.installed"

installed_covers() {
    # the stamp holds "<pyproject hash> <extra>"; dev includes local
    local want_hash="$1" want_extra="$2" have_hash have_extra
    [ -f "$STAMP" ] || return 1
    read -r have_hash have_extra < "$STAMP" || return 1
    [ "$have_hash" = "$want_hash" ] || return 1
    [ "$have_extra" = "$want_extra" ] || { [ "$have_extra" = dev ] && [ "$want_extra" = local ]; }
}

ensure_venv() {
    local extra="$1" check="$2" want
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -m venv "$VENV"
    fi
    want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
    if ! installed_covers "$want" "$extra"; then
        "$VENV/bin/python" -m pip install --quiet --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
        # setuptools warns on every editable install of a flat layout (packages at the root)
        PYTHONWARNINGS="ignore:Editable installation" \
            "$VENV/bin/python" -m pip install --quiet -e ".[$extra]" 2>&1 | grep -v '^WARNING: Location' || true
        "$VENV/bin/python" -c "import $check" # fail loudly on a bad install
        echo "$want $extra" > "$STAMP"
    fi
}

ensure_apt_tools() {
    # Debian tools some tests drive: promtool checks the alert rules, skopeo talks to registries.
    # Installed when missing and this runs as root with apt-get; otherwise those tests skip.
    local missing=() skipped=()
    command -v promtool >/dev/null 2>&1 || { missing+=(prometheus); skipped+=("alert rules (promtool)"); }
    command -v skopeo >/dev/null 2>&1 || { missing+=(skopeo); skipped+=("registry (skopeo)"); }
    [ "${#missing[@]}" -eq 0 ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
        && apt-get update -qq >/dev/null 2>&1 \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null 2>&1; then
        return 0
    fi
    local tests
    tests="$(printf '%s, ' "${skipped[@]}")"
    echo "could not install ${missing[*]} (needs root and apt-get): the ${tests%, } tests will be skipped" >&2
}

ensure_dynalite() {
    # dynalite is the second DynamoDB implementation for the lease conformance tests.
    if ! command -v npm >/dev/null 2>&1; then
        echo "npm not found: dynalite tests will be skipped" >&2
        return 0
    fi
    if [ ! -x .cache/node/node_modules/.bin/dynalite ]; then
        mkdir -p .cache/node
        npm install --silent --no-audit --no-fund --prefix .cache/node dynalite@4.0.0 >/dev/null
    fi
    export PUSHGATE_DYNALITE="$PWD/.cache/node/node_modules/.bin/dynalite"
}

cmd="${1:-}"
shift || true
case "$cmd" in
    serve)
        ensure_venv local "locks, service, moto, aioboto3, pynamodb"
        exec "$VENV/bin/pushgate" serve --local "$@"
        ;;
    test)
        ensure_venv dev "locks, service, moto, aioboto3, pynamodb, pytest"
        ensure_apt_tools
        ensure_dynalite
        "$VENV/bin/ruff" check .
        "$VENV/bin/ruff" format --check .
        "$VENV/bin/mypy"
        # tests: checked bodies, annotations optional (the style guide's check_untyped_defs)
        "$VENV/bin/mypy" tests --allow-untyped-defs --allow-untyped-calls --allow-any-generics \
            --no-warn-return-any --allow-incomplete-defs
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    *)
        echo "usage: ./run.sh serve [--port N] | ./run.sh test [pytest args]" >&2
        exit 2
        ;;
esac
