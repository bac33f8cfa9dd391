"""The questionnaire as a person answers it: `copier copy` in a pseudo-terminal.

Copier gives a select prompt no question validator, so a rule on a choice question that only
lives in its `validator` is enforced for `--data`/`--defaults` but not when someone picks from
the list. These tests drive the real prompts (pexpect) and check that interactive answers get
the same refusals as `--data` answers (tests/test_questionnaire.py)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pyte
import pytest
import yaml

from tests.helpers import BIN, ROOT

DOWN = "\x1b[B"
ENTER = "\r"
CLEAR_LINE = "\x15"  # Ctrl-U: drop the pre-filled default of an input prompt
ROWS = 50
TIMEOUT = 30.0


class Questionnaire:
    """One `copier copy` session in a pseudo-terminal, read through a terminal emulator
    (pyte): prompt_toolkit redraws only the cells that change, so the raw byte stream never
    holds a message the way the screen shows it. prompt_toolkit cuts lines at the right
    edge rather than wrapping them: `columns` decides what a person can read."""

    def __init__(self, destination: Path, columns: int = 200) -> None:
        self.destination = destination
        env = {
            **os.environ,  # COPIER_SETTINGS_PATH: the hermetic settings of tests/conftest.py
            "TERM": "xterm-256color",
            "COLUMNS": str(columns),
            "LINES": str(ROWS),
            # prompt_toolkit asks the terminal where the cursor is and waits for an answer
            # that a bare pseudo-terminal never sends: skip the request.
            "PROMPT_TOOLKIT_NO_CPR": "1",
        }
        self.child = pexpect.spawn(
            str(BIN / "copier"),
            ["copy", "--vcs-ref", "HEAD", str(ROOT), str(destination)],
            env=env,
            dimensions=(ROWS, columns),
        )
        self.screen = pyte.Screen(columns, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.transcript = bytearray()

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def expect(self, text: str) -> str:
        """Wait until `text` is on the screen; return the screen."""
        deadline = time.monotonic() + TIMEOUT
        while text not in (shown := self.text()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared; the screen:\n{shown}")
            try:
                data = self.child.read_nonblocking(65536, timeout=0.2)
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF as exited:
                message = f"copier exited before {text!r}; the screen:\n{shown}"
                raise AssertionError(message) from exited
            self.transcript += data
            self.stream.feed(data)
        return shown

    def send(self, keys: str) -> None:
        self.child.send(keys)

    def answer(self, prompt: str, keys: str = ENTER) -> None:
        self.expect(prompt)
        self.send(keys)

    def accept_identity_defaults(self) -> None:
        for prompt in (
            "Human-readable project name",
            "One-line description",
            "Author or team name",
            "Author or team e-mail",
            "Oldest Python version",
        ):
            self.answer(prompt)

    def finish(self) -> dict[str, object]:
        self.child.expect(pexpect.EOF, timeout=TIMEOUT)
        self.transcript += self.child.before
        self.child.close()
        output = self.transcript.decode(errors="replace")
        assert self.child.exitstatus == 0, output
        answers = yaml.safe_load((self.destination / ".copier-answers.yml").read_text())
        assert isinstance(answers, dict)
        return answers

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)


@pytest.fixture
def questionnaire(tmp_path: Path) -> Iterator[Questionnaire]:
    session = Questionnaire(tmp_path / "project")
    yield session
    session.close()


def test_sqlite_shows_multi_replica_targets_disabled_and_skips_them(
    questionnaire: Questionnaire,
) -> None:
    questionnaire.accept_identity_defaults()
    questionnaire.answer("Domains of your backend")
    questionnaire.answer("Database engine")  # SQLite, the default
    questionnaire.answer("Authentication style")
    questionnaire.expect("Deployment target")
    listing = questionnaire.expect("None (no deployment files)")

    for label, value in (("Kubernetes", "kubernetes"), ("Google Cloud Run", "cloud_run")):
        disabled = re.search(rf"- {label} \(.*\) \((.*)\)", listing)
        assert disabled, listing
        assert disabled.group(1) == (
            f'deployment "{value}" runs several replicas, but SQLite is a file on one machine: '
            "choose database postgresql or mysql"
        )
    # From Docker, the next choice the cursor can reach is VPS.
    questionnaire.send(DOWN + ENTER)
    questionnaire.answer("Redis for what every process must share")  # No, the default

    answers = questionnaire.finish()
    assert (answers["database"], answers["deployment"]) == ("sqlite", "vps")


def test_sqlite_refusal_is_readable_in_80_columns(tmp_path: Path) -> None:
    """At 80 columns the reasons of the disabled choices are cut off: the question says it."""
    questionnaire = Questionnaire(tmp_path / "project", columns=80)
    try:
        questionnaire.accept_identity_defaults()
        questionnaire.answer("Domains of your backend")
        questionnaire.answer("Database engine")
        questionnaire.answer("Authentication style")
        listing = questionnaire.expect("None (no deployment files)")
        assert "Deployment target (with SQLite: not kubernetes or cloud_run)" in listing
        assert "   - Kubernetes (" in listing
        assert "   - Google Cloud Run (" in listing
        questionnaire.send(ENTER)
        questionnaire.answer("Redis for what every process must share")
        assert questionnaire.finish()["deployment"] == "docker"
    finally:
        questionnaire.close()


def test_postgresql_can_pick_kubernetes(questionnaire: Questionnaire) -> None:
    questionnaire.accept_identity_defaults()
    questionnaire.answer("Domains of your backend")
    questionnaire.answer("Database engine", DOWN + ENTER)  # PostgreSQL
    questionnaire.answer("Authentication style")
    questionnaire.expect("Deployment target")
    listing = questionnaire.expect("None (no deployment files)")
    assert "- Kubernetes" not in listing
    assert "with SQLite" not in listing
    questionnaire.send(DOWN + ENTER)
    # Several replicas must share their login budgets: "No" is shown disabled, with why.
    listing = questionnaire.expect("No: one process, everything in memory")
    assert "required: kubernetes runs several replicas" in listing
    disabled = re.search(r"- No: one process, everything in memory \((.*)\)", listing)
    assert disabled, listing
    assert disabled.group(1) == (
        'deployment "kubernetes" runs several replicas, which must share their login budgets: '
        "answer redis=true"
    )
    questionnaire.send(ENTER)

    answers = questionnaire.finish()
    assert (answers["database"], answers["deployment"]) == ("postgresql", "kubernetes")
    assert answers["redis"] is True
    assert (questionnaire.destination / "deploy/kubernetes").is_dir()


def test_bad_domain_list_shows_the_validator_message_and_can_be_retyped(
    questionnaire: Questionnaire,
) -> None:
    questionnaire.accept_identity_defaults()
    questionnaire.answer("Domains of your backend", CLEAR_LINE + "[class]" + ENTER)
    questionnaire.expect(
        """Validation error for question 'domains': domain "class" is a Python keyword"""
    )
    questionnaire.send(CLEAR_LINE + "[posts, posts]" + ENTER)
    questionnaire.expect(
        """Validation error for question 'domains': domain "posts" is listed twice"""
    )
    questionnaire.send(CLEAR_LINE + "[orders, invoices]" + ENTER)
    questionnaire.answer("Database engine")
    questionnaire.answer("Authentication style")
    questionnaire.answer("Deployment target")
    questionnaire.answer("Redis for what every process must share")

    answers = questionnaire.finish()
    assert answers["domains"] == ["orders", "invoices"]


def test_bad_singular_shows_the_validator_message_and_can_be_retyped(
    questionnaire: Questionnaire,
) -> None:
    questionnaire.accept_identity_defaults()
    questionnaire.answer(
        "Domains of your backend", CLEAR_LINE + "[orders, {name: news, singular: News}]" + ENTER
    )
    questionnaire.expect(
        "Validation error for question 'domains': "
        """the singular "News" of domain "news" is not a valid name"""
    )
    questionnaire.send(CLEAR_LINE + "[orders, {name: news, singular: data}]" + ENTER)
    questionnaire.expect(
        """domain "news" gives the singular "data" (model class "Data"), which clashes"""
    )
    questionnaire.send(CLEAR_LINE + "[orders, {name: news, singular: news_item}]" + ENTER)
    questionnaire.answer("Database engine")
    questionnaire.answer("Authentication style")
    questionnaire.answer("Deployment target")
    questionnaire.answer("Redis for what every process must share")

    answers = questionnaire.finish()
    assert answers["domains"] == ["orders", {"name": "news", "singular": "news_item"}]
    assert (questionnaire.destination / "src/my_api/news/models.py").read_text().count(
        "class NewsItem("
    ) == 1
