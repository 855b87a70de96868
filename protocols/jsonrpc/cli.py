"""`hub user add|passwd|remove|list`, `hub token NAME|list|revoke` and `hub exec ACTION key=value ...`."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any, NoReturn

from hub.cli import DEFAULT_CONFIG, load_or_exit

CONFIG_HELP = "path to hub.toml (default: ./hub.toml)"


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the JSON-RPC adapter's subcommands on the `hub` parser."""
    user = sub.add_parser("user", help="JSON-RPC users (kept in [jsonrpc] users_file)",
                          description="JSON-RPC users, kept in [jsonrpc] users_file.").add_subparsers(
        dest="user_command", required=True, metavar="COMMAND")
    for name, func, text in (("add", cmd_user_add, "add a user (password prompted, or --password-stdin)"),
                             ("passwd", cmd_user_passwd, "change a user's password (their older tokens stop working)"),
                             ("remove", cmd_user_remove, "remove a user (their tokens stop working)")):
        p = user.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        p.add_argument("name", help="user name")
        if name != "remove":
            p.add_argument("--password-stdin", action="store_true",
                           help="read the password from the first line of stdin (also done when stdin is not a terminal)")
        p.add_argument("--config", "-c", default=DEFAULT_CONFIG, help=CONFIG_HELP)
        p.set_defaults(func=func)
    for name, func, text in (("backup", cmd_user_backup, "copy the users file to FILE (while the hub runs or not)"),
                             ("restore", cmd_user_restore, "put a backup in place of the users file (the hub must be stopped)")):
        p = user.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        p.add_argument("file", help="the backup file")
        p.add_argument("--config", "-c", default=DEFAULT_CONFIG, help=CONFIG_HELP)
        p.set_defaults(func=func)
    ls = user.add_parser("list", help="list the users", description="List the users.")
    ls.add_argument("--config", "-c", default=DEFAULT_CONFIG, help=CONFIG_HELP)
    ls.set_defaults(func=cmd_user_list)

    token = sub.add_parser(
        "token", help="JSON-RPC access tokens: print a new one, list or revoke them",
        description="hub token NAME: print a new access token for user NAME (`hub token new NAME` if the user is "
                    "called list or revoke). hub token list [NAME]: the live tokens (id, user, name, created, expires). "
                    "hub token revoke ID|TOKEN ...: revoke tokens by id or by value.",
        usage="hub token [-h] [--ttl SECONDS] [--name LABEL] [--config CONFIG] {NAME | new NAME | list [NAME] | revoke ID|TOKEN ...}")
    token.add_argument("words", nargs="+", metavar="ARG", help="NAME, or new NAME, list [NAME], revoke ID|TOKEN ...")
    token.add_argument("--ttl", type=int, default=None, metavar="SECONDS",
                       help="seconds the new token lasts (default: [jsonrpc] token_ttl)")
    token.add_argument("--name", default=None, metavar="LABEL", help="a label for the new token, shown by `hub token list`")
    token.add_argument("--config", "-c", default=DEFAULT_CONFIG, help=CONFIG_HELP)
    token.set_defaults(func=cmd_token)

    ex = sub.add_parser(
        "exec", help="run an action on the running hub: hub exec hub.publish channel=news 'data={\"a\":1}'",
        description="Run an action or procedure on the running hub over JSON-RPC and print its output as JSON. "
                    "Credentials, first found: --token, --user (a 5-minute token signed here from the users file), "
                    "$HUB_TOKEN, $HUB_USER, [jsonrpc] client_token / client_user (+ client_password), else the only "
                    "user in the users file.")
    ex.add_argument("action", help="plugin.action or procedure.name (see GET /actions)")
    ex.add_argument("args", nargs="*", metavar="key=value", help="arguments; values are JSON when they parse, else strings")
    ex.add_argument("--user", "-u", default=None, help="act as this user, with a short token signed from the users file")
    ex.add_argument("--token", "-t", default=None, help="an access token (from /auth or `hub token NAME`)")
    ex.add_argument("--url", default=None, help="the hub's JSON-RPC address (default: [jsonrpc] client_url, else host:port)")
    ex.add_argument("--config", "-c", default=DEFAULT_CONFIG, help=CONFIG_HELP)
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


def read_password(name: str, from_stdin: bool = False) -> str:
    """The first line of stdin with --password-stdin or when stdin is not a terminal; else prompted twice."""
    if not from_stdin and sys.stdin.isatty():
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
    password = read_password(args.name, args.password_stdin)
    return _change(args, "added", lambda: store.add_user(args.name, password))


