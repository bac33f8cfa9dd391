"""Print the figures of the template's shape (issue #17's before/after table).

    .venv/bin/python scripts/structure_report.py [--ref REV]

Renders the template (the working tree, or REV with --ref) with the default answers and with
eight domains, then prints:
- each domain template file: its lines and the share of them that carry Jinja;
- the lines of one rendered domain (package, tests, migrations);
- the lines of pyproject.toml at 2 and at 8 domains;
- the lines of the second domain that repeat the first one's (after swapping the names);
- the import graph between the top-level packages of each auth style, and its cycles.
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOMAIN_DIR = "{% yield domain from domain_specs %}{{ domain.name }}{% endyield %}"
JINJA = re.compile(r"{{|}}|{%|%}|{#|#}")
# A substitution of a plain name (`{{ domain.entity }}`): everything else is template logic.
NAME_ONLY = re.compile(r"{{ *[a-z_]+(?:[.][a-z_]+)* *}}")
EIGHT = "[posts, tags, orders, invoices, customers, products, categories, reviews]"


def snapshot(ref: str | None, into: Path) -> Path:
    """The template's files at `ref` (or the working tree) in a fresh folder."""
    if ref is None:
        tar = subprocess.run(
            [
                "tar",
                "-C",
                str(ROOT),
                "--exclude=.git",
                "-cf",
                "-",
                "copier.yml",
                "includes",
                "template",
            ],
            check=True,
            capture_output=True,
        ).stdout
    else:
        tar = subprocess.run(
            ["git", "-C", str(ROOT), "archive", ref, "copier.yml", "includes", "template"],
            check=True,
            capture_output=True,
        ).stdout
    into.mkdir(parents=True)
    subprocess.run(["tar", "-C", str(into), "-xf", "-"], input=tar, check=True)
    return into


def render(source: Path, dest: Path, *data: str) -> Path:
    args = [str(ROOT / ".venv/bin/copier"), "copy", "--quiet", "--defaults", "--vcs-ref", "HEAD"]
    args += [item for pair in (("-d", d) for d in data) for item in pair]
    # A snapshot is no git repository: drop --vcs-ref there.
    args = [a for a in args if a not in ("--vcs-ref", "HEAD")]
    subprocess.run([*args, str(source), str(dest)], check=True, capture_output=True)
    return dest


def count(path: Path) -> int:
    return len(path.read_text().splitlines())


def template_files(source: Path) -> None:
    print("## Domain template files: lines, lines with Jinja, lines with Jinja logic")
    print("   (logic: any Jinja but the plain substitution of a name, e.g. {{ domain.entity }})")
    total = jinja_total = logic_total = 0
    for folder in sorted(source.glob(f"template/**/{DOMAIN_DIR}")):
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            lines = path.read_text().splitlines()
            jinja = [line for line in lines if JINJA.search(line)]
            logic = [line for line in jinja if JINJA.search(NAME_ONLY.sub("", line))]
            total += len(lines)
            jinja_total += len(jinja)
            logic_total += len(logic)
            name = path.relative_to(folder.parent.parent).as_posix().replace(DOMAIN_DIR, "<domain>")
            print(f"{name:<66} {len(lines):>4} {share(jinja, lines):>10} {share(logic, lines):>10}")
    print(
        f"{'total':<66} {total:>4} {jinja_total:>4} {100 * jinja_total / total:3.0f} %"
        f" {logic_total:>4} {100 * logic_total / total:3.0f} %"
    )


def share(part: list[str], whole: list[str]) -> str:
    return f"{len(part):>4} {100 * len(part) / len(whole):3.0f} %" if whole else "-"


def domain_files(project: Path, name: str) -> list[Path]:
    package = next(project.glob("src/*/__init__.py")).parent
    roots = [package / name, project / "tests" / name, project / "migrations/versions" / name]
    return sorted(p for root in roots if root.exists() for p in root.rglob("*.py"))


def rendered_domain(project: Path, name: str) -> None:
    files = domain_files(project, name)
    lines = sum(count(p) for p in files)
    print(f"## Rendered domain {name!r}: {lines} lines in {len(files)} files")
    for path in files:
        print(f"  {path.relative_to(project)!s:<60} {count(path):>4}")


def meaningful(path: Path) -> list[str]:
    keep = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "import ", "from ")) or len(line) < 4:
            continue
        keep.append(line)
    return keep


def repeated(project: Path, first: str, second: str, singular: tuple[str, str]) -> None:
    """Lines of `second`'s files found in `first`'s once the names are swapped."""
    swap = [
        (second, first),
        (singular[1], singular[0]),
        (singular[1].capitalize(), singular[0].capitalize()),
    ]
    seen = {line for path in domain_files(project, first) for line in meaningful(path)}
    total = same = 0
    for path in domain_files(project, second):
        for line in meaningful(path):
            total += 1
            for old, new in swap:
                line = line.replace(old, new)
            same += line in seen
    print(f"## Lines of {second!r} that repeat {first!r} (names swapped): {same} of {total}")


def import_graph(project: Path) -> None:
    """Which top-level modules of the package import which (statically, with ast)."""
    package = next(project.glob("src/*/__init__.py")).parent
    edges: set[tuple[str, str]] = set()
    for path in package.rglob("*.py"):
        source = path.relative_to(package).parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                parts = name.split(".")
                if parts[0] == package.name and len(parts) > 1 and parts[1] != source:
                    edges.add((source, parts[1]))
    modules = sorted({a for a, _ in edges} | {b for _, b in edges})
    for module in modules:
        targets = sorted(b for a, b in edges if a == module)
        print(f"  {module:<10} -> {', '.join(targets) or '-'}")
    cycles = sorted({tuple(sorted(pair)) for pair in edges if pair[::-1] in edges})
    print("  cycles between packages:", ", ".join(" <-> ".join(c) for c in cycles) or "none")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", help="a git revision instead of the working tree")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        source = snapshot(args.ref, work / "template")
        template_files(source)
        two = render(source, work / "two")
        eight = render(source, work / "eight", f"domains={EIGHT}")
        rendered_domain(two, "posts")
        print(
            f"## pyproject.toml: {count(two / 'pyproject.toml')} lines at 2 domains, "
            f"{count(eight / 'pyproject.toml')} at 8"
        )
        repeated(two, "posts", "tags", ("post", "tag"))
        for auth in ("jwt", "session", "api_key", "none"):
            project = two if auth == "jwt" else render(source, work / auth, f"auth={auth}")
            print(f"## Import graph ({auth})")
            import_graph(project)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
