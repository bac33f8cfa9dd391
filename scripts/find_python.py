"""Print the path of an installed CPython interpreter for a version like "3.12".

uv is told never to download interpreters here, and pyenv's shims only expose the
global version, so look in the usual places ourselves.
"""

import glob
import os
import shutil
import subprocess
import sys


def find(version: str) -> str | None:
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(
        glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}*/bin/python{version}"))
    )
    candidates += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for candidate in filter(None, candidates):
        try:
            out = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                check=False,
                timeout=20,
            )
        except OSError:
            continue
        if out.returncode == 0 and out.stdout.strip() == version:
            return candidate
    return None


if __name__ == "__main__":
    found = find(sys.argv[1])
    if found is None:
        sys.exit(f"no Python {sys.argv[1]} interpreter found (install it, or set UV_PYTHON)")
    print(found)
