#!/usr/bin/env bash
# Render the working tree (uncommitted changes included) into DEST and run the
# rendered project's checks. Usage: scripts/dev-render.sh DEST [copier --data args...]
#   CHECKS=0 scripts/dev-render.sh /tmp/x -d auth=none   # render only
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest=$1; shift
snapshot=$(mktemp -d)
trap 'rm -rf "$snapshot"' EXIT
tar -C "$root" --exclude=.git --exclude=.venv --exclude=demo -cf - copier.yml includes template | tar -C "$snapshot" -xf -
rm -rf "$dest"
"$root/.venv/bin/copier" copy --quiet --defaults "$@" "$snapshot" "$dest"
[ "${CHECKS:-1}" = 1 ] || exit 0
cd "$dest"
export UV_PYTHON_DOWNLOADS=never
# Two commands, not `a && b`: set -e ignores a failure on the left of `&&`.
"$root/.venv/bin/ruff" format --check --diff .
"$root/.venv/bin/ruff" check .
"$root/.venv/bin/uv" sync --quiet --python "${UV_PYTHON:-$(python3 "$root/scripts/find_python.py" "$(cat .python-version)")}"
.venv/bin/mypy
.venv/bin/lint-imports
# DEV_DATABASE_URL: run the suite and the migration cycle on a real server instead of SQLite.
rm -f check.db
export DATABASE_URL=${DEV_DATABASE_URL:-sqlite+aiosqlite:///./check.db}
TEST_DATABASE_URL=${DEV_DATABASE_URL:-} .venv/bin/pytest -q -p no:cacheprovider
.venv/bin/alembic upgrade heads
.venv/bin/alembic check
.venv/bin/alembic downgrade base
.venv/bin/alembic upgrade heads
.venv/bin/alembic downgrade base
echo "ALL CHECKS PASSED: $dest"
