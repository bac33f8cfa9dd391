"""Offset pagination shared by every list endpoint."""

from collections.abc import Sequence
from typing import Annotated, Generic, Self, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# Larger offsets would overflow the database's integer parameters (a 500, not a page).
MAX_OFFSET = 2_147_483_647


class PageParams(BaseModel):
    limit: int
    offset: int


async def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> PageParams:
    return PageParams(limit=limit, offset=offset)


PageParamsDep = Annotated[PageParams, Depends(page_params)]


ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    items: list[ItemT]
    total: int
    limit: int
    offset: int

    @classmethod
    def of(cls, rows: Sequence[object], total: int, params: PageParams) -> Self:
        """The page `params` asked for: `Page[PostPublic].of(rows, total, params)` reads
        each row (a plain row or an ORM object) into the item schema."""
        return cls.model_validate(
            {"items": rows, "total": total, "limit": params.limit, "offset": params.offset},
            from_attributes=True,
        )
