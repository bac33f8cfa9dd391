"""Changing an answer of an existing project: `make switch-auth` between auth styles on a
live database (rows, users and logins survive, the history stays valid), the guard on a
plain `copier update -d auth=...`, and `deployment` switched with `copier update`."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import copier
import httpx
import pexpect
import pyte
import pytest
import yaml
from copier import VcsRef

from tests.helpers import BIN, MULTI_REPLICA, git, package_name, stop_gracefully, uv_env
from tests.servers import DatabaseServer, free_port
from tests.test_questionnaire_pty import ENTER, Questionnaire
from tests.test_update import generate as generate_project
from tests.test_update import template_snapshot, update  # noqa: F401  # fixture
from tests.test_variants import log_in, wait_for_status

ACCOUNT = {"email": "switch-check@example.com", "password": "switch-check password"}
OWNER = "legacy-rows@example.com"
ADMIN = {"email": "admin-check@example.com", "password": "admin-check password"}


def generate(snapshot: Path, destination: Path, **answers: object) -> Path:
    return generate_project(snapshot, destination, ["posts", "tags"], **answers)


def switch_auth(project: Path, style: str, owner: str = "") -> subprocess.CompletedProcess[str]:
    """What `make switch-auth AUTH=<style> OWNER=<owner>` runs, with this environment's
    copier instead of `uv run --with copier`."""
    return subprocess.run(
        [sys.executable, "scripts/auth.py", style, owner],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def status(project: Path) -> str:
    return git(project, "status", "--porcelain")


# ---------------------------------------------------------------------------
# Refusals: one clear line, nothing changed
# ---------------------------------------------------------------------------


def test_plain_update_changing_auth_is_refused(template_snapshot: Path, tmp_path: Path) -> None:  # noqa: F811
    project = generate(template_snapshot, tmp_path / "project", auth="jwt")
    with pytest.raises(ValueError, match=r"the project has auth=jwt: change it with `make switc"):
        update(project, auth="session")
    assert status(project) == ""


def test_interactive_update_shows_the_other_styles_disabled(
    template_snapshot: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Copier gives a select prompt no question validator: each other style is disabled
    in the list, with the command to use instead."""
    project = generate(template_snapshot, tmp_path / "project", auth="session")
    session = Questionnaire.__new__(Questionnaire)
    session.destination = project
    session.child = pexpect.spawn(
        str(BIN / "copier"),
        ["update", "--vcs-ref=:current:"],
        cwd=project,
        env={**os.environ, "TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1"},
        dimensions=(50, 250),
    )
    session.screen = pyte.Screen(250, 50)
    session.stream = pyte.ByteStream(session.screen)
    session.transcript = bytearray()
    try:
        session.accept_identity_defaults()
        session.answer("Domains of your backend")
        session.answer("Database engine")
        listing = session.expect("None (public API, no users module)")
        for style in ("jwt", "api_key", "none"):
            assert (
                f"(the project has auth=session: change it with `make switch-auth AUTH={style}`, "
                "which also writes the migrations)"
            ) in listing, listing
        assert "AUTH=session" not in listing
        session.send(ENTER)  # the cursor starts on the current style
        session.expect("Deployment target")
        session.send(ENTER)
        session.answer("Redis for what every process must share")
        session.child.expect(pexpect.EOF, timeout=120)
    finally:
        session.close()
    assert yaml.safe_load((project / ".copier-answers.yml").read_text())["auth"] == "session"


def test_switch_auth_refusals_change_nothing(template_snapshot: Path, tmp_path: Path) -> None:  # noqa: F811
    project = generate(template_snapshot, tmp_path / "project", auth="jwt")
    cases = {
        ("jwt", ""): "the project already uses auth=jwt",
        ("ldap", ""): "unknown auth style 'ldap'",
        ("session", OWNER): "OWNER is only used when switching from auth=none",
    }
    for (style, owner), message in cases.items():
        result = switch_auth(project, style, owner)
        assert result.returncode == 1, result
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith(f"switch-auth: {message}")
        assert status(project) == ""
    (project / "README.md").write_text("edited\n", encoding="utf-8")
    result = switch_auth(project, "session")
    assert result.returncode == 1
    assert result.stderr == "switch-auth: commit or stash your changes first (see git status)\n"
    assert status(project) == " M README.md\n"


