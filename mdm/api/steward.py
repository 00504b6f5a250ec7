"""The stewards' web page at /steward: static HTML, CSS and plain JS over the JSON API.

No build step and no template engine: the page is a few files in mdm/steward,
served as they are; everything it shows comes from the /v1 API.
"""

from __future__ import annotations

from pathlib import Path

from litestar.static_files import create_static_files_router

from mdm.api.auth import Permission, requires

STEWARD_DIR = Path(__file__).resolve().parent.parent / "steward"

STEWARD_ROUTES = [
    create_static_files_router(
        path="/steward",
        directories=[STEWARD_DIR],
        html_mode=True,
        name="steward",
        # The page holds no data: everything it shows comes from the API with the
        # key the user types in.
        opt=requires(Permission.PUBLIC),
        include_in_schema=False,
    )
]
