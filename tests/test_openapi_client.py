"""A client generated from each auth style's OpenAPI document (openapi-python-client) drives
the served app: register, log in the style's way, and a domain's create, read, list, update
(with its version) and delete.

The test knows the HTTP surface only (methods and paths): it finds each operation's generated
module through the document's tag and operation id, and builds request bodies with the
generated models' `from_dict`, so it follows renamed endpoint functions and modules.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.helpers import (
    BIN,
    StepTimer,
    Variant,
    run_alembic,
    serve_command,
    stop_gracefully,
    suite_variants,
    uv_env,
)
from tests.servers import free_port
from tests.test_variants import wait_for_status

# One SQLite application per auth style, the ones test_variants checks: same xdist group,
# so the worker reuses its render.
STYLES: dict[str, Variant] = {}
for _variant in suite_variants():
    if _variant.database == "sqlite" and _variant.domains == ["posts", "tags"]:
        STYLES.setdefault(_variant.auth, _variant)
ACCOUNT = {"email": "client@example.com", "password": "client test password"}


class GeneratedApi:
    """The generated client package, addressed by method and path."""

    def __init__(self, package: ModuleType, document: dict[str, Any], base_url: str) -> None:
        self.package = package
        self.document = document
        self.base_url = base_url

    def module(self, method: str, path: str) -> ModuleType:
        operation = self.document["paths"][path][method]
        tag = re.sub(r"\W+", "_", operation["tags"][0].lower())
        return importlib.import_module(
            f"{self.package.__name__}.api.{tag}.{operation['operationId']}"
        )

    def call(
        self, client: object, method: str, path: str, body: dict[str, Any] | None = None, **kw: Any
    ) -> Any:
        """The operation's `sync_detailed` response (status_code, parsed, headers)."""
        function = self.module(method, path).sync_detailed
        if body is not None:
            body_type = typing.get_type_hints(function)["body"]
            kw["body"] = body_type.from_dict(body)
        return function(client=client, **kw)

    def client(self, **options: Any) -> Any:
        return self.package.Client(base_url=self.base_url, **options)

    def authenticated(self, token: str, **options: Any) -> Any:
        return self.package.AuthenticatedClient(base_url=self.base_url, token=token, **options)


def log_in(api: GeneratedApi, style: str) -> object:
    """A client of a freshly registered user, logged in the way auth=`style` logs in."""
    anonymous = api.client()
    if style == "none":
        return anonymous
    registered = api.call(anonymous, "post", "/auth/register", ACCOUNT)
    assert registered.status_code == 201, registered.content
    assert registered.parsed.email == ACCOUNT["email"]
    if style == "jwt":
        form = {"username": ACCOUNT["email"], "password": ACCOUNT["password"]}
        login = api.call(anonymous, "post", "/auth/login", form)
        assert login.status_code == 200, login.content
        return api.authenticated(login.parsed.access_token)
    if style == "session":
        login = api.call(anonymous, "post", "/auth/login", ACCOUNT)
        assert login.status_code == 200, login.content
        # The cookie is Secure: sent by hand, since this server speaks plain http.
        cookie = next(
            header.split(";", 1)[0]
            for header in login.headers.get_list("set-cookie")
            if header.split("=", 1)[0].endswith("session")
        )
        return api.authenticated(
            login.parsed.csrf_token,
            prefix="",
            auth_header_name="X-CSRF-Token",
            headers={"Cookie": cookie},
        )
    assert style == "api_key", f"teach log_in() how auth={style} logs in"
    created = api.call(anonymous, "post", "/auth/keys", {**ACCOUNT, "name": "client"})
    assert created.status_code == 201, created.content
    return api.authenticated(created.parsed.key, prefix="", auth_header_name="X-API-Key")