def test_switch_from_none_needs_a_valid_owner(template_snapshot: Path, tmp_path: Path) -> None:  # noqa: F811
    project = generate(template_snapshot, tmp_path / "project", auth="none")
    for owner, message in [
        ("", "from auth=none, pass OWNER=<email>"),
        ('x"@example.com', "OWNER must be an e-mail address"),
    ]:
        result = switch_auth(project, "jwt", owner)
        assert result.returncode == 1
        assert len(result.stderr.strip().splitlines()) == 1
        assert message in result.stderr
        assert status(project) == ""


# ---------------------------------------------------------------------------
# Live switches
# ---------------------------------------------------------------------------


def database_url(
    database: str, project: Path, servers: dict[str, DatabaseServer], label: str
) -> str:
    if database == "sqlite":
        return f"sqlite+aiosqlite:///{project.parent / f'{label}.db'}"
    if database not in servers:
        servers[database] = DatabaseServer(database).start()
    return servers[database].create_database(label)


def run(project: Path, *command: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        command,
        cwd=project,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert result.returncode == 0, f"{command}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout + result.stderr


def install(project: Path) -> None:
    python = str(yaml.safe_load((project / ".copier-answers.yml").read_text())["python_version"])
    run(project, str(BIN / "uv"), "sync", "--quiet", env=uv_env(python))


def alembic(project: Path, env: dict[str, str], *commands: str) -> str:
    return "".join(
        run(project, str(project / ".venv/bin/alembic"), *command.split(), env=env)
        for command in commands
    )


@contextmanager
def served(project: Path, env: dict[str, str]) -> Iterator[str]:
    """The app on a free port; session cookies without Secure, since this is plain http."""
    port = free_port()
    package = package_name(yaml.safe_load((project / ".copier-answers.yml").read_text()))
    log = project.parent / f"serve-{port}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                *(str(project / ".venv/bin/uvicorn"), f"{package}.main:create_app", "--factory"),
                *("--host", "127.0.0.1", "--port", str(port)),
            ],
            cwd=project,
            env={**os.environ, **env, "AUTH_SESSION_COOKIE_SECURE": "false"},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_status(f"{base}/ready", 200)
        yield base
    finally:
        stop_gracefully(process)
    assert "Traceback" not in log.read_text(errors="replace"), log.read_text()


def register(base: str, account: dict[str, str]) -> int:
    registered = httpx.post(f"{base}/auth/register", json=account, timeout=30)
    assert registered.status_code == 201, registered.text
    return int(registered.json()["id"])


