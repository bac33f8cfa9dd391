"""Who is calling, as the database sees it: each auth style checks its credentials in SQL.

A `CallerCheck` is a query built once that finds the caller's row only while the
credentials are valid, the values it takes for this request, and `verify`, which reads
that row (or its absence) into a `Caller` or refuses with 401. A read that needs the
caller and a row asks for both in one round trip (`Repository.read_visible` joins the two
queries); other routes load the caller alone (`load_caller`).
"""

from typing import Any, NamedTuple, Protocol

from sqlalchemy import Row, Select
from sqlalchemy.ext.asyncio import AsyncSession

# A select and a row of any columns (SQLAlchemy types them column by column).
AnySelect = Select[*tuple[Any, ...]]
AnyRow = Row[*tuple[Any, ...]]


class Caller(NamedTuple):
    """The authenticated caller: who they are, and whether they see every row."""

    id: int
    is_admin: bool

    @property
    def owner_scope(self) -> int | None:
        """Whose rows the caller sees: everyone's (None) for admins, else their own."""
        return None if self.is_admin else self.id


class CallerCheck(Protocol):
    """One request's credentials, to be checked by the database."""

    @property
    def query(self) -> AnySelect:
        """The caller's row, its columns labelled `caller_*`, while the credentials are
        valid. The same object for every request: what varies is in `parameters`."""
        ...

    @property
    def parameters(self) -> dict[str, object]: ...

    @property
    def user_id(self) -> int:
        """The user the credentials name (whose rows a page shows, once `verify` agrees)."""
        ...

    def verify(self, row: AnyRow | None) -> Caller:
        """The caller `query` found; 401 when it found none (or the wrong one)."""
        ...


async def load_caller(session: AsyncSession, check: CallerCheck) -> Caller:
    connection = await session.connection()
    result = await connection.execute(check.query, check.parameters)
    return check.verify(result.first())
