"""The reference template of `make bench`: fastapi/full-stack-fastapi-template's backend.

At a pinned commit, from (in order) a local git directory holding it (`--reference-repo` /
BENCH_REFERENCE_REPO), the extract cached under `.bench/`, or a `git clone` of upstream. It
targets Python 3.14; the bench runs it on the generated project's 3.13 after the patches in
PATCHES, each of which fails loudly when its target text is gone (a moved pin must not
silently measure something else). Installed with uv from its own `pyproject.toml` and
`uv.lock`, migrated and given its first superuser as its `scripts/prestart.sh` does, then
seeded with a normal user owning `rows` items (its item routes filter by owner for
non-superusers, like the generated app's bench user and its posts).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PIN = "68adb40d37425f6f8668ec7e5a054500d045e43e"
UPSTREAM = "https://github.com/fastapi/full-stack-fastapi-template"
# The uv workspace root (its lock) and the backend member: all the bench needs.
PATHS = ("pyproject.toml", "uv.lock", "backend")
CLONE_TIMEOUT_S = 120


class ReferenceUnavailableError(Exception):
    """No copy of the reference template can be had: the reason, in one line."""


class PatchError(Exception):
    """A patch's target text is not in the reference tree (the pin moved?)."""


@dataclass(frozen=True)
class Patch:
    path: str
    old: str
    new: str
    why: str


PATCHES = (
    Patch(
        "backend/app/api/deps.py",
        "except InvalidTokenError, ValidationError:",
        "except (InvalidTokenError, ValidationError):",
        "PEP 758 unparenthesised except (3.14 syntax)",
    ),
    Patch(
        "backend/app/models.py",
        "items: list[Item] = Relationship(",
        'items: list["Item"] = Relationship(',
        "forward reference to Item (3.14 defers annotations, PEP 649)",
    ),
    Patch(
        "backend/pyproject.toml",
        'requires-python = ">=3.14,<4.0"',
        'requires-python = ">=3.11,<4.0"',
        "run on the generated project's Python (3.11 or newer)",
    ),
)
# `app.frontend("/", directory=...)` serves the built frontend, which is not in git.
FRONTEND_LINE = 'app.frontend("/", directory=FRONTEND_DIR)'
FRONTEND_INDEX = "backend/app/frontend/index.html"


def apply_patches(tree: Path, patches: tuple[Patch, ...] = PATCHES) -> list[str]:
    """Apply every patch (each target must occur exactly once) and create the frontend
    index its main.py serves; returns what was done, one line each."""
    done = []
    for patch in patches:
        path = tree / patch.path
        if not path.is_file():
            raise PatchError(f"{patch.path}: missing ({patch.why})")
        text = path.read_text(encoding="utf-8")
        count = text.count(patch.old)
        if count != 1:
            raise PatchError(
                f"{patch.path}: expected {patch.old!r} once, found it {count} times ({patch.why})"
            )
        path.write_text(text.replace(patch.old, patch.new), encoding="utf-8")
        done.append(f"{patch.path}: {patch.why}")
    main = tree / "backend/app/main.py"
    if not main.is_file() or FRONTEND_LINE not in main.read_text(encoding="utf-8"):
        raise PatchError(f"backend/app/main.py: {FRONTEND_LINE!r} not found")
    index = tree / FRONTEND_INDEX
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_text("<!doctype html><title>bench</title>\n", encoding="utf-8")
    done.append(f"{FRONTEND_INDEX}: created (the frontend is built, not in git)")
    return done


def last_line(*outputs: str) -> str:
    """The last non-empty line of the first output that has one (an error's gist)."""
    for output in outputs:
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        if lines:
            return lines[-1]
    return "no output"


def patches_digest() -> str:
    payload = json.dumps([[p.path, p.old, p.new] for p in PATCHES] + [FRONTEND_LINE])
    return hashlib.sha256(payload.encode()).hexdigest()[:8]


def git(*args: str, timeout: float | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], capture_output=True, check=False, timeout=timeout)


def extract(git_dir: str, dest: Path) -> None:
    """`git archive` of the pinned commit's PATHS into dest (a git dir or a clone)."""
    found = git("-C", git_dir, "cat-file", "-e", f"{PIN}^{{commit}}")
    if found.returncode != 0:
        raise ReferenceUnavailableError(f"{git_dir} does not hold commit {PIN[:8]}")
    archive = git("-C", git_dir, "archive", PIN, *PATHS)
    if archive.returncode != 0:
        message = archive.stderr.decode(errors="replace").strip().splitlines()
        raise ReferenceUnavailableError(f"git archive in {git_dir} failed: {message[-1:]}")
    dest.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)


