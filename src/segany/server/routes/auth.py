"""Logging in with a password (the browser's way to a token), logging out, who am I."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from sqlalchemy import select

from segany.server.auth import check_password, issue_token, revoke_tokens
from segany.server.config import ServerConfig
from segany.server.routes.deps import CurrentUser, config_of, database
from segany.server.schemas import LoginIn, TokenOut
from segany.server.tables import User

router = APIRouter(prefix="/api", tags=["auth"])


@router.post("/login", response_model=TokenOut)
def login(
    body: LoginIn, request: Request, config: Annotated[ServerConfig, Depends(config_of)]
) -> TokenOut:
    """A new token for a user's name and password (401 if they do not match)."""
    with database(request).session() as session:
        user = session.scalar(select(User).where(User.name == body.name))
        if user is None or not check_password(body.password, user.password_hash):
            raise HTTPException(401, "wrong name or password")
        issued = issue_token(
            session, user, expires_in=timedelta(hours=config.login_hours), label="login"
        )
    return TokenOut(token=issued.token, user=issued.user, expires_at=issued.expires_at)


@router.post("/logout", status_code=204)
def logout(request: Request, user: CurrentUser) -> None:
    """Revoke the token this request was made with."""
    token = request.headers["authorization"].split(" ", 1)[1].strip()
    with database(request).session() as session:
        revoke_tokens(session, user, token)
    request.app.state.tokens.drop(token)


@router.get("/me")
def me(user: CurrentUser) -> dict[str, object]:
    return {"id": user.id, "name": user.name}
