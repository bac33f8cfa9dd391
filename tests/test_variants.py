"""Render every variant, check the raw render, then run each project's own checks."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import RENDER_SECONDS
from tests.helpers import (
    BIN,
    LEFTOVER_JINJA,
    PYTEST_ARGS,
    VARIANTS,
    StepTimer,
    Variant,
    app_key,
    choices,
    package_name,
    rendered_files,
    run_alembic,
    serve_command,
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
        assert (package / domain / "jobs.py").is_file() is variant.redis
        assert (project / "tests" / domain / f"test_{domain}_jobs.py").is_file() is variant.redis
    has_users = variant.auth != "none"
    assert (package / "auth").is_dir() is has_users
    assert (package / "users").is_dir() is has_users
    for redis_only in ("core/redis_client.py", "core/jobs.py", "worker.py"):
        assert (package / redis_only).is_file() is variant.redis, redis_only
    assert (project / "tests" / "core" / "test_jobs.py").is_file() is variant.redis
    has_shared_test = (project / "tests" / "auth" / "test_auth_throttle_shared.py").is_file()
    assert has_shared_test is (variant.redis and has_users)
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


LONGEST_NAMES = next(v for v in VARIANTS if v.id == "longest-names")


@parametrize_variants(
    [
        Variant(f"longest-names-{auth}", {**LONGEST_NAMES.answers, "auth": auth})
        for auth in choices("auth")
        if auth != LONGEST_NAMES.auth
    ]
)
def test_longest_names_are_ruff_clean_in_every_auth_style(
    render: Callable[[Variant], Path], variant: Variant
) -> None:
    """The longest package name wraps every import line of every style's own files (only
    one style runs the whole suite with these names)."""
    test_raw_render_is_ruff_clean(render, variant)


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
    """Offline validators: yamllint on every YAML file, the GitHub Actions and Compose
    schemas (each deployment target's own checks, hadolint included, are in
    test_deployment.py)."""
    project = render(variant)
    yaml_files = sorted(
        str(path.relative_to(project))
        for pattern in ("deploy/**/*.yaml", ".github/workflows/*.yml", ".*.yaml", "*.yaml")
        for path in project.glob(pattern)
    )
    assert ".github/workflows/ci.yml" in yaml_files
    assert ".pre-commit-config.yaml" in yaml_files
    run_tool(project, str(BIN / "yamllint"), "--strict", "-d", YAMLLINT_CONFIG, *yaml_files)
    run_tool(
        project,
        str(BIN / "check-jsonschema"),
        "--builtin-schema",
        "vendor.github-workflows",
        ".github/workflows/ci.yml",
    )
    if variant.deployment == "docker":
        check_compose_schema(project)


def check_compose_schema(project: Path) -> None:
    """compose.yaml against the Compose specification's schema (offline)."""
    run_tool(
        project,
        str(BIN / "check-jsonschema"),
        "--builtin-schema",
        "vendor.compose-spec",
        "compose.yaml",
    )


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
    assert answers["domains"] == variant.answers.get("domains", variant.domains)
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


def redis_url_for(variant: Variant, servers: dict[str, DatabaseServer]) -> dict[str, str]:
    """REDIS_URL (and TEST_REDIS_URL) of a Redis database of its own, where the variant has
    Redis; nothing otherwise."""
    if not variant.redis:
        return {}
    if "redis" not in servers:
        servers["redis"] = DatabaseServer("redis").start()
    url = servers["redis"].create_database(variant.id)
    return {"REDIS_URL": url, "TEST_REDIS_URL": url}


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


# The served app gets a pool smaller than the load run's clients: requests must queue, then
# either succeed or get a fast 503 (pool timeout), never a hang or a 500.
SMALL_POOL = {
    "DATABASE_POOL_SIZE": "2",
    "DATABASE_MAX_OVERFLOW": "0",
    "DATABASE_POOL_TIMEOUT": "0.1",
}
LOAD_CLIENTS = 24
LOAD_SECONDS = 3.0
HANG_TIMEOUT = 120  # seconds: generous, only to fail instead of hanging


def attempt_login(base: str, style: str, account: dict[str, str]) -> httpx.Response:
    """The password check of auth=`style`, whatever it answers."""
    if style == "api_key":
        return httpx.post(f"{base}/auth/keys", json={**account, "name": "tests"}, timeout=30)
    if style == "session":
        return httpx.post(f"{base}/auth/login", json=account, timeout=30)
    assert style == "jwt", f"teach attempt_login() how auth={style} logs in"
    form = {"username": account["email"], "password": account["password"]}
    return httpx.post(f"{base}/auth/login", data=form, timeout=30)


def log_in(base: str, style: str, account: dict[str, str]) -> dict[str, str]:
    """Headers of an existing account, logged in the way auth=`style` logs in."""
    if style == "none":
        return {}
    login = attempt_login(base, style, account)
    assert login.status_code == (201 if style == "api_key" else 200), login.text
    if style == "api_key":
        return {"X-API-Key": login.json()["key"]}
    if style == "session":
        # The cookie is Secure: read it from Set-Cookie, since this server speaks plain http.
        cookie = next(
            header.split(";", 1)[0]
            for header in login.headers.get_list("set-cookie")
            if header.split("=", 1)[0].endswith("session")
        )
        return {"Cookie": cookie, "X-CSRF-Token": login.json()["csrf_token"]}
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


