"""`copier update` from every release on a live database: rows written through the running
API at the release must read back unchanged from the updated app, whose migrations apply
cleanly (`alembic check`) on top of the released schema.

The file-level update tests (tests/test_update.py) cannot see a release that edited an
already-released migration: the updated project's files are right, but a database created
at the release never gets the change. Only a database that existed before the update does.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.helpers import (
    BIN,
    PYTEST_ARGS,
    ROOT,
    StepTimer,
    Variant,
    choices,
    git,
    run_alembic,
    uv_env,
)
from tests.live import (
    EDIT,
    EMAIL,
    Account,
    comparable,
    expect,
    package_of,
    read_rows,
    save,
    served,
    without,
    write_rows,
)
from tests.release_repo import RELEASES, ReleaseRepo, build_release_repo
from tests.servers import DatabaseServer
from tests.test_update import assert_no_conflicts, commit_all, copy_at, update_to_newest_tag
from tests.test_variants import database_url_for


@dataclass(frozen=True)
class LiveCase:
    version: str
    database: str
    auth: str
    domains: tuple[str, ...] = ("posts", "tags")
    owner_migration: bool = False  # the project added a column and its own revision

    @property
    def id(self) -> str:
        parts = [f"v{self.version}", self.database, self.auth, "-".join(self.domains)]
        return "-".join(parts + (["own-migration"] if self.owner_migration else []))

    @property
    def answers(self) -> dict[str, object]:
        return {"database": self.database, "auth": self.auth, "domains": list(self.domains)}


# Every release with a schema change on every database (0.3.0 changed none: one case);
# between them every auth style each release offered (0.1.0: jwt, none; 0.2.0 adds session,
# api_key), and non-default domain names.
CASES = [
    LiveCase("0.1.0", "sqlite", "jwt"),
    LiveCase("0.1.0", "postgresql", "none", ("orders", "customers")),
    LiveCase("0.1.0", "mysql", "jwt"),
    LiveCase("0.2.0", "sqlite", "api_key"),
    LiveCase("0.2.0", "postgresql", "session"),
    LiveCase("0.2.0", "mysql", "none", ("orders", "customers")),
    LiveCase("0.1.0", "sqlite", "jwt", owner_migration=True),
    LiveCase("0.2.0", "postgresql", "jwt", owner_migration=True),
    LiveCase("0.3.0", "sqlite", "session"),
    LiveCase("0.4.0", "mysql", "api_key"),
    LiveCase("0.5.0", "postgresql", "jwt", ("orders", "customers")),
    LiveCase("0.6.0", "mysql", "session"),
]
assert {case.version for case in CASES} == set(RELEASES), "add the new release to CASES"
# Template bugs these cases found and the template does not fix yet: each one fails until it
# is fixed (strict), then the entry must go.
KNOWN_FAILURES: dict[str, str] = {}


def case_param(case: LiveCase) -> object:
    marks = [pytest.mark.xdist_group(f"update-live-{case.database}")]
    if case.id in KNOWN_FAILURES:
        marks.append(pytest.mark.xfail(reason=KNOWN_FAILURES[case.id], strict=True))
    return pytest.param(case, id=case.id, marks=marks)


@pytest.fixture(scope="module")
def live_release_repo(tmp_path_factory: pytest.TempPathFactory) -> ReleaseRepo:
    return build_release_repo(tmp_path_factory.mktemp("live-release-repo") / "template")


def released_offer(version: str) -> set[str]:
    """The auth styles a release offered, from its own copier.yml."""
    released = yaml.safe_load(git(ROOT, "show", f"{RELEASES[version]}:copier.yml"))
    return set(choices("auth", released))


def test_cases_cover_every_released_auth_style() -> None:
    for version in RELEASES:
        offered = released_offer(version)
        used = {case.auth for case in CASES if case.version == version}
        assert used <= offered, f"v{version} offered no {used - offered}"
    every = set().union(*(released_offer(version) for version in RELEASES))
    assert every == {case.auth for case in CASES}


# The project's own edit at the release: a column on a domain model, its schema fields, and
# the revision `make migration` autogenerates for it on the domain's branch.
SLUG_COLUMN = "    slug: Mapped[str | None] = mapped_column(String(50))\n"
SLUG_CREATE = "    slug: str | None = Field(default=None, max_length=50)\n"
SLUG_PUBLIC = "    slug: str | None = None\n"
RANK_COLUMN = "    rank: Mapped[int | None] = mapped_column()\n"
CREATE_CONFIG = '    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)\n'


def add_slug(project: Path, domain: str) -> None:
    """Columns appended at the end of the model and of the public schema, the create field
    right after its model_config: where a project owner would put them."""
    package = project / "src" / package_of(project) / domain
    models = package / "models.py"
    models.write_text(models.read_text(encoding="utf-8") + SLUG_COLUMN, encoding="utf-8")
    schemas = package / "schemas.py"
    source = schemas.read_text(encoding="utf-8")
    assert source.count(CREATE_CONFIG) == 2, "the Create schema no longer looks as expected"
    source = source.replace(CREATE_CONFIG, CREATE_CONFIG + SLUG_CREATE, 1)
    schemas.write_text(source + SLUG_PUBLIC, encoding="utf-8")


def make_migration(
    timer: StepTimer, project: Path, domain: str, message: str, env: dict[str, str]
) -> Path:
    """The project's own revision for a model change, on the domain's branch.

    `make migration DOMAIN=... MSG=...` where it works. In 0.1.0 it fails ("Path
    migrations/versions/<domain> is not represented in current version locations": that
    alembic.ini had one location, migrations/versions); its owners ran the same alembic
    command without --version-path, which writes the file into migrations/versions/.
    """
    versions = project / "migrations/versions"
    before = set(versions.rglob("*.py"))
    if _make_migration_works(project):
        make = ["make", "migration", f"DOMAIN={domain}", f"MSG={message}", f"UV={BIN / 'uv'}"]
        timer.run("own revision", *make, env=env)
    else:
        alembic = [str(BIN / "uv"), "run", "alembic", "revision", "--autogenerate"]
        timer.run("own revision", *alembic, "--head", f"{domain}@head", "-m", message, env=env)
    (revision,) = set(versions.rglob("*.py")) - before
    assert "op.add_column" in revision.read_text(encoding="utf-8"), revision.read_text()
    return revision


def revision_of(script: Path, name: str) -> str:
    """A revision file's `revision` or `down_revision` id."""
    match = re.search(rf"^{name}: [^=]+ = ['\"]([^'\"]+)['\"]$", script.read_text(), re.M)
    assert match, f"no {name} in {script}"
    return match.group(1)


