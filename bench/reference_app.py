"""The floor for the PostgreSQL get-by-id figure: FastAPI and raw asyncpg, nothing else.

No ORM, no middleware, no auth, no logging: one pooled query and a dict (get-by-id), or
one round trip for a page and its total in the generated `Page` shape (list). `make bench`
serves it with the generated project's own interpreter (same FastAPI, uvicorn and asyncpg
versions) on the generated project's `posts` table, side by side with the generated app.

    REFERENCE_DATABASE_URL=postgresql://user:pw@127.0.0.1:5432/db \
        uvicorn reference_app:app --app-dir bench --no-access-log
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI, HTTPException, Query, Request


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    pool_size = int(os.environ.get("REFERENCE_POOL_SIZE", "20"))  # generated: 20 + 0
    app.state.pool = await asyncpg.create_pool(
        os.environ["REFERENCE_DATABASE_URL"], min_size=1, max_size=pool_size
    )
    try:
        yield
    finally:
        await app.state.pool.close()


app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

QUERY = "SELECT id, name, description, owner_id, created_at, updated_at FROM posts WHERE id = $1"


@app.get("/posts/{post_id}")
async def get_post(post_id: int, request: Request) -> dict[str, Any]:
    row = await request.app.state.pool.fetchrow(QUERY, post_id)
    if row is None:
        raise HTTPException(status_code=404)
    return dict(row)


# The page and the total in one round trip (a window count over the whole table).
LIST_QUERY = (
    "SELECT id, name, description, owner_id, created_at, updated_at, count(*) OVER () AS total"
    " FROM posts ORDER BY id LIMIT $1 OFFSET $2"
)
COUNT_QUERY = "SELECT count(*) FROM posts"


@app.get("/posts")
async def list_posts(
    request: Request,
    limit: int = Query(20, ge=1, le=100),
    offset: int = Query(0, ge=0),
) -> dict[str, Any]:
    """The generated `Page`: items, total, limit, offset."""
    rows = await request.app.state.pool.fetch(LIST_QUERY, limit, offset)
    if rows:
        total = rows[0]["total"]
    else:  # past the end: the window count has no row to ride on
        total = await request.app.state.pool.fetchval(COUNT_QUERY)
    items = [{k: v for k, v in row.items() if k != "total"} for row in rows]
    return {"items": items, "total": total, "limit": limit, "offset": offset}
