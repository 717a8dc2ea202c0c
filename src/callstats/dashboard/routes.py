"""GET /dashboard: the page, its script and styles, and the vendored charting library."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
# The page loads only its own files and talks only to this server; the key never leaves it.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/dashboard")
def dashboard() -> FileResponse:
    """The single-page dashboard (sign in with an API key, kept in sessionStorage)."""
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=PAGE_HEADERS)


def install_dashboard(api: FastAPI) -> None:
    """Serve the dashboard page at /dashboard and its files under /dashboard/static/."""
    api.include_router(router)
    api.mount("/dashboard/static", StaticFiles(directory=STATIC), name="dashboard-static")
