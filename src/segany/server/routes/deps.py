"""What every route needs: the database, the model, the calling user."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from segany.server.auth import user_for_token
from segany.server.config import ServerConfig
from segany.server.database import Database
from segany.server.errors import BusyError
from segany.server.inference import ModelService
from segany.server.tables import User

__all__ = ["CurrentUser", "config_of", "database", "model_service"]

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
    with database(request).read() as session:
        user = user_for_token(session, credentials.credentials)
    if user is None:
        raise HTTPException(
            401, "the token is unknown, revoked or expired", headers={"WWW-Authenticate": "Bearer"}
        )
    return user


CurrentUser = Annotated[User, Depends(current_user)]
