"""Template releases: cut one, recreate the `vX.Y.Z` tags, check the bookkeeping.

    python scripts/release.py cut 0.2.0                  # release HEAD as v0.2.0
    python scripts/release.py cut 0.2.0 --commit abc123  # release an earlier commit
    python scripts/release.py tags                       # create the missing vX.Y.Z tags
    python scripts/release.py check                      # releases.toml, CHANGELOG.md, tags

A release is a commit of `main`: what `copier copy` and `copier update` render for
`vX.Y.Z` is copier.yml, includes/ and template/ at that commit. `releases.toml` maps
each version to its commit, so the tags can be rebuilt in any clone (CI clones may
not fetch tags). A commit cannot contain its own hash, so `cut` records the released
commit and then adds one bookkeeping commit on top, touching only `releases.toml` and
`CHANGELOG.md` (the [Unreleased] entries become the version's section).
"""

from __future__ import annotations

import argparse
import datetime
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RELEASES_FILE = "releases.toml"
CHANGELOG_FILE = "CHANGELOG.md"
VERSION = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")
SHA = re.compile(r"^[0-9a-f]{40}$")
# `## [Unreleased]` or `## [1.2.3] - 2026-11-22`
HEADING = re.compile(r"^## \[(?P<name>[^\]]+)\](?: - (?P<date>\d{4}-\d{2}-\d{2}))?[ \t]*$")
UNRELEASED = "Unreleased"


class ReleaseError(Exception):
    """A release cannot be cut, or the bookkeeping is inconsistent."""


def parse_version(text: str) -> tuple[int, int, int]:
    match = VERSION.match(text)
    if match is None:
        raise ReleaseError(f"{text!r} is not a version X.Y.Z (semantic versioning, no prefix)")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ReleaseError(f"`git {' '.join(args)}` failed in {repo}: {result.stderr.strip()}")
    return result.stdout


def commit_exists(repo: Path, rev: str) -> bool:
    result = subprocess.run(
        ["git", "cat-file", "-e", f"{rev}^{{commit}}"], cwd=repo, capture_output=True, check=False
    )
    return result.returncode == 0


def is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    result = subprocess.run(
        ["git", "merge-base", "--is-ancestor", ancestor, descendant],
        cwd=repo,
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


# --- releases.toml ---------------------------------------------------------------------


def parse_releases(text: str) -> dict[str, str]:
    """The `[releases]` table, version -> full commit hash, oldest version first."""
    table = tomllib.loads(text).get("releases", {})
    for version, sha in table.items():
        parse_version(version)
        if not isinstance(sha, str) or not SHA.match(sha):
            raise ReleaseError(f"{RELEASES_FILE}: {version} must map to a full 40-hex commit hash")
    return dict(sorted(table.items(), key=lambda item: parse_version(item[0])))


def load_releases(repo: Path) -> dict[str, str]:
    return parse_releases((repo / RELEASES_FILE).read_text(encoding="utf-8"))


def tag_name(version: str) -> str:
    return f"v{version}"


# --- CHANGELOG.md ----------------------------------------------------------------------


def changelog_sections(text: str) -> list[tuple[str, str | None, str]]:
    """Each `## [name] - date` section as (name, date, body), body without outer blanks."""
    sections: list[tuple[str, str | None, list[str]]] = []
    for line in text.splitlines():
        match = HEADING.match(line)
        if match is not None:
            sections.append((match["name"], match["date"], []))
        elif line.startswith("## "):
            raise ReleaseError(f"{CHANGELOG_FILE}: malformed section heading {line!r}")
        elif sections:
            sections[-1][2].append(line)
    return [(name, date, "\n".join(body).strip("\n")) for name, date, body in sections]


def section_body(text: str, name: str) -> str:
    for section, _, body in changelog_sections(text):
        if section == name:
            return body
    raise ReleaseError(f"{CHANGELOG_FILE} has no `## [{name}]` section")


def cut_changelog(text: str, version: str, date: str) -> str:
    """Turn the [Unreleased] entries into `## [version] - date`, under a fresh [Unreleased]."""
    sections = changelog_sections(text)
    if not sections or sections[0][0] != UNRELEASED:
        raise ReleaseError(f"{CHANGELOG_FILE} must start its sections with `## [{UNRELEASED}]`")
    if not sections[0][2].strip():
        raise ReleaseError(f"{CHANGELOG_FILE}: [{UNRELEASED}] is empty, nothing to release")
    if any(name == version for name, _, _ in sections):
        raise ReleaseError(f"{CHANGELOG_FILE} already has a [{version}] section")
    heading = f"## [{UNRELEASED}]"
    lines = text.splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if line.rstrip() == heading)
    lines[index] = f"{heading}\n\n## [{version}] - {date}\n"
    return "".join(lines)


