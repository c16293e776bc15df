"""The labelling page's web app (Starlette): the page, its JSON API, the clips.

  GET  /                      the page (experiments/label_page/)
  GET  /api/next              {"item": {...} | null, "progress": {...}, "annotator": id}
  POST /api/label             an answer {"item_id", "label", "confidence", "seconds", "rubric"}
  GET  /clips/<sha256>.webm   a clip from the cache directory, nothing else

Who is asking: on 127.0.0.1 without tokens, `?annotator=<id>` (default the first annotator), and
only Host headers 127.0.0.1 / localhost are served (a page on another site cannot reach the
server through DNS rebinding). With tokens (any other bind address), every request carries its
annotator's token as the `X-Label-Token` header or a `token` query parameter: none is 401, a
wrong one 403. Posts must be `application/json` (415 otherwise; a cross-site form cannot send
that without a preflight this app never grants), at most 16 KiB (413), valid JSON (400); the
session's checks give 404 (unknown item), 409 (a different answer to an answered pair) and 422
(a bad field). Every error is {"error": "<one line>"}.
"""
from __future__ import annotations

import json
import os
import secrets
import threading
from typing import Mapping

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from rlhf_jax.labels.clips import ClipCache
from rlhf_jax.labels.session import AnswerError, LabelSession

PAGE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "label_page")
MAX_BODY = 16 * 1024
TOKEN_HEADER = "x-label-token"
LOCAL_HOSTS = ["127.0.0.1", "localhost"]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class _Unauthorised(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def make_app(session: LabelSession, sources, cache: ClipCache, *, tokens: Mapping[str, str] | None,
             show_gold_accuracy: bool = False) -> Starlette:
    """The app over a session; `sources` gives views, frames(row, view) and clip_key(row, view)."""
    render_lock = threading.Lock()  # one render at a time: two cores, and JAX compiles once per view

    def annotator_of(request: Request) -> str:
        if tokens is None:
            who = request.query_params.get("annotator") or session.annotators()[0]
            if who not in session.annotators():
                raise _Unauthorised(403, f"unknown annotator {who!r}")
            return who
        given = request.headers.get(TOKEN_HEADER) or request.query_params.get("token")
        if not given:
            raise _Unauthorised(401, "a token is required (X-Label-Token header or ?token=)")
        for who, tok in tokens.items():
            if secrets.compare_digest(given.encode(), tok.encode()):
                return who
        raise _Unauthorised(403, "unknown token")

    def clip_name(row: int, view: str) -> str:
        key = sources.clip_key(row, view)
        name = cache.cached(key)  # a cached clip never waits behind another item's render
        if name is None:
            with render_lock:
                name = cache.clip(key, lambda: sources.frames(row, view))
        return name

    def clip_names(item) -> dict:
        return {view: {side: clip_name(row, view) for side, row in (("left", item.row_a), ("right", item.row_b))}
                for view in sources.views}

    def warm() -> None:
        """Renders every annotator's next item: the first page load then finds its clips ready."""
        for who in session.annotators():
            item = session.next_item(who)
            if item is not None:
                clip_names(item)

    def prefetch(annotator: str, current_id: str) -> None:
        later = [it for it in session.items if (annotator, it.item_id) not in session.answers
                 and it.item_id != current_id]
        if later:
            clip_names(later[0])

    def item_json(item, query: str) -> dict:
        names = clip_names(item)
        return {"item_id": item.item_id, "views": list(sources.views), "frames": int(session.segments.length),
                "fps": cache.fps, "rubric": list(session.rubric),
                "confidence_levels": list(session.confidence_levels),
                "clips": {v: {s: f"/clips/{n}{query}" for s, n in sides.items()} for v, sides in names.items()}}

    def state(annotator: str, query: str) -> tuple[dict, BackgroundTask | None]:
        item = session.next_item(annotator)
        out = {"annotator": annotator, "item": None if item is None else item_json(item, query),
               "progress": session.progress(annotator).to_json(show_gold_accuracy)}
        task = None if item is None else BackgroundTask(prefetch, annotator, item.item_id)
        return out, task

    def token_query(request: Request) -> str:
        tok = request.headers.get(TOKEN_HEADER) or request.query_params.get("token")
        return f"?token={tok}" if tokens is not None and tok else ""

    async def page(request: Request) -> Response:
        try:
            annotator_of(request)
        except _Unauthorised as e:
            return _error(e.status, str(e))
        return FileResponse(os.path.join(PAGE_DIR, "index.html"), headers={"Cache-Control": "no-store"})

    async def next_item(request: Request) -> Response:
        try:
            who = annotator_of(request)
        except _Unauthorised as e:
            return _error(e.status, str(e))
        out, task = state(who, token_query(request))
        return JSONResponse(out, background=task, headers={"Cache-Control": "no-store"})

    async def label(request: Request) -> Response:
        try:
            who = annotator_of(request)
        except _Unauthorised as e:
            return _error(e.status, str(e))
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _error(415, "expected Content-Type: application/json")
        body = await request.body()
        if len(body) > MAX_BODY:
            return _error(413, f"body larger than {MAX_BODY} bytes")
        try:
            answer = json.loads(body, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
        except (ValueError, UnicodeDecodeError) as e:
            return _error(400, f"body is not valid JSON ({e})")
        try:
            row, written = session.submit(who, answer)
        except AnswerError as e:
            return _error(e.status, str(e))
        out, task = state(who, token_query(request))
        return JSONResponse({"written": written, "row": row, **out}, background=task)

    async def clip(request: Request) -> Response:
        try:
            annotator_of(request)
        except _Unauthorised as e:
            return _error(e.status, str(e))
        path = cache.resolve(request.path_params["name"])
        if path is None:
            return _error(404, "no such clip")
        return FileResponse(path, media_type="video/webm")

    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=LOCAL_HOSTS)] if tokens is None else []
    app = Starlette(routes=[
        Route("/", page), Route("/api/next", next_item), Route("/api/label", label, methods=["POST"]),
        Route("/clips/{name:path}", clip),
        Mount("/static", StaticFiles(directory=PAGE_DIR), name="static")], middleware=middleware)
    app.state.warm = warm  # the server calls it in a thread at start
    return app
