from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import create_async_engine


async def test_health_is_ok(anonymous_client: AsyncClient) -> None:
    response = await anonymous_client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_database_answers(anonymous_client: AsyncClient) -> None:
    response = await anonymous_client.get("/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_is_503_when_database_is_unreachable(
    app: FastAPI, anonymous_client: AsyncClient
) -> None:
    database = app.state.database
    working_engine = database.engine
    database.engine = create_async_engine("sqlite+aiosqlite:////nonexistent-dir/unreachable.db")
    try:
        response = await anonymous_client.get("/ready")
    finally:
        await database.engine.dispose()
        database.engine = working_engine

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}
