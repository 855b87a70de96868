"""`hub user add`, `hub token` and `hub exec`."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

from hub.cli import DEFAULT_CONFIG, load_or_exit

from . import auth
from .client import RunError, run
from .store import UserStore


def add_commands(sub: argparse._SubParsersAction) -> None:
    user = sub.add_parser("user", help="JSON-RPC users").add_subparsers(dest="user_command", required=True)
    add = user.add_parser("add", help="add a user (password prompted, or read from stdin when it is not a terminal)")
    add.add_argument("name")
    add.add_argument("--config", "-c", default=DEFAULT_CONFIG)
    add.set_defaults(func=cmd_user_add)
    token = sub.add_parser("token", help="print a JSON-RPC access token for a user")
    token.add_argument("name")
    token.add_argument("--ttl", type=int, default=None, help="seconds (default: [jsonrpc] token_ttl)")
    token.add_argument("--config", "-c", default=DEFAULT_CONFIG)
    token.set_defaults(func=cmd_token)
    ex = sub.add_parser("exec", help="run an action on the running hub: hub exec hub.publish channel=news data='{\"a\":1}'")
    ex.add_argument("action")
    ex.add_argument("args", nargs="*", metavar="key=value", help="values are JSON when they parse, else strings")
    ex.add_argument("--config", "-c", default=DEFAULT_CONFIG)
    ex.set_defaults(func=cmd_exec)


def _store(config: str) -> tuple[Any, UserStore]:
    settings = load_or_exit(config)
    s = settings.adapters["jsonrpc"]
    return s, UserStore(s.users_file)


def cmd_user_add(args: argparse.Namespace) -> int:
    _, store = _store(args.config)
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name}: ")
        if password != getpass.getpass("again: "):
            print("hub: passwords differ", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\n")
    try:
        store.add_user(args.name, password)
    except ValueError as exc:
        print(f"hub: {exc}", file=sys.stderr)
        return 1
    print(f"user {args.name} added")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    s, store = _store(args.config)
    if args.name not in store.users:
        print(f"hub: unknown user {args.name!r}", file=sys.stderr)
        return 1
    print(auth.issue(store, s.token_secret or store.signing_key(), args.name, args.ttl or s.token_ttl))
    return 0


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def cmd_exec(args: argparse.Namespace) -> int:
    settings = load_or_exit(args.config)
    kwargs = {}
    for item in args.args:
        key, eq, value = item.partition("=")
        if not eq or not key:
            print(f"hub: expected key=value, got {item!r}", file=sys.stderr)
            return 2
        kwargs[key] = parse_value(value)
    try:
        output = run(args.action, settings, **kwargs)
    except RunError as exc:
        print(f"hub: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(output, indent=2, default=str))
    return 0
