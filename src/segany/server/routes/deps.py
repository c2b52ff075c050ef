"""What every route needs: the database, the model, the calling user."""

from __future__ import annotations

import threading
import time
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from segany.server.auth import user_for_token
from segany.server.config import ServerConfig
from segany.server.database import Database
from segany.server.errors import BusyError
from segany.server.inference import ModelService
from segany.server.tables import User

__all__ = ["CurrentUser", "TokenCache", "config_of", "database", "model_service"]

_bearer = HTTPBearer(auto_error=False, description="a token from `segany user add` or /api/login")


def database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def config_of(request: Request) -> ServerConfig:
    config: ServerConfig = request.app.state.config
    return config


def model_service(request: Request) -> ModelService:
    """The served model; 503 while it is loading (or when it failed to)."""
    service: ModelService | None = request.app.state.service
    if service is None or not service.ready.is_set():
        raise BusyError("the model is still loading; retry in a moment")
    if service.error is not None:
        raise BusyError(f"the model failed to load: {service.error}")
    return service


class TokenCache:
    """Tokens recently found valid, so that a busy client costs no database read per
    request. An entry lives ``ttl_s`` seconds (never past the token's expiry): a token
    revoked from the command line stops working within that time, one revoked by
    ``/api/logout`` at once."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[User, float]] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> User | None:
        with self._lock:
            found = self._entries.get(token)
        if found is None or found[1] <= time.time():
            return None
        return found[0]

    def put(self, token: str, user: User, expires_at: float | None) -> None:
        until = time.time() + self.ttl_s
        if expires_at is not None:
            until = min(until, expires_at)
        with self._lock:
            if len(self._entries) > 10_000:  # forget them all rather than grow
                self._entries.clear()
            self._entries[token] = (user, until)

    def drop(self, token: str) -> None:
        with self._lock:
            self._entries.pop(token, None)


def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The token's user; 401 without a valid token."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            401,
            "a token is needed: Authorization: Bearer TOKEN",
            headers={"WWW-Authenticate": "Bearer"},
        )
    cache: TokenCache = request.app.state.tokens
    token = credentials.credentials
    user = cache.get(token)
    if user is not None:
        return user
    with database(request).read() as session:
        found = user_for_token(session, token)
    if found is not None:
        user, expires_at = found
        cache.put(token, user, expires_at)
    if user is None:
        raise HTTPException(
            401, "the token is unknown, revoked or expired", headers={"WWW-Authenticate": "Bearer"}
        )
    return user


CurrentUser = Annotated[User, Depends(current_user)]
