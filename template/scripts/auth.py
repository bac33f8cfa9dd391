"""Switch this project's auth style, with the migrations the switch needs.

    make switch-auth AUTH=session                        # between jwt, session and api_key
    make switch-auth AUTH=none                           # drops users, credentials, owners
    make switch-auth AUTH=jwt OWNER=legacy@example.com   # from none: who owns existing rows

It runs `copier update` at the template version the project is already on with the new
answer, then repairs the migration history. Every committed migration file is kept byte
for byte, since your databases may have run it (the history of a module the project no
longer has moves to migrations/versions/retired/); a newly rendered revision whose id the
history already used is removed; and new revisions create the new style's tables, drop
the old style's, and add or drop the owner of domain rows. Users and their passwords are
kept between styles with users. The working tree must be committed first; the result is
left uncommitted for you to review. Then run `make migrate` on every database.
"""

import ast
import re
import secrets
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import copier
import yaml

ANSWERS_FILE = Path(".copier-answers.yml")
VERSIONS = Path("migrations", "versions")
RETIRED = VERSIONS / "retired"
STYLES = ("jwt", "session", "api_key", "none")
# Where each style keeps its credentials; every style but none shares the users table.
CREDENTIAL_TABLES = {"jwt": "refresh_tokens", "session": "sessions", "api_key": "api_keys"}
USER_MODULES = ("users", "auth")
# Tables every style with users shares besides `users` (the tokens mailed to its owners),
# and the template revisions that change `users` after creating it: a switch to none drops
# them too, and a switch that creates `users` again replays those changes.
ACCOUNT_TABLES = ("account_tokens",)
USERS_CHANGES = ("users_0003",)
EMAIL = re.compile(r"^[a-z0-9._%+-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$")


class SwitchError(Exception):
    """A reason to refuse, printed as one line."""


@dataclass(frozen=True)
class Revision:
    """A migration file of the history and the identifiers alembic reads from it."""

    path: Path
    source: str
    revision: str
    down_revision: tuple[str, ...]
    branch_labels: tuple[str, ...] = ()


def parse_revision(path: Path, source: str) -> Revision | None:
    """The identifiers of a revision file; None for a file that is not one."""
    fields: dict[str, object] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        else:
            continue
        if isinstance(target, ast.Name):
            try:
                fields[target.id] = ast.literal_eval(value)
            except ValueError:
                continue
    revision = fields.get("revision")
    if not isinstance(revision, str):
        return None
    return Revision(
        path=path,
        source=source,
        revision=revision,
        down_revision=_names(fields.get("down_revision")),
        branch_labels=_names(fields.get("branch_labels")),
    )


