"""The questionnaire: every bad answer is refused with a clear message, nothing is written."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import copier
import jinja2
import pytest
import yaml
from jinja2_ansible_filters import AnsibleCoreFiltersExtension

from tests.helpers import FORBIDDEN, ROOT, VARIANTS, choices, is_forbidden

NEWS = {"name": "news", "singular": "news_item"}

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
    ({"domains": ["classes"]}, 'gives the singular "class", a Python keyword: give it another'),
    ({"domains": ["matches"]}, 'gives the singular "match", a Python keyword'),
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
    ({"domains": ["repositories"]}, '"repository" (model class "Repository"), which clashes'),
    ({"domains": ["owner_scopes"]}, '"owner_scope" (model class "OwnerScope"), which clashes'),
    ({"domains": [{"name": "profiles", "singular": "me"}]}, "the operation ids of /users/me"),
    ({"domains": [{"name": "members", "singular": "user"}]}, '"user" (model class "User"), which'),
    ({"domains": ["sessions"]}, 'singular "session" (model class "Session"), which clashes'),
    ({"domains": ["bases"]}, 'singular "base" (model class "Base"), which clashes'),
    # The mapping form: {name, singular}.
    ({"domains": [{**NEWS, "plural": "news"}]}, 'unknown key "plural" (a domain is a name, or'),
    ({"domains": [{"singular": "news_item"}]}, "has no name: write it as {name: news,"),
    ({"domains": [{"name": 3}]}, "domain names must be strings; got 3"),
    ({"domains": [{"name": "news", "singular": 3}]}, 'domain "news": its singular must be a str'),
    ({"domains": [{"name": "news", "singular": None}]}, "its singular must be a string; got None"),
    ({"domains": [{"name": "News", "singular": "item"}]}, 'domain "News" is not a valid name'),
    ({"domains": [{"name": "auth", "singular": "x"}]}, 'domain "auth" is reserved'),
    (
        {"domains": [{"name": "news", "singular": "NewsItem"}]},
        'singular "NewsItem" of domain "news" is not a valid name',
    ),
    ({"domains": [{"name": "news", "singular": "news_"}]}, 'must not end with "_" or contain "__"'),
    ({"domains": [{"name": "news", "singular": "n" * 25}]}, "is too long: at most 24 characters"),
    (
        {"domains": [{"name": "news", "singular": "import"}]},
        'singular "import" of domain "news" is a Python keyword',
    ),
    (
        {"domains": [{"name": "news", "singular": "data"}]},
        'singular "data" (model class "Data"), which clashes with a name the generated domain code',
    ),
    (
        {"domains": [NEWS, {"name": "items", "singular": "news_item"}]},
        'gives the singular "news_item" (model class "NewsItem"), which an earlier domain has',
    ),
    (
        {"domains": ["post2", {"name": "others", "singular": "post_2"}]},
        '(model class "Post2"), which an earlier domain has',
    ),
    (
        {"domains": ["posts", {"name": "articles", "singular": "posts"}]},
        'gives the singular "posts", the name of another domain',
    ),
    (
        {"domains": [{"name": "articles", "singular": "posts"}, "posts"]},
        "the name of another domain",
    ),
    ({"domains": [NEWS, NEWS]}, 'domain "news" is listed twice'),
    ({"domains": ["news", NEWS]}, 'domain "news" is listed twice'),
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
    [
        ["posts"],
        ["blog_posts", "categories"],
        ["inventory", "order_items", "boxes", "status"],
        ["orders", NEWS, "series"],
        [{"name": "people"}, {"name": "data", "singular": "data_point"}, "statuses"],
        [{"name": "series", "singular": "series"}, {"name": "news", "singular": "news"}],
    ],
)
def test_good_domain_lists_are_accepted(tmp_path: Path, domains: list[object]) -> None:
    worker = copier.run_copy(
        str(ROOT),
        tmp_path / "project",
        data={"domains": domains},
        defaults=True,
        vcs_ref="HEAD",
        quiet=True,
    )

    assert worker.answers.combined["domains"] == domains


# --- Naming: includes/naming.jinja ----------------------------------------------------


def naming() -> Any:  # a Jinja template module: its macros and top-level lists
    """includes/naming.jinja, loaded the way Copier loads it (from the repository root, with
    the Ansible filters): its rules are checked without rendering a project."""
    env = jinja2.Environment(  # noqa: S701  # renders Python and YAML, like Copier
        loader=jinja2.FileSystemLoader(ROOT), extensions=[AnsibleCoreFiltersExtension]
    )
    return env.get_template("includes/naming.jinja").module


GUESSES = {
    # -s, and what it leaves alone
    "posts": "post",
    "blog_posts": "blog_post",
    "order_items": "order_item",
    "inventory": "inventory",
    "status": "status",
    "address": "address",
    "analysis": "analysis",
    "bus": "bus",
    "ads": "ads",
    "blog_ads": "blog_ad",
    "ties": "tie",
    # suffix rules
    "categories": "category",
    "analyses": "analysis",
    "statuses": "status",
    "bonuses": "bonus",
    "houses": "house",
    "causes": "cause",
    "addresses": "address",
    "boxes": "box",
    "dishes": "dish",
    "matches": "match",
    "buzzes": "buzz",
    "responses": "response",
    # the table, by the last word
    "news": "news",
    "series": "series",
    "species": "species",
    "people": "person",
    "sales_people": "sales_person",
    "data": "datum",
    "movies": "movie",
    "indices": "index",
    "quizzes": "quiz",
}


@pytest.mark.parametrize(("plural", "singular"), GUESSES.items())
def test_singular_guess(plural: str, singular: str) -> None:
    assert naming().guess_singular(plural) == singular


def test_domain_specs_read_both_forms() -> None:
    specs = naming().domain_specs(["orders", NEWS, {"name": "series"}, "people"])

    assert yaml.safe_load(specs) == [
        {
            "name": "orders",
            "singular": "order",
            "entity": "Order",
            "plural": "Orders",
            "title": "Orders",
            "words": "orders",
            "path": "orders",
            "env": "ORDERS",
        },
        {
            "name": "news",
            "singular": "news_item",
            "entity": "NewsItem",
            "plural": "News",
            "title": "News",
            "words": "news",
            "path": "news",
            "env": "NEWS",
        },
        {
            "name": "series",
            "singular": "series",
            "entity": "Series",
            "plural": "Series",
            "title": "Series",
            "words": "series",
            "path": "series",
            "env": "SERIES",
        },
        {
            "name": "people",
            "singular": "person",
            "entity": "Person",
            "plural": "People",
            "title": "People",
            "words": "people",
            "path": "people",
            "env": "PEOPLE",
        },
    ]


def test_rendered_names_follow_the_singulars(copie) -> None:
    """Class names, functions and route parameters come from each domain's singular."""
    result = copie.copy(
        extra_answers={"domains": [NEWS, "series", "people", "analyses"], "auth": "none"}
    )
    assert result.exit_code == 0, result.exception
    project = Path(result.project_dir)
    for name, singular, entity in (
        ("news", "news_item", "NewsItem"),
        ("series", "series", "Series"),
        ("people", "person", "Person"),
        ("analyses", "analysis", "Analysis"),
    ):
        package = project / "src/my_api" / name
        models = ast.parse((package / "models.py").read_text())
        classes = [node.name for node in models.body if isinstance(node, ast.ClassDef)]
        assert classes == [entity]
        assert f"class {entity}NotFoundError(" in (package / "exceptions.py").read_text()
        router = (package / "router.py").read_text()
        assert f'"/{{{singular}_id}}"' in router
        assert f"async def create_{singular}(" in router
        assert f"async def list_{name}(" in router
        assert (project / "tests" / name / f"test_{name}_api.py").is_file()
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert isinstance(answers, dict)
    assert answers["domains"] == [NEWS, "series", "people", "analyses"]


