"""Input constraints shared by every domain: only values the database can store get in.

Out-of-range ids and NUL characters are refused with 422 by validation instead of
failing in the database driver (a 500), and the OpenAPI schema documents the limits.
"""

from typing import Annotated

from fastapi import Path

# Primary keys are INTEGER columns: 32-bit signed on every supported database.
MAX_ID = 2_147_483_647
# A path id outside that range names no row.
ResourceId = Annotated[int, Path(ge=1, le=MAX_ID)]

# PostgreSQL text cannot hold NUL characters: `Field(pattern=WITHOUT_NUL)` on stored text.
WITHOUT_NUL = r"^[^\x00]*$"
