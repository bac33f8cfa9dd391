"""Helpers for the template's tests: render variants and run their own checks."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

sys.path.insert(0, str(ROOT / "scripts"))
from find_python import find as find_python  # noqa: E402

# Jinja delimiters that must never survive a render (`{{ x }}`, `{%- if %}`, `{# note #}`).
LEFTOVER_JINJA = re.compile(r"\{\{-?\s|\s-?\}\}|\{%-?\s|\s-?%\}|\{#-?\s|\s-?#\}")


COPIER_YML = yaml.safe_load((ROOT / "copier.yml").read_text(encoding="utf-8"))
# Questions whose every choice is a variant of the matrix; the last one (deployment) only
# adds files around the application.
MATRIX_QUESTIONS = ("database", "auth", "deployment")
PYTHON_VERSIONS = [str(v) for v in COPIER_YML["python_version"]["choices"]]


def choices(question: str, copier_yml: Mapping[str, Any] = COPIER_YML) -> list[str]:
    """The values of a choice question, read from copier.yml or from another version of it;
    none for a question without choices. Labels map to a value, or, in Copier's extended
    syntax, to `{value: ..., validator: ...}` (a choice disabled when its validator says so)."""
    raw = copier_yml[question].get("choices") or []
    values = raw.values() if isinstance(raw, dict) else raw
    return [str(value["value"] if isinstance(value, dict) else value) for value in values]


@dataclass(frozen=True)
class Variant:
    """One combination of answers the tests render and check."""

    id: str
    answers: Mapping[str, object] = field(default_factory=dict)

    def answer(self, question: str) -> str:
        return str(self.answers.get(question, COPIER_YML[question]["default"]))

    @property
    def domains(self) -> list[str]:
        """The domains' names (an entry may be {name: ..., singular: ...})."""
        entries = self.answers.get("domains", ["posts", "tags"])
        assert isinstance(entries, list)
        return [entry["name"] if isinstance(entry, Mapping) else str(entry) for entry in entries]

    @property
    def database(self) -> str:
        return self.answer("database")

    @property
    def auth(self) -> str:
        return self.answer("auth")

    @property
    def deployment(self) -> str:
        return self.answer("deployment")

    @property
    def python_version(self) -> str:
        return self.answer("python_version")

    @property
    def redis(self) -> bool:
        """The `redis` answer; its default follows the deployment (copier.yml)."""
        answer = self.answers.get("redis")
        return self.deployment in MULTI_REPLICA if answer is None else bool(answer)


# Deployments that run several replicas: Redis (shared login budgets) is required there.
MULTI_REPLICA = ("kubernetes", "cloud_run")


# Answer combinations the questionnaire refuses (copier.yml validators), with the message
# it gives. The matrix skips them; tests/test_questionnaire.py proves each one is refused.
SQLITE_MULTI_REPLICA = "runs several replicas, but SQLite is a file on one machine"
SHARED_BUDGETS = "runs several replicas, which must share their login budgets: answer redis=true"
FORBIDDEN: list[tuple[dict[str, object], str]] = [
    ({"database": "sqlite", "deployment": "kubernetes"}, SQLITE_MULTI_REPLICA),
    ({"database": "sqlite", "deployment": "cloud_run"}, SQLITE_MULTI_REPLICA),
    ({"database": "postgresql", "deployment": "kubernetes", "redis": False}, SHARED_BUDGETS),
    ({"database": "mysql", "deployment": "cloud_run", "redis": False}, SHARED_BUDGETS),
]


def is_forbidden(answers: Mapping[str, object]) -> bool:
    """A refused combination (a missing `redis` answer takes its default)."""
    given = {"redis": answers.get("deployment") in MULTI_REPLICA, **answers}
    sqlite_multi = given.get("database") == "sqlite" and given.get("deployment") in MULTI_REPLICA
    unshared = given.get("deployment") in MULTI_REPLICA and given["redis"] is False
    return sqlite_multi or unshared


def matrix() -> list[Variant]:
    """Every database x auth x deployment combination, straight from copier.yml, minus the
    FORBIDDEN ones; `redis` takes its default (on where several replicas run).

    Python versions rotate through the database x auth rows so every supported version is
    exercised, while variants differing only in deployment share one application.
    """
    *app_questions, last = MATRIX_QUESTIONS
    app_combos = itertools.product(*(choices(question) for question in app_questions))
    variants = []
    for index, app_combo in enumerate(app_combos):
        for value in choices(last):
            combo = (*app_combo, value)
            answers: dict[str, object] = dict(zip(MATRIX_QUESTIONS, combo, strict=True))
            if is_forbidden(answers):
                continue
            answers["python_version"] = PYTHON_VERSIONS[index % len(PYTHON_VERSIONS)]
            answers["redis"] = value in MULTI_REPLICA
            variants.append(Variant("-".join(combo), answers))
    return variants


# Shapes of the questionnaire the matrix does not vary: domain lists and names.
SHAPE_VARIANTS = [
    # Redis on a single node (compose runs it beside the app); SQLite keeps it fast.
    Variant("sqlite-session-docker-redis", {"auth": "session", "redis": True}),
    Variant("one-domain-none-auth", {"auth": "none", "domains": ["posts"]}),
    Variant(
        "longest-names",
        {
            # 32-character package, 23-character domain, domains sorting around core modules
            "project_name": "Abcdefghij Klmnopqrst Uvwxyzabcd",
            # and a singular given where the guess is wrong (news: NewsItem, /{news_item_id})
            "domains": [
                "boxes",
                "warehouse_stock_entries",
                "zones",
                "accounts",
                "categories",
                {"name": "news", "singular": "news_item"},
            ],
            "python_version": "3.13",
        },
    ),
]

