"""`copier update` on a generated project: from every release to the working tree, domains
added, removal guarded, edits and .env kept."""

from __future__ import annotations

import difflib
import importlib.util
import json
import os
import re
import sqlite3
import subprocess
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess

import copier
import pytest
import yaml
from copier import VcsRef

from tests.helpers import (
    BIN,
    MATRIX_QUESTIONS,
    PYTEST_ARGS,
    ROOT,
    StepTimer,
    Variant,
    choices,
    git,
    is_forbidden,
    rendered_files,
    run_alembic,
    template_repository,
    uv_env,
)
from tests.release_repo import RELEASES, ReleaseRepo, build_release_repo
from tests.servers import DatabaseServer, free_port

MAKE_LINE = re.compile(r"make(\[\d+\])?: ")


@pytest.fixture(scope="module")
def template_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working tree as a committed repository, so recorded commits stay resolvable."""
    return template_repository(tmp_path_factory.mktemp("template-snapshot"), "snapshot")


def generate(snapshot: Path, destination: Path, domains: list[str], **answers: object) -> Path:
    copier.run_copy(
        str(snapshot),
        destination,
        data={"domains": domains, **answers},
        defaults=True,
        vcs_ref="HEAD",
        quiet=True,
    )
    git(destination, "init", "--quiet", "--initial-branch=main")
    git(destination, "add", "--all")
    git(destination, "commit", "--quiet", "--message", "generated")
    return destination


def update(project: Path, **data: object) -> None:
    copier.run_update(
        project,
        data=data,
        defaults=True,
        overwrite=True,
        quiet=True,
        vcs_ref=VcsRef.CURRENT,  # the API spelling of `--vcs-ref=:current:`
    )


def test_removing_a_domain_is_refused(template_snapshot: Path, tmp_path: Path) -> None:
    project = generate(template_snapshot, tmp_path / "project", ["posts", "tags"])

    with pytest.raises(ValueError, match="removing domains tags would drop them"):
        update(project, domains=["posts"])

    assert (project / "src/my_api/tags/router.py").is_file()
    assert git(project, "status", "--porcelain") == ""


def test_removing_a_domain_with_explicit_opt_in(template_snapshot: Path, tmp_path: Path) -> None:
    project = generate(template_snapshot, tmp_path / "project", ["posts", "tags"])

    update(project, domains=["posts"], allow_domain_removal=True)

    assert "tags_router" not in (project / "src/my_api/domains.py").read_text()
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["domains"] == ["posts"]
    assert "allow_domain_removal" not in answers


@pytest.mark.slow
def test_adding_a_domain_merges_and_keeps_edits(template_snapshot: Path, tmp_path: Path) -> None:
    project = generate(template_snapshot, tmp_path / "project", ["posts"])
    secret_before = (project / ".env").read_text()
    router = project / "src/my_api/posts/router.py"
    router.write_text(router.read_text() + "\n\n# Project-specific note kept across updates.\n")
    git(project, "commit", "--quiet", "--all", "--message", "edit posts router")

    update(project, domains=["posts", "order_items"])

    assert (project / "src/my_api/order_items/service.py").is_file()
    assert (
        project / "migrations/versions/order_items/order_items_0001_create_order_items.py"
    ).is_file()
    assert (project / "tests/order_items/test_order_items_api.py").is_file()
    assert "order_items_router" in (project / "src/my_api/domains.py").read_text()
    assert "Project-specific note kept across updates." in router.read_text()
    assert (project / ".env").read_text() == secret_before
    leftovers = [
        p for p in rendered_files(project) if p.suffix == ".rej" or "<<<<<<<" in p.read_text()
    ]
    assert leftovers == []

    timer = StepTimer(project)
    timer.run("uv sync", str(BIN / "uv"), "sync", "--quiet", env=uv_env("3.12"))
    timer.run("pytest", str(project / ".venv/bin/pytest"), "-q", "-p", "no:cacheprovider")
    database = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'update.db'}"}
    run_alembic(timer, "alembic", "upgrade:heads", "check", env=database)


# --- make remove-domain / make migration / make migrate on real databases -----------------
# Projects on a real database with rows: SQLite, PostgreSQL (where a missing cross-domain
# dependency fails) and MariaDB. "dev" is the database the developer works on; "prod" stays
# at the old schema until it gets the change the way a deployment does, `alembic upgrade heads`.


@dataclass
class Database:
    url: str
    server: DatabaseServer | None = None

    def sql(self, statement: str) -> str:
        if self.server is None:
            with closing(sqlite3.connect(self.url.partition(":///")[2])) as connection:
                rows = connection.execute(statement).fetchall()
                connection.commit()
            return "\n".join("|".join(str(value) for value in row) for row in rows)
        name = self.url.rpartition("/")[2].partition("?")[0]
        return self.server.query(name, statement)

    def tables(self) -> set[str]:
        query = {
            None: "SELECT name FROM sqlite_master WHERE type = 'table'",
            "postgresql": "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
            "mysql": "SHOW TABLES",
        }[self.server.engine if self.server else None]
        return set(self.sql(query).split())

    def count(self, table: str) -> int:
        return int(self.sql(f"SELECT COUNT(*) FROM {table}"))  # noqa: S608  # fixed names


def new_database(
    engine: str, label: str, tmp_path: Path, servers: dict[str, DatabaseServer]
) -> Database:
    if engine == "sqlite":
        return Database(f"sqlite+aiosqlite:///{tmp_path / label}.db")
    if engine not in servers:
        servers[engine] = DatabaseServer(engine).start()
    return Database(servers[engine].create_database(label), servers[engine])


def seed(database: Database, auth: bool) -> None:
    """A row in each domain table; with auth, owned by a user (a foreign key to users)."""
    stamp = "'2026-01-01 00:00:00'"
    owner_column, owner = ("", "")
    if auth:
        database.sql(
            "INSERT INTO users (email, hashed_password, role, is_active, created_at, updated_at)"
            " VALUES ('owner@example.com', 'x', 'user', TRUE, '2026-01-01', '2026-01-01')"
        )
        owner_column, owner = ", owner_id", ", (SELECT id FROM users)"
    for table in ("posts", "tags"):
        database.sql(  # fixed names and values: test data
            f"INSERT INTO {table} (name, version, created_at, updated_at{owner_column})"  # noqa: S608
            f" VALUES ('{table} row', 1, {stamp}, {stamp}{owner})"
        )


def installed_project(
    template_snapshot: Path, tmp_path: Path, database: str, auth: str
) -> tuple[Path, StepTimer, dict[str, str]]:
    project = generate(
        template_snapshot, tmp_path / "project", ["posts", "tags"], database=database, auth=auth
    )
    env = {**uv_env("3.12"), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    timer = StepTimer(project)
    timer.run("uv sync", str(BIN / "uv"), "sync", "--quiet", env=env)
    git(project, "add", "uv.lock")
    git(project, "commit", "--quiet", "--message", "lock dependencies")
    return project, timer, env


def domains_script(
    project: Path, *args: str, env: dict[str, str], timer: StepTimer | None = None
) -> CompletedProcess[str]:
    """`make add-domain` / `make remove-domain` (which run it with copier from uv's cache)."""
    started = time.perf_counter()
    result = subprocess.run(
        [str(BIN / "python"), "scripts/domains.py", *args],
        cwd=project,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if timer is not None:
        step = args[0]
        timer.steps[step] = timer.steps.get(step, 0.0) + time.perf_counter() - started
    return result


def project_tree(project: Path) -> dict[str, bytes]:
    return tree(project, ignore={".venv", ".git", "__pycache__", ".mypy_cache", ".ruff_cache"})


REMOVAL_VARIANTS = [
    pytest.param("sqlite", "jwt", id="sqlite-jwt"),
    pytest.param("postgresql", "session", id="postgresql-session"),
    pytest.param("mysql", "none", id="mysql-none"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("engine", "auth"), REMOVAL_VARIANTS)
def test_remove_domain_drops_its_tables_through_migrate(
    template_snapshot: Path,
    tmp_path: Path,
    engine: str,
    auth: str,
    database_servers: dict[str, DatabaseServer],
    record_property: Callable[[str, object], None],
) -> None:
    """`make remove-domain`: checks first, no database touched; the drop is a revision that
    `make migrate` applies here and `alembic upgrade heads` applies to any other database."""
    project, timer, env = installed_project(template_snapshot, tmp_path, engine, auth)
    dev, prod = (new_database(engine, label, tmp_path, database_servers) for label in "dp")
    for database in (dev, prod):
        run_alembic(timer, "alembic", "upgrade:heads", env={**env, "DATABASE_URL": database.url})
        seed(database, auth != "none")
    env["DATABASE_URL"] = dev.url

    # Refused: an unknown domain, a dirty tree. Nothing changes, files or rows, and no
    # traceback.
    (project / "README.md").write_text((project / "README.md").read_text() + "\nwip\n")
    before = project_tree(project)
    for name, message in (("nope", "no domain 'nope'"), ("tags", "uncommitted changes")):
        refused = domains_script(project, "remove", name, env=env)
        assert refused.returncode == 1, refused.stderr
        assert message in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert project_tree(project) == before
    assert (dev.count("posts"), dev.count("tags")) == (1, 1)
    git(project, "checkout", "README.md")

    removed = domains_script(project, "remove", "tags", env=env, timer=timer)
    assert removed.returncode == 0, removed.stderr + removed.stdout
    assert "make migrate" in removed.stdout

    for gone in ("src/my_api/tags", "tests/tags", "migrations/versions/tags"):
        assert not (project / gone).exists(), gone
    assert "tags_router" not in (project / "src/my_api/domains.py").read_text()
    assert "versions/tags" not in (project / "alembic.ini").read_text()
    retired = project / "migrations/versions/retired"
    assert sorted(path.name for path in retired.iterdir()) == [
        "tags_0001_create_tags.py",
        "tags_0002_add_version.py",
        "tags_0003_drop_tags.py",
    ]
    drop = (retired / "tags_0003_drop_tags.py").read_text()
    assert 'down_revision: str | Sequence[str] | None = "tags_0002"' in drop
    assert "my_api.tags" not in drop
    assert dev.count("tags") == 1, "the script itself must not touch a database"

    timer.run("make migrate", "make", "migrate", env=env)
    assert "tags" not in dev.tables()
    assert dev.count("posts") == 1
    if auth != "none":
        assert dev.count("users") == 1
    run_alembic(timer, "alembic", "check", env=env)

    # Another environment at the old schema gets the same drop from the normal deployment.
    prod_env = {**env, "DATABASE_URL": prod.url}
    run_alembic(timer, "alembic", "upgrade:heads", "check", env=prod_env)
    assert "tags" not in prod.tables()
    assert prod.count("posts") == 1

    # The drop's downgrade recreates the tables, empty; upgrading drops them again.
    run_alembic(timer, "alembic", "downgrade:tags_0002", env=prod_env)
    assert prod.count("tags") == 0
    run_alembic(timer, "alembic", "upgrade:heads", "check", env=prod_env)
    assert "tags" not in prod.tables()

    timer.run("ruff", str(project / ".venv/bin/ruff"), "check", ".", env=env)
    timer.run("ruff", str(project / ".venv/bin/ruff"), "format", "--check", ".", env=env)
    record_property(
        "variant_timing", json.dumps({"variant": f"remove-{engine}-{auth}", "steps": timer.steps})
    )


@pytest.mark.slow
def test_removed_domain_history_survives_updates_and_the_suite_passes(
    template_snapshot: Path,
    tmp_path: Path,
    mypy_cache: dict[str, str],
    record_property: Callable[[str, object], None],
) -> None:
    """After a committed removal, later updates (adding a domain) leave `retired/` alone:
    its files are in neither render, so they are the project's own."""
    project, timer, env = installed_project(template_snapshot, tmp_path, "sqlite", "jwt")
    env["DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'dev.db'}"
    removed = domains_script(project, "remove", "tags", env=env, timer=timer)
    assert removed.returncode == 0, removed.stderr + removed.stdout
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "--message", "remove the tags domain")
    retired = {
        path: path.read_bytes() for path in (project / "migrations/versions/retired").rglob("*.py")
    }

    added = domains_script(project, "add", "orders", env=env, timer=timer)
    assert added.returncode == 0, added.stderr + added.stdout
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "--message", "add the orders domain")
    update(project, domains=["posts", "orders"])  # a plain re-render, what `make update` does

    assert {
        path: path.read_bytes() for path in (project / "migrations/versions/retired").rglob("*.py")
    } == retired
    assert (project / "src/my_api/orders/router.py").is_file()
    assert_no_conflicts(project)
    run_alembic(timer, "alembic", "upgrade:heads", "check", env=env)
    timer.run("mypy", str(project / ".venv/bin/mypy"), env={**env, **mypy_cache})
    timer.run("pytest", str(project / ".venv/bin/pytest"), "-q", "-p", "no:cacheprovider", env=env)

    refused = domains_script(project, "add", "tags", env=env)
    assert refused.returncode == 1
    assert "removed earlier" in refused.stderr
    record_property(
        "variant_timing", json.dumps({"variant": "removed-then-updated", "steps": timer.steps})
    )


@pytest.mark.slow
def test_remove_domain_refuses_a_domain_another_one_references(
    template_snapshot: Path, tmp_path: Path
) -> None:
    """A foreign key from posts to tags: dropping tags would break posts, so the removal is
    refused before anything changes, saying what to do."""
    project, _, env = installed_project(template_snapshot, tmp_path, "sqlite", "none")
    models = project / "src/my_api/posts/models.py"
    models.write_text(
        models.read_text().replace("from sqlalchemy import ", "from sqlalchemy import ForeignKey, ")
        + '    tag_id: Mapped[int | None] = mapped_column(ForeignKey("tags.id"))\n'
    )
    git(project, "commit", "--quiet", "--all", "--message", "posts reference tags")
    before = project_tree(project)

    refused = domains_script(project, "remove", "tags", env=env)

    assert refused.returncode == 1
    assert "posts.tag_id references tags.id: remove that foreign key first" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert project_tree(project) == before


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_migration_autogenerates_one_domain_at_a_time(
    template_snapshot: Path,
    tmp_path: Path,
    engine: str,
    database_servers: dict[str, DatabaseServer],
    record_property: Callable[[str, object], None],
) -> None:
    """Pending changes in two domains: `make migration DOMAIN=posts` writes only posts'
    into the posts branch; a NOT NULL column without a server default is refused."""
    project, timer, env = installed_project(template_snapshot, tmp_path, engine, "none")
    dev = new_database(engine, "dev", tmp_path, database_servers)
    env["DATABASE_URL"] = dev.url
    timer.run("make migrate", "make", "migrate", env=env)
    seed(dev, auth=False)
    posts_models = project / "src/my_api/posts/models.py"
    posts_models.write_text(posts_models.read_text() + "    rank: Mapped[int]\n")
    tags_models = project / "src/my_api/tags/models.py"
    tags_models.write_text(
        tags_models.read_text() + "    color: Mapped[str | None] = mapped_column(String(20))\n"
    )

    def make_migration(domain: str) -> CompletedProcess[str]:
        return subprocess.run(
            ["make", "migration", f"DOMAIN={domain}", "MSG=more fields"],
            cwd=project,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=False,
        )

    refused = make_migration("posts")
    assert refused.returncode != 0
    assert "new NOT NULL column posts.rank has no server_default" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert list((project / "migrations/versions/posts").glob("2*.py")) == []

    unknown = make_migration("nope")
    assert unknown.returncode != 0
    assert "no domain 'nope' (migration branches: posts tags)" in unknown.stdout

    posts_models.write_text(
        posts_models.read_text().replace(
            "rank: Mapped[int]", 'rank: Mapped[int] = mapped_column(server_default="0")'
        )
    )
    generated = make_migration("posts")
    assert generated.returncode == 0, generated.stderr
    (revision,) = (project / "migrations/versions/posts").glob("2*.py")
    source = revision.read_text()
    assert "rank" in source
    assert "color" not in source
    assert 'down_revision: str | Sequence[str] | None = "posts_0001"' in source  # posts@head
    timer.run("make migrate", "make", "migrate", env=env)
    assert dev.sql("SELECT rank FROM posts") == "0"  # the existing row got the default

    pending = subprocess.run(
        [str(project / ".venv/bin/alembic"), "check"],
        cwd=project,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert pending.returncode != 0
    assert "color" in pending.stderr + pending.stdout

    assert make_migration("tags").returncode == 0
    (revision,) = (project / "migrations/versions/tags").glob("2*.py")
    assert "color" in revision.read_text()
    assert "rank" not in revision.read_text()
    timer.run("make migrate", "make", "migrate", env=env)
    run_alembic(timer, "alembic", "check", env=env)
    record_property(
        "variant_timing", json.dumps({"variant": f"migration-{engine}", "steps": timer.steps})
    )


@pytest.mark.slow
def test_migrate_reports_an_unreachable_database_in_one_line(
    template_snapshot: Path, tmp_path: Path, database_servers: dict[str, DatabaseServer]
) -> None:
    project, _, env = installed_project(template_snapshot, tmp_path, "postgresql", "none")
    database = new_database("postgresql", "reach", tmp_path, database_servers)
    assert database.server is not None
    port = database.server.port
    closed = free_port()
    name = database.url.rpartition("/")[2]
    cases = {
        f"nobody@127.0.0.1:{port}/{name}": 'role "nobody" does not exist',
        f"nobody@127.0.0.1:{closed}/{name}": "",
    }
    for where, reason in cases.items():
        user, _, address = where.partition("@")
        url = f"postgresql+asyncpg://{user}:not-this-secret@{address}"
        result = subprocess.run(
            ["make", "migrate"],
            cwd=project,
            env={**os.environ, **env, "DATABASE_URL": url},
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode != 0
        assert "Traceback" not in result.stderr, result.stderr
        assert "not-this-secret" not in result.stdout + result.stderr
        # Alembic's own failure format: the message logged once, then "FAILED: <message>";
        # around it only make's echo of the command and its "Error" line.
        expected = f"cannot reach the database at {where}: {reason}"
        # make's own lines read "make:" or, under another make (`make test`), "make[1]:".
        logged = [line for line in result.stderr.splitlines() if not MAKE_LINE.match(line)]
        assert len(logged) == 1, result.stderr
        assert expected in logged[0]
        printed = [line for line in result.stdout.splitlines() if not MAKE_LINE.match(line)]
        # make's echo of the command, then alembic's one line.
        assert printed[1:] == [f"FAILED: {logged[0].partition('] ')[2]}"]


def test_remove_domain_command_refuses_unknown_and_last_domain(
    template_snapshot: Path, tmp_path: Path
) -> None:
    project = generate(template_snapshot, tmp_path / "project", ["posts"])
    for name, message in (
        ("nope", "no domain 'nope'"),
        ("posts", "at least one domain"),
        ("../src", "not a domain name"),
    ):
        result = domains_script(project, "remove", name, env={})
        assert result.returncode == 1
        assert message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert git(project, "status", "--porcelain") == ""


def test_add_domain_command_prints_the_questionnaire_refusal_in_one_line(
    template_snapshot: Path, tmp_path: Path
) -> None:
    project = generate(template_snapshot, tmp_path / "project", ["posts"])
    for args, message in (
        (["class"], "Python keyword"),
        (["posts"], "already exists"),
        (["news", "News"], "'News' is not a singular"),
        (["news", "data"], 'gives the singular "data" (model class "Data"), which clashes'),
        (["news", "post"], "which an earlier domain has"),
    ):
        result = domains_script(project, "add", *args, env={})
        assert result.returncode == 1
        assert message in result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) <= 2, result.stderr  # + copier's note
    assert git(project, "status", "--porcelain") == ""


def test_add_domain_command_records_a_given_singular(
    template_snapshot: Path, tmp_path: Path
) -> None:
    """`make add-domain NAME=news SINGULAR=news_item` writes the {name, singular} form."""
    project = generate(template_snapshot, tmp_path / "project", ["posts"])

    result = domains_script(project, "add", "news", "news_item", env={})

    assert result.returncode == 0, result.stderr
    assert "Added domain 'news' (singular 'news_item')" in result.stdout
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["domains"] == ["posts", {"name": "news", "singular": "news_item"}]
    assert "class NewsItem(" in (project / "src/my_api/news/models.py").read_text()


def test_remove_domain_command_keeps_the_other_domains_in_their_form(
    template_snapshot: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refusals name domains of both forms, and what remove passes on to copier keeps
    each remaining entry as it was written (the drop plan and copier are stubbed here; the
    slow tests above run them for real)."""
    news = {"name": "news", "singular": "news_item"}
    project = generate(template_snapshot, tmp_path / "project", ["posts", news])
    result = domains_script(project, "remove", "nope", env={})
    assert "no domain 'nope' (domains: posts, news)" in result.stderr

    monkeypatch.chdir(project)
    spec = importlib.util.spec_from_file_location("domains_script", "scripts/domains.py")
    assert spec is not None
    assert spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    updates: list[list[object]] = []
    monkeypatch.setattr(script, "_check_clean_tree", lambda: None)
    monkeypatch.setattr(script, "_drop_plan", lambda name: {"tables": []})
    monkeypatch.setattr(script, "_copier_update", lambda domains, **_: updates.append(domains))
    monkeypatch.setattr(script, "_retire_history", lambda name: script.RETIRED)

    script.remove("news", ["posts", news])
    script.remove("posts", ["posts", news])

    assert updates == [["posts"], [news]]


# --- Updating projects generated from released versions --------------------------------
# A clone of this repository with every release tag rebuilt from releases.toml, plus the
# working tree as a commit after them (tests/release_repo.py): projects are generated from
# a release and updated to the working tree, which must equal a fresh render of it.

# Fixed secrets keep renders byte-comparable (each is passed only to versions that ask it).
SECRETS = {"secret_key": "f" * 64, "database_password": "p" * 32}


def release_variants(version: str) -> list[Variant]:
    """Projects generated at a release whose answers, together, use every value of every
    matrix question that release offered (round-robin, moving the database off a refused
    combination): no released choice is left out of the update tests."""
    released = yaml.safe_load(git(ROOT, "show", f"{RELEASES[version]}:copier.yml"))
    values = {
        question: choices(question, released)
        for question in MATRIX_QUESTIONS
        if question in released
    }
    databases = values["database"]
    variants = []
    for index in range(max(len(offered) for offered in values.values())):
        answers = {question: offered[index % len(offered)] for question, offered in values.items()}
        for shift in range(len(databases)):
            if not is_forbidden(answers):
                break
            answers["database"] = databases[(index + shift + 1) % len(databases)]
        variants.append(Variant("-".join(answers.values()), answers))
    return variants


RELEASED_PROJECTS = [
    pytest.param(version, variant, id=f"v{version}-{variant.id}")
    for version in RELEASES
    for variant in release_variants(version)
]
CONFLICT_MARKERS = ("<<<<<<< ", ">>>>>>> ")


@pytest.fixture(scope="module")
def release_repo(tmp_path_factory: pytest.TempPathFactory) -> ReleaseRepo:
    return build_release_repo(tmp_path_factory.mktemp("release-repo") / "template")


def copy_at(repo: ReleaseRepo, ref: str, destination: Path, answers: dict[str, object]) -> Path:
    """`copier copy --vcs-ref=<ref> --defaults`, as a user would, without --trust."""
    questions = yaml.safe_load(git(repo.path, "show", f"{ref}:copier.yml"))
    secrets = {name: value for name, value in SECRETS.items() if name in questions}
    copier.run_copy(
        str(repo.path),
        destination,
        data={**secrets, **answers},
        defaults=True,
        vcs_ref=ref,
        quiet=True,
    )
    return destination


def commit_all(project: Path, message: str) -> None:
    if not (project / ".git").exists():
        git(project, "init", "--quiet", "--initial-branch=main")
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "--allow-empty", "--message", message)


def update_to_newest_tag(project: Path) -> None:
    """`copier update --defaults`, what a generated project's `make update` runs: the newest
    tag, which in the release repository is the working tree's commit."""
    copier.run_update(project, defaults=True, overwrite=True, quiet=True)


def project_answers(project: Path) -> dict[str, object]:
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))
    return dict(answers)


def tree(project: Path, ignore: set[str]) -> dict[str, bytes]:
    files = {str(path.relative_to(project)): path.read_bytes() for path in rendered_files(project)}
    return {name: content for name, content in files.items() if name not in ignore}


def assert_same_tree(actual: Path, expected: Path, ignore: set[str]) -> None:
    """Same files with the same bytes; on failure, say which and show the first diffs."""
    mine, theirs = tree(actual, ignore), tree(expected, ignore)
    report = []
    if only := sorted(mine.keys() - theirs.keys()):
        report.append(f"only in the updated project: {only}")
    if only := sorted(theirs.keys() - mine.keys()):
        report.append(f"only in the fresh render: {only}")
    differing = sorted(name for name in mine.keys() & theirs.keys() if mine[name] != theirs[name])
    for name in differing[:5]:
        diff = difflib.unified_diff(
            theirs[name].decode(errors="replace").splitlines(),
            mine[name].decode(errors="replace").splitlines(),
            f"fresh/{name}",
            f"updated/{name}",
            lineterm="",
        )
        report.append("\n".join(diff))
    if differing[5:]:
        report.append(f"... and {len(differing) - 5} more differing files: {differing[5:]}")
    assert report == [], "\n".join(report)


def assert_no_conflicts(project: Path) -> None:
    leftovers = [
        str(path.relative_to(project))
        for path in rendered_files(project)
        if path.suffix == ".rej"
        or any(marker in path.read_text(errors="replace") for marker in CONFLICT_MARKERS)
    ]
    assert leftovers == [], f"conflicts left by copier update: {leftovers}"


def check_update(project: Path) -> int:
    """`copier check-update --quiet` (docs/updating.md): exit status 2 when a newer tag exists."""
    command = [str(BIN / "copier"), "check-update", "--quiet"]
    result = subprocess.run(command, cwd=project, capture_output=True, text=True, check=False)
    assert result.returncode in {0, 2}, result.stderr
    return result.returncode


def fresh_render(repo: ReleaseRepo, project: Path, destination: Path) -> Path:
    """The working tree rendered from scratch with the answers the project now records."""
    answers = project_answers(project)
    assert answers["_commit"] == repo.head_tag
    questions = {k: v for k, v in answers.items() if not k.startswith("_")}
    return copy_at(repo, repo.head_tag, destination, questions)


@pytest.mark.parametrize(("version", "variant"), RELEASED_PROJECTS)
def test_untouched_release_project_updates_to_a_fresh_render(
    release_repo: ReleaseRepo, tmp_path: Path, version: str, variant: Variant
) -> None:
    project = copy_at(release_repo, f"v{version}", tmp_path / "project", dict(variant.answers))
    commit_all(project, f"Generated from v{version}")
    env_before = (project / ".env").read_bytes()
    assert check_update(project) == 2  # `copier check-update --quiet`: a newer version exists

    update_to_newest_tag(project)

    assert_no_conflicts(project)
    fresh = fresh_render(release_repo, project, tmp_path / "fresh")
    # `.env` belongs to the project after the first copy (_skip_if_exists): never rewritten.
    assert_same_tree(project, fresh, ignore={".env"})
    assert (project / ".env").read_bytes() == env_before
    commit_all(project, f"Update to {release_repo.head_tag}")
    assert check_update(project) == 0


# Typical edits of a generated project, applied to a release's project and, for comparison,
# to a fresh render of the working tree: updating must give exactly the edited fresh render.
ENDPOINT = '''

@router.get("/about/domain")
async def about_posts() -> dict[str, str]:
    """Added by the project after generation: kept across template updates."""
    return {"domain": "posts", "owner": "project"}
'''
ADDED_TEST = '''"""Added by the project after generation: kept across template updates."""

from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient


async def test_about_endpoint_added_by_the_project(app: FastAPI) -> None:
    transport = ASGITransport(app=app)
    async with AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/posts/about/domain")

    assert response.status_code == 200
    assert response.json() == {"domain": "posts", "owner": "project"}
'''
SETTING_BEFORE, SETTING_AFTER = "max_items: int = 10_000", "max_items: int = 2_000"
DELETED = ".pre-commit-config.yaml"


def edit_project(project: Path) -> None:
    """A new endpoint in a domain router, a changed domain setting, an added test file and a
    deleted generated file (all committed), and a changed local setting in `.env`."""
    router = project / "src/my_api/posts/router.py"
    router.write_text(router.read_text() + ENDPOINT)
    config = project / "src/my_api/posts/config.py"
    assert SETTING_BEFORE in config.read_text(), f"{config}: the edit no longer applies"
    config.write_text(config.read_text().replace(SETTING_BEFORE, SETTING_AFTER))
    (project / "tests/posts/test_posts_about.py").write_text(ADDED_TEST)
    (project / DELETED).unlink()
    with (project / ".env").open("a") as env:
        env.write("LOG_LEVEL=DEBUG\n")


@pytest.mark.slow
@pytest.mark.parametrize("version", list(RELEASES))
def test_edited_release_project_keeps_its_edits_and_passes_its_suite(
    release_repo: ReleaseRepo,
    tmp_path: Path,
    version: str,
    mypy_cache: dict[str, str],
    record_property: Callable[[str, object], None],
) -> None:
    project = copy_at(release_repo, f"v{version}", tmp_path / "project", {})
    commit_all(project, f"Generated from v{version}")
    edit_project(project)
    commit_all(project, "Project edits")
    env_before = (project / ".env").read_bytes()

    update_to_newest_tag(project)

    assert_no_conflicts(project)
    assert ENDPOINT in (project / "src/my_api/posts/router.py").read_text()
    assert SETTING_AFTER in (project / "src/my_api/posts/config.py").read_text()
    assert (project / "tests/posts/test_posts_about.py").read_text() == ADDED_TEST
    assert not (project / DELETED).exists()
    assert (project / ".env").read_bytes() == env_before
    # Every template change merged: the same edits on a fresh render give the same tree.
    fresh = fresh_render(release_repo, project, tmp_path / "fresh")
    edit_project(fresh)
    assert_same_tree(project, fresh, ignore={".env"})

    timer = StepTimer(project)
    try:
        timer.run("uv sync", str(BIN / "uv"), "sync", "--quiet", env=uv_env("3.12"))
        venv = project / ".venv/bin"
        timer.run("ruff", str(venv / "ruff"), "check", ".")
        timer.run("ruff", str(venv / "ruff"), "format", "--check", ".")
        timer.run("mypy", str(venv / "mypy"), env=mypy_cache)
        timer.run("pytest", str(venv / "pytest"), *PYTEST_ARGS)
        database = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'update.db'}"}
        run_alembic(timer, "alembic", "upgrade:heads", "check", env=database)
    finally:
        row = {"variant": f"update from v{version}", "steps": timer.steps}
        record_property("variant_timing", json.dumps(row))
