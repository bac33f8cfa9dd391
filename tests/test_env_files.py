"""`.env` and `.env.example` only say what is true for the project they are in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import VARIANTS, Variant

# One variant per database x deployment: these files do not depend on the rest.
ENV_VARIANTS = list(
    {(v.database, v.deployment): v for v in VARIANTS if "domains" not in v.answers}.values()
)


@pytest.mark.parametrize("variant", ENV_VARIANTS, ids=[v.id for v in ENV_VARIANTS])
def test_env_files_name_compose_only_when_the_project_has_it(
    render: Callable[[Variant], Path], variant: Variant
) -> None:
    project = render(variant)
    has_compose = (project / "compose.yaml").is_file()
    server_database = variant.database != "sqlite"
    for name in (".env", ".env.example"):
        text = (project / name).read_text()
        assert ("compose.yaml" in text) is (has_compose and server_database), name
        assert ("DATABASE_PASSWORD=" in text) is server_database, name
