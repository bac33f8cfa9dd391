"""Operation ids of the OpenAPI document: one rule for every route.

An operation's id is its route's name, which is the endpoint function's name unless the
route sets `name=`: `create_post`, `login`, `read_me`. Clients generated from the document
name their functions and request-body models after it (`create_post`, `BodyLogin`), so the
ids stay short and change only when an endpoint is renamed. FastAPI's default id repeats the
path and the method (`create_post_posts_post`).

Every id must be unique in the app: `tests/core/test_openapi.py` fails on a duplicate, where
FastAPI itself only warns. Give one of the two endpoints another function name (or `name=`).
"""

from fastapi.routing import APIRoute


def operation_id(route: APIRoute) -> str:
    """The app's `generate_unique_id_function`: the route's name."""
    return route.name
