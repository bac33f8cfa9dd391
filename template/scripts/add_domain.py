"""Add a domain to this project from the template it was generated from.

Usage: make add-domain NAME=orders

Reads the current `domains` answer from .copier-answers.yml, appends NAME and runs
`copier update` at the template version this project is already on, so the only
change is the new domain: its package, migration branch, tests and router line.
The working tree must be committed first (copier refuses to update a dirty tree).
"""

import json
import subprocess
import sys
from pathlib import Path

import yaml

ANSWERS_FILE = Path(".copier-answers.yml")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: add_domain.py <domain>", file=sys.stderr)
        return 2
    name = argv[0]
    answers = yaml.safe_load(ANSWERS_FILE.read_text(encoding="utf-8"))
    domains: list[str] = list(answers.get("domains") or [])
    if name in domains:
        print(f"domain {name!r} already exists", file=sys.stderr)
        return 1
    command = [
        sys.executable,
        "-m",
        "copier",
        "update",
        "--defaults",
        "--vcs-ref=:current:",
        "--data",
        f"domains={json.dumps([*domains, name])}",
    ]
    result = subprocess.run(command, check=False)  # noqa: S603  # fixed argv, no shell
    if result.returncode == 0:
        print(f"Added domain {name!r}. Next: make migrate && make test")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