# --- check, tags, cut ------------------------------------------------------------------


def check(repo: Path, releases: dict[str, str] | None = None) -> list[str]:
    """Everything wrong with the release bookkeeping of `repo` (an empty list: all good)."""
    releases = load_releases(repo) if releases is None else releases
    problems = []
    missing = [version for version, sha in releases.items() if not commit_exists(repo, sha)]
    for version in missing:
        problems.append(
            f"{version}: commit {releases[version]} is not in this clone "
            "(a shallow or single-branch clone? run `git fetch --unshallow origin`)"
        )
    if missing:
        return problems
    shas = list(releases.values())
    for (version, sha), previous in zip(list(releases.items())[1:], shas, strict=False):
        if sha == previous or not is_ancestor(repo, previous, sha):
            problems.append(f"{version}: commit {sha[:12]} does not come after {previous[:12]}")

    changelog = (repo / CHANGELOG_FILE).read_text(encoding="utf-8")
    sections = changelog_sections(changelog)
    names = [name for name, _, _ in sections]
    expected = [UNRELEASED, *reversed(releases)]
    if names != expected:
        problems.append(
            f"{CHANGELOG_FILE} sections are {names}; expected {expected} "
            f"([{UNRELEASED}] first, then one section per release in {RELEASES_FILE}, newest first)"
        )
    for name, date, body in sections:
        if name not in releases:
            continue
        if date is None:
            problems.append(
                f"{CHANGELOG_FILE}: `## [{name}]` needs its date: `## [{name}] - YYYY-MM-DD`"
            )
        released = git(repo, "show", f"{releases[name]}:{CHANGELOG_FILE}")
        notes = section_body(released, UNRELEASED)
        if body != notes:
            problems.append(
                f"{CHANGELOG_FILE}: the [{name}] section differs from the [{UNRELEASED}] notes "
                f"at its release commit {releases[name][:12]}; released sections are frozen, "
                f"entries added later belong under [{UNRELEASED}]"
            )

    for version, sha in releases.items():
        tag = tag_name(version)
        if commit_exists(repo, f"refs/tags/{tag}"):
            target = git(repo, "rev-parse", f"refs/tags/{tag}^{{commit}}").strip()
            if target != sha:
                problems.append(
                    f"tag {tag} points at {target[:12]}, {RELEASES_FILE} says {sha[:12]}"
                )
    return problems


def make_tags(repo: Path, releases: dict[str, str] | None = None) -> list[str]:
    """Create every missing `vX.Y.Z` tag (lightweight) at its recorded commit."""
    releases = load_releases(repo) if releases is None else releases
    created = []
    for version, sha in releases.items():
        tag = tag_name(version)
        if commit_exists(repo, f"refs/tags/{tag}"):
            target = git(repo, "rev-parse", f"refs/tags/{tag}^{{commit}}").strip()
            if target != sha:
                raise ReleaseError(f"tag {tag} points at {target}, {RELEASES_FILE} says {sha}")
            continue
        if not commit_exists(repo, sha):
            raise ReleaseError(
                f"{version}: commit {sha} is not in this clone "
                "(a shallow or single-branch clone? run `git fetch --unshallow origin`)"
            )
        git(repo, "tag", tag, sha)
        created.append(tag)
    return created


