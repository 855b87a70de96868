"""`hub chat ...`: manage chat users, roles, permissions and rooms in the database named by hub.toml.

Safe while the hub runs (SQLite WAL; each command is one transaction). Exit status 1 with a
one-line message when a command is refused (unknown user, taken name, ...), 2 on a bad config.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import store
from .model import PERMISSIONS, USER_ROLE, ChatError, check_password, hash_password, iso


def _now() -> int:
    return int(time.time() * 1000)


def _open(args: argparse.Namespace) -> sqlite3.Connection:
    from hub.cli import load_or_exit

    settings = load_or_exit(args.config)
    return store.connect(settings.adapter("chat").database)


def _password(args: argparse.Namespace) -> str:
    if args.password is not None:
        return check_password(args.password)
    if args.password_stdin or not sys.stdin.isatty():
        return check_password(sys.stdin.readline().rstrip("\r\n"))
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ChatError(400, "the passwords differ")
    return check_password(first)


# -- commands: each returns the lines to print ---------------------------------------------------
def user_add(conn: sqlite3.Connection, args: argparse.Namespace) -> list[str]:
    password_hash = hash_password(_password(args))
    user = store.transaction(conn, store.create_user, args.name, password_hash, _now(), name=args.display_name or "",
                             email=args.email, roles=args.role or [USER_ROLE], promote_first=False)
    return [f"user {user.username} added (id {user.id}, roles {', '.join(user.roles) or '-'})"]


def user_remove(conn: sqlite3.Connection, args: argparse.Namespace) -> list[str]:
    user = store.transaction(conn, store.delete_user, args.name)
    return [f"user {user.username} removed"]


def user_list(conn: sqlite3.Connection, args: argparse.Namespace) -> list[str]:
    users, _ = store.transaction(conn, store.list_users)
    return [f"{u.username}\t{u.id}\t{','.join(u.roles) or '-'}\t{u.email or '-'}\t{iso(u.created_at)}" for u in users]


def user_passwd(conn: sqlite3.Connection, args: argparse.Namespace) -> list[str]:
    password_hash = hash_password(_password(args))

    def change(c: sqlite3.Connection) -> str:
        user = store.find_user(c, args.name)
        store.set_password(c, user.id, password_hash)
        if args.logout:
            store.revoke_user_tokens(c, user.id)
        return user.username

    return [f"password of {store.transaction(conn, change)} changed"]


def user_logout(conn: sqlite3.Connection, args: argparse.Namespace) -> list[str]:
    count = store.transaction(conn, lambda c: store.revoke_user_tokens(c, store.find_user(c, args.name).id))
    return [f"{count} token(s) of {args.name} revoked"]


def _user_role(add: bool) -> Callable[[sqlite3.Connection, argparse.Namespace], list[str]]:
    def command(conn: sqlite3.Connection, args: argparse.Namespace) -> list[str]:
        def change(c: sqlite3.Connection) -> bool:
            user = store.find_user(c, args.name)
            return (store.add_user_role if add else store.remove_user_role)(c, user.id, args.role)

        changed = store.transaction(conn, change)
        verb = "given" if add else "taken from"
        return [f"role {args.role} {verb} {args.name}" if changed else "nothing to change"]

    return command


def role_add(conn: sqlite3.Connection, args: argparse.Namespace) -> list[str]:
    created = store.transaction(conn, store.create_role, args.role, args.description or "")
    return [f"role {args.role} added" if created else f"role {args.role} exists"]


def role_remove(conn: sqlite3.Connection, args: argparse.Namespace) -> list[str]:
    store.transaction(conn, store.delete_role, args.role)
    return [f"role {args.role} removed"]


def role_list(conn: sqlite3.Connection, args: argparse.Namespace) -> list[str]:
    roles = store.transaction(conn, store.list_roles)
    return [f"{r['name']}\t{'all' if r['name'] == 'admin' else ','.join(r['permissions']) or '-'}\t{r['description']}"
            for r in roles]


def _role_permission(add: bool) -> Callable[[sqlite3.Connection, argparse.Namespace], list[str]]:
    def command(conn: sqlite3.Connection, args: argparse.Namespace) -> list[str]:
        changed = store.transaction(conn, store.grant if add else store.revoke, args.role, args.permission)
        verb = "granted to" if add else "revoked from"
        return [f"{args.permission} {verb} {args.role}" if changed else "nothing to change"]

    return command


def room_add(conn: sqlite3.Connection, args: argparse.Namespace) -> list[str]:
    room = store.transaction(conn, store.create_room, args.name, None, _now(), args.member or [])
    return [f"room {room.name} added (id {room.id})"]


def room_list(conn: sqlite3.Connection, args: argparse.Namespace) -> list[str]:
    rooms, _ = store.transaction(conn, store.list_rooms)
    return [f"{r.id}\t{r.name}\t{r.msgs} message(s)\t{','.join(r.usernames) or '-'}" for r in rooms]


def permissions(conn: sqlite3.Connection, args: argparse.Namespace) -> list[str]:
    held = store.transaction(conn, store.permission_roles)
    return [f"{p}\t{','.join(roles) or '-'}" for p, roles in held.items()]


def backup(args: argparse.Namespace) -> int:
    """`hub chat backup FILE`: a consistent copy of the chat database, while the hub runs or not."""
    from hub.cli import load_or_exit

    database = load_or_exit(args.config).adapter("chat").database
    if not Path(database).exists():
        print(f"hub chat: no chat database at {database}", file=sys.stderr)
        return 1
    try:
        pages = store.backup(database, args.file)
    except (OSError, sqlite3.Error) as exc:
        print(f"hub chat: backup failed: {exc}", file=sys.stderr)
        return 1
    print(f"chat database {database} backed up to {args.file} ({pages} pages)")
    return 0


def restore(args: argparse.Namespace) -> int:
    """`hub chat restore FILE`: put a backup in place; refused while a hub uses the database."""
    from hub.cli import load_or_exit

    database = load_or_exit(args.config).adapter("chat").database
    if not Path(args.file).is_file():
        print(f"hub chat: {args.file}: no such file", file=sys.stderr)
        return 1
    Path(database).parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    fd = store.hold_lock(database, exclusive=True)
    if fd is None:
        print(f"hub chat: the hub is running on {database}: stop it before restoring", file=sys.stderr)
        return 1
    try:
        pages = store.restore(args.file, database)
    except (OSError, sqlite3.Error) as exc:
        print(f"hub chat: restore failed: {exc}", file=sys.stderr)
        return 1
    finally:
        os.close(fd)
    print(f"chat database {database} restored from {args.file} ({pages} pages)")
    return 0


def _run(command: Callable[[sqlite3.Connection, argparse.Namespace], list[str]]) -> Callable[[argparse.Namespace], int]:
    def main(args: argparse.Namespace) -> int:
        try:
            conn = _open(args)
        except (OSError, sqlite3.Error) as exc:
            print(f"hub chat: cannot open the database: {exc}", file=sys.stderr)
            return 1
        try:
            for line in command(conn, args):
                print(line)
        except ChatError as exc:
            print(f"hub chat: {exc.message}", file=sys.stderr)
            return 1
        except sqlite3.Error as exc:
            print(f"hub chat: database error: {exc}", file=sys.stderr)
            return 1
        finally:
            conn.close()
        return 0

    return main


def add_commands(subparsers: Any) -> None:
    """`hub chat user|role|room|permissions ...`."""
    chat = subparsers.add_parser("chat", help="manage REST chat users, roles, permissions and rooms")
    groups = chat.add_subparsers(dest="chat_group", required=True)

    def leaf(parent: Any, name: str, func: Callable[..., list[str]], help: str) -> argparse.ArgumentParser:
        parser = parent.add_parser(name, help=help, description=help)
        parser.add_argument("--config", "-c", default="hub.toml", help="path to hub.toml (default: ./hub.toml)")
        parser.set_defaults(func=_run(func))
        return parser

    def password_args(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--password", help="the password (visible to other local users: prefer --password-stdin)")
        parser.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")

    users = groups.add_parser("user", help="users").add_subparsers(dest="chat_command", required=True)
    p = leaf(users, "add", user_add, "add a user (password from --password, stdin, or a prompt)")
    p.add_argument("name")
    p.add_argument("--role", action="append", help="a role to give (repeatable; default: user)")
    p.add_argument("--email")
    p.add_argument("--display-name")
    password_args(p)
    leaf(users, "remove", user_remove, "remove a user (their messages stay)").add_argument("name")
    leaf(users, "list", user_list, "list users: name, id, roles, email, created")
    p = leaf(users, "passwd", user_passwd, "set a user's password")
    p.add_argument("name")
    p.add_argument("--logout", action="store_true", help="also revoke the user's tokens")
    password_args(p)
    leaf(users, "logout", user_logout, "revoke every token of a user").add_argument("name")
    for name, add in (("grant", True), ("revoke", False)):
        p = leaf(users, name, _user_role(add), 'give a user a role' if add else 'take a role from a user')
        p.add_argument("name")
        p.add_argument("role")

    roles = groups.add_parser("role", help="roles and their permissions").add_subparsers(dest="chat_command", required=True)
    p = leaf(roles, "add", role_add, "add a role")
    p.add_argument("role")
    p.add_argument("--description")
    leaf(roles, "remove", role_remove, "remove a role (not admin or user)").add_argument("role")
    leaf(roles, "list", role_list, "list roles and their permissions")
    for name, add in (("grant", True), ("revoke", False)):
        p = leaf(roles, name, _role_permission(add), f"{name} a permission {'to' if add else 'from'} a role")
        p.add_argument("role")
        p.add_argument("permission", choices=sorted(PERMISSIONS))

    rooms = groups.add_parser("room", help="public rooms").add_subparsers(dest="chat_command", required=True)
    p = leaf(rooms, "add", room_add, "add a public room")
    p.add_argument("name")
    p.add_argument("--member", action="append", help="a username to add (repeatable)")
    leaf(rooms, "list", room_list, "list rooms: id, name, messages, members")

    leaf(groups, "permissions", permissions, "list every permission and the roles holding it")

    for name, func, text in (("backup", backup, "copy the chat database to FILE (SQLite online backup; safe while the hub runs)"),
                             ("restore", restore, "replace the chat database with the backup FILE (refused while the hub runs)")):
        p = groups.add_parser(name, help=text, description=text)
        p.add_argument("file")
        p.add_argument("--config", "-c", default="hub.toml", help="path to hub.toml (default: ./hub.toml)")
        p.set_defaults(func=func)
