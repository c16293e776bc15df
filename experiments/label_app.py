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
from rlhf_jax.preferences.objectives import SUB_QUESTIONS

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


class LabelApp:
    """The labelling page's handlers over a session: who is asking (token or annotator), which clips
    an item shows (rendered once, cached), the next item and an answer."""

    def __init__(self, session: LabelSession, sources, cache: ClipCache, tokens: Mapping[str, str] | None,
                 show_gold_accuracy: bool):
        self.session, self.sources, self.cache, self.tokens = session, sources, cache, tokens
        self.show_gold_accuracy = show_gold_accuracy
        self.render_lock = threading.Lock()  # one render at a time: two cores, and JAX compiles once per view

    def annotator_of(self, request: Request) -> str:
        if self.tokens is None:
            who = request.query_params.get("annotator") or self.session.annotators()[0]
            if who not in self.session.annotators():
                raise _Unauthorised(403, f"unknown annotator {who!r}")
            return who
        given = request.headers.get(TOKEN_HEADER) or request.query_params.get("token")
        if not given:
            raise _Unauthorised(401, "a token is required (X-Label-Token header or ?token=)")
        for who, tok in self.tokens.items():
            if secrets.compare_digest(given.encode(), tok.encode()):
                return who
        raise _Unauthorised(403, "unknown token")

    def clip_name(self, row: int, view: str) -> str:
        key = self.sources.clip_key(row, view)
        name = self.cache.cached(key)  # a cached clip never waits behind another item's render
        if name is None:
            with self.render_lock:
                name = self.cache.clip(key, lambda: self.sources.frames(row, view))
        return name

    def clip_names(self, item) -> dict:
        sides = (("left", item.row_a), ("right", item.row_b))
        return {view: {side: self.clip_name(row, view) for side, row in sides} for view in self.sources.views}

    def warm(self) -> None:
        """Renders every annotator's next item: the first page load then finds its clips ready."""
        for who in self.session.annotators():
            item = self.session.next_item(who)
            if item is not None:
                self.clip_names(item)

    def prefetch(self, annotator: str, current_id: str) -> None:
        later = [it for it in self.session.items if (annotator, it.item_id) not in self.session.answers
                 and it.item_id != current_id]
        if later:
            self.clip_names(later[0])

    def item_json(self, item, query: str) -> dict:
        names = self.clip_names(item)
        return {"item_id": item.item_id, "views": list(self.sources.views),
                "frames": int(self.session.segments.length),
                "fps": self.cache.fps, "rubric": list(self.session.rubric),
                # What the page shows for each rubric key: an objective's sub-question, else "<key>?".
                "questions": {q: SUB_QUESTIONS.get(q, f"{q}?") for q in self.session.rubric},
                "confidence_levels": list(self.session.confidence_levels),
                "clips": {v: {s: f"/clips/{n}{query}" for s, n in sides.items()} for v, sides in names.items()}}

    def state(self, annotator: str, query: str) -> tuple[dict, BackgroundTask | None]:
        item = self.session.next_item(annotator)
        out = {"annotator": annotator, "item": None if item is None else self.item_json(item, query),
               "progress": self.session.progress(annotator).to_json(self.show_gold_accuracy)}
        task = None if item is None else BackgroundTask(self.prefetch, annotator, item.item_id)
        return out, task

    def token_query(self, request: Request) -> str:
        tok = request.headers.get(TOKEN_HEADER) or request.query_params.get("token")
        return f"?token={tok}" if self.tokens is not None and tok else ""

    async def page(self, request: Request) -> Response:
        try:
            self.annotator_of(request)
        except _Unauthorised as e:
            return _error(e.status, str(e))
        return FileResponse(os.path.join(PAGE_DIR, "index.html"), headers={"Cache-Control": "no-store"})

    async def next_item(self, request: Request) -> Response:
        try:
            who = self.annotator_of(request)
        except _Unauthorised as e:
            return _error(e.status, str(e))
        out, task = self.state(who, self.token_query(request))
        return JSONResponse(out, background=task, headers={"Cache-Control": "no-store"})

    async def label(self, request: Request) -> Response:
        try:
            who = self.annotator_of(request)
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
            row, written = self.session.submit(who, answer)
        except AnswerError as e:
            return _error(e.status, str(e))
        out, task = self.state(who, self.token_query(request))
        return JSONResponse({"written": written, "row": row, **out}, background=task)

    async def clip(self, request: Request) -> Response:
        try:
            self.annotator_of(request)
        except _Unauthorised as e:
            return _error(e.status, str(e))
        path = self.cache.resolve(request.path_params["name"])
        if path is None:
            return _error(404, "no such clip")
        return FileResponse(path, media_type="video/webm")


def make_app(session: LabelSession, sources, cache: ClipCache, *, tokens: Mapping[str, str] | None,
             show_gold_accuracy: bool = False) -> Starlette:
    """The app over a session; `sources` gives views, frames(row, view) and clip_key(row, view)."""
    handlers = LabelApp(session, sources, cache, tokens, show_gold_accuracy)
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=LOCAL_HOSTS)] if tokens is None else []
    app = Starlette(routes=[
        Route("/", handlers.page), Route("/api/next", handlers.next_item),
        Route("/api/label", handlers.label, methods=["POST"]), Route("/clips/{name:path}", handlers.clip),
        Mount("/static", StaticFiles(directory=PAGE_DIR), name="static")], middleware=middleware)
    app.state.warm = handlers.warm  # the server calls it in a thread at start
    return app