def _names(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(str(item) for item in value) if isinstance(value, list | tuple) else ()


def heads(revisions: list[Revision], module: str) -> tuple[str, ...]:
    """The heads of a module's branch: the revisions that descend from the one labelled
    with the module's name and that no other revision builds on. Revisions outside the
    line, like the template's `<domain>_0002` (its own base, depending on `<domain>_0001`),
    are left out: the project's revisions extend the line."""
    children: dict[str, list[Revision]] = {}
    for revision in revisions:
        for parent in revision.down_revision:
            children.setdefault(parent, []).append(revision)
    line = [revision for revision in revisions if module in revision.branch_labels]
    seen = {revision.revision for revision in line}
    while line:
        for child in children.get(line.pop().revision, []):
            if child.revision not in seen:
                seen.add(child.revision)
                line.append(child)
    return tuple(sorted(revision for revision in seen if revision not in children))


def _creates(statement: ast.stmt, table: str) -> bool:
    """`op.create_table("<table>", ...)` or a `with op.batch_alter_table("<table>")` block."""
    if isinstance(statement, ast.Expr):
        calls = [statement.value]
    elif isinstance(statement, ast.With):
        calls = [item.context_expr for item in statement.items]
    else:
        return False
    return any(
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr in {"create_table", "batch_alter_table"}
        and bool(call.args)
        and isinstance(call.args[0], ast.Constant)
        and call.args[0].value == table
        for call in calls
    )


def table_definition(table: str, revisions: list[Revision]) -> list[str]:
    """The statements that first created `table` in the history (its `create_table` call
    and the batch blocks after it, indexes included), to create it again the same way."""
    for revision in revisions:
        for node in ast.parse(revision.source).body:
            if isinstance(node, ast.FunctionDef) and node.name == "upgrade":
                statements = [s for s in node.body if _creates(s, table)]
                if statements and isinstance(statements[0], ast.Expr):
                    return [ast.get_source_segment(revision.source, s) or "" for s in statements]
    raise SwitchError(f"no migration of the history creates the {table} table")


def optional_definition(table: str, revisions: list[Revision]) -> list[str]:
    """`table_definition`, or nothing for a table the history never created (a project
    from a release before it)."""
    try:
        return table_definition(table, revisions)
    except SwitchError:
        return []


def users_changes(revisions: list[Revision]) -> list[str]:
    """The upgrade statements of the template revisions that changed `users` after creating
    it, in the history: to create the table again as the models have it."""
    statements: list[str] = []
    for revision_id in USERS_CHANGES:
        # The first copy only: a revision can be in the history and among the replaced.
        found = next((r for r in revisions if r.revision == revision_id), None)
        if found is not None:
            for node in ast.parse(found.source).body:
                if isinstance(node, ast.FunctionDef) and node.name == "upgrade":
                    statements += [ast.get_source_segment(found.source, s) or "" for s in node.body]
    return statements


def side_revisions(revisions: list[Revision]) -> tuple[str, ...]:
    """Revisions of the users and auth folders outside their branch line: template fixes
    and additions that depend on a first revision without extending the branch."""
    return tuple(
        sorted(
            revision.revision
            for revision in revisions
            if revision.path.relative_to(VERSIONS).parts[0] in USER_MODULES
            and not revision.down_revision
            and not revision.branch_labels
        )
    )


# ---------------------------------------------------------------------------
# New revisions
# ---------------------------------------------------------------------------


@dataclass
class NewRevision:
    """A revision the switch writes. Statements are source text at function-body level."""

    folder: Path
    slug: str
    message: str
    down_revision: tuple[str, ...]
    upgrade: list[str]
    downgrade: list[str]
    depends_on: tuple[str, ...] = ()
    constants: list[str] = field(default_factory=list)
    revision: str = field(default_factory=lambda: secrets.token_hex(6))  # alembic's format


def _literal(names: tuple[str, ...]) -> str:
    if not names:
        return "None"
    quoted = [f'"{name}"' for name in names]
    if len(quoted) == 1:
        return quoted[0]
    one_line = "(" + ", ".join(quoted) + ")"
    if len(one_line) <= 55:  # fits after `depends_on: str | Sequence[str] | None = `
        return one_line
    return "(\n" + "".join(f"    {name},\n" for name in quoted) + ")"


def _block(statements: list[str]) -> str:
    return "\n".join("    " + statement for statement in statements) or "    pass"


def _imports(new: NewRevision, package: str) -> list[str]:
    code = "\n".join(
        [*new.constants, "def f():", _block(new.upgrade), "def g():", _block(new.downgrade)]
    )
    used = {node.id for node in ast.walk(ast.parse(code)) if isinstance(node, ast.Name)}
    standard = [
        *(["import secrets"] if "secrets" in used else []),
        "from collections.abc import Sequence",
        *(["from datetime import UTC, datetime"] if "datetime" in used else []),
    ]
    third_party = [
        *(["import sqlalchemy as sa"] if "sa" in used else []),
        "from alembic import op",
        *(["from pwdlib import PasswordHash"] if "PasswordHash" in used else []),
    ]
    own = [f"from {package}.core.models import UTCDateTime"] if "UTCDateTime" in used else []
    return [line for block in (standard, third_party, own) if block for line in [*block, ""]]


def render(new: NewRevision, package: str, created: datetime) -> str:
    lines = [
        f'"""{new.message}',
        "",
        f"Revision ID: {new.revision}",
        f"Revises: {', '.join(new.down_revision)}",
        f"Create Date: {created}",
        "",
        "Written by `make switch-auth` (scripts/auth.py).",
        '"""',
        "",
        *_imports(new, package),
        f'revision: str = "{new.revision}"',
        f"down_revision: str | Sequence[str] | None = {_literal(new.down_revision)}",
        "branch_labels: str | Sequence[str] | None = None",
        f"depends_on: str | Sequence[str] | None = {_literal(new.depends_on)}",
        *(["", *new.constants] if new.constants else []),
        "",
        "",
        "def upgrade() -> None:",
        _block(new.upgrade),
        "",
        "",
        "def downgrade() -> None:",
        _block(new.downgrade),
        "",
    ]
    return "\n".join(lines)


def write(new: NewRevision, package: str) -> Path:
    """The file, named like alembic.ini's file_template names `make migration`'s."""
    created = datetime.now(UTC)
    path = new.folder / f"{created:%Y_%m_%d}_{new.revision}_{new.slug}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(new, package, created), encoding="utf-8")
    return path


def drop_owner(domain: str) -> str:
    # The foreign key goes first: MySQL refuses to drop an index or a column it uses.
    return (
        f'with op.batch_alter_table("{domain}") as batch_op:\n'
        f'        batch_op.drop_constraint("fk_{domain}_owner_id_users", type_="foreignkey")\n'
        f'        batch_op.drop_index("ix_{domain}_owner_id")\n'
        '        batch_op.drop_column("owner_id")'
    )


def _owner_constraints(domain: str) -> str:
    return (
        "        batch_op.create_foreign_key(\n"
        f'            "fk_{domain}_owner_id_users",\n'
        '            "users",\n'
        '            ["owner_id"],\n'
        '            ["id"],\n'
        '            ondelete="CASCADE",\n'
        "        )\n"
        f'        batch_op.create_index("ix_{domain}_owner_id", ["owner_id"])'
    )


def restore_owner(domain: str) -> str:
    # Nullable: nobody can tell whose the rows were.
    return (
        f'with op.batch_alter_table("{domain}") as batch_op:\n'
        '        batch_op.add_column(sa.Column("owner_id", sa.Integer(), nullable=True))\n'
        + _owner_constraints(domain)
    )


def add_owner(domain: str) -> list[str]:
    """owner_id for every row of a domain: existing rows get `owner_id` (the owner's id)."""
    return [
        f'with op.batch_alter_table("{domain}") as batch_op:\n'
        '        batch_op.add_column(sa.Column("owner_id", sa.Integer(), nullable=True))',
        f'rows = sa.table("{domain}", sa.column("owner_id", sa.Integer()))',
        "op.execute(rows.update().values(owner_id=owner_id))",
        f'with op.batch_alter_table("{domain}") as batch_op:\n'
        '        batch_op.alter_column("owner_id", existing_type=sa.Integer(), nullable=False)\n'
        + _owner_constraints(domain),
    ]


def owner_of_existing_rows(domains: list[str]) -> list[str]:
    """Statements creating the owner of rows written while the API had no users, only in a
    database that has such rows: an inactive account whose password nobody knows (the hash
    of a random secret that is never stored or shown), so nobody can log in as it. Then
    `owner_id` is that account's id (NULL where it was not created: there are no rows)."""
    return [
        "connection = op.get_bind()",
        'tables = [sa.table(name, sa.column("id", sa.Integer())) for name in DOMAIN_TABLES]',
        "users = sa.table(\n"
        '        "users",\n'
        '        sa.column("id", sa.Integer()),\n'
        '        sa.column("email", sa.String()),\n'
        '        sa.column("hashed_password", sa.String()),\n'
        '        sa.column("role", sa.String()),\n'
        '        sa.column("is_active", sa.Boolean()),\n'
        '        sa.column("created_at", UTCDateTime()),\n'
        '        sa.column("updated_at", UTCDateTime()),\n'
        "    )",
        "if any(connection.execute(sa.select(t.c.id).limit(1)).first() for t in tables):\n"
        "        now = datetime.now(UTC)\n"
        "        unguessable = PasswordHash.recommended().hash(secrets.token_urlsafe(32))\n"
        "        op.execute(\n"
        "            users.insert().values(\n"
        "                email=OWNER_EMAIL,\n"
        "                hashed_password=unguessable,\n"
        '                role="user",\n'
        "                is_active=False,\n"
        "                created_at=now,\n"
        "                updated_at=now,\n"
        "            )\n"
        "        )",
        "owner_id = sa.select(users.c.id).where(users.c.email == OWNER_EMAIL).scalar_subquery()",
    ]


def plan(
    old: str,
    new: str,
    domains: list[str],
    history: list[Revision],
    replaced: list[Revision],
    owner: str | None,
) -> list[NewRevision]:
    """The revisions that take a database from the old style's schema to the new one's.

    Each one extends the auth branch and only depends on the domains' branches: alembic's
    version table keeps one row per line, and a revision whose parent another revision's
    `depends_on` already absorbed (a domain's `_0001`, absorbed by its `_0002`) cannot be
    recorded if it also depends on a revision the table holds."""
    known = replaced + history

    def module_heads(module: str) -> tuple[str, ...]:
        return heads(history, module)

    domain_heads = tuple(head for domain in domains for head in module_heads(domain))
    if old != "none" and new != "none":
        new_table, old_table = CREDENTIAL_TABLES[new], CREDENTIAL_TABLES[old]
        return [
            NewRevision(
                folder=VERSIONS / "auth",
                slug=f"switch_auth_to_{new}",
                message=f"Switch auth from {old} to {new}: {new_table} replaces {old_table}.",
                down_revision=module_heads("auth"),
                upgrade=[*table_definition(new_table, known), f'op.drop_table("{old_table}")'],
                downgrade=[f'op.drop_table("{new_table}")', *table_definition(old_table, known)],
            )
        ]
    if new == "none":
        old_table = CREDENTIAL_TABLES[old]
        account_tables = [table for table in ACCOUNT_TABLES if optional_definition(table, known)]
        return [
            NewRevision(
                folder=RETIRED,
                slug="drop_users",
                message=(
                    f"Switch auth from {old} to none: drop every owner_id, the {old_table} "
                    "and the users tables."
                ),
                down_revision=module_heads("auth"),
                # After every revision creating or changing these tables, on a new database too.
                depends_on=domain_heads + side_revisions(history),
                upgrade=[
                    *(drop_owner(domain) for domain in domains),
                    f'op.drop_table("{old_table}")',
                    *(f'op.drop_table("{table}")' for table in account_tables),
                    'op.drop_table("users")',
                ],
                downgrade=[
                    *table_definition("users", known),
                    *users_changes(known),
                    *(s for table in account_tables for s in table_definition(table, known)),
                    *table_definition(old_table, known),
                    *(restore_owner(domain) for domain in domains),
                ],
            )
        ]
    # From none: users_0001 and auth_0001 are new files and simply run, unless an earlier
    # switch to none left them in the history: then new revisions on the auth branch, after
    # the one that dropped the tables, create them again.
    if owner is None:
        raise SwitchError("switching from auth=none needs OWNER")
    revisions: list[NewRevision] = []
    parent: tuple[str, ...] = ("auth_0001",)
    if replaced:
        parent = module_heads("auth")
        account_tables = [table for table in ACCOUNT_TABLES if optional_definition(table, known)]
        created = (
            ("users", "users", ["users"], users_changes(known)),
            (CREDENTIAL_TABLES[new], "auth", [CREDENTIAL_TABLES[new], *account_tables], []),
        )
        for slug_table, folder, tables, changes in created:
            revisions.append(
                NewRevision(
                    folder=VERSIONS / folder,
                    slug=f"create_{slug_table}",
                    message=f"Create the {', '.join(tables)} table(s) of auth={new}.",
                    down_revision=parent,
                    upgrade=[
                        *(s for table in tables for s in table_definition(table, known)),
                        *changes,
                    ],
                    downgrade=[f'op.drop_table("{table}")' for table in reversed(tables)],
                )
            )
            parent = (revisions[-1].revision,)
    tables = ", ".join(f'"{domain}"' for domain in domains) + ("," if len(domains) == 1 else "")
    revisions.append(
        NewRevision(
            folder=VERSIONS / "auth",
            slug="add_owners",
            message=f"Switch auth from none to {new}: every domain row gets an owner.",
            down_revision=parent,
            depends_on=domain_heads,
            upgrade=[
                *owner_of_existing_rows(domains),
                *(statement for domain in domains for statement in add_owner(domain)),
            ],
            downgrade=[
                *(drop_owner(domain) for domain in domains),
                'users = sa.table("users", sa.column("email", sa.String()))',
                "op.execute(users.delete().where(users.c.email == OWNER_EMAIL))",
            ],
            constants=[f'OWNER_EMAIL = "{owner}"', f"DOMAIN_TABLES = ({tables})"],
        )
    )
    return revisions


# ---------------------------------------------------------------------------
# The switch
# ---------------------------------------------------------------------------


def _git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], capture_output=True, check=False)  # noqa: S603,S607


