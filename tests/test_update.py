"""`copier update` on a generated project: from every release to the working tree, domains
added, removal guarded, edits and .env kept."""

from __future__ import annotations

import difflib
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import copier
import pytest
import yaml
from copier import VcsRef

from tests.helpers import (
    BIN,
    MATRIX_QUESTIONS,
    ROOT,
    TEMPLATE_PATHS,
    StepTimer,
    Variant,
    choices,
    git,
    is_forbidden,
    rendered_files,
    run_alembic,
    uv_env,
)
from tests.release_repo import RELEASES, ReleaseRepo, build_release_repo


@pytest.fixture(scope="module")
def template_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working tree as a committed repository, so recorded commits stay resolvable."""
    snapshot = tmp_path_factory.mktemp("template-snapshot")
    for name in TEMPLATE_PATHS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, snapshot / name)
        else:
            shutil.copy2(ROOT / name, snapshot / name)
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
    run_alembic(timer, "alembic", "upgrade:heads", "check", env=database)


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
        timer.run("pytest", str(venv / "pytest"), "-q", "-p", "no:cacheprovider")
        database = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'update.db'}"}
        run_alembic(timer, "alembic", "upgrade:heads", "check", env=database)
    finally:
        row = {"variant": f"update from v{version}", "steps": timer.steps}
        record_property("variant_timing", json.dumps(row))