def clone_and_extract(dest: Path, url: str | None = None) -> None:
    url = url or UPSTREAM
    with tempfile.TemporaryDirectory(prefix="full-stack-clone-") as directory:
        try:
            cloned = git(
                "clone", "--quiet", "--bare", "--filter=blob:none", url, directory,
                timeout=CLONE_TIMEOUT_S,
            )  # fmt: skip
        except subprocess.TimeoutExpired as error:
            raise ReferenceUnavailableError(
                f"git clone {url} took over {CLONE_TIMEOUT_S} s"
            ) from error
        if cloned.returncode != 0:
            lines = cloned.stderr.decode(errors="replace").strip().splitlines() or ["no output"]
            raise ReferenceUnavailableError(f"git clone {url} failed: {lines[-1]}")
        extract(directory, dest)


def obtain(cache: Path, reference_repo: str | None = None, url: str | None = None) -> Path:
    """The patched reference tree under `cache` (extracted once, reused after)."""
    tree = cache / f"full-stack-{PIN[:8]}-{patches_digest()}"
    marker = tree / ".bench-ready"
    if reference_repo:
        if not marker.is_file():
            shutil.rmtree(tree, ignore_errors=True)
            extract(reference_repo, tree)
    elif not marker.is_file():
        shutil.rmtree(tree, ignore_errors=True)
        clone_and_extract(tree, url)
    if not marker.is_file():
        try:
            done = apply_patches(tree)
        except PatchError:
            shutil.rmtree(tree, ignore_errors=True)
            raise
        marker.write_text("\n".join(done) + "\n")
    return tree


def install(tree: Path, uv: Path, python: str) -> None:
    """Its own lock, its own virtualenv (the workspace root's .venv), on `python` (the
    generated project's interpreter)."""
    env = {
        **os.environ,
        "UV_PYTHON_DOWNLOADS": "never",
        "VIRTUAL_ENV": "",
        "UV_NO_PROGRESS": "1",
        "UV_COMPILE_BYTECODE": "1",
    }
    result = subprocess.run(
        [str(uv), "sync", "--quiet", "--package", "app", "--no-dev", "--python", str(python)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"uv sync failed: {last_line(result.stderr, result.stdout)}")


def settings_env(database_url: str, secret_key: str, superuser_password: str) -> dict[str, str]:
    """Its app/core/config.py settings (DATABASE_URL with the psycopg driver it adds)."""
    return {
        "DATABASE_URL": database_url.replace("postgresql+asyncpg://", "postgresql://"),
        "SECRET_KEY": secret_key,
        "PROJECT_NAME": "reference",
        "FIRST_SUPERUSER": "admin@example.com",
        "FIRST_SUPERUSER_PASSWORD": superuser_password,
        "FRONTEND_HOST": "http://localhost:5173",
    }


# Item ids the bench can draw from an integer range (wrk's `{n}` paths):
# 00000000-0000-4000-8000-00000NNNNNNN, NNNNNNN from ID_BASE.
ID_PREFIX = "00000000-0000-4000-8000-00000"
ID_BASE = 1_000_000


def item_id(index: int) -> str:
    return f"{ID_PREFIX}{ID_BASE + index}"


SEED = """
import json, sys, uuid
from sqlmodel import Session, select
from app import crud
from app.core.db import engine
from app.models import Item, User, UserCreate

email, password, rows, prefix, base = sys.argv[1:6]
with Session(engine) as session:
    user = session.exec(select(User).where(User.email == email)).first()
    if user is None:
        user = crud.create_user(
            session=session, user_create=UserCreate(email=email, password=password)
        )
    for index in range(int(rows)):
        item_id = uuid.UUID(f"{prefix}{int(base) + index}")
        session.add(Item(id=item_id, title=f"item {index}", owner_id=user.id))
    session.commit()
    ids = session.exec(select(Item.id).where(Item.owner_id == user.id)).all()
print(json.dumps([str(i) for i in ids]))
"""


def prepare(tree: Path, env: Mapping[str, str], email: str, password: str, rows: int) -> list[str]:
    """Its prestart (wait for the database, migrations, first superuser), then a normal
    user owning `rows` items (ids: `item_id(0)`..`item_id(rows - 1)`); returns their ids."""
    backend = tree / "backend"
    python = str(tree / ".venv/bin/python")
    for command in (
        [python, "app/backend_pre_start.py"],
        [str(tree / ".venv/bin/alembic"), "upgrade", "head"],
        [python, "app/initial_data.py"],
        [python, "-c", SEED, email, password, str(rows), ID_PREFIX, str(ID_BASE)],
    ):
        result = subprocess.run(
            command, cwd=backend, env=dict(env), capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            step = " ".join(Path(part).name for part in command[:2])
            raise RuntimeError(f"{step} failed: {last_line(result.stderr, result.stdout)}")
    ids: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return ids


def uvicorn_command(tree: Path, port: int) -> list[str]:
    """Served like the generated app in the bench: uvicorn, one worker, no access log."""
    return [
        str(tree / ".venv/bin/python"),
        "-m",
        "uvicorn",
        "app.main:app",
        "--no-access-log",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
