"""``audioemb serve``: a local web page and JSON API to search an index by example and listen to results.

>>> from audioemb.serve import create_app, serve
>>> app = create_app("sounds.idx", clusters="clusters/")      # a FastAPI app (tests use its TestClient)
>>> serve("sounds.idx", host="127.0.0.1", port=8000)           # runs it on uvicorn

Runs on the plain install (FastAPI, uvicorn); the page's assets are in ``static/`` (no CDN).
"""

from __future__ import annotations

import ipaddress
import os


def create_app(*args, **kwargs):
    """See :func:`audioemb.serve.app.create_app`."""
    from .app import create_app as _create

    return _create(*args, **kwargs)


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (the only hosts served without a warning when no token)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(index: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
          clusters: str | os.PathLike | None = None, root: str | os.PathLike | None = None,
          max_upload_mb: float = 20.0, log_level: str = "warning") -> None:
    """Serve ``index`` on uvicorn until interrupted."""
    import uvicorn

    app = create_app(index, root=root, clusters=clusters, token=token, max_upload_mb=max_upload_mb)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
