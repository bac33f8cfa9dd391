"""Add or remove a domain of this project, using the template it was generated from.

    make add-domain NAME=orders      # package, migration branch, tests, router line
    make add-domain NAME=news SINGULAR=news_item   # where the guessed singular is wrong
    make remove-domain NAME=orders   # the reverse; its tables go in a reviewed migration

Both read the current `domains` answer from .copier-answers.yml and run `copier update`
at the template version the project is already on, so the only change is that domain.
Every check runs before anything is changed, and the working tree must be committed
first. The result is left uncommitted for you to review.

Removing never touches a database. The domain's migration history moves to
migrations/versions/retired/ (every database has it recorded), with one new revision
that drops the domain's tables: `make migrate` applies it here, and the same
`alembic upgrade heads` applies it in every other environment when you deploy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ANSWERS_FILE = Path(".copier-answers.yml")
VERSIONS = Path("migrations", "versions")
RETIRED = VERSIONS / "retired"
NAME = re.compile(r"[a-z][a-z0-9_]*")
# An entry of the `domains` answer: a name, or {name: ..., singular: ...} where the singular
# guessed from the plural is wrong.
Domain = str | dict[str, str]


class RefusalError(Exception):
    """A reason not to go ahead, printed as one line; nothing has been changed."""


# --- Checks, before anything is changed --------------------------------------------------


def _git(*args: str) -> str:
    result = subprocess.run(  # noqa: S603  # fixed argv
        ["git", *args],  # noqa: S607  # git from PATH, like every developer command
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RefusalError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def _check_clean_tree() -> None:
    if _git("status", "--porcelain").strip():
        raise RefusalError(
            "the working tree has uncommitted changes: commit or stash them first "
            "(`git status` lists them), so this change can be reviewed on its own"
        )


def _check_name(name: str, what: str = "domain name") -> None:
    if not NAME.fullmatch(name):
        raise RefusalError(
            f"{name!r} is not a {what}: use snake_case (lowercase letters, digits, _)"
        )


def _name(domain: Domain) -> str:
    return domain["name"] if isinstance(domain, dict) else domain


def _package() -> str:
    packages = [path.parent.name for path in Path("src").glob("*/__init__.py")]
    if len(packages) != 1:
        raise RefusalError("cannot tell the application package: expected one package in src/")
    return packages[0]


def _uv_env() -> dict[str, str]:
    """The project's own environment: `make` runs this script from a throw-away one."""
    return {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}


def _in_project(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603  # fixed argv
        ["uv", "run", "--quiet", *command],  # noqa: S607  # uv from PATH, like `make`
        capture_output=True,
        text=True,
        check=False,
        env=_uv_env(),
    )


def _drop_plan(name: str) -> dict[str, Any]:
    """Ask the project's own environment what removing `name` means for its schema."""
    result = _in_project("python", __file__, "drop-plan", name)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or ["no output"]
        raise RefusalError(f"could not inspect the domain's tables and migrations: {lines[-1]}")
    plan: dict[str, Any] = json.loads(result.stdout)
    if plan.get("refusal"):
        raise RefusalError(plan["refusal"])
    return plan


# --- Changes -------------------------------------------------------------------------------


def _copier_update(domains: list[Domain], **data: object) -> None:
    """`copier update --defaults --vcs-ref=:current: -d domains=[...]`, with Copier's own
    refusals (an invalid name, say) turned into one line instead of a traceback."""
    from copier import VcsRef, run_update
    from copier.errors import MissingFileWarning, UserMessageError

    # Rendering the old version in a scratch directory has no answers file to read.
    warnings.simplefilter("ignore", MissingFileWarning)
    try:
        run_update(
            ".",
            data={"domains": domains, **data},
            defaults=True,
            overwrite=True,
            vcs_ref=VcsRef.CURRENT,
        )
    except ValueError as error:  # a validator's message
        message = str(error).removeprefix("Validation error for question 'domains': ")
        raise RefusalError(message) from None
    except UserMessageError as error:
        raise RefusalError(str(error)) from None


def _retired_history(name: str) -> list[Path]:
    """The first revision of a domain removed earlier (its files carry the domain's name)."""
    return sorted(RETIRED.glob(f"{name}_0001_*.py"))


def _retire_history(name: str) -> Path:
    """Keep the domain's revisions (copier deleted them) where alembic still loads them:
    retired/ holds files directly (alembic.ini does not search its sub-folders)."""
    history = VERSIONS / name
    _git("checkout", "HEAD", "--", str(history))
    RETIRED.mkdir(parents=True, exist_ok=True)
    for revision in sorted(history.glob("*.py")):
        if (RETIRED / revision.name).exists():
            raise RefusalError(f"{RETIRED / revision.name} already exists")
        _git("mv", str(revision), str(RETIRED / revision.name))
    shutil.rmtree(history, ignore_errors=True)  # what is left: __pycache__
    return RETIRED


