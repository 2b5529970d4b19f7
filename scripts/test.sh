#!/usr/bin/env bash
# Runs every test of the project: the Rust workspace (unit, property and integration tests over
# real HTTP), including the compatibility check with Clipia's official Python SDK.
set -euo pipefail
cd "$(dirname "$0")/.."

# The official SDK for the compatibility test, in a virtualenv under target/ (skipped with a
# printed reason if it cannot be installed).
if [ ! -x target/compat-venv/bin/python ] || ! target/compat-venv/bin/python -c "import clipia" 2>/dev/null; then
  python3 -m venv target/compat-venv && target/compat-venv/bin/pip install -q -r compat/requirements.txt \
    || echo "note: could not install the official Clipia SDK; its compatibility test will skip"
fi

cargo test --workspace --no-fail-fast 2>&1
