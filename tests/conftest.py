"""Shared fixtures for the template's tests: hermetic Copier, rendering and project checks."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import Variant
from tests.servers import DatabaseServer


@pytest.fixture(scope="session", autouse=True)
def _hermetic_copier(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Ignore the developer's own Copier settings (defaults, trusted sources)."""
    settings = tmp_path_factory.mktemp("copier-settings") / "settings.yml"
    settings.write_text("{}\n")
    previous = os.environ.get("COPIER_SETTINGS_PATH")
    os.environ["COPIER_SETTINGS_PATH"] = str(settings)
    yield
    if previous is None:
        os.environ.pop("COPIER_SETTINGS_PATH", None)
    else:
        os.environ["COPIER_SETTINGS_PATH"] = previous


RENDER_SECONDS: dict[str, float] = {}


@pytest.fixture(scope="session")
def database_servers() -> Iterator[dict[str, DatabaseServer]]:
    """Real PostgreSQL / MariaDB servers, started on first use (per xdist worker), stopped
    at the end: `tests.test_variants.database_url_for` hands out a fresh database on them."""
    servers: dict[str, DatabaseServer] = {}
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture(scope="session")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One mypy cache per worker, shared by the projects it checks: the libraries' stubs
    (FastAPI, SQLAlchemy, pydantic) are analysed once, not once per variant. mypy keys its
    cache by Python version and re-checks any module whose source or dependencies differ."""
    return {"MYPY_CACHE_DIR": str(tmp_path_factory.mktemp("mypy-cache"))}


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


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the per-variant timing table recorded by the slow tests."""
    rows: list[dict[str, object]] = []
    for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get(
        "failed", []
    ):
        for name, value in getattr(report, "user_properties", []):
            if name == "variant_timing":
                rows.append(json.loads(value))
    if not rows:
        return
    steps = list(dict.fromkeys(step for row in rows for step in row["steps"]))  # type: ignore[attr-defined]
    terminalreporter.section("rendered project timings (seconds)")
    header = f"{'variant':<44}" + "".join(f"{step:>13}" for step in steps) + f"{'total':>10}"
    terminalreporter.write_line(header)
    grand_total = 0.0
    for row in sorted(rows, key=lambda r: str(r["variant"])):
        timings: dict[str, float] = row["steps"]  # type: ignore[assignment]
        total = sum(timings.values())
        grand_total += total
        cells = "".join(f"{timings.get(step, float('nan')):>13.1f}" for step in steps)
        terminalreporter.write_line(f"{row['variant']!s:<44}{cells}{total:>10.1f}")
    terminalreporter.write_line(
        f"{'sum over variants':<44}{'':>{13 * len(steps)}}{grand_total:>10.1f}"
    )


@pytest.fixture
def render_copy(render: Callable[[Variant], Path], tmp_path: Path) -> Callable[[Variant], Path]:
    """A private copy of a variant's render, for tests that install, run or edit the
    project: the shared render stays exactly as Copier wrote it for the other checks."""

    def _render_copy(variant: Variant) -> Path:
        return Path(shutil.copytree(render(variant), tmp_path / "project"))

    return _render_copy


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first: with two workers, a long variant suite that starts last leaves one
    worker idle at the end, while the many quick render checks fill the gaps well. (Slow
    tests work on `render_copy`, so the order never changes what the quick checks see.)"""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
