"""`hub mqtt passwd NAME` and `hub mqtt remove NAME`: MQTT users in a password file (argon2 hashes)."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import NoReturn


def add_commands(sub: argparse._SubParsersAction) -> None:
    mqtt = sub.add_parser("mqtt", help="MQTT users ([mqtt] password_file, or a hash for [mqtt.users.<name>])")
    cmds = mqtt.add_subparsers(dest="mqtt_command", required=True)
    p = cmds.add_parser("passwd", help="set a user's password (prompted, or one line from stdin)")
    p.add_argument("name")
    p.add_argument("--file", "-f", help="password file to update (default: [mqtt] password_file; "
                                        "without one the hash is printed for [mqtt.users.<name>] password)")
    p.add_argument("--config", "-c", default="hub.toml")
    p.set_defaults(func=cmd_passwd)
    r = cmds.add_parser("remove", help="remove a user from the password file")
    r.add_argument("name")
    r.add_argument("--file", "-f")
    r.add_argument("--config", "-c", default="hub.toml")
    r.set_defaults(func=cmd_remove)


def _fail(message: str, code: int = 1) -> NoReturn:
    print(f"hub: {message}", file=sys.stderr)
    raise SystemExit(code)


def _file(args: argparse.Namespace) -> str:
    if args.file:
        return args.file
    from pathlib import Path

    from hub.cli import load_or_exit

    if not Path(args.config).exists():
        return ""
    return load_or_exit(args.config).adapters["mqtt"].password_file


def _password(name: str) -> str:
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {name}: ")
        if password != getpass.getpass("again: "):
            _fail("the passwords differ")
        return password
    return sys.stdin.readline().rstrip("\r\n")


def cmd_passwd(args: argparse.Namespace) -> int:
    from .auth import hash_password, write_password_file

    if ":" in args.name or not args.name:
        _fail("a user name must not be empty or contain ':'", 2)
    path = _file(args)
    password = _password(args.name)
    if not password:
        _fail("empty password", 2)
    stored = hash_password(password)
    if not path:
        print(f'[mqtt.users.{args.name}]\npassword = "{stored}"')
        return 0
    write_password_file(path, args.name, stored)
    print(f"user {args.name} set in {path}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from .auth import write_password_file

    path = _file(args)
    if not path:
        _fail("no password file ([mqtt] password_file or --file)", 2)
    write_password_file(path, args.name, None)
    print(f"user {args.name} removed from {path}")
    return 0