# The account `sign_in` registers on a served app.
SERVE_ACCOUNT = {"email": "serve-check@example.com", "password": "serve-check password"}


def sign_in(base: str, variant: Variant) -> dict[str, str]:
    """Headers of a freshly registered user where the API has users; none for a public API."""
    if variant.auth == "none":
        return {}
    registered = httpx.post(f"{base}/auth/register", json=SERVE_ACCOUNT, timeout=30)
    assert registered.status_code == 201, registered.text
    return log_in(base, variant.auth, SERVE_ACCOUNT)


def assert_fast_503(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "service_unavailable"
    assert int(response.headers["retry-after"]) > 0


async def load(url: str, headers: dict[str, str]) -> Counter[int]:
    """LOAD_CLIENTS clients reading and creating for LOAD_SECONDS; the statuses they got."""
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + LOAD_SECONDS
    limits = httpx.Limits(max_connections=LOAD_CLIENTS)
    async with httpx.AsyncClient(headers=headers, timeout=30, limits=limits) as client:

        async def one_client(index: int) -> None:
            while time.monotonic() < deadline:
                if index % 4:
                    response = await client.get(url)
                else:
                    response = await client.post(url, json={"name": f"load {index}"})
                statuses[response.status_code] += 1
                if response.status_code == 503:
                    assert_fast_503(response)

        await asyncio.gather(*(one_client(index) for index in range(LOAD_CLIENTS)))
    return statuses


def check_load(
    base: str, resource: str, headers: dict[str, str], server: DatabaseServer, database: str
) -> None:
    """More clients than pooled connections: successes and fast 503s only, no leaked connection."""
    statuses = asyncio.run(asyncio.wait_for(load(resource, headers), HANG_TIMEOUT))
    assert set(statuses) <= {200, 201, 503}, statuses
    assert statuses[200] > 0, statuses
    assert statuses[201] > 0, statuses
    metrics = httpx.get(f"{base}/metrics", timeout=30).text
    assert "db_pool_checked_out_connections 0.0" in metrics
    sessions = server.query(
        database,
        "SELECT count(*), count(*) FILTER (WHERE state <> 'idle') FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    opened, busy = (int(value) for value in sessions.split("|"))
    assert busy == 0, sessions
    assert opened <= int(SMALL_POOL["DATABASE_POOL_SIZE"]), sessions


def check_outage(base: str, resource: str, headers: dict[str, str], server: DatabaseServer) -> None:
    """Stop the database: /ready and every database route answer 503 (JSON, Retry-After)
    without hanging, /health stays 200, and all recover without restarting the app."""
    server.pause()
    try:
        wait_for_status(f"{base}/ready", 503, timeout=20)
        assert get_status(f"{base}/health") == 200
        assert_fast_503(httpx.get(resource, headers=headers, timeout=HANG_TIMEOUT))
    finally:
        server.resume()
    wait_for_status(f"{base}/ready", 200, timeout=30)
    assert httpx.get(resource, headers=headers, timeout=30).status_code == 200


def check_redis_outage(
    base: str, resource: str, variant: Variant, headers: dict[str, str], redis: DatabaseServer
) -> None:
    """Stop Redis: /ready answers 503, a login is refused with 503 and Retry-After (fail
    closed: no password is checked uncounted), what does not need Redis keeps working, and
    all recover without restarting the app."""
    redis.pause()
    try:
        wait_for_status(f"{base}/ready", 503, timeout=20)
        assert get_status(f"{base}/health") == 200
        if variant.auth != "none":
            assert_fast_503(attempt_login(base, variant.auth, SERVE_ACCOUNT))
        assert httpx.get(resource, headers=headers, timeout=HANG_TIMEOUT).status_code == 200
    finally:
        redis.resume()
    wait_for_status(f"{base}/ready", 200, timeout=30)
    log_in(base, variant.auth, SERVE_ACCOUNT)


def database_of(url: str) -> str:
    """What a database URL names: the file for SQLite, the database on a server."""
    if url.startswith("sqlite"):
        return url.split(":///", 1)[1]
    return urllib.parse.urlsplit(url).path.lstrip("/")


@contextmanager
def locked_table(url: str, table: str, server: DatabaseServer | None) -> Iterator[None]:
    """Another session holds `table` exclusively: the app's queries on it wait."""
    if server is not None:
        with server.locked_table(database_of(url), table):
            yield
        return
    connection = sqlite3.connect(database_of(url), isolation_level=None)
    connection.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        connection.execute("COMMIT")
        connection.close()


def stored_descriptions(
    url: str, table: str, name: str, server: DatabaseServer | None
) -> list[str]:
    sql = f"SELECT description FROM {table} WHERE name = '{name}'"  # noqa: S608  # test data
    if server is not None:
        return server.query(database_of(url), sql).splitlines()
    with closing(sqlite3.connect(database_of(url))) as connection:
        return [row[0] for row in connection.execute(sql)]


def check_sigterm_finishes_requests_in_flight(
    process: subprocess.Popen[bytes],
    base: str,
    resource: str,
    headers: dict[str, str],
    env: dict[str, str],
    server: DatabaseServer | None,
    table: str,
) -> None:
    """SIGTERM (a deploy, a scale-down) while a create waits on a database lock: the server
    stops accepting connections, finishes the create, then exits. The row is complete."""
    answers: list[httpx.Response | Exception] = []

    def create() -> None:
        item = {"name": "in-flight", "description": "written in full"}
        try:
            answers.append(httpx.post(resource, json=item, headers=headers, timeout=60))
        except httpx.HTTPError as error:
            answers.append(error)

    request = threading.Thread(target=create)
    with locked_table(env["DATABASE_URL"], table, server):
        request.start()
        time.sleep(1.0)  # the create reaches the app and waits for the lock
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert process.poll() is None, "exited with a request in flight"
        assert get_status(f"{base}/health") == 0, "still accepting connections after SIGTERM"
    request.join(timeout=HANG_TIMEOUT)
    process.wait(timeout=HANG_TIMEOUT)

    assert len(answers) == 1
    answer = answers[0]
    assert isinstance(answer, httpx.Response), answer
    assert answer.status_code == 201, answer.text
    stored = stored_descriptions(env["DATABASE_URL"], table, "in-flight", server)
    assert stored == ["written in full"]


def serve_and_probe(
    project: Path,
    variant: Variant,
    env: dict[str, str],
    server: DatabaseServer | None,
    redis: DatabaseServer | None = None,
) -> None:
    """Start the app the way the container does, then check /health and /ready.

    On PostgreSQL, a load run with more clients than pooled connections. With a real
    server, stop the database: /ready and the routes turn 503 and recover without
    restarting the app once the database is back; the same with Redis, where logins fail
    closed. Last, SIGTERM with a request in flight.
    """
    port = free_port()
    command = serve_command(project, variant.answers, port)
    log = project / "serve.log"
    with log.open("wb") as output:  # a file, not a pipe: a load run logs thousands of lines
        process = subprocess.Popen(
            command,
            cwd=project,
            env={**os.environ, **env, **SMALL_POOL},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    table = variant.domains[0]
    resource = f"{base}/{table.replace('_', '-')}"
    try:
        wait_for_status(f"{base}/health", 200)
        wait_for_status(f"{base}/ready", 200)
        headers = sign_in(base, variant)
        if server is not None and variant.database == "postgresql":
            check_load(base, resource, headers, server, database_of(env["DATABASE_URL"]))
        if server is not None:
            check_outage(base, resource, headers, server)
        if redis is not None:
            check_redis_outage(base, resource, variant, headers, redis)
        check_sigterm_finishes_requests_in_flight(
            process, base, resource, headers, env, server, table
        )
    finally:
        stop_gracefully(process)
    output_text = log.read_text(errors="replace")
    # Graceful shutdown on SIGTERM: uvicorn finishes the lifespan, then re-raises the signal.
    assert process.returncode in {0, -signal.SIGTERM}, output_text
    assert "Application shutdown complete" in output_text, output_text
    assert "Traceback" not in output_text, output_text


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
    run_alembic(timer, "revision", "upgrade:heads", "check", env=env)


@pytest.mark.slow
@parametrize_variants(suite_variants())
def test_project_passes_its_own_checks(
    render_copy: Callable[[Variant], Path],
    variant: Variant,
    database_servers: dict[str, DatabaseServer],
    mypy_cache: dict[str, str],
    record_property: Callable[[str, object], None],
) -> None:
    """uv sync, mypy --strict, pytest with the coverage gate, the migration cycle on the
    variant's real database, and the app serving /health and /ready."""
    project = render_copy(variant)
    timer = StepTimer(project)
    timer.steps["render"] = RENDER_SECONDS.get(variant.id, 0.0)
    env = uv_env(variant.python_version)
    try:
        timer.run("uv sync", str(BIN / "uv"), "sync", "--quiet", env=env)
        venv = project / ".venv" / "bin"
        timer.run("mypy", str(venv / "mypy"), env=mypy_cache)
        timer.run("lint-imports", str(venv / "lint-imports"))
        url, server = database_url_for(variant, project, database_servers)
        database = {"DATABASE_URL": url, "TEST_DATABASE_URL": url}
        database |= redis_url_for(variant, database_servers)
        timer.run("pytest", str(venv / "pytest"), *PYTEST_ARGS, env=database)
        run_alembic(
            timer,
            "alembic",
            "upgrade:heads",
            "check",
            "downgrade:base",
            "upgrade:heads",
            env=database,
        )
        started = time.perf_counter()
        redis = database_servers["redis"] if variant.redis else None
        serve_and_probe(project, variant, database, server, redis)
        timer.steps["serve"] = time.perf_counter() - started
        new_revision_for_a_model_change(project, variant, timer, {**env, **database})
    finally:
        record_property("variant_timing", json.dumps({"variant": variant.id, "steps": timer.steps}))