def _make_migration_works(project: Path) -> bool:
    """0.1.0's alembic.ini names one version location, so `--version-path` is refused."""
    ini = (project / "alembic.ini").read_text(encoding="utf-8")
    return "version_locations = %(here)s/migrations/versions\n" not in ini


@pytest.mark.slow
@pytest.mark.parametrize("case", [case_param(case) for case in CASES])
def test_release_database_survives_the_update(
    live_release_repo: ReleaseRepo,
    database_servers: dict[str, DatabaseServer],
    tmp_path: Path,
    case: LiveCase,
    record_property: Callable[[str, object], None],
) -> None:
    project = tmp_path / "project"
    timer = StepTimer(tmp_path)
    uv = {**uv_env("3.12")}
    domains = list(case.domains)
    try:
        started = time.perf_counter()
        copy_at(live_release_repo, f"v{case.version}", project, case.answers)
        commit_all(project, f"Generated from v{case.version}")
        timer.steps["copy"] = time.perf_counter() - started
        timer.project = project

        # A fresh database for the rows, another for the project's own suite.
        variant = Variant(case.id.replace(".", ""), case.answers)
        if case.database == "sqlite":
            url, suite_url = f"sqlite+aiosqlite:///{tmp_path / 'live.db'}", None
        else:
            url = database_url_for(variant, project, database_servers)[0]
            suite_url = database_url_for(variant, project, database_servers)[0]
        env = {**uv, "DATABASE_URL": url}
        timer.run("uv sync", str(BIN / "uv"), "sync", "--quiet", env=uv)
        timer.run("migrate", "make", "migrate", f"UV={BIN / 'uv'}", env=env)
        if case.owner_migration:
            add_slug(project, domains[0])
            slug = make_migration(timer, project, domains[0], "add slug", env)
            timer.run("migrate", "make", "migrate", f"UV={BIN / 'uv'}", env=env)
        commit_all(project, "Locked, migrated")

        # At the release: write rows into every table through the running app.
        versioned = case.version != "0.1.0"
        account = Account(case.auth)
        started = time.perf_counter()
        with served(project, env, tmp_path / "serve-release.log") as client:
            write_rows(client, account, domains, versioned)
            if case.owner_migration:
                resource = f"/{domains[0].replace('_', '-')}"
                body = {"name": "Slugged ☕", "slug": "slugged-cafe"}
                created = expect(client.post(resource, json=body, headers=account.headers), 201)
                assert created["slug"] == "slugged-cafe"
            before = read_rows(client, account, domains)
        timer.steps["write"] = time.perf_counter() - started
        save(tmp_path / "before.json", before)
        assert all(len(rows) >= 3 for rows in before["domains"].values()), before

        # The update, as `make update` runs it, then what `make install` and `make migrate` do.
        started = time.perf_counter()
        update_to_newest_tag(project)
        assert_no_conflicts(project)
        commit_all(project, f"Update to {live_release_repo.head_tag}")
        timer.steps["update"] = time.perf_counter() - started
        timer.run("uv sync", str(BIN / "uv"), "sync", "--quiet", env=uv)
        timer.run("migrate", "make", "migrate", f"UV={BIN / 'uv'}", env=env)
        run_alembic(timer, "check", "check", env=env)

        # The updated app on the same database: ready, every row as it was.
        started = time.perf_counter()
        with served(project, env, tmp_path / "serve-updated.log") as client:
            after = check_updated_app(client, account, case, before)
        timer.steps["verify"] = time.perf_counter() - started
        save(tmp_path / "after.json", after)

        if case.owner_migration:
            # The project's next own revision still lands on its domain branch: one head.
            models = project / "src" / package_of(project) / domains[0] / "models.py"
            models.write_text(models.read_text(encoding="utf-8") + RANK_COLUMN, encoding="utf-8")
            rank = make_migration(timer, project, domains[0], "add rank", env)
            assert revision_of(rank, "down_revision") == revision_of(slug, "revision")
            run_alembic(timer, "own revision", "upgrade:heads", "check", env=env)

        suite = {"DATABASE_URL": suite_url, "TEST_DATABASE_URL": suite_url} if suite_url else {}
        venv = project / ".venv/bin"
        timer.run("pytest", str(venv / "pytest"), *PYTEST_ARGS, env=suite)
    finally:
        row = {"variant": f"live {case.id}", "steps": timer.steps}
        record_property("variant_timing", json.dumps(row))


