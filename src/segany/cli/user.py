"""``segany user``: add users, give out and revoke their API tokens."""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import timedelta
from typing import Any

from segany.cli.common import positive_float
from segany.cli.server_common import add_store_arguments, open_store
from segany.errors import InputError

__all__ = ["register"]


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "user",
        help="manage the server's users and API tokens",
        description="Manage the annotation server's users.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add a user and print an API token")
    add.add_argument("name")
    _token_options(add)
    secret = add.add_mutually_exclusive_group()
    secret.add_argument(
        "--password", action="store_true", help="ask for a password, for the browser's login"
    )
    secret.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    add.set_defaults(func=run_add)
    token = actions.add_parser("token", help="print a new API token for a user")
    token.add_argument("name")
    _token_options(token)
    token.set_defaults(func=run_token)
    revoke = actions.add_parser("revoke", help="revoke a user's tokens (all, or one)")
    revoke.add_argument("name")
    revoke.add_argument("--token", help="revoke this token only")
    add_store_arguments(revoke)
    revoke.set_defaults(func=run_revoke)
    listing = actions.add_parser("list", help="list the users")
    add_store_arguments(listing)
    listing.set_defaults(func=run_list)


def _token_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--expires-days",
        type=positive_float,
        metavar="DAYS",
        help="the token expires after DAYS (default: when revoked)",
    )
    add_store_arguments(parser)


def _expiry(args: argparse.Namespace) -> timedelta | None:
    return timedelta(days=args.expires_days) if args.expires_days else None


def _password(args: argparse.Namespace) -> str | None:
    if args.password_stdin:
        text = sys.stdin.readline().rstrip("\n")
    elif args.password:
        text = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != text:
            raise InputError("the passwords differ")
    else:
        return None
    if len(text) < 8:
        raise InputError("a password needs at least 8 characters")
    return text


def run_add(args: argparse.Namespace) -> int:
    from segany.server.auth import add_user, issue_token

    password = _password(args)
    _, db = open_store(args)
    with db.session() as session:
        issued = issue_token(
            session, add_user(session, args.name, password), expires_in=_expiry(args)
        )
    print(issued.token)
    return 0


def run_token(args: argparse.Namespace) -> int:
    from segany.server.auth import find_user, issue_token

    _, db = open_store(args)
    with db.session() as session:
        issued = issue_token(session, find_user(session, args.name), expires_in=_expiry(args))
    print(issued.token)
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    from segany.server.auth import find_user, revoke_tokens

    _, db = open_store(args)
    with db.session() as session:
        count = revoke_tokens(session, find_user(session, args.name), args.token)
    if args.token and count == 0:
        raise InputError(f"{args.name} has no such live token")
    print(f"revoked {count} token(s) of {args.name}", file=sys.stderr)
    return 0


def run_list(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from segany.server.tables import User

    _, db = open_store(args)
    with db.read() as session:
        for user in session.scalars(select(User).order_by(User.id)):
            print(f"{user.id}\t{user.name}\t{'password' if user.password_hash else '-'}")
    return 0