# The names a domain's singular becomes, in a render where the singular is `widget` and
# the name `inventory` (nothing else contains them).
SINGULAR_FORMS = {"widget": "s", "Widget": "E", "WIDGET": "U"}
NAME_FORMS = ("inventory", "Inventory", "INVENTORY")


def is_class(node: ast.AST) -> bool:
    return isinstance(node, ast.ClassDef)


SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


def scopes(tree: ast.Module) -> list[set[str]]:
    """The identifiers of each scope of a module, bound or read: a parameter `data` beside a
    parameter `news_item` is as fatal as a parameter `service` hiding the module `service`."""
    found: list[set[str]] = []

    def collect(names: set[str], nodes: list[ast.AST]) -> None:
        while nodes:
            node = nodes.pop()
            if isinstance(node, SCOPES):
                # Its name, decorators, bases, annotations and defaults belong to this scope.
                if not isinstance(node, ast.Lambda):
                    names.add(node.name)
                nodes += [*getattr(node, "decorator_list", ()), *getattr(node, "bases", ())]
                params: set[str] = set()
                if not isinstance(node, ast.ClassDef):
                    args = node.args
                    every = [*args.posonlyargs, *args.args, *args.kwonlyargs]
                    every += [arg for arg in (args.vararg, args.kwarg) if arg]
                    params = {arg.arg for arg in every}
                    nodes += [arg.annotation for arg in every if arg.annotation]
                    nodes += [*args.defaults, *(d for d in args.kw_defaults if d)]
                    nodes += [node.returns] if getattr(node, "returns", None) else []
                body = node.body if isinstance(node.body, list) else [node.body]
                collect(params, list(body))
            else:
                if isinstance(node, ast.Name):
                    names.add(node.id)
                elif isinstance(node, ast.alias):
                    names.add((node.asname or node.name).split(".")[0])
                nodes += ast.iter_child_nodes(node)
        found.append(names)

    collect(set(), [tree])
    return found


