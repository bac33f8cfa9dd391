"""Render every variant, check the raw render, then run each project's own checks."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import RENDER_SECONDS
from tests.helpers import (
    BIN,
    LEFTOVER_JINJA,
    VARIANTS,
    StepTimer,
    Variant,
    app_key,
    package_name,
    rendered_files,
    stop_gracefully,
    suite_variants,
    uv_env,
)
from tests.servers import DatabaseServer, free_port


def parametrize_variants(variants: list[Variant]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize(
        "variant",
        [pytest.param(v, id=v.id, marks=pytest.mark.xdist_group(v.id)) for v in variants],
    )


by_variant = parametrize_variants(VARIANTS)


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
    container_target = variant.deployment in {"docker", "kubernetes", "cloud_run"}
    assert (project / "Dockerfile").is_file() is container_target
    assert (project / ".dockerignore").is_file() is container_target
    assert (project / "deploy").is_dir() is (
        variant.deployment in {"kubernetes", "cloud_run", "vps"}
    )
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


APP_PATHS = ("src", "tests", "migrations", "pyproject.toml", "alembic.ini", "Makefile")


def app_digest(project: Path) -> str:
    digest = hashlib.sha256()
    for path in rendered_files(project):
        relative = path.relative_to(project)
        if relative.parts[0] in APP_PATHS:
            digest.update(str(relative).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def test_variants_sharing_an_application_render_it_identically(
    render: Callable[[Variant], Path],
) -> None:
    """Why the slow suite runs once per application, not once per deployment choice."""
    groups: dict[tuple[str, ...], list[Variant]] = {}
    for variant in VARIANTS:
        groups.setdefault(app_key(variant), []).append(variant)
    shared = [group for group in groups.values() if len(group) > 1]
    assert shared, "expected deployment choices to share an application"
    for group in shared:
        digests = {variant.id: app_digest(render(variant)) for variant in group}
        assert len(set(digests.values())) == 1, digests


@pytest.fixture(scope="session")
def database_servers() -> Iterator[dict[str, DatabaseServer]]:
    """Real PostgreSQL / MariaDB servers, started on first use, stopped at the end."""
    servers: dict[str, DatabaseServer] = {}
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def database_url_for(
    variant: Variant, project: Path, servers: dict[str, DatabaseServer]
) -> tuple[str, DatabaseServer | None]:
    """A fresh database for this variant: a SQLite file, or one on a real server."""
    if variant.database == "sqlite":
        return f"sqlite+aiosqlite:///{project / 'variant-check.db'}", None
    if variant.database not in servers:
        servers[variant.database] = DatabaseServer(variant.database).start()
    server = servers[variant.database]
    return server.create_database(variant.id), server


def get_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310  # loopback
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return 0


def wait_for_status(url: str, expected: int, timeout: float = 30.0) -> float:
    started = time.monotonic()
    while (status := get_status(url)) != expected:
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{url} answered {status}, expected {expected}")
        time.sleep(0.2)
    return time.monotonic() - started


def serve_and_probe(
    project: Path, variant: Variant, env: dict[str, str], server: DatabaseServer | None
) -> None:
    """Start the app the way the container does, then check /health and /ready.

    With a real server, stop the database: /ready turns 503 and recovers without restarting
    the app once the database is back.
    """
    port = free_port()
    command = [
        str(project / ".venv/bin/uvicorn"),
        f"{package_name(variant.answers)}.main:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    process = subprocess.Popen(
        command,
        cwd=project,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_status(f"{base}/health", 200)
        wait_for_status(f"{base}/ready", 200)
        if server is not None:
            server.pause()
            try:
                wait_for_status(f"{base}/ready", 503, timeout=20)
                assert get_status(f"{base}/health") == 200
            finally:
                server.resume()
            wait_for_status(f"{base}/ready", 200, timeout=30)
    finally:
        output = stop_gracefully(process)
    # Graceful shutdown on SIGTERM: uvicorn finishes the lifespan, then re-raises the signal.
    assert process.returncode in {0, -signal.SIGTERM}, output
    assert "Application shutdown complete" in output, output
    assert "Traceback" not in output, output


def new_revision_for_a_model_change(
    project: Path, variant: Variant, timer: StepTimer, env: dict[str, str]
) -> None:
    """`make migration` autogenerates a lint-clean revision in the domain's own folder."""
    domain = variant.domains[0]
    models = project / "src" / package_name(variant.answers) / domain / "models.py"
    source = models.read_text(encoding="utf-8")
    table = f'    __tablename__ = "{domain}"\n'
    assert table in source
    models.write_text(
        source.replace(table, table + "    slug: Mapped[str | None] = mapped_column(String(50))\n"),
        encoding="utf-8",
    )
    versions = project / "migrations" / "versions" / domain
    before = set(versions.iterdir())
    make = ["make", "migration", f"DOMAIN={domain}", "MSG=add slug", f"UV={BIN / 'uv'}"]
    timer.run("revision", *make, env=env)
    (revision,) = set(versions.iterdir()) - before
    assert revision.name.endswith("_add_slug.py")
    assert "op.add_column" in revision.read_text(encoding="utf-8")
    for ruff in (["check", "--no-cache", str(revision)], ["format", "--check", str(revision)]):
        timer.run("revision", str(BIN / "ruff"), *ruff)
    alembic = str(project / ".venv" / "bin" / "alembic")
    timer.run("revision", alembic, "upgrade", "heads", env=env)
    timer.run("revision", alembic, "check", env=env)


@pytest.mark.slow
@parametrize_variants(suite_variants())
def test_project_passes_its_own_checks(
    render: Callable[[Variant], Path],
    variant: Variant,
    database_servers: dict[str, DatabaseServer],
    record_property: Callable[[str, object], None],
) -> None:
    """uv sync, mypy --strict, pytest with the coverage gate, the migration cycle on the
    variant's real database, and the app serving /health and /ready."""
    project = render(variant)
    timer = StepTimer(project)
    timer.steps["render"] = RENDER_SECONDS.get(variant.id, 0.0)
    env = uv_env(variant.python_version)
    try:
        timer.run("uv sync", str(BIN / "uv"), "sync", "--quiet", env=env)
        venv = project / ".venv" / "bin"
        timer.run("mypy", str(venv / "mypy"))
        timer.run("lint-imports", str(venv / "lint-imports"))
        url, server = database_url_for(variant, project, database_servers)
        database = {"DATABASE_URL": url, "TEST_DATABASE_URL": url}
        timer.run("pytest", str(venv / "pytest"), "-q", "-p", "no:cacheprovider", env=database)
        alembic = str(venv / "alembic")
        for command in (
            ["upgrade", "heads"],
            ["check"],
            ["downgrade", "base"],
            ["upgrade", "heads"],
        ):
            timer.run("alembic", alembic, *command, env=database)
        started = time.perf_counter()
        serve_and_probe(project, variant, database, server)
        timer.steps["serve"] = time.perf_counter() - started
        new_revision_for_a_model_change(project, variant, timer, {**env, **database})
    finally:
        record_property("variant_timing", json.dumps({"variant": variant.id, "steps": timer.steps}))