def run_crud(api: GeneratedApi, client: object) -> None:
    """posts: create, read, list, update with the version read (a stale one is a 409),
    delete."""
    created = api.call(client, "post", "/posts", {"name": "first", "description": "from a client"})
    assert created.status_code == 201, created.content
    post = created.parsed
    assert (post.name, post.version) == ("first", 1)

    read = api.call(client, "get", "/posts/{post_id}", post_id=post.id)
    assert read.status_code == 200, read.content
    assert read.parsed.to_dict() == post.to_dict()

    listed = api.call(client, "get", "/posts", limit=10)
    assert listed.status_code == 200, listed.content
    assert [item.id for item in listed.parsed.items] == [post.id]

    update = {"name": "renamed", "version": post.version}
    updated = api.call(client, "patch", "/posts/{post_id}", update, post_id=post.id)
    assert updated.status_code == 200, updated.content
    assert (updated.parsed.name, updated.parsed.version) == ("renamed", 2)
    stale = api.call(client, "patch", "/posts/{post_id}", update, post_id=post.id)
    assert stale.status_code == 409, stale.content
    assert stale.parsed.error.code == "version_conflict"

    deleted = api.call(client, "delete", "/posts/{post_id}", post_id=post.id)
    assert deleted.status_code == 204, deleted.content
    gone = api.call(client, "get", "/posts/{post_id}", post_id=post.id)
    assert gone.status_code == 404, gone.content


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Callable[[Path, Variant], str]]:
    """Serves an installed project with uvicorn on a loopback port; stops it at the end."""
    processes: list[subprocess.Popen[bytes]] = []

    def _serve(project: Path, variant: Variant) -> str:
        port = free_port()
        command = serve_command(project, variant.answers, port)
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'client.db'}",
            "OPENAPI_ENABLED": "true",
        }
        with (tmp_path / "serve.log").open("wb") as log:
            processes.append(
                subprocess.Popen(
                    command, cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT
                )
            )
        base = f"http://127.0.0.1:{port}"
        wait_for_status(f"{base}/health", 200)
        return base

    yield _serve
    for process in processes:
        stop_gracefully(process)


def generate_client(document: dict[str, Any], destination: Path, name: str) -> ModuleType:
    """openapi-python-client's package for the document, imported."""
    destination.mkdir()
    spec = destination / "openapi.json"
    spec.write_text(json.dumps(document), encoding="utf-8")
    config = destination / "client.json"
    # No post hooks: ruff formatting the generated code is not what this test checks.
    config.write_text(json.dumps({"package_name_override": name, "post_hooks": []}))
    result = subprocess.run(
        [
            str(BIN / "openapi-python-client"),
            "generate",
            "--path",
            str(spec),
            "--config",
            str(config),
            "--meta",
            "none",
            "--output-path",
            str(destination / name),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The generator reports schemas it could not turn into models on stdout, and still exits 0.
    assert "Warning" not in result.stdout, result.stdout
    sys.path.insert(0, str(destination))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(destination))


@pytest.mark.slow
@pytest.mark.parametrize(
    "variant",
    [pytest.param(v, id=v.auth, marks=pytest.mark.xdist_group(v.id)) for v in STYLES.values()],
)
def test_generated_client_registers_logs_in_and_runs_crud(
    render_copy: Callable[[Variant], Path],
    served: Callable[[Path, Variant], str],
    variant: Variant,
    tmp_path: Path,
) -> None:
    project = render_copy(variant)
    timer = StepTimer(project)
    timer.run("uv sync", str(BIN / "uv"), "sync", "--quiet", env=uv_env(variant.python_version))
    database = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'client.db'}"}
    run_alembic(timer, "alembic", "upgrade:heads", env=database)
    base = served(project, variant)
    document = httpx.get(f"{base}/openapi.json", timeout=30).json()

    package = generate_client(document, tmp_path / "generated", f"client_{variant.auth}")

    operations = [operation for path in document["paths"].values() for operation in path.values()]
    ids = [operation["operationId"] for operation in operations]
    assert len(set(ids)) == len(ids), ids
    assert not any(name.startswith("Body_") for name in document["components"]["schemas"])
    api = GeneratedApi(package, document, base)
    run_crud(api, log_in(api, variant.auth))
