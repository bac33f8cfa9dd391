"""Releases: releases.toml, CHANGELOG.md and the tags agree; scripts/release.py cuts and
rebuilds them; Copier without `--vcs-ref` renders the newest release."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import copier
import pytest
import yaml
from packaging.version import Version

from tests.helpers import GIT_ENV, ROOT, choices, git
from tests.release_repo import RELEASES, clone_root, release, snapshot_version

SCRIPT = ROOT / "scripts" / "release.py"


def run_script(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--repo", str(repo), *args],
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=False,
    )


def head(repo: Path, rev: str = "HEAD") -> str:
    return git(repo, "rev-parse", f"{rev}^{{commit}}").strip()


def test_this_repository_release_bookkeeping_is_consistent() -> None:
    """Every release's commit exists, CHANGELOG.md has its dated section, released sections
    are unchanged since (a merge that files new lines under a release fails here), and any
    local vX.Y.Z tag points where releases.toml says."""
    assert RELEASES, "releases.toml records no release"
    assert release.check(ROOT) == []


# --- CHANGELOG.md and releases.toml parsing -------------------------------------------

CHANGELOG = """\
# Changelog

Preamble.

## [Unreleased]

### Added
- Second feature.

## [0.1.0] - 2026-01-01

### Added
- First feature.
"""


def test_cut_changelog_moves_unreleased_entries_under_the_version() -> None:
    text = release.cut_changelog(CHANGELOG, "0.2.0", "2026-02-02")

    assert text.startswith(
        "# Changelog\n\nPreamble.\n\n## [Unreleased]\n\n## [0.2.0] - 2026-02-02\n"
    )
    assert release.changelog_sections(text) == [
        ("Unreleased", None, ""),
        ("0.2.0", "2026-02-02", "### Added\n- Second feature."),
        ("0.1.0", "2026-01-01", "### Added\n- First feature."),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("## [Unreleased]\n\n## [0.1.0] - 2026-01-01\n- x\n", "nothing to release"),
        ("## [0.1.0] - 2026-01-01\n- x\n", "must start its sections with `## [Unreleased]`"),
        ("## [Unreleased]\n- y\n## [0.2.0] - 2026-01-01\n- x\n", "already has a [0.2.0]"),
        ("## Unreleased\n- y\n", "malformed section heading"),
    ],
)
def test_cut_changelog_refuses(text: str, message: str) -> None:
    with pytest.raises(release.ReleaseError, match=message.replace("[", r"\[")):
        release.cut_changelog(text, "0.2.0", "2026-02-02")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[releases]\n"0.1" = "' + "a" * 40 + '"\n', "not a version X.Y.Z"),
        ('[releases]\n"v0.1.0" = "' + "a" * 40 + '"\n', "not a version X.Y.Z"),
        ('[releases]\n"0.1.0" = "abc1234"\n', "full 40-hex commit hash"),
    ],
)
def test_releases_file_refuses_bad_entries(text: str, message: str) -> None:
    with pytest.raises(release.ReleaseError, match=message):
        release.parse_releases(text)


def test_releases_are_ordered_by_version_not_by_text() -> None:
    sha = "b" * 40
    text = f'[releases]\n"0.10.0" = "{sha}"\n"0.9.0" = "{sha}"\n"0.2.1" = "{sha}"\n'

    assert list(release.parse_releases(text)) == ["0.2.1", "0.9.0", "0.10.0"]


def test_working_tree_snapshot_is_tagged_after_every_release_and_migration() -> None:
    """The update tests' working-tree commit gets the next patch version, or the version of
    a pending `_migrations` entry, so that entry applies when updating from any release."""
    sha = "c" * 40
    migration = {"version": "0.2.0", "when": "{{ _stage == 'before' }}", "command": "true"}

    assert snapshot_version({"0.1.0": sha}, {}) == Version("0.1.1")
    assert snapshot_version({"0.1.0": sha}, {"_migrations": [migration, "true"]}) == Version(
        "0.2.0"
    )
    assert snapshot_version({"0.3.0": sha}, {"_migrations": [migration]}) == Version("0.3.1")


# --- cut, tags and check on a small repository ----------------------------------------


@pytest.fixture
def toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A template-shaped repository with one unreleased change."""
    for name, value in GIT_ENV.items():
        monkeypatch.setenv(name, value)
    repo = tmp_path / "toy"
    repo.mkdir()
    git(repo, "init", "--quiet", "--initial-branch=main")
    (repo / "CHANGELOG.md").write_text("# Changelog\n\n## [Unreleased]\n\n- First feature.\n")
    (repo / "releases.toml").write_text("# comment kept\n[releases]\n")
    (repo / "copier.yml").write_text("name:\n  type: str\n")
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--message", "first feature")
    return repo


