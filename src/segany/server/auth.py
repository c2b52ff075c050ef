"""Users, their API tokens and passwords.

A token is 32 random bytes (URL-safe text) shown once when it is made; the database keeps
only its sha256. Tokens can expire and be revoked. Passwords (optional, for the browser's
login) are kept as scrypt hashes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from segany.errors import InputError
from segany.server.tables import Token, User, utc_now

__all__ = [
    "IssuedToken",
    "add_user",
    "check_password",
    "hash_password",
    "issue_token",
    "revoke_tokens",
    "user_for_token",
]

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


@dataclass(frozen=True)
class IssuedToken:
    """A new token in clear (shown once) and when it expires (None: never)."""

    token: str
    user: str
    expires_at: datetime | None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return f"scrypt${salt.hex()}${key.hex()}"


def check_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored`` (False when the user has no password)."""
    if not stored or not stored.startswith("scrypt$"):
        return False
    _, salt, key = stored.split("$")
    found = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), **_SCRYPT)
    return hmac.compare_digest(found.hex(), key)


def add_user(session: Session, name: str, password: str | None = None) -> User:
    """Create user ``name`` (letters, digits, ``._-``; at most 64 characters).

    Raises:
        InputError: a bad name, or a user of that name exists.
    """
    if not NAME.match(name):
        raise InputError(
            f"bad user name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)"
        )
    if session.scalar(select(User).where(User.name == name)) is not None:
        raise InputError(f"user {name!r} exists already")
    user = User(name=name, password_hash=hash_password(password) if password else None)
    session.add(user)
    session.flush()
    return user


def find_user(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise InputError(f"no user {name!r} (add one with: segany user add {name})")
    return user


def issue_token(
    session: Session, user: User, *, expires_in: timedelta | None = None, label: str = "cli"
) -> IssuedToken:
    """A new token for ``user``, valid for ``expires_in`` (None: until revoked)."""
    token = secrets.token_urlsafe(32)
    expires = utc_now() + expires_in if expires_in is not None else None
    session.add(Token(user_id=user.id, digest=digest(token), label=label, expires_at=expires))
    session.flush()
    return IssuedToken(token=token, user=user.name, expires_at=expires)


def user_for_token(session: Session, token: str) -> tuple[User, float | None] | None:
    """The user a valid token belongs to, and when the token expires (a POSIX time; None:
    never); None when it is unknown, revoked or expired."""
    row = session.scalar(select(Token).where(Token.digest == digest(token)))
    if row is None or row.revoked_at is not None:
        return None
    expires = _aware(row.expires_at).timestamp() if row.expires_at is not None else None
    if expires is not None and expires <= utc_now().timestamp():
        return None
    user = session.get(User, row.user_id)
    return None if user is None else (user, expires)


def revoke_tokens(session: Session, user: User, token: str | None = None) -> int:
    """Revoke one of ``user``'s tokens (given in clear) or, with None, all of them."""
    statement = update(Token).where(Token.user_id == user.id, Token.revoked_at.is_(None))
    if token is not None:
        statement = statement.where(Token.digest == digest(token))
    result = session.execute(statement.values(revoked_at=utc_now()))
    return int(result.rowcount)  # type: ignore[attr-defined]


def _aware(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes; every stamp stored here is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)