def listed(base: str, resource: str, headers: dict[str, str]) -> list[dict[str, object]]:
    answer = httpx.get(f"{base}/{resource}", headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


SWITCHES = [
    # (from, to, databases); the project's own suite runs after the SUITE ones
    ("jwt", "session", ["sqlite", "postgresql", "mysql"]),
    ("session", "jwt", ["sqlite", "postgresql"]),
    ("jwt", "api_key", ["sqlite", "postgresql"]),
    ("api_key", "jwt", ["sqlite", "postgresql"]),
    ("jwt", "none", ["sqlite", "postgresql", "mysql"]),
    ("none", "jwt", ["sqlite", "postgresql"]),
    ("session", "none", ["sqlite", "postgresql"]),
    ("api_key", "none", ["sqlite", "postgresql"]),
    ("none", "session", ["postgresql"]),
]
SUITE = {("jwt", "session", "sqlite"), ("jwt", "none", "postgresql"), ("none", "jwt", "sqlite")}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("old", "new", "database"),
    [
        pytest.param(old, new, database, id=f"{old}-to-{new}-{database}")
        for old, new, databases in SWITCHES
        for database in databases
    ],
)
def test_switch_auth_on_a_live_database(
    template_snapshot: Path,  # noqa: F811
    tmp_path: Path,
    database_servers: dict[str, DatabaseServer],
    old: str,
    new: str,
    database: str,
    record_property: pytest.RecordProperty,
) -> None:
    """Rows written under the old style, by a user where it has users, are there after the
    switch and `make migrate`; the same password logs in the new way; `alembic check` is
    clean on that database and on a fresh one; a later `copier update` changes nothing."""
    started = time.perf_counter()
    project = generate(template_snapshot, tmp_path / "project", auth=old, database=database)
    install(project)
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "--allow-empty", "--message", "installed")
    label = f"{old}_{new}".replace("_", "")
    env = {"DATABASE_URL": database_url(database, project, database_servers, label)}
    alembic(project, env, "upgrade heads")
    with served(project, env) as base:
        user_id = register(base, ACCOUNT) if old != "none" else None
        headers = log_in(base, old, ACCOUNT)
        for name in ("first", "second"):
            created = httpx.post(f"{base}/posts", json={"name": name}, headers=headers, timeout=30)
            assert created.status_code == 201, created.text

    result = switch_auth(project, new, OWNER if old == "none" else "")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert not list(project.rglob("*.rej"))
    install(project)
    alembic(project, env, "upgrade heads", "check")
    for tool in (["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy"]):
        run(project, str(project / ".venv/bin" / tool[0]), *tool[1:], env={})

    with served(project, env) as base:
        if new == "none":
            rows = listed(base, "posts", {})
            assert sorted(row["name"] for row in rows) == ["first", "second"]
            assert all("owner_id" not in row for row in rows)
        elif old != "none":
            rows = listed(base, "posts", log_in(base, new, ACCOUNT))
            assert sorted(row["name"] for row in rows) == ["first", "second"]
            assert {row["owner_id"] for row in rows} == {user_id}
        else:
            # Rows written while the API was public belong to the OWNER account, which
            # cannot log in; admins see them, a new user does not.
            register(base, ACCOUNT)
            assert listed(base, "posts", log_in(base, new, ACCOUNT)) == []
            with pytest.raises(AssertionError, match="401"):
                log_in(base, new, {"email": OWNER, "password": "anything at all"})
            package = package_name(yaml.safe_load((project / ".copier-answers.yml").read_text()))
            run(
                project,
                str(project / ".venv/bin/python"),
                *("-m", f"{package}.users.cli", "create-admin", "--email", ADMIN["email"]),
                env={**env, "ADMIN_PASSWORD": ADMIN["password"]},
            )
            rows = listed(base, "posts", log_in(base, new, ADMIN))
            assert sorted(row["name"] for row in rows) == ["first", "second"]
            users = httpx.get(f"{base}/users", headers=log_in(base, new, ADMIN), timeout=30)
            owner = next(u for u in users.json()["items"] if u["email"] == OWNER)
            assert owner["is_active"] is False
            assert {row["owner_id"] for row in rows} == {owner["id"]}

    # A database created after the switch (CI, a new developer) runs the whole history.
    fresh = {**env, "DATABASE_URL": database_url(database, project, database_servers, label + "f")}
    alembic(project, fresh, "upgrade heads", "check", "downgrade base", "upgrade heads", "check")
    if (old, new, database) in SUITE:
        test_env = {**env, "TEST_DATABASE_URL": fresh["DATABASE_URL"]}
        if database == "sqlite":
            test_env.pop("TEST_DATABASE_URL")
        run(
            project, str(project / ".venv/bin/pytest"), "-q", "-p", "no:cacheprovider", env=test_env
        )

    # Later updates leave the kept and retired migration files alone.
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "--message", f"switch auth to {new}")
    copier.run_update(project, defaults=True, overwrite=True, quiet=True, vcs_ref=VcsRef.CURRENT)
    assert status(project) == ""
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["auth"] == new
    assert "allow_auth_change" not in answers
    record_property("switch_seconds", round(time.perf_counter() - started, 1))


