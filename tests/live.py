"""A generated project served for real: sign in and write rows through its HTTP API, read
them back, compare what a database held before and after an update of the template."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import stop_gracefully
from tests.servers import free_port
from tests.test_variants import wait_for_status

# Written through the API: non-ASCII in every text column, a long description near the
# released limit (5000 characters), an empty one, and 4-byte characters (utf8mb4 on MySQL).
EMAIL = "live.owner@example.com"
PASSWORD = "correct horse ☕ battery staple"  # noqa: S105  # a test account
FULL_NAME = "Zoë Ångström-Núñez ☕"
LONG_DESCRIPTION = ("Crème brûlée ☕, 焦糖布丁 🍮 et œufs à la neige — " * 120)[:4900]
ITEMS = [
    {"name": "Crème brûlée ☕", "description": "Caramelised custard, served cold 🍮"},
    {"name": "Long read", "description": LONG_DESCRIPTION},
    {"name": "Ωmega — no description", "description": None},
]
EDIT = {"description": "Edited before the update ✓"}


def package_of(project: Path) -> str:
    (package,) = [path.name for path in (project / "src").iterdir() if path.is_dir()]
    return package


@contextmanager
def served(project: Path, env: Mapping[str, str], log: Path) -> Iterator[httpx.Client]:
    """The app under uvicorn as the container runs it, on a free loopback port, ready
    (/ready 200), with a client for it until the block ends (SIGTERM); it must shut down
    cleanly and log no traceback."""
    port = free_port()
    command = [
        str(project / ".venv/bin/uvicorn"),
        f"{package_of(project)}.main:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=project,
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_status(f"{base}/health", 200)
        wait_for_status(f"{base}/ready", 200)
        with httpx.Client(base_url=base, timeout=30) as client:
            yield client
    finally:
        stop_gracefully(process)
    text = log.read_text(errors="replace")
    assert process.returncode in {0, -signal.SIGTERM}, text[-6000:]
    assert "Traceback" not in text, text[-6000:]


def expect(response: httpx.Response, status: int) -> Any:
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url.path} answered "
        f"{response.status_code}, expected {status}: {response.text[:2000]}"
    )
    return response.json() if response.content else None


def secure_cookie(response: httpx.Response, suffix: str) -> str:
    """`name=value` of a Secure cookie, read from Set-Cookie (this server speaks plain http,
    so a cookie jar would never send it back)."""
    return next(
        header.split(";", 1)[0]
        for header in response.headers.get_list("set-cookie")
        if header.split("=", 1)[0].endswith(suffix)
    )


@dataclass
class Account:
    """One user of a served project and the credentials it holds, per auth style."""

    auth: str
    headers: dict[str, str] = field(default_factory=dict)
    refresh_token: str | None = None  # jwt
    api_key: str | None = None  # api_key
    # Revoked at the release: a rotated refresh token, a revoked key, an ended session.
    revoked: str | None = None

    def register(self, client: httpx.Client) -> dict[str, Any]:
        body = {"email": EMAIL, "password": PASSWORD, "full_name": FULL_NAME}
        return expect(client.post("/auth/register", json=body), 201)  # type: ignore[no-any-return]

    def log_in(self, client: httpx.Client) -> None:
        """Sign in with the email and password: writes a refresh token, a session or an
        API key, and sets the headers of the requests that follow."""
        if self.auth == "jwt":
            form = {"username": EMAIL, "password": PASSWORD}
            tokens = expect(client.post("/auth/login", data=form), 200)
            self.refresh_token = tokens["refresh_token"]
            self.headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        elif self.auth == "session":
            login = client.post("/auth/login", json={"email": EMAIL, "password": PASSWORD})
            body = expect(login, 200)
            self.headers = {
                "Cookie": secure_cookie(login, "session"),
                "X-CSRF-Token": body["csrf_token"],
            }
        elif self.auth == "api_key":
            body = {"email": EMAIL, "password": PASSWORD, "name": "Clé de déploiement ☕"}
            created = expect(client.post("/auth/keys", json=body), 201)
            self.api_key = created["key"]
            self.headers = {"X-API-Key": created["key"]}
        else:
            assert self.auth == "none", f"teach Account how auth={self.auth} signs in"

    def refresh(self, client: httpx.Client) -> None:
        """jwt: rotate the refresh token (one more refresh_tokens row, the old one revoked)."""
        tokens = expect(
            client.post("/auth/refresh", json={"refresh_token": self.refresh_token}), 200
        )
        self.revoked = self.revoked or self.refresh_token
        self.refresh_token = tokens["refresh_token"]
        self.headers = {"Authorization": f"Bearer {tokens['access_token']}"}


def write_rows(client: httpx.Client, account: Account, domains: list[str], versioned: bool) -> None:
    """Every table gets rows through the API: the user and its credentials (refresh tokens,
    sessions or API keys, one of them revoked or ended), then ITEMS in every domain, the
    first item of each edited."""
    if account.auth != "none":
        account.register(client)
        account.log_in(client)
        if account.auth == "jwt":
            account.refresh(client)
        if account.auth == "api_key":
            spare = {"email": EMAIL, "password": PASSWORD, "name": "spare key"}
            spare_key = expect(client.post("/auth/keys", json=spare), 201)
            key_id = spare_key["api_key"]["id"]
            expect(client.delete(f"/auth/keys/{key_id}", headers=account.headers), 204)
            account.revoked = spare_key["key"]
        if account.auth == "session":
            ended = Account("session")
            ended.log_in(client)
            expect(client.post("/auth/logout", headers=ended.headers), 204)
            account.revoked = ended.headers["Cookie"]
    for domain in domains:
        resource = f"/{domain.replace('_', '-')}"
        created = [
            expect(client.post(resource, json=item, headers=account.headers), 201) for item in ITEMS
        ]
        first = created[0]
        edit = {**EDIT, "version": first["version"]} if versioned else EDIT
        expect(client.patch(f"{resource}/{first['id']}", json=edit, headers=account.headers), 200)


def read_rows(client: httpx.Client, account: Account, domains: list[str]) -> dict[str, Any]:
    """What the API shows of everything written: each domain's rows (listed and one by
    one, which must agree), the user, and the API keys without their last use."""
    snapshot: dict[str, Any] = {"domains": {}}
    for domain in domains:
        resource = f"/{domain.replace('_', '-')}"
        page = expect(client.get(resource, params={"limit": 100}, headers=account.headers), 200)
        listed = sorted(page["items"], key=lambda item: item["id"])
        assert page["total"] == len(listed)
        for item in listed:
            one = expect(client.get(f"{resource}/{item['id']}", headers=account.headers), 200)
            assert one == item
        snapshot["domains"][domain] = listed
    if account.auth != "none":
        snapshot["me"] = expect(client.get("/users/me", headers=account.headers), 200)
    if account.auth == "api_key":
        keys = expect(client.get("/auth/keys", headers=account.headers), 200)["items"]
        snapshot["keys"] = sorted(
            ({k: v for k, v in key.items() if k != "last_used_at"} for key in keys),
            key=lambda key: key["id"],
        )
    return snapshot


def comparable(value: Any) -> Any:
    """JSON with every `*_at` timestamp parsed: the same instant in another spelling
    (`Z` / `+00:00`, trailing zeros) is the same value, a moved one is not."""
    if isinstance(value, dict):
        return {
            key: datetime.fromisoformat(item)
            if key.endswith("_at") and isinstance(item, str)
            else comparable(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [comparable(item) for item in value]
    return value


def without(snapshot: dict[str, Any], key: str) -> dict[str, Any]:
    """The snapshot with `key` dropped from every domain row."""
    rows = {
        domain: [{k: v for k, v in row.items() if k != key} for row in items]
        for domain, items in snapshot["domains"].items()
    }
    return {**snapshot, "domains": rows}


def save(path: Path, snapshot: dict[str, Any]) -> None:
    path.write_text(json.dumps(snapshot, ensure_ascii=False, indent=2), encoding="utf-8")
