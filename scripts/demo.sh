#!/usr/bin/env bash
# Render the default variant of the working tree into DEST, install it, migrate its
# SQLite database and serve it on 127.0.0.1:PORT. Usage: scripts/demo.sh [DEST] [PORT]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-demo}
port=${2:-8000}
bin="$root/.venv/bin"
export UV_PYTHON_DOWNLOADS=never

if [ -e "$dest" ] && [ -n "$(ls -A "$dest" 2>/dev/null)" ]; then
    echo "$dest already exists: serving it as is (delete it to render afresh)"
else
    CHECKS=0 "$root/scripts/dev-render.sh" "$dest"
fi
cd "$dest"
python_version=$(cat .python-version)
"$bin/uv" sync --quiet --python "${UV_PYTHON:-$("$bin/python" "$root/scripts/find_python.py" "$python_version")}"
"$bin/uv" run --quiet alembic upgrade heads
echo
echo "Serving $(basename "$PWD") on http://127.0.0.1:$port/docs (Ctrl+C stops it)"
exec "$bin/uv" run --quiet uvicorn "$(basename "$(find src -mindepth 1 -maxdepth 1 -type d | head -1)")".main:create_app \
    --factory --host 127.0.0.1 --port "$port"
