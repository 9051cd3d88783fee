"""The ``audioemb serve`` web app (FastAPI on uvicorn): a search page and its JSON API.

Routes: ``/`` (the page, offline: its assets are in ``static/``), ``/api/info``, ``/api/files``, ``/api/item``,
``/api/search`` (by a collection file or a time range of one), ``/api/search/upload`` (by an uploaded clip),
``/api/audio`` (HTTP range requests; transcoded when a browser cannot play the format), ``/api/thumbnail``
(SVG waveform), ``/api/clusters``, ``/api/clusters/{id}``, ``/api/map``, and ``/openapi.json``.
With a token every route needs it: ``Authorization: Bearer T``, the ``audioemb_token`` cookie (set when the
page is opened as ``/?token=T``) or ``?token=T``.
"""

from __future__ import annotations

import hmac
import os
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from ..audio import AudioError
from ..audio import load as load_audio
from ..index import IndexStoreError, ModelMismatchError
from . import schemas
from .media import PathRefused, Transcoder, browser_media_type, peaks, safe_file, transcode_cache, waveform_svg
from .state import Collection

STATIC = Path(__file__).parent / "static"
COOKIE = "audioemb_token"


def create_app(index: str | os.PathLike, root: str | os.PathLike | None = None,
               clusters: str | os.PathLike | None = None, token: str | None = None,
               max_upload_mb: float = 20.0, model=None, device: str = "auto") -> FastAPI:
    """The app serving ``index`` (its files under ``root``, default: the folder it was built from)."""
    col = Collection(index, root=root, clusters=clusters, model=model, device=device)
    cache = transcode_cache()
    transcoder = Transcoder(Path(cache.name))
    max_bytes = int(max_upload_mb * 1024 * 1024)
    app = FastAPI(title="audioemb serve", version="1", docs_url=None, redoc_url=None,
                  description="Search an audio collection by example, listen to results, browse clusters.")
    app.state.collection, app.state.cache = col, cache

    @app.middleware("http")
    async def require_token(request: Request, call_next):
        if token:
            given = (request.headers.get("authorization", "").removeprefix("Bearer ").strip()
                     or request.cookies.get(COOKIE) or request.query_params.get("token") or "")
            if not hmac.compare_digest(given.encode(), token.encode()):
                return JSONResponse({"detail": "a valid token is required (Authorization: Bearer TOKEN, or "
                                     "open the page as /?token=TOKEN)"}, status_code=401)
        response = await call_next(request)
        if token and request.query_params.get("token") and request.url.path == "/":
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return response

    @app.exception_handler(PathRefused)
    async def _refused(_, e: PathRefused):
        return JSONResponse({"detail": str(e)}, status_code=e.status)

    def file_or_error(path: str) -> Path:
        col.current()
        return safe_file(col.root, path, col.files)

    def audio_url(path: str) -> str:
        return f"/api/audio?path={quote(path)}"

    def hits_out(q: str, k: int, hits, t0: float) -> schemas.SearchOut:
        out = []
        for h in hits:
            f = col.files.get(h.path, {})
            thumb = f"/api/thumbnail?path={quote(h.path)}&start={h.start:.3f}&end={h.end:.3f}"
            out.append(schemas.HitOut(rank=h.rank, path=h.path, start=h.start, end=h.end, score=round(h.score, 6),
                                      duration_s=f.get("duration_s"), audio_url=audio_url(h.path),
                                      thumbnail_url=thumb))
        return schemas.SearchOut(query=q, k=k, took_ms=round(1000 * (time.perf_counter() - t0), 2),
                                 index_version=col.version, hits=out)

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/info", response_model=schemas.InfoOut)
    def info():
        i = col.current().info
        return schemas.InfoOut(model=i["model"], dim=i["dim"], count=i["count"], n_files=i["n_files"],
                               index_type=i["index_type"], segments_s=i.get("segments_s"),
                               index_version=col.version, clusters=col.clusters is not None,
                               max_upload_bytes=max_bytes)

    @app.get("/api/files", response_model=schemas.FilesOut)
    def files(q: str = Query("", description="Substring of the path (case-insensitive)."),
              offset: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=1000)):
        col.current()
        names = [p for p in col.files if q.lower() in p.lower()]
        return schemas.FilesOut(total=len(names), offset=offset,
                                files=[_file_out(col, p) for p in names[offset:offset + limit]])

    @app.get("/api/item", response_model=schemas.FileOut)
    def item(path: str):
        col.current()
        if path not in col.files:
            raise HTTPException(404, f"{path!r} is not a file of this index")
        return _file_out(col, path)

    @app.get("/api/search", response_model=schemas.SearchOut)
    def search(path: str = Query(description="A file of the collection (as /api/files lists it)."),
               start: float | None = Query(None, ge=0, allow_inf_nan=False, description="Query only from this "
                                           "second."),
               end: float | None = Query(None, gt=0, allow_inf_nan=False, description="Query only up to this "
                                         "second."),
               k: int = Query(10, ge=1, le=200), all_segments: bool = False):
        t0 = time.perf_counter()
        p = file_or_error(path)
        query = str(p) if start is None and end is None else (str(p), start or 0.0, end)
        try:
            hits = col.current().search(query, k=k, collapse=not all_segments)
        except AudioError as e:
            raise HTTPException(422, f"{path}: {e.reason}") from None
        except ValueError as e:
            raise HTTPException(400, str(e).replace(str(p), path)) from None
        label = path if start is None and end is None else f"{path}@{start or 0:g}-{'' if end is None else f'{end:g}'}"
        return hits_out(label, k, hits, t0)

    @app.post("/api/search/upload", response_model=schemas.SearchOut, openapi_extra={"requestBody": {
        "required": True, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                                      "audio/*": {"schema": {"type": "string", "format": "binary"}}}}})
    async def search_upload(request: Request, k: int = Query(10, ge=1, le=200),
                            filename: str = Query("upload", description="The clip's file name (for messages)."),
                            all_segments: bool = False):
        t0 = time.perf_counter()
        if request.headers.get("content-type", "").startswith("multipart/"):  # curl -F, an HTML form
            raise HTTPException(415, f"{filename}: a multipart form; send the audio file itself as the request body "
                                     "(curl --data-binary @FILE)")
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise HTTPException(413, f"{filename}: {int(declared)} bytes; uploads are limited to {max_bytes} bytes")
        suffix = Path(filename).suffix[:10]
        with tempfile.NamedTemporaryFile(suffix=suffix, dir=cache.name) as tmp:
            size = 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    raise HTTPException(413, f"{filename}: more than {max_bytes} bytes; uploads are limited to that")
                tmp.write(chunk)
            tmp.flush()
            if size == 0:
                raise HTTPException(400, f"{filename}: empty upload; send the audio file as the request body")
            idx = col.current()
            try:
                wave = await run_in_threadpool(load_audio, tmp.name, idx.model.sample_rate)
            except AudioError as e:
                raise HTTPException(415, f"{filename}: not audio this server can decode ({e.reason})") from None
        hits = await run_in_threadpool(idx.search, wave, k, not all_segments, idx.model.sample_rate)
        return hits_out(f"upload:{filename}", k, hits, t0)

    @app.get("/api/audio", response_class=FileResponse, responses={
        206: {"description": "Partial content (Range requests)."}, 200: {"content": {"audio/*": {}}}})
    def audio(path: str):
        p = file_or_error(path)
        mime = browser_media_type(p)
        try:
            playable, mime = (p, mime) if mime else transcoder.get(p)
        except AudioError as e:
            raise HTTPException(415, f"{path}: {e.reason}") from None
        return FileResponse(playable, media_type=mime, headers={"Cache-Control": "private, max-age=300"})

    @app.get("/api/thumbnail", response_class=Response, responses={200: {"content": {"image/svg+xml": {}}}})
    def thumbnail(path: str, start: float = Query(0.0, ge=0, allow_inf_nan=False),
                  end: float = Query(0.0, ge=0, allow_inf_nan=False)):
        p = file_or_error(path)
        if end and end <= start:
            raise HTTPException(400, f"{path}@{start:g}-{end:g}: the end must come after the start")
        try:
            lo, hi = peaks(p, start, end)
        except AudioError as e:
            raise HTTPException(422, f"{path}: {e.reason}") from None
        return Response(waveform_svg(lo, hi), media_type="image/svg+xml",
                        headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/api/clusters", response_model=schemas.ClustersOut)
    def clusters_list():
        c = _clusters(col)
        return schemas.ClustersOut(k=len(c["clusters"]), method=c["summary"].get("method"), clusters=[
            schemas.ClusterOut(cluster=x["cluster"], name=x["name"], size=x["size"],
                               exemplars=[_exemplar(e) for e in x["exemplars"]]) for x in c["clusters"]])

    @app.get("/api/clusters/{cluster}", response_model=schemas.MembersOut)
    def cluster_members(cluster: int, offset: int = Query(0, ge=0), limit: int = Query(50, ge=1, le=1000)):
        c = _clusters(col)
        if cluster not in c["members"]:
            raise HTTPException(404, f"no cluster {cluster}; clusters are 0..{len(c['clusters']) - 1}")
        m = c["members"][cluster]
        return schemas.MembersOut(cluster=cluster, total=len(m), offset=offset,
                                  members=[_exemplar(e) for e in m[offset:offset + limit]])

    @app.get("/api/map", response_model=schemas.MapOut)
    def map_():
        return col.map_data()

    @app.exception_handler(IndexStoreError)
    async def _store(_, e: IndexStoreError):
        status = 409 if isinstance(e, ModelMismatchError) else 503
        return JSONResponse({"detail": str(e)}, status_code=status)

    return app


def _file_out(col: Collection, path: str) -> schemas.FileOut:
    f = col.files[path]
    cluster = col.clusters["of_file"].get(path) if col.clusters is not None else None
    return schemas.FileOut(path=path, duration_s=f.get("duration_s"), size=f.get("size"), error=f.get("error"),
                           audio_url=None if f.get("error") else f"/api/audio?path={quote(path)}", cluster=cluster)


def _exemplar(e: dict) -> schemas.ExemplarOut:
    return schemas.ExemplarOut(path=e["path"], start=e.get("start"), end=e.get("end"), distance=e["distance"],
                               audio_url=f"/api/audio?path={quote(e['path'])}")


def _clusters(col: Collection) -> dict:
    if col.clusters is None:
        raise HTTPException(404, "no clusters: run `audioemb cluster INDEX -o DIR` and serve with --clusters DIR")
    return col.clusters
