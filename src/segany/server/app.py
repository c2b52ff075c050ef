"""The FastAPI application: routers, limits, error answers, health checks, lifespan.

:func:`create_app` takes its parts (configuration, database, model service) so that tests
and ``segany serve`` compose them alike; without a database it opens (and upgrades) the
configured one, and without a service it starts the configured model.
"""

from __future__ import annotations

import mimetypes
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from segany.errors import InputError
from segany.server.config import ServerConfig
from segany.server.database import Database, open_database
from segany.server.errors import HttpError
from segany.server.inference import ModelService
from segany.server.jobs import JobRunner
from segany.server.routes import annotations as annotation_routes
from segany.server.routes import auth, images, model, projects, proposals
from segany.server.routes import jobs as job_routes
from segany.server.routes import versions as version_routes
from segany.server.routes.deps import TokenCache
from segany.server.switching import VersionFollower
from segany.server.uploads import remove_tmp_files

__all__ = ["create_app"]

STATIC = Path(__file__).parent / "static"
#: The annotation page, built from web/ by `make` (absent in a checkout not built yet).
APP = STATIC / "app"


def _page_types() -> None:
    """The page's files need these content types (module scripts, streaming WASM
    compilation); some platforms' tables (Windows' registry) give .js as text/plain."""
    for suffix, kind in (
        (".js", "text/javascript"),
        (".mjs", "text/javascript"),
        (".wasm", "application/wasm"),
        (".css", "text/css"),
    ):
        mimetypes.add_type(kind, suffix)


def create_app(
    config: ServerConfig,
    *,
    db: Database | None = None,
    service: ModelService | None = None,
    with_model: bool = True,
) -> FastAPI:
    """The server app. ``with_model`` False serves no model (the model routes answer 503)."""
    _page_types()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.db is None:
            app.state.db = await run_in_threadpool(open_database, config.database_url)
        config.images_dir.mkdir(parents=True, exist_ok=True)
        remove_tmp_files(config.images_dir)
        follower = VersionFollower(app.state.db, config)  # serves the active model version
        if app.state.service is None and with_model:
            app.state.service = ModelService(config, prepare=follower.prepare)
        if app.state.service is not None:
            app.state.versions = await run_in_threadpool(follower.follow, app.state.service)
            # resumes the jobs a stopped server left
            app.state.jobs = JobRunner(app.state.db, config, app.state.service).start()
        try:
            yield
        finally:
            if app.state.jobs is not None:
                await run_in_threadpool(app.state.jobs.stop)
                app.state.jobs = None
            if app.state.versions is not None:
                await run_in_threadpool(app.state.versions.stop)
                app.state.versions = None
            if app.state.service is not None and service is None:
                app.state.service.close()
            if db is None:
                app.state.db.close()

    app = FastAPI(
        title="segany",
        summary="The data engine's annotation server",
        version=_version(),
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.db = db
    app.state.service = service
    app.state.jobs = None  # the automatic stage's runner, while the app runs with a model
    app.state.versions = None  # the VersionFollower, while the app runs with a model
    app.state.tokens = TokenCache(config.token_cache_s)
    for router in (
        auth.router,
        projects.router,
        images.router,
        annotation_routes.router,
        proposals.router,
        job_routes.router,
        version_routes.router,
        model.router,
    ):
        app.include_router(router)
    app.add_middleware(BodyLimit, limit=config.max_upload_bytes + (1 << 20))
    app.add_middleware(CrossOriginIsolation)
    _add_handlers(app)
    _add_pages(app)
    return app


def _add_handlers(app: FastAPI) -> None:
    @app.exception_handler(HttpError)
    async def http_error(request: Request, exc: HttpError) -> JSONResponse:
        headers = {"Retry-After": "1"} if exc.status == 503 else None
        return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default answer repeats each bad input, a whole uploaded file included
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(InputError)
    async def input_error(request: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)


def _add_pages(app: FastAPI) -> None:
    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz(request: Request) -> JSONResponse:
        """The database answers and the model is loaded (503 until then)."""
        checks: dict[str, Any] = {}
        try:
            with request.app.state.db.read() as session:
                session.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # any failure means not ready; say which
            checks["database"] = f"error: {type(exc).__name__}"
        service: ModelService | None = request.app.state.service
        if service is None:
            checks["model"] = "none"
        elif not service.ready.is_set():
            checks["model"] = "loading"
        else:
            checks["model"] = "ok" if service.error is None else f"error: {service.error}"
        ready = checks["database"] == "ok" and checks["model"] in ("ok", "none")
        return JSONResponse(checks, status_code=200 if ready else 503)

    @app.get("/login", include_in_schema=False)
    def login_page() -> FileResponse:
        return FileResponse(STATIC / "login.html", media_type="text/html")

    @app.get("/", include_in_schema=False)
    def home() -> Response:
        """The annotation page when it is built into the package, else the login."""
        if (APP / "index.html").exists():
            return RedirectResponse("/app/")
        return login_page()

    if (APP / "index.html").exists():
        app.mount("/app", StaticFiles(directory=APP, html=True), name="app")


class BodyLimit:
    """Answer 413 to request bodies over ``limit`` bytes, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(send, self.limit)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _BodyTooLarge(self.limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _BodyTooLarge:
            if not started:
                await _too_large(send, self.limit)


class CrossOriginIsolation:
    """Send COOP/COEP on every answer: the page is then cross-origin isolated, which WASM
    threads (SharedArrayBuffer) need for the in-page decoder."""

    HEADERS = [
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"cross-origin-embedder-policy", b"require-corp"),
        (b"cross-origin-resource-policy", b"same-origin"),
    ]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.HEADERS]}
            await send(message)

        await self.app(scope, receive, with_headers)


class _BodyTooLarge(HTTPException):
    """An HTTPException, so that FastAPI's body parsing passes it on as a 413 (it answers
    400 to any other error raised while it reads a form or JSON body)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over the limit of {limit} bytes")


async def _too_large(send: Send, limit: int) -> None:
    body = f'{{"detail": "the request body is over the limit of {limit} bytes"}}'.encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _version() -> str:
    import segany

    return str(getattr(segany, "__version__", "0"))
