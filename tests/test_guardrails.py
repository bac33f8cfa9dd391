"""Architecture contracts of the generated project: declared for every variant, and a
deliberately wrong import makes `lint-imports` fail."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import BIN, VARIANTS, Variant, package_name, uv_env

DEFAULT = Variant("guardrails-default")  # sqlite, jwt, domains posts and tags


def contracts(project: Path) -> dict[str, dict[str, object]]:
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    linter = pyproject["tool"]["importlinter"]
    return {contract["name"]: contract for contract in linter["contracts"]}


@pytest.mark.parametrize("variant", [pytest.param(v, id=v.id) for v in VARIANTS])
def test_every_variant_declares_the_contracts(
    render: Callable[[Variant], Path], variant: Variant
) -> None:
    project = render(variant)
    package = package_name(variant.answers)
    found = contracts(project)
    features = (["auth", "users"] if variant.auth != "none" else []) + variant.domains

    core = found["core imports no other module of the service"]
    assert core["source_modules"] == [f"{package}.core"]
    assert core["forbidden_modules"] == [f"{package}.*"]
    independence = found["domains use each other only through their service and schemas"]
    assert independence["type"] == "independence"
    assert independence["modules"] == [f"{package}.{name}" for name in features]
    ignored = independence["ignore_imports"]
    assert isinstance(ignored, list)
    assert f"{package}.** -> {package}.*.service" in ignored
    assert f"{package}.** -> {package}.*.schemas" in ignored
    assert all(not line.endswith((".models", ".router")) for line in ignored)
    if variant.auth != "none":
        identity = found["auth and users import no other domain"]
        assert identity["forbidden_modules"] == [f"{package}.{d}" for d in variant.domains]
    assert found["no import cycles between domains"]["type"] == "acyclic_siblings"
    assert "lint-imports" in (project / "Makefile").read_text(encoding="utf-8")


# (file to edit, line to add, contract that must break)
WRONG_IMPORTS = {
    "domain-imports-models": (
        "posts/router.py",
        "from {package}.tags.models import Tag  # noqa: F401",
        "domains use each other only through their service and schemas",
    ),
    "domain-imports-auth-accounts": (
        "posts/service.py",
        "from {package}.auth.accounts import User  # noqa: F401",
        "domains use each other only through their service and schemas",
    ),
    "auth-imports-domain": (
        "auth/router.py",
        "from {package}.posts import service as posts_service  # noqa: F401",
        "auth and users import no other domain",
    ),
    "domain-imports-dependencies": (
        "tags/service.py",
        "from {package}.posts import dependencies  # noqa: F401",
        "domains use each other only through their service and schemas",
    ),
    "core-imports-domain": (
        "core/pagination.py",
        "from {package}.posts import service  # noqa: F401",
        "core imports no other module of the service",
    ),
    "core-imports-a-hand-written-module": (
        "core/pagination.py",
        "from {package} import extra_routers  # noqa: F401",
        "core imports no other module of the service",
    ),
    "cycle-between-domains": (
        "tags/service.py",
        "from {package}.posts import service as posts_service  # noqa: F401",
        "no import cycles between domains",
    ),
    "auth-imports-users": (
        "auth/permissions.py",
        "from {package}.users import service as users_service  # noqa: F401",
        "no import cycles between domains",
    ),
}


def lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(project / ".venv/bin/lint-imports"), "--no-cache"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def synced_project(
    render: Callable[[Variant], Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A copy of the default render (the shared render stays untouched), uv-synced."""
    project = tmp_path_factory.mktemp("guardrails") / "project"
    shutil.copytree(render(DEFAULT), project, ignore=shutil.ignore_patterns(".venv"))
    env = {**os.environ, **uv_env("3.12")}
    subprocess.run([str(BIN / "uv"), "sync", "--quiet"], cwd=project, env=env, check=True)
    return project


@pytest.mark.slow
def test_contracts_hold_in_the_generated_project(synced_project: Path) -> None:
    result = lint_imports(synced_project)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("case", list(WRONG_IMPORTS))
def test_a_wrong_import_breaks_a_contract(synced_project: Path, case: str) -> None:
    relative, line, contract = WRONG_IMPORTS[case]
    package = package_name(DEFAULT.answers)
    target = synced_project / "src" / package / relative
    original = target.read_text(encoding="utf-8")
    # A cycle needs both directions: posts already may call tags' service.
    extra = synced_project / "src" / package / "posts/service.py"
    extra_original = extra.read_text(encoding="utf-8")
    try:
        target.write_text(original + "\n" + line.format(package=package) + "\n")
        if case == "cycle-between-domains":
            extra.write_text(extra_original + f"\nfrom {package}.tags import service as _t\n")
        result = lint_imports(synced_project)
    finally:
        target.write_text(original, encoding="utf-8")
        extra.write_text(extra_original, encoding="utf-8")

    assert result.returncode != 0, result.stdout
    assert f"{contract} BROKEN" in result.stdout


def test_templates_read_domain_names_from_domain_specs() -> None:
    """An entry of `domains` may be a mapping ({name: news, singular: news_item}): template
    files must take names from `domain_specs` (`domain.name`), never from `domains`."""
    template = Path(__file__).parent.parent / "template"
    bare = re.compile(r"(?<![\w.])domains(?![\w.])")
    offenders = []
    for path in sorted(template.rglob("*")):
        if (path.is_file() and path.suffix == ".jinja") or "{" in str(path.relative_to(template)):
            text = path.read_text(encoding="utf-8") if path.is_file() else ""
            blocks = re.findall(r"{[{%](.*?)[}%]}", f"{path.relative_to(template)}\n{text}", re.S)
            offenders += [str(path.relative_to(template)) for block in blocks if bare.search(block)]
    assert offenders == []
