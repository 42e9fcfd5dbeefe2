#!/usr/bin/env bash
# One entry point for set-up and the two jobs in README.md:
#   ./run.sh serve   start pushgate on the embedded default (a local moto server)
#   ./run.sh test    lint, type-check and run the whole test suite
# Each creates .venv on first use and reinstalls only when pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"
VENV=".venv"
STAMP="$VENV/.installed"

ensure_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -m venv "$VENV"
    fi
    local want
    want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
    if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
        "$VENV/bin/python" -m pip install --quiet --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
        # setuptools warns on every editable install of a flat layout (packages at the root)
        PYTHONWARNINGS="ignore:Editable installation" \
            "$VENV/bin/python" -m pip install --quiet -e '.[dev]' 2>&1 | grep -v '^WARNING: Location' || true
        "$VENV/bin/python" -c 'import locks, service, moto, aioboto3, pynamodb, pytest' # fail loudly on a bad install
        echo "$want" > "$STAMP"
    fi
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
        ensure_venv
        exec "$VENV/bin/pushgate" serve --local "$@"
        ;;
    test)
        ensure_venv
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
