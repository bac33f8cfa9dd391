"""The questionnaire during `copier update` (what `make add-domain` and `make update` run):
quiet, and still guarded."""

from __future__ import annotations

import warnings
from pathlib import Path

import copier
import pytest
import yaml
from copier import VcsRef

from tests.helpers import git
from tests.test_update import generate as generate_project
from tests.test_update import template_snapshot  # noqa: F401  # fixture


def generate(snapshot: Path, destination: Path) -> Path:
    return generate_project(snapshot, destination, ["posts", "tags"])


def update(project: Path, **data: object) -> list[str]:
    """`copier update --defaults --vcs-ref=:current: -d ...`; the warnings it emitted."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        copier.run_update(
            project,
            data=data,
            defaults=True,
            overwrite=True,
            quiet=True,
            vcs_ref=VcsRef.CURRENT,
        )
    return [f"{warning.category.__name__}: {warning.message}" for warning in caught]


def test_update_warns_nothing_and_still_guards_domain_removal(
    template_snapshot: Path,  # noqa: F811  # the fixture imported above
    tmp_path: Path,
) -> None:
    project = generate(template_snapshot, tmp_path / "project")

    emitted = update(project, domains=["posts", "tags", "orders"])

    assert [w for w in emitted if "MissingFileWarning" in w] == []
    assert yaml.safe_load((project / ".copier-answers.yml").read_text())["domains"] == [
        "posts",
        "tags",
        "orders",
    ]
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "--message", "add orders")

    with pytest.raises(ValueError, match="removing domains tags would drop them"):
        update(project, domains=["posts", "orders"])
    assert git(project, "status", "--porcelain") == ""


def test_singular_domain_answer_is_refused_on_update(
    template_snapshot: Path,  # noqa: F811  # the fixture imported above
    tmp_path: Path,
) -> None:
    """`-d domain=[...]` once crashed with "got multiple values for keyword argument
    'domain'" (the name of each domain in template paths); now it names the question."""
    project = generate(template_snapshot, tmp_path / "project")

    with pytest.raises(ValueError, match=r'there is no question "domain": did you mean domains\?'):
        update(project, domain=["posts", "tags", "orders"])

    assert git(project, "status", "--porcelain") == ""


def test_string_answers_update_to_the_mapping_form_and_removal_compares_names(
    template_snapshot: Path,  # noqa: F811  # the fixture imported above
    tmp_path: Path,
) -> None:
    """Answers files hold plain names (every released one) or {name, singular} mappings:
    updating between them is no removal, dropping a name in either form is."""
    project = generate(template_snapshot, tmp_path / "project")
    news = {"name": "news", "singular": "news_item"}

    update(project, domains=[{"name": "posts", "singular": "post"}, "tags", news])

    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["domains"] == [{"name": "posts", "singular": "post"}, "tags", news]
    router = (project / "src/my_api/news/router.py").read_text()
    assert '"/{news_item_id}"' in router
    assert "async def create_news_item(" in router
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "--message", "add news")

    for kept in (["posts", "tags"], [{"name": "posts"}, "tags"]):
        with pytest.raises(ValueError, match="removing domains news would drop them"):
            update(project, domains=kept)
    assert git(project, "status", "--porcelain") == ""

    # Back to a plain name with the same singular: only the answers file changes.
    update(project, domains=["posts", "tags", news])
    assert git(project, "status", "--porcelain") == " M .copier-answers.yml\n"