VARIANTS = matrix() + SHAPE_VARIANTS


def app_key(variant: Variant) -> tuple[str, ...]:
    """Answers that change the application itself (the deployment choice only adds files)."""
    domains = ",".join(variant.domains)
    redis = "redis" if variant.redis else ""
    return (variant.database, variant.auth, redis, domains, variant.python_version)


def suite_variants() -> list[Variant]:
    """One variant per distinct application: the project's own suite runs once for each."""
    seen: dict[tuple[str, ...], Variant] = {}
    for variant in VARIANTS:
        seen.setdefault(app_key(variant), variant)
    return list(seen.values())


def package_name(answers: Mapping[str, object]) -> str:
    name = str(answers.get("project_name", "My API")).lower()
    return re.sub(r"[^a-z0-9]+", "_", name).strip("_")


def rendered_files(project: Path) -> list[Path]:
    skip = {".venv", ".git", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
    return sorted(
        path
        for path in project.rglob("*")
        if path.is_file() and not skip.intersection(path.relative_to(project).parts)
    )


# How the template tests run a rendered project's suite. A test that runs for minutes has hung:
# pytest then prints every thread's stack, which the timeout message below shows.
PYTEST_ARGS = ("-q", "-p", "no:cacheprovider", "-o", "faulthandler_timeout=180")


def _tail(output: str | bytes | None, size: int = 12000) -> str:
    if isinstance(output, bytes):
        output = output.decode(errors="replace")
    return (output or "")[-size:]


@dataclass
class StepTimer:
    """Runs commands in a rendered project and remembers how long each step took."""

    project: Path
    steps: dict[str, float] = field(default_factory=dict)

    def run(self, step: str, *command: str, env: Mapping[str, str] | None = None) -> str:
        started = time.perf_counter()
        try:
            result = subprocess.run(
                command,
                cwd=self.project,
                env={**os.environ, **(env or {})},
                capture_output=True,
                text=True,
                check=False,
                timeout=900,
            )
        except subprocess.TimeoutExpired as timeout:
            # What the command printed before it hung is what tells where it hung.
            raise AssertionError(
                f"`{' '.join(command)}` did not finish in {timeout.timeout:.0f} s in "
                f"{self.project}\n--- stdout ---\n{_tail(timeout.stdout)}\n"
                f"--- stderr ---\n{_tail(timeout.stderr)}"
            ) from None
        self.steps[step] = self.steps.get(step, 0.0) + time.perf_counter() - started
        if result.returncode != 0:
            raise AssertionError(
                f"`{' '.join(command)}` failed in {self.project} (exit {result.returncode})\n"
                f"--- stdout ---\n{_tail(result.stdout)}\n--- stderr ---\n{_tail(result.stderr)}"
            )
        return result.stdout


# Alembic's commands in one process: the CLI would import the application once per command.
ALEMBIC_COMMANDS = """
import sys

from alembic import command
from alembic.config import Config

config = Config("alembic.ini")
for step in sys.argv[1:]:
    name, _, revision = step.partition(":")
    getattr(command, name)(config, *filter(None, [revision]))
"""


def run_alembic(timer: StepTimer, step: str, *commands: str, env: dict[str, str]) -> None:
    """Run `alembic <name> [<revision>]` for each "name[:revision]" in order; stop at the
    first failure (`check` fails on any difference between the models and the migrations)."""
    python = str(timer.project / ".venv" / "bin" / "python")
    timer.run(step, python, "-c", ALEMBIC_COMMANDS, *commands, env=env)


def uv_env(python_version: str) -> dict[str, str]:
    python = os.environ.get("UV_PYTHON") or find_python(python_version)
    if python is None:
        raise AssertionError(f"no Python {python_version} interpreter found for uv")
    return {
        "UV_PYTHON": python,
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_PROGRESS": "1",
        "VIRTUAL_ENV": "",
    }


def stop_gracefully(process: subprocess.Popen[bytes]) -> str:
    """SIGTERM a served app (as a container runtime would) and return what it printed
    (nothing when its output went to a file); a no-op once it has exited."""
    process.send_signal(signal.SIGTERM)
    try:
        output = process.communicate(timeout=20)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        output = process.communicate()[0]
    return (output or b"").decode(errors="replace")


# What a template version consists of: `copier copy` renders these paths of a commit.
TEMPLATE_PATHS = ("copier.yml", "includes", "template")

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Template Tests",
    "GIT_AUTHOR_EMAIL": "tests@example.com",
    "GIT_COMMITTER_NAME": "Template Tests",
    "GIT_COMMITTER_EMAIL": "tests@example.com",
}


def git(cwd: Path, *args: str) -> str:
    """Run git with a fixed identity (CI machines may have none configured)."""
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"`git {' '.join(args)}` failed in {cwd}:\n{result.stderr}")
    return result.stdout


def template_repository(destination: Path, message: str = "template") -> Path:
    """The working tree's template (uncommitted changes included) as a committed repository."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in TEMPLATE_PATHS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, destination / name)
        else:
            shutil.copy2(ROOT / name, destination / name)
    git(destination, "init", "--quiet", "--initial-branch=main")
    git(destination, "add", "--all")
    git(destination, "commit", "--quiet", "--message", message)
    return destination


def serve_command(project: Path, answers: Mapping[str, object], port: int) -> list[str]:
    """The installed project's app under uvicorn on a loopback port."""
    return [
        str(project / ".venv/bin/uvicorn"),
        f"{package_name(answers)}.main:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
