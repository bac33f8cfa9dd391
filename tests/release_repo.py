"""A clone of this repository with its release tags rebuilt and the working tree on top.

CI clones may carry no tags, and the working tree may hold uncommitted changes. The update
tests need both: every released version as its `vX.Y.Z` tag (rebuilt from releases.toml by
scripts/release.py), and the working tree as one more commit after them, tagged with the
version it would be released as, so `_migrations` written for that version apply.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from packaging.version import Version

from tests.helpers import ROOT, TEMPLATE_PATHS, git

# scripts/ is on sys.path (tests.helpers puts it there).
import release  # isort: skip

RELEASES = release.load_releases(ROOT)


@dataclass(frozen=True)
class ReleaseRepo:
    path: Path
    releases: dict[str, str]  # version -> released commit
    head_tag: str  # the working tree's commit, after every release


def clone_root(destination: Path) -> Path:
    """A clone of this repository checked out at its HEAD (detached, whatever the branch)."""
    git(destination.parent, "clone", "--quiet", "--no-checkout", str(ROOT), str(destination))
    git(destination, "fetch", "--quiet", str(ROOT), "HEAD")
    git(destination, "checkout", "--quiet", "--detach", "FETCH_HEAD")
    return destination


def snapshot_version(releases: dict[str, str], questionnaire: dict[str, Any]) -> Version:
    """The next patch release, or the newest `_migrations` version if that is higher."""
    latest = Version(list(releases)[-1]) if releases else Version("0.0.0")
    candidates = [Version(f"{latest.major}.{latest.minor}.{latest.micro + 1}")]
    for migration in questionnaire.get("_migrations") or []:
        if isinstance(migration, dict) and "version" in migration:
            candidates.append(Version(str(migration["version"])))
    return max(candidates)


def build_release_repo(destination: Path) -> ReleaseRepo:
    clone_root(destination)
    release.make_tags(destination, RELEASES)
    for name in TEMPLATE_PATHS:
        target, source = destination / name, ROOT / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    git(destination, "add", "--all", "--", *TEMPLATE_PATHS)
    git(destination, "commit", "--quiet", "--allow-empty", "--message", "Working tree snapshot")
    questionnaire = yaml.safe_load((ROOT / "copier.yml").read_text(encoding="utf-8"))
    head_tag = f"v{snapshot_version(RELEASES, questionnaire)}"
    git(destination, "tag", head_tag)
    return ReleaseRepo(destination, RELEASES, head_tag)
