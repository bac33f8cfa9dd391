"""The generated `make bench`: present, checked by the project's own tools, and working."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import BIN, VARIANTS, Variant, choices, suite_variants, uv_env
from tests.test_docs import make_targets
from tests.test_variants import parametrize_variants

BENCH_MODULES = ("__init__", "__main__", "credentials", "load", "server")
# One variant per auth style: each renders its own bench/credentials.py.
ONE_PER_AUTH = list({variant.auth: variant for variant in VARIANTS}.values())


def test_every_auth_style_is_covered() -> None:
    assert sorted(variant.auth for variant in ONE_PER_AUTH) == sorted(choices("auth"))


@parametrize_variants(ONE_PER_AUTH)
def test_bench_is_rendered_and_checked(render: Callable[[Variant], Path], variant: Variant) -> None:
    """Every module compiles, and mypy --strict and ruff (the slow checks) cover them."""
    project = render(variant)
    # With users, every style's sign_in starts from the account bench/accounts.py creates.
    modules = BENCH_MODULES + (() if variant.auth == "none" else ("accounts",))
    for module in modules:
        path = project / "bench" / f"{module}.py"
        assert path.is_file(), f"bench/{module}.py is missing for auth={variant.auth}"
        compile(path.read_text(encoding="utf-8"), str(path), "exec")
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    assert "bench" in pyproject["tool"]["mypy"]["files"]
    assert "bench" in make_targets(project / "Makefile")


def test_load_module_needs_only_the_standard_library(
    render: Callable[[Variant], Path],
) -> None:
    """The template's own `make bench` imports the rendered load generators from outside
    the project's virtualenv."""
    load = render(ONE_PER_AUTH[0]) / "bench" / "load.py"
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('load', {str(load)!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "sys.modules['load'] = module\n"
        "spec.loader.exec_module(module)\n"
        "assert module.find_tool('python') == 'python'\n"
        "request = module.Request('GET', '/posts/{n}', vary=(3, 9))\n"
        "assert request.url('http://x', 3) == 'http://x/posts/3'\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


# The matrix's SQLite applications, one per auth style (the shape variants add nothing here).
SQLITE_APPS = [v for v in suite_variants() if v.id.startswith("sqlite-") and not v.redis]


def test_every_auth_style_runs_make_bench() -> None:
    assert sorted(variant.auth for variant in SQLITE_APPS) == sorted(choices("auth"))


@pytest.mark.slow
@parametrize_variants(SQLITE_APPS)
def test_make_bench_runs(
    render_copy: Callable[[Variant], Path], variant: Variant, tmp_path: Path
) -> None:
    """`make bench` end to end with a tiny duration: every scenario answered, none failed."""
    project = render_copy(variant)
    env = {
        **os.environ,
        **uv_env(variant.python_version),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",  # make bench calls uv
        # Cheap hashing: this proves the plumbing, it measures nothing.
        "AUTH_ARGON2_TIME_COST": "1",
        "AUTH_ARGON2_MEMORY_COST": "8",
        "AUTH_ARGON2_PARALLELISM": "1",
    }
    env.pop("DATABASE_URL", None)  # a throw-away SQLite file
    subprocess.run([str(BIN / "uv"), "sync", "--quiet"], cwd=project, env=env, check=True)
    output = tmp_path / "bench.json"
    result = subprocess.run(
        [
            "make",
            "bench",
            "DURATION=1",
            "CONNECTIONS=4",
            f"BENCH_ARGS=--rows 20 --json {output}",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {row["scenario"]: row for row in json.loads(output.read_text())}
    expected = {"baseline", "get-by-id", "list", "create"}
    if variant.auth in {"jwt", "session"}:  # api_key: creating keys is capped, no flood
        expected.add("login")
    assert set(rows) == expected
    for name, row in rows.items():
        result_row = row["result"]
        assert result_row["requests"] > 0, name
        failures = result_row["non_2xx"] + result_row["errors"] + result_row["timeouts"]
        assert failures == 0, (name, result_row)
    assert "x baseline" in result.stdout
