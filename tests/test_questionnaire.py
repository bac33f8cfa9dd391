"""The questionnaire: every bad answer is refused with a clear message, nothing is written."""

from __future__ import annotations

import ast
from pathlib import Path

import copier
import pytest

from tests.helpers import FORBIDDEN, ROOT, VARIANTS, choices, is_forbidden

BAD_ANSWERS = [
    ({"domains": "posts"}, "domains must be a YAML list of names"),
    ({"domains": {"posts": 1}}, "domains must be a YAML list of names"),
    ({"domains": 7}, "domains must be a YAML list of names"),
    ({"domains": []}, "domains must list at least one domain"),
    ({"domains": [1]}, "domain names must be strings"),
    ({"domains": [None]}, "domain names must be strings"),
    ({"domains": ["Posts"]}, 'domain "Posts" is not a valid name'),
    ({"domains": ["blog-posts"]}, 'domain "blog-posts" is not a valid name'),
    ({"domains": ["2fa"]}, 'domain "2fa" is not a valid name'),
    ({"domains": ["_private"]}, 'domain "_private" is not a valid name'),
    ({"domains": ["posts_"]}, 'must not end with "_" or contain "__"'),
    ({"domains": ["blog__posts"]}, 'must not end with "_" or contain "__"'),
    ({"domains": ["a" * 25]}, "is too long"),
    ({"domains": ["class"]}, 'domain "class" is a Python keyword'),
    ({"domains": ["match"]}, 'domain "match" is a Python keyword'),
    ({"domains": ["classes"]}, 'gives the singular "class", a Python keyword'),
    ({"domains": ["sys"]}, "is the name of a Python builtin module"),
    ({"domains": ["builtins"]}, "is the name of a Python builtin module"),
    ({"domains": ["fastapi"]}, "is the name of a library the generated project depends on"),
    ({"domains": ["auth"]}, 'domain "auth" is reserved by the generated core'),
    ({"domains": ["users"]}, 'domain "users" is reserved by the generated core'),
    ({"domains": ["api_keys"]}, 'domain "api_keys" is reserved by the generated core'),
    ({"domains": ["refresh_tokens"]}, 'domain "refresh_tokens" is reserved by the generated core'),
    ({"domains": ["core"]}, 'domain "core" is reserved by the generated core'),
    ({"domains": ["health"]}, 'domain "health" is reserved by the generated core'),
    ({"domains": ["migrations"]}, 'domain "migrations" is reserved by the generated core'),
    ({"domains": ["my_api"]}, 'domain "my_api" is reserved by the generated core'),
    ({"domains": ["posts", "tags", "posts"]}, 'domain "posts" is listed twice'),
    ({"domains": ["pages"]}, 'model class "Page", which clashes'),
    ({"domains": ["fields"]}, 'model class "Field", which clashes'),
    # Singular: no such question, and `domain` names each domain in template paths.
    ({"domain": ["orders"]}, 'there is no question "domain": did you mean domains?'),
    ({"domains": ["orders"], "domain": ["orders"]}, 'there is no question "domain"'),
    ({"project_name": "   "}, "project_name must not be empty"),
    ({"project_name": "123 Service"}, "project_name must start with a letter"),
    ({"project_name": "FastAPI"}, 'package name "fastapi", which would shadow'),
    ({"project_name": "Bench"}, 'package name "bench", which would shadow'),
    ({"project_name": "x" * 40}, "project_name is too long"),
    ({"project_name": 'The "Best" API'}, "project_name must not contain double quotes"),
    ({"project_name": "API #1"}, "project_name must not contain double quotes"),
    ({"description": 'A "quoted" service'}, "description must be one line"),
    ({"description": "two\nlines"}, "description must be one line"),
    ({"author_name": "Back\\slash"}, "author_name must be one non-empty line"),
    ({"author_email": "not-an-email"}, "author_email must look like"),
    ({"python_version": "3.9"}, "Invalid choice for 'python_version'"),
    ({"auth": "oauth"}, "Invalid choice for 'auth'"),
    ({"database": "oracle"}, "Invalid choice for 'database'"),
    ({"deployment": "heroku"}, "Invalid choice for 'deployment'"),
    (
        {"database": "sqlite", "deployment": "kubernetes"},
        'deployment "kubernetes" runs several replicas, but SQLite is a file on one machine',
    ),
    (
        {"database": "sqlite", "deployment": "cloud_run"},
        'deployment "cloud_run" runs several replicas, but SQLite is a file on one machine',
    ),
]


