"""Released migrations never change: every revision file a release generated is generated
byte for byte the same by the working tree, for the same answers.

A database records which revisions it ran, not what they contained: a released revision
edited in place never reaches the databases that already ran it (0.2.0 did this to
`<domain>_0001`, see KNOWN_EDITS). Schema changes ship as new revisions.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from tests.release_repo import RELEASES, ReleaseRepo, build_release_repo
from tests.test_update import copy_at, release_variants

DOMAINS = ["orders", "customers"]

# Released files the working tree renders differently, with the one change allowed and why.
# Keyed by (release, path with the domain written as {domain}). Keep this list short: each
# entry is a database that had to be repaired by a later revision.
VERSION_COLUMN = '        sa.Column("version", sa.Integer(), nullable=False),'
KNOWN_EDITS: dict[tuple[str, str], tuple[list[str], str]] = {
    ("0.1.0", "migrations/versions/{domain}/{domain}_0001_create_{domain}.py"): (
        [f"+{VERSION_COLUMN}"],
        "0.2.0 added the version column to the released revision in place; "
        "<domain>_0002_add_version adds it to databases created at 0.1.0",
    ),
}


@pytest.fixture(scope="module")
def release_repo(tmp_path_factory: pytest.TempPathFactory) -> ReleaseRepo:
    return build_release_repo(tmp_path_factory.mktemp("release-repo") / "template")


def migrations(project: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(project)): path.read_bytes()
        for path in sorted((project / "migrations" / "versions").rglob("*.py"))
    }


def known_edit(version: str, name: str) -> list[str] | None:
    for domain in DOMAINS:
        for (release, pattern), (changed_lines, _why) in KNOWN_EDITS.items():
            if release == version and pattern.format(domain=domain) == name:
                return changed_lines
    return None


def changed_lines(before: bytes, after: bytes) -> list[str]:
    diff = difflib.unified_diff(before.decode().splitlines(), after.decode().splitlines(), n=0)
    return [line for line in diff if line[:1] in "+-" and line[:3] not in {"+++", "---"}]


@pytest.mark.parametrize(
    ("version", "answers"),
    [
        pytest.param(version, variant.answers, id=f"v{version}-{variant.id}")
        for version in RELEASES
        for variant in release_variants(version)
    ],
)
def test_released_migrations_are_unchanged(
    release_repo: ReleaseRepo, tmp_path: Path, version: str, answers: dict[str, object]
) -> None:
    answers = {**answers, "domains": DOMAINS}
    released = migrations(copy_at(release_repo, f"v{version}", tmp_path / "release", answers))
    current = migrations(copy_at(release_repo, release_repo.head_tag, tmp_path / "head", answers))
    assert released, "the release generated no migration"

    problems = []
    for name, content in released.items():
        if name not in current:
            problems.append(f"{name}: shipped in {version}, no longer generated")
            continue
        changes = changed_lines(content, current[name])
        allowed = known_edit(version, name)
        if changes and changes != allowed:
            problems.append(f"{name}: changed since {version}:\n" + "\n".join(changes))
        elif allowed is not None and not changes:
            problems.append(f"{name}: listed in KNOWN_EDITS but unchanged: remove the entry")
    assert problems == [], "\n".join(problems)