def add_entry(repo: Path, entry: str) -> None:
    changelog = repo / "CHANGELOG.md"
    changelog.write_text(
        changelog.read_text().replace("## [Unreleased]\n", f"## [Unreleased]\n\n- {entry}\n", 1)
    )
    (repo / "copier.yml").write_text((repo / "copier.yml").read_text() + f"# {entry}\n")
    git(repo, "commit", "--quiet", "--all", "--message", entry)


def test_cut_records_the_released_commit_then_tags_it(toy: Path) -> None:
    released = head(toy)

    assert release.cut(toy, "0.1.0", date="2026-03-04") == released

    assert head(toy, "HEAD~1") == released
    assert git(toy, "log", "-1", "--format=%s").strip() == "Release v0.1.0"
    changed = git(toy, "diff", "--name-only", "HEAD~1", "HEAD").split()
    assert changed == ["CHANGELOG.md", "releases.toml"]
    assert release.load_releases(toy) == {"0.1.0": released}
    assert (toy / "releases.toml").read_text().startswith("# comment kept\n")
    assert release.changelog_sections((toy / "CHANGELOG.md").read_text()) == [
        ("Unreleased", None, ""),
        ("0.1.0", "2026-03-04", "- First feature."),
    ]
    assert head(toy, "v0.1.0") == released
    assert git(toy, "cat-file", "-t", "v0.1.0").strip() == "tag"  # annotated
    assert release.check(toy) == []

    add_entry(toy, "Second feature.")
    second = head(toy)
    release.cut(toy, "0.2.0", date="2026-03-05")

    assert release.load_releases(toy) == {"0.1.0": released, "0.2.0": second}
    assert release.check(toy) == []


def test_cut_can_release_an_earlier_commit(toy: Path) -> None:
    """How 0.1.0 was cut: the released commit predates the release script's own commit."""
    released = head(toy)
    (toy / "README").write_text("not part of the changelog\n")
    git(toy, "add", "README")
    git(toy, "commit", "--quiet", "--message", "unrelated")

    release.cut(toy, "0.1.0", commit=released[:7], date="2026-03-04", tag=False)

    assert release.load_releases(toy) == {"0.1.0": released}
    assert git(toy, "tag", "--list").strip() == ""
    assert release.make_tags(toy) == ["v0.1.0"]
    assert head(toy, "v0.1.0") == released
    assert release.make_tags(toy) == []


def test_cut_refuses(toy: Path) -> None:
    def refused(message: str, version: str = "0.2.0", **options: str) -> None:
        with pytest.raises(release.ReleaseError, match=message):
            release.cut(toy, version, **{"date": "2026-03-04", **options})  # type: ignore[arg-type]

    release.cut(toy, "0.1.0", date="2026-03-04")
    refused("nothing to release")
    add_entry(toy, "Second feature.")
    refused("not newer than the latest release 0.1.0", version="0.1.0")
    refused("not newer", version="0.0.9")
    refused("not a version", version="v0.2.0")
    refused("not a date", date="4 March")
    refused("does not come after the latest release", commit="v0.1.0")
    refused(r"\[Unreleased\] changed after", commit="HEAD~1")
    (toy / "copier.yml").write_text("dirty: true\n")
    refused("working tree is dirty")
    git(toy, "checkout", "--quiet", "--", "copier.yml")
    release.cut(toy, "0.2.0", date="2026-03-05")


def test_check_catches_edited_releases_and_moved_tags(toy: Path) -> None:
    release.cut(toy, "0.1.0", date="2026-03-04")
    changelog = toy / "CHANGELOG.md"
    good = changelog.read_text()

    # What a careless merge does: a new entry lands in the released section.
    changelog.write_text(good + "- Merged in after the release.\n")
    assert any("released sections are frozen" in problem for problem in release.check(toy))

    changelog.write_text(good.replace("## [0.1.0] - 2026-03-04", "## [0.1.0]"))
    assert any("needs its date" in problem for problem in release.check(toy))

    changelog.write_text(good)
    git(toy, "tag", "--force", "v0.1.0", "HEAD")
    assert any("tag v0.1.0 points at" in problem for problem in release.check(toy))
    with pytest.raises(release.ReleaseError, match=r"tag v0\.1\.0 points at"):
        release.make_tags(toy)