def committed_migrations() -> dict[Path, bytes]:
    """Every migration file of the last commit: what databases may already have run."""
    listed = _git("ls-tree", "-r", "-z", "--name-only", "HEAD", "--", str(VERSIONS)).stdout
    names = [name for name in listed.decode().split("\0") if name.endswith(".py")]
    return {Path(name): _git("show", f"HEAD:{name}").stdout for name in names}


def check(answers: dict[str, object], new: str, owner: str | None) -> str:
    """Refuse before changing anything; return the current style."""
    old = str(answers.get("auth"))
    if new not in STYLES:
        raise SwitchError(f"unknown auth style {new!r}: choose one of {', '.join(STYLES)}")
    if new == old:
        raise SwitchError(f"the project already uses auth={old}")
    if old == "none" and not owner:
        raise SwitchError(
            "from auth=none, pass OWNER=<email>: the account that will own existing rows"
        )
    if old != "none" and owner:
        raise SwitchError("OWNER is only used when switching from auth=none")
    if owner and not EMAIL.match(owner):
        raise SwitchError(f"OWNER must be an e-mail address, not {owner!r}")
    if _git("rev-parse", "--verify", "--quiet", "HEAD").returncode != 0:
        raise SwitchError("the project must be a git repository with a commit")
    if _git("status", "--porcelain").stdout:
        raise SwitchError("commit or stash your changes first (see git status)")
    return old