# ---------------------------------------------------------------------------
# deployment: a plain `copier update -d deployment=...`
# ---------------------------------------------------------------------------


def project_files(project: Path) -> dict[str, bytes]:
    skip = {".git", ".venv", ".env", "uv.lock"}
    return {
        str(path.relative_to(project)): path.read_bytes()
        for path in project.rglob("*")
        if path.is_file() and not skip.intersection(path.relative_to(project).parts)
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    ("database", "old", "new"),
    [("postgresql", "docker", "kubernetes"), ("sqlite", "vps", "none")],
)
def test_switching_deployment_swaps_its_files_only(
    template_snapshot: Path,  # noqa: F811
    tmp_path: Path,
    database_servers: dict[str, DatabaseServer],
    database: str,
    old: str,
    new: str,
) -> None:
    project = generate(template_snapshot, tmp_path / "project", database=database, deployment=old)
    expected = generate(template_snapshot, tmp_path / "fresh", database=database, deployment=new)
    # Several replicas need Redis: the switch says so (a recorded redis=false is refused).
    update(project, deployment=new, **({"redis": True} if new in MULTI_REPLICA else {}))
    assert not list(project.rglob("*.rej"))
    actual, wanted = project_files(project), project_files(expected)
    assert [name for name, data in actual.items() if re.search(rb"^<<<<<<< ", data, re.M)] == []
    assert sorted(actual) == sorted(wanted)
    assert [name for name in actual if actual[name] != wanted[name]] == []
    install(project)
    env = {"DATABASE_URL": database_url(database, project, database_servers, f"dep{new}")}
    alembic(project, env, "upgrade heads", "check")


@pytest.mark.slow
@pytest.mark.parametrize("styles", [("jwt", "session", "jwt"), ("jwt", "none", "session")])
def test_switching_twice_keeps_a_valid_history(
    template_snapshot: Path,  # noqa: F811
    tmp_path: Path,
    styles: tuple[str, str, str],
) -> None:
    """A second switch builds on the first: back to a style the history already created
    (its table is created again), or from none back to users (users_0001 and auth_0001 are
    already in the history, so new revisions create the tables again)."""
    first, *others = styles
    project = generate(template_snapshot, tmp_path / "project", auth=first)
    install(project)
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "--allow-empty", "--message", "installed")
    database = tmp_path / "live.db"
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{database}"}
    alembic(project, env, "upgrade heads")
    with sqlite3.connect(database) as connection:
        connection.execute(
            "INSERT INTO users (email, hashed_password, role, is_active, created_at, updated_at)"
            " VALUES ('kept@example.com', 'x', 'user', 1, '2026-01-01', '2026-01-01')"
        )
        connection.execute(
            "INSERT INTO posts (name, version, owner_id, created_at, updated_at)"
            " VALUES ('kept', 1, 1, '2026-01-01', '2026-01-01')"
        )
    previous = first
    for style in others:
        result = switch_auth(project, style, OWNER if previous == "none" else "")
        assert result.returncode == 0, result.stdout + result.stderr
        install(project)
        alembic(project, env, "upgrade heads", "check")
        git(project, "add", "--all")
        git(project, "commit", "--quiet", "--message", f"switch auth to {style}")
        previous = style
    with closing(sqlite3.connect(database)) as connection:
        assert connection.execute("SELECT name FROM posts").fetchall() == [("kept",)]
    fresh = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"}
    alembic(project, fresh, "upgrade heads", "check", "downgrade base", "upgrade heads", "check")
