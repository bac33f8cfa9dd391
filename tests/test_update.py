"""`copier update` on a generated project: domains added, removal guarded, edits and .env kept."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import copier
import pytest
import yaml
from copier import VcsRef

from tests.helpers import BIN, ROOT, StepTimer, rendered_files, uv_env

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Template Tests",
    "GIT_AUTHOR_EMAIL": "tests@example.com",
    "GIT_COMMITTER_NAME": "Template Tests",
    "GIT_COMMITTER_EMAIL": "tests@example.com",
}


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


@pytest.fixture(scope="module")
def template_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working tree as a committed repository, so recorded commits stay resolvable."""
    snapshot = tmp_path_factory.mktemp("template-snapshot")
    shutil.copy2(ROOT / "copier.yml", snapshot / "copier.yml")
    shutil.copytree(ROOT / "includes", snapshot / "includes")
    shutil.copytree(ROOT / "template", snapshot / "template")
    git(snapshot, "init", "--quiet", "--initial-branch=main")
    git(snapshot, "add", "--all")
    git(snapshot, "commit", "--quiet", "--message", "snapshot")
    return snapshot


def generate(snapshot: Path, destination: Path, domains: list[str]) -> Path:
    copier.run_copy(
        str(snapshot),
        destination,
        data={"domains": domains},
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
    timer.run("alembic", str(project / ".venv/bin/alembic"), "upgrade", "heads", env=database)
    timer.run("alembic", str(project / ".venv/bin/alembic"), "check", env=database)


@pytest.mark.slow
def test_remove_domain_command_removes_it_cleanly(template_snapshot: Path, tmp_path: Path) -> None:
    """`make remove-domain`: tables dropped, code/tests/migrations gone, others untouched."""
    project = generate(template_snapshot, tmp_path / "project", ["posts", "tags"])
    database = tmp_path / "remove.db"
    env = {
        **uv_env("3.12"),
        "DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    }
    timer = StepTimer(project)
    timer.run("uv sync", str(BIN / "uv"), "sync", "--quiet", env=env)
    git(project, "add", "uv.lock")
    git(project, "commit", "--quiet", "--message", "lock dependencies")
    timer.run("alembic", str(project / ".venv/bin/alembic"), "upgrade", "heads", env=env)
    posts_router = (project / "src/my_api/posts/router.py").read_text()

    timer.run("remove", str(BIN / "python"), "scripts/domains.py", "remove", "tags", env=env)

    for gone in ("src/my_api/tags", "tests/tags", "migrations/versions/tags"):
        assert not (project / gone).exists(), gone
    assert "tags_router" not in (project / "src/my_api/domains.py").read_text()
    assert (project / "src/my_api/posts/router.py").read_text() == posts_router
    assert yaml.safe_load((project / ".copier-answers.yml").read_text())["domains"] == ["posts"]
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert "tags" not in tables
    assert "posts" in tables
    timer.run("alembic", str(project / ".venv/bin/alembic"), "check", env=env)
    timer.run("pytest", str(project / ".venv/bin/pytest"), "-q", "-p", "no:cacheprovider", env=env)


def test_remove_domain_command_refuses_unknown_and_last_domain(
    template_snapshot: Path, tmp_path: Path
) -> None:
    project = generate(template_snapshot, tmp_path / "project", ["posts"])
    for name, message in (("nope", "no domain 'nope'"), ("posts", "at least one domain")):
        result = subprocess.run(
            [str(BIN / "python"), "scripts/domains.py", "remove", name],
            cwd=project,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 1
        assert message in result.stderr
    assert git(project, "status", "--porcelain") == ""
