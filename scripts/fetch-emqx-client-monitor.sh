#!/usr/bin/env bash
# Installs emqx-client-monitor 0.3.1 from PyPI into a throwaway virtualenv,
# <repo>/.receivers/venv-emqx-client-monitor, for the differential test (tests/emqx_differential.rs)
# that runs it and pushrelay against the same simulated EMQX. Nothing is installed system-wide.
#
# Usage: scripts/fetch-emqx-client-monitor.sh [--force]
#   --force                       recreate the virtualenv even when it already works
# Environment:
#   PUSHRELAY_EMQX_MONITOR_VENV   where the virtualenv goes (the test reads the same variable)
set -euo pipefail

version="0.3.1"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${PUSHRELAY_EMQX_MONITOR_VENV:-$repo_root/.receivers/venv-emqx-client-monitor}"

if [[ "${1:-}" != "--force" ]] && [[ -x "$venv/bin/emqx-client-monitor" ]] &&
    [[ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("emqx-client-monitor"))' 2>/dev/null)" == "$version" ]]; then
    echo "emqx-client-monitor $version already in $venv"
    exit 0
fi

command -v python3 >/dev/null || { echo "error: python3 is needed (>= 3.11)" >&2; exit 1; }
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' ||
    { echo "error: emqx-client-monitor $version needs Python >= 3.11" >&2; exit 1; }

rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "emqx-client-monitor==$version"
"$venv/bin/emqx-client-monitor" --version
echo "emqx-client-monitor $version installed in $venv"
