#!/usr/bin/env bash
# Regenerate constraints.txt, the lock file of every dependency, from a new
# virtual environment: setup.py's ranges decide, pip resolves today's
# releases, and the exact versions are written down.
#
#   tools/update_lock.sh [PYTHON]      # default: python3
#
# Then run the tests in a new environment with the new lock (.ci/run does)
# before committing it: a release that resolves is not yet one that works.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${1:-python3}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -e ".[dev,hub]"
{
    echo "# Exact versions the project is tested with: pip's constraints file."
    echo "#   pip install -c constraints.txt -e \".[dev]\""
    echo "# Made by tools/update_lock.sh with $("$WORK/venv/bin/python" -V)"
    echo "# on $(uname -sm), $(date -u +%Y-%m-%d). Packages that only one"
    echo "# platform needs (nvidia-*, triton) are ignored elsewhere."
    "$WORK/venv/bin/python" -m pip freeze --exclude-editable \
        --disable-pip-version-check | LC_ALL=C sort -f
} > constraints.txt.tmp
mv constraints.txt.tmp constraints.txt
echo "wrote constraints.txt ($(grep -vc '^#' constraints.txt) packages)"