def repair_history(
    modules: set[str], committed: dict[Path, bytes]
) -> tuple[list[Path], list[Revision]]:
    """Put back every committed migration file, byte for byte: in place while its module
    exists, in versions/retired/ once it does not. Remove new files whose
    revision id the history already used, and return them."""
    restored: list[Path] = []
    targets: set[Path] = set()
    for path, data in committed.items():
        parts = path.relative_to(VERSIONS).parts
        kept = parts[0] in modules or parts[0] == "retired" or len(parts) == 1
        target = path if kept else RETIRED / path.name
        targets.add(target)
        if not target.is_file() or target.read_bytes() != data:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            restored.append(target)
        if target != path:
            path.unlink(missing_ok=True)
    for folder in VERSIONS.iterdir():
        gone = folder.is_dir() and folder.name not in modules | {"retired"}
        if gone and not any(path.suffix == ".py" for path in folder.rglob("*")):
            _remove_tree(folder)  # only caches were left
    history = {parse_revision(p, d.decode()) for p, d in committed.items()}
    used = {revision.revision for revision in history if revision}
    replaced: list[Revision] = []
    for path in sorted(VERSIONS.rglob("*.py")):
        if path not in targets:
            revision = parse_revision(path, path.read_text(encoding="utf-8"))
            if revision is not None and revision.revision in used:
                path.unlink()
                replaced.append(revision)
    return restored, replaced