def _write_drop_revision(folder: Path, plan: dict[str, Any]) -> Path:
    path = folder / plan["filename"]
    path.write_text(plan["source"], encoding="utf-8")
    # The post-write hooks of alembic.ini: the same ruff fixes and formatting.
    _in_project("ruff", "check", "--fix", "--quiet", str(path))
    _in_project("ruff", "format", "--quiet", str(path))
    _git("add", str(path))
    return path


def _conflicted_files() -> list[str]:
    """Files where copier left inline conflict markers (an edit of yours near its change)."""
    found = subprocess.run(  # noqa: S603  # fixed argv
        # The marker spelled out here would make this file look conflicted itself.
        ["git", "grep", "--files-with-matches", "-e", f"^{'<' * 7} "],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    return found.stdout.split()


def add(name: str, domains: list[Domain], singular: str | None = None) -> None:
    _check_name(name)
    if singular is not None:
        _check_name(singular, "singular")
    if name in map(_name, domains):
        raise RefusalError(f"domain {name!r} already exists")
    if _retired_history(name):
        raise RefusalError(
            f"a domain {name!r} was removed earlier and its migration history stays in "
            f"{RETIRED}/ (its revision ids would clash): pick another name"
        )
    _check_clean_tree()
    _copier_update([*domains, {"name": name, "singular": singular} if singular else name])
    named = f" (singular {singular!r})" if singular else ""
    print(f"Added domain {name!r}{named}. Next: make migrate && make test")


def remove(name: str, domains: list[Domain]) -> None:
    _check_name(name)
    names = [_name(domain) for domain in domains]
    if name not in names:
        raise RefusalError(f"no domain {name!r} (domains: {', '.join(names)})")
    if len(domains) == 1:
        raise RefusalError("a project needs at least one domain: add its replacement first")
    if not (VERSIONS / name).is_dir():
        raise RefusalError(
            f"{VERSIONS / name} is missing: the domain's migration history is needed"
        )
    if _retired_history(name):
        raise RefusalError(f"{_retired_history(name)[0]} already exists: move it away first")
    _check_clean_tree()
    package = _package()
    plan = _drop_plan(name)

    remaining = [domain for domain in domains if _name(domain) != name]
    _copier_update(remaining, allow_domain_removal=True)
    try:
        for leftover in (Path("src", package, name), Path("tests", name)):
            shutil.rmtree(leftover, ignore_errors=True)  # files of your own, still in git
        folder = _retire_history(name)
        revision = _write_drop_revision(folder, plan) if plan["tables"] else None
    except RefusalError as error:
        raise RefusalError(
            f"{error}; undo everything with `git reset --hard && git clean -fd`"
        ) from None

    conflicts = _conflicted_files()
    print(f"Removed domain {name!r}; no database was changed. Review with `git status`:")
    if conflicts:
        print(f"  - resolve the conflict markers in {', '.join(conflicts)};")
    print("  - its package, tests, router line and settings are gone;")
    print(f"  - its migration history moved to {folder}/;")
    if revision is not None:
        tables = ", ".join(plan["tables"])
        print(f"  - {revision} drops its tables ({tables}).")
        print("Then `make migrate` drops them here; commit (git add -A && git commit), and")
        print("every other database gets the same drop from `alembic upgrade heads` on deploy.")
    else:
        print("It had no tables. Commit with git add -A && git commit.")


# --- Runs in the project's environment (`uv run`), before copier changes anything --------


def drop_plan(name: str) -> dict[str, Any]:
    """The domain's tables, the heads of its migration history and the drop revision."""
    from alembic.autogenerate import render_python_code
    from alembic.config import Config
    from alembic.operations import ops
    from alembic.script import ScriptDirectory
    from alembic.util import to_tuple
    from mako.template import Template

    package = _package()
    __import__(f"{package}.domains")  # registers every module's tables
    models = __import__(f"{package}.core.models", fromlist=["Base", "UTCDateTime"])
    base = models.Base
    owners = table_owners(package, base)
    tables = [table for table in base.metadata.sorted_tables if owners.get(table.name) == name]
    for table in base.metadata.sorted_tables:
        for key in table.foreign_keys:
            if owners.get(table.name) != name and key.column.table in tables:
                return {
                    "refusal": f"{table.name}.{key.parent.name} references {key.target_fullname}: "
                    f"remove that foreign key first (make migration DOMAIN={owners.get(table.name)}"
                    ' MSG="..."), migrate, commit, then remove the domain'
                }

    script = ScriptDirectory.from_config(Config("alembic.ini"))
    folder = (VERSIONS / name).resolve()
    revisions = {rev.revision: rev for rev in script.walk_revisions()}
    own = {rid for rid, rev in revisions.items() if Path(rev.path).resolve().is_relative_to(folder)}
    parents = {
        rid: set(to_tuple(rev.down_revision) or ()) | set(to_tuple(rev.dependencies) or ())
        for rid, rev in revisions.items()
    }
    for rid, rev in revisions.items():
        if rid not in own and parents[rid] & own:
            return {
                "refusal": f"{Path(rev.path).relative_to(Path.cwd())} builds on the {name} "
                f"history ({', '.join(sorted(parents[rid] & own))}): remove that dependency "
                "first, commit, then remove the domain"
            }
        if rid in own and re.search(rf"\b{package}\.{name}\b", Path(rev.path).read_text()):
            return {
                "refusal": f"{Path(rev.path).relative_to(Path.cwd())} imports {package}.{name}, "
                "which is about to be deleted: inline what it uses, commit, then remove the domain"
            }
    ancestors = {parent for rid in own for parent in parents[rid]}
    heads = sorted(rid for rid in own if rid not in ancestors)
    numbers = [int(m.group(1)) for rid in own if (m := re.fullmatch(rf"{name}_(\d+)", rid))]
    revision = f"{name}_{max(numbers, default=0) + 1:04d}"

    imports: set[str] = set()

    def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
        if type_ == "type" and isinstance(obj, models.UTCDateTime):
            imports.add(f"from {package}.core.models import UTCDateTime")
            return "UTCDateTime()"
        return False

    def render(container: ops.UpgradeOps | ops.DowngradeOps) -> str:
        code = render_python_code(container, render_item=render_item)
        lines = [line for line in code.splitlines() if not line.lstrip().startswith("# ###")]
        return "\n".join(lines).strip()

    drops = ops.UpgradeOps(ops=[ops.DropTableOp.from_table(t) for t in reversed(tables)])
    creates: list[ops.MigrateOperation] = [ops.CreateTableOp.from_table(t) for t in tables]
    for table in tables:
        indexes = sorted(table.indexes, key=lambda index: str(index.name))
        creates += [ops.CreateIndexOp.from_index(index) for index in indexes]
    downgrade = render(ops.DowngradeOps(ops=creates))
    if re.search(rf"\b{package}\.{name}\b", downgrade + "".join(imports)):
        # A type of the domain's own: the package is gone, this file must not import it.
        imports.clear()
        downgrade = (
            "raise NotImplementedError(\n"
            f'        "{revision} dropped the {name} tables, whose column types lived in the "\n'
            '        "removed package: recreate them by hand if you need them back"\n'
            "    )"
        )
    # Renders Python source (script.py.mako, like `alembic revision`), not HTML.
    mako = Template(filename=str(Path(script.dir, "script.py.mako")))  # noqa: S702
    source = mako.render(
        message=f"Drop the tables of the removed {name} domain.",
        up_revision=revision,
        down_revision=heads[0] if len(heads) == 1 else tuple(heads),
        branch_labels=None,
        depends_on=None,
        create_date=datetime.now(UTC),
        comma=lambda value: ", ".join(to_tuple(value) or ()),
        imports="\n".join(sorted(imports)),
        upgrades=render(drops),
        downgrades=downgrade,
    )
    return {
        "tables": [table.name for table in tables],
        "heads": heads,
        "filename": f"{revision}_drop_{name}.py",
        "source": source,
    }


def table_owners(package: str, base: Any) -> dict[str, str]:
    """Table name -> the module (domain, `users`, `auth`) whose models define it: the
    mapped class's module `<package>.<module>....`, or for a plain `Table`, the
    `<package>.<module>.models` that holds it. (migrations/env.py does the same.)"""
    from sqlalchemy import Table

    owners: dict[str, str] = {}
    for mapper in base.registry.mappers:
        top, _, rest = mapper.class_.__module__.partition(".")
        if top == package and rest:
            for table in mapper.tables:
                owners.setdefault(table.name, rest.partition(".")[0])
    for module_name, module in sorted(sys.modules.items()):
        parts = module_name.split(".")
        if len(parts) == 3 and parts[0] == package and parts[2] == "models":
            for value in vars(module).values():
                if isinstance(value, Table) and value.metadata is base.metadata:
                    owners.setdefault(value.name, parts[1])
    return owners


def main(argv: list[str]) -> int:
    arguments = {"add": (2, 3), "remove": (2,), "drop-plan": (2,)}
    if not argv or len(argv) not in arguments.get(argv[0], ()):
        print("usage: domains.py add <domain> [<singular>] | remove <domain>", file=sys.stderr)
        return 2
    action, name, *singular = argv
    if action == "drop-plan":
        print(json.dumps(drop_plan(name)))
        return 0
    import yaml

    answers = yaml.safe_load(ANSWERS_FILE.read_text(encoding="utf-8"))
    domains: list[Domain] = list(answers.get("domains") or [])
    try:
        add(name, domains, *singular) if action == "add" else remove(name, domains)
    except RefusalError as error:
        print(f"{action}-domain {name}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
