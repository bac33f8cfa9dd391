"""The documentation cannot drift from copier.yml, the README or the Makefiles."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import COPIER_YML, ROOT, choices

DOCS = ROOT / "docs"
QUESTIONNAIRE_PAGE = DOCS / "questionnaire.md"
DEPLOYMENT_PAGE = DOCS / "deployment" / "index.md"

QUESTIONS = [name for name in COPIER_YML if not name.startswith("_")]
CHOICE_QUESTIONS = [name for name in QUESTIONS if "choices" in COPIER_YML[name]]
BASH_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)
MAKE_TARGET = re.compile(r"^([a-z][a-z0-9-]*):", re.MULTILINE)
# `{% if auth != "none" %} create-admin{% endif %}` and similar in the template's .PHONY line.
TEMPLATE_TAG = re.compile(r"\{%.*?%\}")


def sections(page: Path) -> dict[str, str]:
    """Each `### heading` of a page mapped to its text, up to the next heading."""
    found: dict[str, str] = {}
    heading = None
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip() if line.startswith("### ") else None
            if heading is not None:
                found[heading] = ""
        elif heading is not None:
            found[heading] += line + "\n"
    return found


def make_targets(makefile: Path) -> set[str]:
    return set(MAKE_TARGET.findall(TEMPLATE_TAG.sub("", makefile.read_text(encoding="utf-8"))))


def make_commands(markdown: Path) -> list[str]:
    """Every `make ...` line of the page's fenced bash blocks, comments stripped."""
    commands = []
    for block in BASH_BLOCK.findall(markdown.read_text(encoding="utf-8")):
        for line in block.splitlines():
            for command in line.split("#", 1)[0].split("&&"):
                if command.strip().startswith("make "):
                    commands.append(command.strip())
    return commands


def target_of(command: str) -> str:
    words = [word for word in command.split()[1:] if "=" not in word and not word.startswith("-")]
    return words[0] if words else ""


@pytest.mark.parametrize("question", QUESTIONS)
def test_every_question_has_a_section(question: str) -> None:
    assert f"`{question}`" in sections(QUESTIONNAIRE_PAGE), (
        f"docs/questionnaire.md needs a `### \\`{question}\\`` section for {question}"
    )


@pytest.mark.parametrize("question", CHOICE_QUESTIONS)
def test_every_choice_is_documented_in_its_section(question: str) -> None:
    text = sections(QUESTIONNAIRE_PAGE).get(f"`{question}`", "")
    missing = [value for value in choices(question) if f"`{value}`" not in text]
    assert missing == [], f"docs/questionnaire.md, section {question}: document {missing}"


def test_every_deployment_target_is_listed() -> None:
    text = DEPLOYMENT_PAGE.read_text(encoding="utf-8")
    missing = [value for value in choices("deployment") if f"| `{value}` |" not in text]
    assert missing == [], f"docs/deployment/index.md: add a row for {missing}"


def test_readme_make_commands_name_real_targets() -> None:
    targets = make_targets(ROOT / "Makefile")
    commands = make_commands(ROOT / "README.md")
    assert commands, "the README shows `make demo` and `make test`"
    unknown = [command for command in commands if target_of(command) not in targets]
    assert unknown == [], f"README.md runs make targets the Makefile lacks: {unknown}"


@pytest.mark.parametrize(
    "page", sorted(DOCS.rglob("*.md")), ids=lambda page: str(page.relative_to(DOCS))
)
def test_docs_make_commands_name_real_targets(page: Path) -> None:
    """Docs show commands of this repository and of generated projects: either must exist."""
    targets = make_targets(ROOT / "Makefile") | make_targets(ROOT / "template/Makefile.jinja")
    unknown = [command for command in make_commands(page) if target_of(command) not in targets]
    assert unknown == [], f"{page.name} runs make targets no Makefile has: {unknown}"
