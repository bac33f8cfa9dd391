"""Render every variant, check the raw render, then run each project's own checks."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.helpers import (
    BIN,
    LEFTOVER_JINJA,
    VARIANTS,
    StepTimer,
    Variant,
    package_name,
    rendered_files,
    uv_env,
)

RENDER_SECONDS: dict[str, float] = {}


@pytest.fixture(scope="session")
def render(copie_session) -> Callable[[Variant], Path]:  # pytest-copie is untyped
    """Render each variant once per test session (and per xdist worker)."""
    cache: dict[str, Path] = {}

    def _render(variant: Variant) -> Path:
        if variant.id not in cache:
            started = time.perf_counter()
            result = copie_session.copy(extra_answers=dict(variant.answers))
            RENDER_SECONDS[variant.id] = time.perf_counter() - started
            assert result.exit_code == 0, result.exception
            assert result.exception is None
            cache[variant.id] = Path(result.project_dir)
        return cache[variant.id]

    return _render


def by_variant(test: Callable[..., None]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize(
        "variant",
        [pytest.param(v, id=v.id, marks=pytest.mark.xdist_group(v.id)) for v in VARIANTS],
    )(test)


@by_variant
def test_expected_files_exist(render: Callable[[Variant], Path], variant: Variant) -> None:
    project = render(variant)
    package = project / "src" / package_name(variant.answers)
    for domain in variant.domains:
        for module in (
            "__init__",
            "router",
            "schemas",
            "models",
            "service",
            "dependencies",
            "exceptions",
            "constants",
            "config",
        ):
            assert (package / domain / f"{module}.py").is_file(), f"{domain}/{module}.py"
        assert list((project / "migrations" / "versions" / domain).glob(f"{domain}_0001_*.py"))
        assert (project / "tests" / domain / f"test_{domain}_api.py").is_file()
        assert f"{domain}_router" in (package / "domains.py").read_text()
    has_users = variant.auth != "none"
    assert (package / "auth").is_dir() is has_users
    assert (package / "users").is_dir() is has_users
    assert (project / "Dockerfile").is_file() is (variant.deployment == "docker")
    assert (project / "compose.yaml").is_file() is (variant.deployment == "docker")
    for always in (".gitignore", ".env", ".env.example", "Makefile", "README.md", "alembic.ini"):
        assert (project / always).is_file(), always


@by_variant
def test_no_template_markers_survive(render: Callable[[Variant], Path], variant: Variant) -> None:
    project = render(variant)
    offenders = [
        str(path.relative_to(project))
        for path in rendered_files(project)
        if LEFTOVER_JINJA.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


@by_variant
def test_raw_render_is_ruff_clean(render: Callable[[Variant], Path], variant: Variant) -> None:
    project = render(variant)
    for command in (["format", "--check", "--diff", "."], ["check", "--no-cache", "."]):
        result = subprocess.run(
            [str(BIN / "ruff"), *command], cwd=project, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


YAMLLINT_CONFIG = (
    "{extends: default, rules: {document-start: disable, line-length: {max: 160},"
    " truthy: {check-keys: false}}}"
)


def run_tool(project: Path, *command: str) -> None:
    result = subprocess.run(command, cwd=project, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}{result.stderr}"


@by_variant
def test_ci_and_deployment_files_validate(
    render: Callable[[Variant], Path], variant: Variant
) -> None:
    """Offline validators: hadolint, the Compose and GitHub Actions schemas, yamllint."""
    project = render(variant)
    yaml_files = [".github/workflows/ci.yml", ".pre-commit-config.yaml"]
    run_tool(
        project,
        str(BIN / "check-jsonschema"),
        "--builtin-schema",
        "vendor.github-workflows",
        ".github/workflows/ci.yml",
    )
    if variant.deployment == "docker":
        yaml_files.append("compose.yaml")
        run_tool(project, str(BIN / "hadolint"), "Dockerfile")
        run_tool(
            project,
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            "compose.yaml",
        )
    run_tool(project, str(BIN / "yamllint"), "--strict", "-d", YAMLLINT_CONFIG, *yaml_files)


@by_variant
def test_no_stray_blank_lines(render: Callable[[Variant], Path], variant: Variant) -> None:
    """Jinja tags must not leave doubled blank lines or trailing whitespace behind."""
    project = render(variant)
    for path in rendered_files(project):
        text = path.read_text(encoding="utf-8")
        relative = path.relative_to(project)
        assert not text.startswith("\n"), f"{relative} starts with a blank line"
        assert "\n\n\n\n" not in text, f"{relative} has three blank lines in a row"
        assert all(line == line.rstrip() for line in text.splitlines()), f"{relative}"


@by_variant
def test_answers_file_records_choices_but_no_secret(
    render: Callable[[Variant], Path], variant: Variant
) -> None:
    project = render(variant)
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    env = (project / ".env").read_text()
    secret = next(line for line in env.splitlines() if line.startswith("SECRET_KEY="))
    secret_value = secret.split("=", 1)[1]
    assert len(secret_value) == 64
    assert secret_value not in (project / ".copier-answers.yml").read_text()
    assert answers["domains"] == variant.domains
    assert answers["auth"] == variant.auth
    assert "secret_key" not in answers
    assert ".env" in (project / ".gitignore").read_text().splitlines()


@pytest.mark.slow
@by_variant
def test_project_passes_its_own_checks(
    render: Callable[[Variant], Path],
    variant: Variant,
    record_property: Callable[[str, object], None],
) -> None:
    """uv sync, mypy --strict, pytest with the coverage gate, and the migration cycle."""
    project = render(variant)
    timer = StepTimer(project)
    timer.steps["render"] = RENDER_SECONDS.get(variant.id, 0.0)
    env = uv_env(variant.python_version)
    uv = str(BIN / "uv")
    try:
        timer.run("uv sync", uv, "sync", "--quiet", env=env)
        venv = project / ".venv" / "bin"
        timer.run("mypy", str(venv / "mypy"))
        timer.run("pytest", str(venv / "pytest"), "-q", "-p", "no:cacheprovider")
        database = {"DATABASE_URL": f"sqlite+aiosqlite:///{project / 'migrations-check.db'}"}
        alembic = str(venv / "alembic")
        timer.run("alembic", alembic, "upgrade", "heads", env=database)
        timer.run("alembic", alembic, "check", env=database)
        timer.run("alembic", alembic, "downgrade", "base", env=database)
        timer.run("alembic", alembic, "upgrade", "heads", env=database)
    finally:
        record_property("variant_timing", json.dumps({"variant": variant.id, "steps": timer.steps}))
