"""Helpers for the template's tests: render variants and run their own checks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

sys.path.insert(0, str(ROOT / "scripts"))
from find_python import find as find_python  # noqa: E402

# Jinja delimiters that must never survive a render (`{{ x }}`, `{%- if %}`, `{# note #}`).
LEFTOVER_JINJA = re.compile(r"\{\{-?\s|\s-?\}\}|\{%-?\s|\s-?%\}|\{#-?\s|\s-?#\}")


@dataclass(frozen=True)
class Variant:
    """One combination of answers the tests render and check."""

    id: str
    answers: Mapping[str, object] = field(default_factory=dict)

    @property
    def domains(self) -> list[str]:
        return list(self.answers.get("domains", ["posts", "tags"]))  # type: ignore[call-overload]

    @property
    def auth(self) -> str:
        return str(self.answers.get("auth", "jwt"))

    @property
    def deployment(self) -> str:
        return str(self.answers.get("deployment", "docker"))

    @property
    def python_version(self) -> str:
        return str(self.answers.get("python_version", "3.12"))


# The variants every `make test` renders and checks end to end.
VARIANTS = [
    Variant("default"),
    Variant(
        "none-auth-one-domain-py311",
        {"auth": "none", "deployment": "none", "domains": ["posts"], "python_version": "3.11"},
    ),
    Variant(
        "jwt-underscored-domains-py313",
        {
            "project_name": "Order Service",
            "domains": ["order_items", "categories", "inventory", "addresses", "boxes"],
            "python_version": "3.13",
        },
    ),
]


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


@dataclass
class StepTimer:
    """Runs commands in a rendered project and remembers how long each step took."""

    project: Path
    steps: dict[str, float] = field(default_factory=dict)

    def run(self, step: str, *command: str, env: Mapping[str, str] | None = None) -> str:
        started = time.perf_counter()
        result = subprocess.run(
            command,
            cwd=self.project,
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
        self.steps[step] = self.steps.get(step, 0.0) + time.perf_counter() - started
        if result.returncode != 0:
            raise AssertionError(
                f"`{' '.join(command)}` failed in {self.project} (exit {result.returncode})\n"
                f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
            )
        return result.stdout


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