# --- the real thing, in a clone of this repository ------------------------------------


def test_release_script_in_a_clone_then_tags_in_a_clone_without_tags(tmp_path: Path) -> None:
    """`cut` in a clone of this repository, then `tags` in a tagless clone of that one: Copier
    without `--vcs-ref` renders the new release, not the bookkeeping commit after it."""
    maintainer = clone_root(tmp_path / "maintainer")
    git(maintainer, "switch", "--quiet", "--create", "release-test")
    release.make_tags(maintainer, RELEASES)  # a maintainer's clone has the published tags
    readme = maintainer / "template" / "README.md.jinja"
    readme.write_text(readme.read_text() + "\nReleased by the release test.\n")
    add_entry(maintainer, "The release test's change.")
    released = head(maintainer)
    latest = [int(part) for part in list(RELEASES)[-1].split(".")]
    version = f"{latest[0]}.{latest[1]}.{latest[2] + 1}"

    result = run_script(maintainer, "cut", version, "--date", "2030-01-02")

    assert result.returncode == 0, result.stderr
    assert f"Released v{version} = {released}" in result.stdout
    assert release.load_releases(maintainer) == {**RELEASES, version: released}
    assert head(maintainer, f"v{version}") == released
    assert run_script(maintainer, "check").returncode == 0

    ci = tmp_path / "ci"
    git(tmp_path, "clone", "--quiet", "--no-tags", str(maintainer), str(ci))
    assert git(ci, "tag", "--list").strip() == ""
    result = run_script(ci, "tags")
    assert result.returncode == 0, result.stderr
    tags = sorted(git(ci, "tag", "--list").split())
    assert tags == sorted(f"v{v}" for v in [*RELEASES, version])
    assert head(ci, f"v{version}") == released
    assert "Every tag already exists." in run_script(ci, "tags").stdout

    project = tmp_path / "project"
    copier.run_copy(str(ci), project, defaults=True, quiet=True)  # no vcs_ref: newest tag
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["_commit"] == f"v{version}"
    assert "Released by the release test." in (project / "README.md").read_text()


def questions(copier_yml: dict) -> dict[str, list[str] | None]:
    """Each question of a copier.yml with its choice values (None: a free answer)."""
    return {
        name: choices(name, copier_yml) if "choices" in spec else None
        for name, spec in copier_yml.items()
        if not name.startswith("_") and isinstance(spec, dict)
    }


def answers_lost_since(released: dict, current: dict) -> list[str]:
    """Questions and choices a project generated at `released` may have recorded, that
    `current` no longer asks or offers, and that no `_migrations` entry of `current` names."""
    migrations = yaml.safe_dump(current.get("_migrations", []))
    now = questions(current)
    lost = []
    for name, offered in questions(released).items():
        if name not in now:
            lost.append(name)
        elif offered is not None and now[name] is not None:
            lost.extend(f"{name}={value}" for value in offered if value not in now[name])
    return [answer for answer in lost if answer.rpartition("=")[2] not in migrations]


def test_answers_lost_since_names_removed_questions_and_choices() -> None:
    released = {"auth": {"choices": {"JWT": "jwt", "None": "none"}}, "old_name": {"type": "str"}}
    current = {"auth": {"choices": ["jwt"]}, "new_name": {"type": "str"}}
    assert answers_lost_since(released, current) == ["auth=none", "old_name"]
    migrated = {**current, "_migrations": [{"command": "rename old_name new_name; none"}]}
    assert answers_lost_since(released, migrated) == []


@pytest.mark.parametrize("version", list(RELEASES))
def test_every_released_answer_still_means_something(version: str) -> None:
    """A renamed or removed question or choice needs a `_migrations` entry (named in its
    command), or `copier update` would carry an answer the template no longer understands."""
    released = yaml.safe_load(git(ROOT, "show", f"{RELEASES[version]}:copier.yml"))
    current = yaml.safe_load((ROOT / "copier.yml").read_text(encoding="utf-8"))
    assert answers_lost_since(released, current) == []