def check_updated_app(
    client: httpx.Client, account: Account, case: LiveCase, before: dict[str, Any]
) -> dict[str, Any]:
    """Old credentials still work, rows read back unchanged (a `version` the release did
    not have reads 1 on untouched rows), the same email and password sign in again, an old
    row updates with the version it read and a stale version is refused, revoked
    credentials stay refused. Returns what was read back."""
    if case.auth == "jwt":
        account.refresh(client)  # the refresh token issued at the release
    elif case.auth == "session":
        session = expect(client.get("/auth/session", headers=account.headers), 200)
        assert session["user"]["email"] == EMAIL
    elif case.auth == "api_key":
        assert expect(client.get("/users/me", headers=account.headers), 200)["email"] == EMAIL
    after = read_rows(client, account, list(case.domains))
    compared = after
    if case.version == "0.1.0":
        for rows in after["domains"].values():
            untouched = [row for row in rows if row["description"] != EDIT["description"]]
            assert [row["version"] for row in untouched] == [1] * len(untouched), rows
        compared = without(after, "version")
    if case.auth != "none" and "email_verified" not in before["me"]:
        # Added in 0.6.0 (users.email_verified_at): no account was verified before it.
        assert after["me"]["email_verified"] is False, after["me"]
        me = {key: value for key, value in after["me"].items() if key != "email_verified"}
        compared = {**compared, "me": me}
    assert comparable(compared) == comparable(before)

    # The same credentials sign in again, as they did at the release.
    fresh = Account(case.auth)
    if case.auth != "none":
        fresh.log_in(client)
        assert expect(client.get("/users/me", headers=fresh.headers), 200)["email"] == EMAIL

    # An old row updates with the version it read; the same version again is refused.
    domain = case.domains[-1]
    resource = f"/{domain.replace('_', '-')}"
    row = after["domains"][domain][-1]
    edit = {"name": "Renamed after the update ✓", "version": row["version"]}
    updated = expect(client.patch(f"{resource}/{row['id']}", json=edit, headers=fresh.headers), 200)
    assert updated["version"] == row["version"] + 1
    assert updated["description"] == row["description"]
    stale = client.patch(f"{resource}/{row['id']}", json=edit, headers=fresh.headers)
    assert stale.status_code == 409, stale.text
    new = {"name": "Written after the update ☕", "description": None}
    assert expect(client.post(resource, json=new, headers=fresh.headers), 201)["version"] == 1

    # What was revoked at the release stays revoked (last: a reused refresh token may end
    # every session of its family).
    if case.auth == "api_key":
        revoked = client.get("/users/me", headers={"X-API-Key": str(account.revoked)})
        assert revoked.status_code == 401, revoked.text
    if case.auth == "session":
        ended = client.get("/auth/session", headers={"Cookie": str(account.revoked)})
        assert ended.status_code == 401, ended.text
    if case.auth == "jwt":
        reused = client.post("/auth/refresh", json={"refresh_token": account.revoked})
        assert reused.status_code == 401, reused.text
    return after
