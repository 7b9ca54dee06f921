#!/bin/sh
# Build the dbpulse wheel from a source tree and install it, with its dependencies, into a
# new virtualenv. The Dockerfile's builder stage runs exactly this, and so does
# tests/integration/test_docker_install.py, so the image recipe is tested without a
# Docker engine.
#
#   sh deploy/docker/install.sh SOURCE_DIR VENV_DIR
#
# PYTHON picks the interpreter (default python3). Needs no compiler: every dependency
# ships wheels (psycopg[binary]).
set -eu

if [ "$#" -ne 2 ]; then
    echo "usage: $0 SOURCE_DIR VENV_DIR" >&2
    exit 2
fi
src=$(cd "$1" && pwd)
venv=$2
python=${PYTHON:-python3}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

# Build from a clean copy of only what the distribution needs: the source tree stays
# untouched (setuptools writes build/ and *.egg-info beside pyproject.toml) and stray
# files (a .venv, caches) cannot end up in the wheel.
mkdir "$work/src"
cp "$src/pyproject.toml" "$src/README.md" "$work/src/"
if [ -f "$src/LICENSE" ]; then cp "$src/LICENSE" "$work/src/"; fi
cp -R "$src/exporter" "$work/src/exporter"
find "$work/src" -name __pycache__ -type d -prune -exec rm -rf {} +

"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip wheel --quiet --disable-pip-version-check --no-deps \
    --wheel-dir "$work/dist" "$work/src"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$work"/dist/dbpulse-*.whl

# Smoke test: the console script runs from the venv.
"$venv/bin/dbpulse" --version