def _remove_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    folder.rmdir()


def rendered_files(answers: dict[str, object], style: str, destination: Path) -> dict[Path, bytes]:
    """The project as the template renders it with auth=<style>, at the project's version."""
    data = {key: value for key, value in answers.items() if not key.startswith("_")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no answers file in a fresh destination
        copier.run_copy(
            str(answers["_src_path"]),
            destination,
            data={**data, "auth": style},
            vcs_ref=str(answers["_commit"]),
            defaults=True,
            quiet=True,
        )
    files = (path for path in destination.rglob("*") if path.is_file())
    return {path.relative_to(destination): path.read_bytes() for path in files}


def left_behind(answers: dict[str, object], old: str, new: str) -> tuple[list[Path], list[Path]]:
    """Files of the old style's render that the new one lacks but copier left in place: of
    a file rendered once per domain, it deletes only the first domain's copy. Delete the ones
    you never edited; return those and the edited ones, which are kept."""
    with tempfile.TemporaryDirectory() as scratch:
        before = rendered_files(answers, old, Path(scratch, "old"))
        after = rendered_files(answers, new, Path(scratch, "new"))
    deleted: list[Path] = []
    edited: list[Path] = []
    for path in sorted(set(before) - set(after)):
        if path.is_file() and VERSIONS not in path.parents:
            if path.read_bytes() == before[path]:
                path.unlink()
                deleted.append(path)
            else:
                edited.append(path)
    return deleted, edited


def switch(new: str, owner: str | None) -> int:
    answers = yaml.safe_load(ANSWERS_FILE.read_text(encoding="utf-8"))
    old = check(answers, new, owner)
    # A domain is a name or {name: ..., singular: ...}.
    domains = [d["name"] if isinstance(d, dict) else str(d) for d in answers.get("domains") or []]
    package = next(p.name for p in Path("src").iterdir() if (p / "__init__.py").is_file())
    committed = committed_migrations()
    command = [sys.executable, "-m", "copier", "update", "--defaults", "--vcs-ref=:current:"]
    command += ["--data", f"auth={new}", "--data", "allow_auth_change=true"]
    if subprocess.run(command, check=False).returncode != 0:  # noqa: S603  # fixed argv
        print("switch-auth: copier update failed; see `git status`", file=sys.stderr)
        return 1
    deleted, edited = left_behind(answers, old, new)
    modules = set(domains) | (set(USER_MODULES) if new != "none" else set())
    restored, replaced = repair_history(modules, committed)
    history = [r for r in (parse_revision(p, d.decode()) for p, d in committed.items()) if r]
    revisions = plan(old, new, domains, history, replaced, owner)
    written = [write(revision, package) for revision in revisions]
    print(f"\nSwitched auth from {old} to {new}.")
    for path in restored:
        print(f"  kept, your databases may have run it: {path}")
    for revision in replaced:
        print(f"  removed, its id is already in the history: {revision.path}")
    for path in written:
        print(f"  new migration: {path}")
    for path in deleted:
        print(f"  deleted, it belongs to auth={old}: {path}")
    for path in edited:
        print(f"  kept, you edited it, but it belongs to auth={old}: {path}")
    marker = "<" * 7  # spelled out, this file would look like a conflict itself
    conflicts = _git("grep", "-l", "-e", f"^{marker} ").stdout.decode().split()
    if conflicts:
        print(f"  resolve the conflicts in: {', '.join(conflicts)}")
    print("Review with `git status` and `git diff`, then run make install, make migrate and")
    print("make test, and commit. Every database of the project needs `make migrate`.")
    return 0


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print("usage: auth.py <jwt|session|api_key|none> [<owner email>]", file=sys.stderr)
        return 2
    owner = argv[1].strip().lower() if len(argv) == 2 else ""
    try:
        return switch(argv[0], owner or None)
    except SwitchError as error:
        print(f"switch-auth: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
