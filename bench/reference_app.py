"""The floor for the PostgreSQL get-by-id figure: FastAPI and raw asyncpg, nothing else.

No ORM, no middleware, no auth, no logging: one pooled query and a dict. `make bench`
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
from fastapi import FastAPI, HTTPException, Request


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    pool_size = int(os.environ.get("REFERENCE_POOL_SIZE", "20"))  # generated: 10 + 10 overflow
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
