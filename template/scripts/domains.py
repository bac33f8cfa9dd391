"""Add or remove a domain of this project, using the template it was generated from.

    make add-domain NAME=orders      # package, migration branch, tests, router line
    make remove-domain NAME=orders   # the reverse, including the domain's tables

Both read the current `domains` answer from .copier-answers.yml and run `copier update`
at the template version the project is already on, so the only change is that domain.
The working tree must be committed first: copier refuses to update a dirty tree, and
the result is left uncommitted for you to review.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ANSWERS_FILE = Path(".copier-answers.yml")


def _run(*command: str) -> int:
    return subprocess.run(command, check=False).returncode  # noqa: S603  # fixed argv


def _copier_update(domains: list[str], *extra: str) -> int:
    data = ["--data", f"domains={json.dumps(domains)}", *extra]
    return _run(
        sys.executable, "-m", "copier", "update", "--defaults", "--vcs-ref=:current:", *data
    )


def add(name: str, domains: list[str]) -> int:
    if name in domains:
        print(f"domain {name!r} already exists", file=sys.stderr)
        return 1
    code = _copier_update([*domains, name])
    if code == 0:
        print(f"Added domain {name!r}. Next: make migrate && make test")
    return code


def remove(name: str, domains: list[str]) -> int:
    if name not in domains:
        print(f"no domain {name!r} (domains: {', '.join(domains)})", file=sys.stderr)
        return 1
    if len(domains) == 1:
        print("a project needs at least one domain", file=sys.stderr)
        return 1
    # Drop the domain's tables first, while its migration branch still exists.
    code = _run("uv", "run", "alembic", "downgrade", f"{name}@base")
    if code != 0:
        print(f"could not downgrade {name}@base: is the database reachable?", file=sys.stderr)
        return code
    remaining = [domain for domain in domains if domain != name]
    code = _copier_update(remaining, "--data", "allow_domain_removal=true")
    if code != 0:
        return code
    package = next(Path("src").iterdir()).name
    for leftover in (Path("src", package, name), Path("tests", name)):
        shutil.rmtree(leftover, ignore_errors=True)
    shutil.rmtree(Path("migrations", "versions", name), ignore_errors=True)
    print(f"Removed domain {name!r}: review with `git status`, then commit.")
    print(f"Other databases still have its tables: run `alembic downgrade {name}@base` there")
    print("before deploying this change.")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in {"add", "remove"}:
        print("usage: domains.py add|remove <domain>", file=sys.stderr)
        return 2
    action, name = argv
    answers = yaml.safe_load(ANSWERS_FILE.read_text(encoding="utf-8"))
    domains: list[str] = list(answers.get("domains") or [])
    return add(name, domains) if action == "add" else remove(name, domains)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
