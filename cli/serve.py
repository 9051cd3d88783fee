"""``audioemb serve INDEX``: a local page to search the collection by example and listen to the results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def serve(
    index: Annotated[Path, typer.Argument(help="Index folder (from `audioemb index build`).")],
    clusters: Annotated[Path | None, typer.Option(help="An `audioemb cluster` output folder of this index: "
                                                  "browse its clusters and its map.")] = None,
    host: Annotated[str, typer.Option(help="Address to bind; the default serves this machine only.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
    token: Annotated[str | None, typer.Option(envvar="AUDIOEMB_TOKEN", help="Require this token on every route "
                                              "(open the page as /?token=TOKEN).")] = None,
    root: Annotated[Path | None, typer.Option(help="Where the collection's files are now (default: the folder "
                                              "the index was built from).")] = None,
    max_upload_mb: Annotated[float, typer.Option(min=0.01, help="Largest upload accepted, MB.")] = 20.0,
    device: Annotated[str, typer.Option(help="auto (CUDA when onnxruntime-gpu sees a GPU), cpu or cuda.")] = "auto",
    model: Annotated[str | None, typer.Option("--model", "-m", help="The index's model, when its folder has moved "
                                              "(checked against the one the index was built with).")] = None,
) -> None:
    """Start the web app on uvicorn: search by a file, a time range or an uploaded clip; listen; clusters; map."""
    from audioemb.serve import create_app, is_loopback

    from ._errors import input_errors

    if not is_loopback(host) and not token:
        typer.echo(f"warning: serving on {host} without --token: anyone who can reach this port can search "
                   "and download the collection", err=True)
    with input_errors(FileNotFoundError, ValueError):
        app = create_app(index, root=root, clusters=clusters, token=token, max_upload_mb=max_upload_mb,
                         device=device, model=model)
    import uvicorn

    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"serving {index} at http://{shown}:{port}/" + (f"?token={token}" if token else "")
               + "  (Ctrl-C stops)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
