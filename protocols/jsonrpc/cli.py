"""`hub user add|passwd|remove|list`, `hub token NAME` and `hub exec ACTION key=value ...`."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any, NoReturn

from hub.cli import DEFAULT_CONFIG, load_or_exit


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the JSON-RPC adapter's subcommands on the `hub` parser."""
    user = sub.add_parser("user", help="JSON-RPC users (kept in [jsonrpc] users_file)").add_subparsers(
        dest="user_command", required=True)
    for name, func, text in (("add", cmd_user_add, "add a user (password prompted, or one line from stdin)"),
                             ("passwd", cmd_user_passwd, "change a user's password (their older tokens stop working)"),
                             ("remove", cmd_user_remove, "remove a user (their tokens stop working)")):
        p = user.add_parser(name, help=text)
        p.add_argument("name")
        p.add_argument("--config", "-c", default=DEFAULT_CONFIG)
        p.set_defaults(func=func)
    ls = user.add_parser("list", help="list the users")
    ls.add_argument("--config", "-c", default=DEFAULT_CONFIG)
    ls.set_defaults(func=cmd_user_list)
    token = sub.add_parser("token", help="print a JSON-RPC access token for a user")
    token.add_argument("name")
    token.add_argument("--ttl", type=int, default=None, help="seconds (default: [jsonrpc] token_ttl)")
    token.add_argument("--config", "-c", default=DEFAULT_CONFIG)
    token.set_defaults(func=cmd_token)
    ex = sub.add_parser("exec", help="run an action on the running hub: hub exec hub.publish channel=news 'data={\"a\":1}'")
    ex.add_argument("action")
    ex.add_argument("args", nargs="*", metavar="key=value", help="values are JSON when they parse, else strings")
    ex.add_argument("--config", "-c", default=DEFAULT_CONFIG)
    ex.set_defaults(func=cmd_exec)


def _store(config: str) -> tuple[Any, Any]:
    from .store import StoreError, UserStore

    settings = load_or_exit(config).adapters["jsonrpc"]
    try:
        return settings, UserStore(settings.users_file)
    except StoreError as exc:
        _fail(str(exc))


def _fail(message: str, code: int = 1) -> NoReturn:
    print(f"hub: {message}", file=sys.stderr)
    raise SystemExit(code)


def read_password(name: str) -> str:
    """Prompted twice on a terminal; otherwise the first line of stdin."""
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {name}: ")
        if password != getpass.getpass("again: "):
            _fail("the passwords differ")
        return password
    return sys.stdin.readline().rstrip("\r\n")


def _change(args: argparse.Namespace, verb: str, change: Any) -> int:
    from .store import StoreError

    try:
        change()
    except (ValueError, StoreError) as exc:
        _fail(str(exc))
    print(f"user {args.name} {verb}")
    return 0


def cmd_user_add(args: argparse.Namespace) -> int:
    _, store = _store(args.config)
    password = read_password(args.name)
    return _change(args, "added", lambda: store.add_user(args.name, password))


def cmd_user_passwd(args: argparse.Namespace) -> int:
    _, store = _store(args.config)
    if args.name not in store.users:
        _fail(f"unknown user {args.name!r}")
    password = read_password(args.name)
    return _change(args, "updated", lambda: store.set_password(args.name, password))


def cmd_user_remove(args: argparse.Namespace) -> int:
    _, store = _store(args.config)
    return _change(args, "removed", lambda: store.remove_user(args.name))


def cmd_user_list(args: argparse.Namespace) -> int:
    _, store = _store(args.config)
    for name in sorted(store.users):
        print(name)
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from . import auth
    from .store import StoreError

    settings, store = _store(args.config)
    if args.name not in store.users:
        _fail(f"unknown user {args.name!r}")
    if args.ttl is not None and args.ttl < 1:
        _fail("--ttl must be at least 1 second", 2)
    try:
        key = settings.token_secret or store.signing_key()
    except StoreError as exc:
        _fail(str(exc))
    print(auth.issue(key, args.name, args.ttl or settings.token_ttl))
    return 0


def parse_value(text: str) -> Any:
    """`key=value` values: JSON when they parse (numbers, true, objects...), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_pairs(items: list[str]) -> dict[str, Any]:
    """`["a=1", "b=x"]` → `{"a": 1, "b": "x"}`; ValueError for an item without `=` or with an empty key."""
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"expected key=value, got {item!r}")
        out[key] = parse_value(value)
    return out


def cmd_exec(args: argparse.Namespace) -> int:
    from .client import RunError, run

    settings = load_or_exit(args.config)
    try:
        kwargs = parse_pairs(args.args)
    except ValueError as exc:
        _fail(str(exc), 2)
    try:
        output = run(args.action, settings, **kwargs)
    except RunError as exc:
        _fail(str(exc))
    print(json.dumps(output, indent=2, ensure_ascii=False, default=str))
    return 0