def cut(
    repo: Path,
    version: str,
    *,
    commit: str = "HEAD",
    date: str | None = None,
    tag: bool = True,
) -> str:
    """Release `commit` as `version`: bookkeeping commit on HEAD, then the tag. Returns the sha."""
    parse_version(version)
    releases = load_releases(repo)
    if releases and parse_version(version) <= parse_version(latest := list(releases)[-1]):
        raise ReleaseError(f"{version} is not newer than the latest release {latest}")
    date = date or datetime.date.today().isoformat()
    if not re.match(r"^\d{4}-\d{2}-\d{2}$", date):
        raise ReleaseError(f"{date!r} is not a date YYYY-MM-DD")
    if git(repo, "status", "--porcelain", "--untracked-files=no").strip():
        raise ReleaseError("commit or stash your changes first: the working tree is dirty")
    if problems := check(repo, releases):
        raise ReleaseError("fix the release bookkeeping first:\n  " + "\n  ".join(problems))
    if not commit_exists(repo, commit):
        raise ReleaseError(f"{commit!r} is not a commit")
    sha = git(repo, "rev-parse", f"{commit}^{{commit}}").strip()
    if not is_ancestor(repo, sha, "HEAD"):
        raise ReleaseError(f"{commit} ({sha[:12]}) is not HEAD or one of its ancestors")
    if releases:
        previous = list(releases.values())[-1]
        if sha == previous or not is_ancestor(repo, previous, sha):
            raise ReleaseError(f"{commit} ({sha[:12]}) does not come after the latest release")

    changelog_path = repo / CHANGELOG_FILE
    changelog = changelog_path.read_text(encoding="utf-8")
    notes_then = section_body(git(repo, "show", f"{sha}:{CHANGELOG_FILE}"), UNRELEASED)
    if section_body(changelog, UNRELEASED) != notes_then:
        raise ReleaseError(
            f"{CHANGELOG_FILE}'s [{UNRELEASED}] changed after {sha[:12]}: those entries are not "
            "in that commit. Release HEAD instead, or release before adding them."
        )
    new_changelog = cut_changelog(changelog, version, date)
    releases_path = repo / RELEASES_FILE
    recorded = releases_path.read_text(encoding="utf-8").rstrip("\n")
    new_releases = f'{recorded}\n"{version}" = "{sha}"\n'
    if parse_releases(new_releases) != {**releases, version: sha}:
        raise ReleaseError(f"{RELEASES_FILE}: keep [releases] the last table of the file")
    changelog_path.write_text(new_changelog, encoding="utf-8")
    releases_path.write_text(new_releases, encoding="utf-8")

    git(repo, "add", "--", CHANGELOG_FILE, RELEASES_FILE)
    git(
        repo,
        "commit",
        "--quiet",
        "--message",
        f"Release {tag_name(version)}",
        "--message",
        f"{RELEASES_FILE} records {tag_name(version)} = {sha};\n"
        f"the [{UNRELEASED}] entries of {CHANGELOG_FILE} become its section.",
    )
    if tag:
        tagged = tag_name(version)
        git(repo, "tag", "--annotate", tagged, sha, "--message", tagged)
    return sha


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="release.py", description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=ROOT, help="the template repository (a clone)")
    commands = parser.add_subparsers(dest="command", required=True)
    cut_parser = commands.add_parser("cut", help="release a commit as VERSION")
    cut_parser.add_argument("version", help="X.Y.Z, newer than the latest release")
    cut_parser.add_argument("--commit", default="HEAD", help="the released commit (HEAD)")
    cut_parser.add_argument("--date", help="the release date, YYYY-MM-DD (today)")
    cut_parser.add_argument("--no-tag", action="store_true", help="skip the local git tag")
    commands.add_parser("tags", help="create the missing vX.Y.Z tags from releases.toml")
    commands.add_parser("check", help="releases.toml, CHANGELOG.md and the tags agree")
    args = parser.parse_args(argv)
    repo: Path = args.repo.resolve()
    try:
        if args.command == "cut":
            sha = cut(repo, args.version, commit=args.commit, date=args.date, tag=not args.no_tag)
            tag = tag_name(args.version)
            print(f"Released {tag} = {sha}.")
            if args.no_tag:
                print("No tag created: `python scripts/release.py tags` creates it later.")
            else:
                print(f"Publish it: git push origin main {tag}")
        elif args.command == "tags":
            created = make_tags(repo)
            print(f"Created {', '.join(created)}." if created else "Every tag already exists.")
        else:
            problems = check(repo)
            for problem in problems:
                print(problem, file=sys.stderr)
            if problems:
                return 1
            print(f"{len(load_releases(repo))} release(s), bookkeeping consistent.")
    except ReleaseError as error:
        print(f"release.py: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
