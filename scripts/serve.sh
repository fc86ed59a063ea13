#!/usr/bin/env bash
# One command: install whatever is missing, then serve the app on http://127.0.0.1:8080/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
setup_app
say "serving on http://127.0.0.1:8080/ (Ctrl+C to stop)"
exec trunk serve "$@"