def singulars_clashing(fixed: str, derived: str) -> set[str]:
    """The singulars for which the identifier `derived` (written for `widget`) becomes `fixed`."""
    parts = re.split("(widget|Widget|WIDGET)", derived)
    forms = {
        "widget": "([a-z][a-z0-9_]*)",
        "Widget": "((?:[A-Z][a-z0-9]*)+)",
        "WIDGET": "([A-Z][A-Z0-9_]*)",
    }
    pattern = "".join(forms.get(part, re.escape(part)) for part in parts)
    match = re.fullmatch(pattern, fixed)
    if not match:
        return set()
    candidates = set()
    for part, value in zip([p for p in parts if p in forms], match.groups(), strict=True):
        if part == "Widget":
            value = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", value)
        candidates.add(value.lower())
    singular = candidates.pop() if len(candidates) == 1 else ""
    entity = "".join(word.capitalize() for word in singular.split("_"))
    spelled = {"widget": singular, "Widget": entity, "WIDGET": singular.upper()}
    return {singular} if singular and "".join(spelled.get(p, p) for p in parts) == fixed else set()


@pytest.fixture(scope="module")
def widget_renders(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A one-domain project per auth style (their domain code differs)."""
    projects = []
    for auth in choices("auth"):
        destination = tmp_path_factory.mktemp("widget") / auth
        copier.run_copy(
            str(ROOT),
            destination,
            data={"domains": [{"name": "inventory", "singular": "widget"}], "auth": auth},
            defaults=True,
            vcs_ref="HEAD",
            quiet=True,
        )
        projects.append(destination)
    return projects


def test_taken_singulars_are_exactly_the_names_a_domain_already_uses(
    widget_renders: list[Path],
) -> None:
    """includes/naming.jinja refuses the singulars that would give a domain an identifier its
    code already uses in the same scope (`page`: class Page beside the imported Page). The
    list is derived here from renders: when the domain templates change, this test says
    which names to add to `taken_singulars` or remove from it."""
    sources = ["src/my_api/inventory/*.py", "tests/inventory/*.py", "src/my_api/domains.py"]
    clashing: set[str] = set()
    for project in widget_renders:
        # Models and schemas meet in one namespace too: the ORM registry, the OpenAPI schemas.
        shared = [
            path
            for pattern in ("models", "schemas", "accounts", "account_schemas")
            for path in project.glob(f"src/**/{pattern}.py")
        ]
        trees = [ast.parse(path.read_text()) for path in shared]
        classes = {node.name for tree in trees for node in ast.walk(tree) if is_class(node)}
        found = [scopes(ast.parse(path.read_text())) for p in sources for path in project.glob(p)]
        for names in [classes, *(names for module in found for names in module)]:
            own = {name for name in names if any(form in name for form in SINGULAR_FORMS)}
            others = names - own - {n for n in names if any(f in n for f in NAME_FORMS)}
            clashing |= {s for d in own for f in others for s in singulars_clashing(f, d)}
    module = naming()
    clashing = {s for s in clashing if s not in module.keywords and not s.endswith("_")}
    listed = set(module.taken_singulars)

    assert sorted(module.taken_singulars) == list(module.taken_singulars), "keep it sorted"
    missing, stale = sorted(clashing - listed), sorted(listed - clashing)
    assert not missing, f"add to taken_singulars in includes/naming.jinja: {missing}"
    assert not stale, f"remove from taken_singulars in includes/naming.jinja: {stale}"


@pytest.mark.parametrize(
    ("answers", "message"), FORBIDDEN, ids=["-".join(map(str, a.values())) for a, _ in FORBIDDEN]
)
def test_forbidden_combination_is_refused(
    tmp_path: Path, answers: dict[str, object], message: str
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