@pytest.mark.parametrize(
    ("answers", "message"), BAD_ANSWERS, ids=[repr(a)[:60] for a, _ in BAD_ANSWERS]
)
def test_bad_answer_is_refused_before_anything_is_written(
    tmp_path: Path, answers: dict[str, object], message: str
) -> None:
    destination = tmp_path / "project"

    with pytest.raises(ValueError, match=r"Validation error|Invalid choice") as error:
        copier.run_copy(
            str(ROOT), destination, data=answers, defaults=True, vcs_ref="HEAD", quiet=True
        )

    assert message in str(error.value)
    assert not destination.exists()


@pytest.mark.parametrize(
    "domains",
    [["posts"], ["blog_posts", "categories"], ["inventory", "order_items", "boxes", "status"]],
)
def test_good_domain_lists_are_accepted(tmp_path: Path, domains: list[str]) -> None:
    worker = copier.run_copy(
        str(ROOT),
        tmp_path / "project",
        data={"domains": domains},
        defaults=True,
        vcs_ref="HEAD",
        quiet=True,
    )

    assert worker.answers.combined["domains"] == domains


def test_clash_list_covers_every_name_a_domain_module_imports(copie) -> None:
    """A domain's model class must never shadow a name its own modules import."""
    result = copie.copy(extra_answers={"domains": ["posts"]})
    assert result.exit_code == 0, result.exception
    config = (ROOT / "copier.yml").read_text()
    clash_list = config.split("set imported_names = [", 1)[1].split("]", 1)[0]
    guarded = {name.strip(" '") for name in clash_list.split(",")}
    imported: set[str] = set()
    sources = [*(Path(result.project_dir) / "src/my_api/posts").glob("*.py")]
    sources.append(Path(result.project_dir) / "tests/posts/test_posts_api.py")
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom):
                imported.update(alias.asname or alias.name for alias in node.names)
    capitalised = {
        name
        for name in imported
        if name[:1].isupper() and not name.isupper() and not name.startswith("Post")
    }
    assert capitalised - guarded == set()


@pytest.mark.parametrize(
    ("answers", "message"), FORBIDDEN, ids=["-".join(a.values()) for a, _ in FORBIDDEN]
)
def test_forbidden_combination_is_refused(
    tmp_path: Path, answers: dict[str, str], message: str
) -> None:
    """The matrix skips helpers.FORBIDDEN: each entry must really be refused by copier.yml
    (a disabled choice, "Invalid choice", or a question validator, "Validation error")."""
    destination = tmp_path / "project"

    with pytest.raises(ValueError, match=r"Invalid choice|Validation error") as error:
        copier.run_copy(
            str(ROOT), destination, data=answers, defaults=True, vcs_ref="HEAD", quiet=True
        )

    assert message in str(error.value)
    assert not destination.exists()


def test_matrix_covers_every_allowed_combination_and_no_forbidden_one() -> None:
    combos = {(v.database, v.auth, v.deployment) for v in VARIANTS if "domains" not in v.answers}
    assert not any(is_forbidden({"database": d, "auth": a, "deployment": p}) for d, a, p in combos)
    for database in choices("database"):
        for deployment in choices("deployment"):
            answers = {"database": database, "deployment": deployment}
            for auth in choices("auth"):
                assert ((database, auth, deployment) in combos) is not is_forbidden(answers)


def test_message_after_copy_suggests_no_domain_the_project_has(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copier.run_copy(
        str(ROOT),
        tmp_path / "project",
        data={"domains": ["orders", "customers"]},
        defaults=True,
        vcs_ref="HEAD",
    )

    message = capsys.readouterr().err.split("is ready in", 1)[1]
    assert "make add-domain NAME=<domain>" in message
    assert "NAME=orders" not in message
