#!/usr/bin/env bash
# DELT Studio set-up and launch.
#   ./studio.sh app    create/reuse .venv, install, launch the app on the embedded demo (localhost)
#   ./studio.sh test   create/reuse .venv, install runtime + test deps, lint (ruff), run the whole test suite
# Extra arguments after the verb go to streamlit (app) or pytest (test).
set -euo pipefail
cd "$(dirname "$0")"
verb=${1:-}
shift || true
VENV=${DELT_VENV:-.venv}
PY=${PYTHON:-python3}

install() {
  local req=$1
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  local stamp="$VENV/.installed-$(basename "$req")"
  local want
  want=$(cat requirements.txt "$req" | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "[studio] installing $req into $VENV (first run takes a few minutes)"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    # torch first, on its own, so nothing below can pull a different (CUDA) build.
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$(grep -E '^torch==' requirements.txt)"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
    echo "$want" > "$stamp"
  fi
}

case "$verb" in
  app)
    install requirements.txt
    exec "$VENV/bin/python" -m streamlit run app.py --server.address localhost "$@"
    ;;
  test)
    install requirements-dev.txt
    # lint and format first: a finding fails the command (fix with: .venv/bin/ruff check --fix . && .venv/bin/ruff format .)
    "$VENV/bin/ruff" check --quiet . || { echo "[studio] ruff check found problems (above)" >&2; exit 1; }
    "$VENV/bin/ruff" format --check --quiet . || { echo "[studio] ruff format: the files above need formatting" >&2; exit 1; }
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  *)
    echo "usage: ./studio.sh app|test [args]" >&2
    exit 64
    ;;
esac
