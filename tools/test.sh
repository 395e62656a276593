#!/usr/bin/env bash
# Set up everything the tests need (tools/setup.sh), then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
exec .venv/bin/python -m pytest -q -rs "$@"