def cmd_user_passwd(args: argparse.Namespace) -> int:
    _, store = _store(args.config)
    if args.name not in store.users:
        _fail(f"unknown user {args.name!r}")
    password = read_password(args.name, args.password_stdin)
    return _change(args, "updated", lambda: store.set_password(args.name, password))


def cmd_user_remove(args: argparse.Namespace) -> int:
    _, store = _store(args.config)
    return _change(args, "removed", lambda: store.remove_user(args.name))


def cmd_user_backup(args: argparse.Namespace) -> int:
    from .store import StoreError

    _, store = _store(args.config)
    if not store.path.exists():
        _fail(f"no users file at {store.path}")
    try:
        count = store.backup(args.file)
    except StoreError as exc:
        _fail(str(exc))
    print(f"users file {store.path} backed up to {args.file} ({count} user(s))")
    return 0


def cmd_user_restore(args: argparse.Namespace) -> int:
    from .store import StoreError

    _, store = _store(args.config)
    try:
        count = store.restore(args.file)
    except StoreError as exc:
        _fail(str(exc))
    print(f"users file {store.path} restored from {args.file} ({count} user(s))")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    _, store = _store(args.config)
    for name in sorted(store.users):
        print(name)
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    words = list(args.words)
    if words[0] == "list" and len(words) <= 2:
        return _token_list(args, words[1] if len(words) == 2 else None)
    if words[0] == "revoke":
        if len(words) < 2:
            _fail("hub token revoke: give token ids (from `hub token list`) or tokens", 2)
        return _token_revoke(args, words[1:])
    if words[0] == "new":
        words = words[1:]
    if len(words) != 1:
        _fail("expected hub token NAME, hub token list [NAME] or hub token revoke ID|TOKEN ...", 2)
    return _token_new(args, words[0])


def _token_new(args: argparse.Namespace, name: str) -> int:
    import secrets
    import time

    from . import auth
    from .store import StoreError

    settings, store = _store(args.config)
    if name not in store.users:
        _fail(f"unknown user {name!r}")
    if args.ttl is not None and args.ttl < 1:
        _fail("--ttl must be at least 1 second", 2)
    ttl = args.ttl or settings.token_ttl
    now, jti = int(time.time()), secrets.token_hex(16)
    try:
        key = settings.token_secret or store.signing_key()
        store.record_token(name, jti, now, now + ttl, args.name)
    except (StoreError, ValueError) as exc:
        _fail(str(exc))
    print(auth.issue(key, name, ttl, now, jti))
    return 0


def _when(ts: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _token_list(args: argparse.Namespace, user: str | None) -> int:
    _, store = _store(args.config)
    if user is not None and user not in store.users:
        _fail(f"unknown user {user!r}")
    rows = [(str(t["id"]), t["user"], t["name"], _when(t["created"]), _when(t["expires"])) for t in store.tokens(user)]
    header = ("ID", "USER", "NAME", "CREATED", "EXPIRES")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _token_revoke(args: argparse.Namespace, items: list[str]) -> int:
    from . import auth
    from .store import StoreError

    settings, store = _store(args.config)
    failed = False
    for item in items:
        try:
            if item.isdigit():
                record = store.revoke_id(int(item))
                if record is None:
                    print(f"hub: no live token with id {item}", file=sys.stderr)
                    failed = True
                    continue
                print(f"revoked token {item} ({record['name']}) of {record['user']}")
            else:
                try:
                    claims = auth.verify(store, settings.token_secret or store.signing_key(), item)
                except auth.AuthError as exc:
                    print(f"hub: not a live token: {exc}", file=sys.stderr)
                    failed = True
                    continue
                store.revoke(claims["jti"], claims["exp"])
                print(f"revoked a token of {claims['sub']}")
        except StoreError as exc:
            _fail(str(exc))
    return 1 if failed else 0


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
    from .client import RunError, call

    settings = load_or_exit(args.config)
    try:
        kwargs = parse_pairs(args.args)
    except ValueError as exc:
        _fail(str(exc), 2)
    try:
        output = call(args.action, kwargs, settings, token=args.token, user=args.user, url=args.url)
    except RunError as exc:
        _fail(str(exc))
    print(json.dumps(output, indent=2, ensure_ascii=False, default=str))
    return 0
