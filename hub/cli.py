"""The `hub` command: run, check-config, and the adapters' own subcommands."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import trio

from .adapters import adapter_registry
from .config import ConfigError, Settings, load_settings
from .logs import configure as configure_logging
from .runtime import RunningHub, serve
from .version import __version__

DEFAULT_CONFIG = "hub.toml"
log = logging.getLogger("hub")


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", default=DEFAULT_CONFIG, help="path to hub.toml (default: ./hub.toml)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hub", description="A realtime messaging hub on Trio.")
    parser.add_argument("--version", action="version", version=f"hub {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the hub until SIGINT/SIGTERM (SIGHUP reloads hub.toml)")
    _config_arg(run)
    run.set_defaults(func=cmd_run)
    check = sub.add_parser("check-config", help="validate a hub.toml and exit (status 2 if bad)")
    check.add_argument("path", nargs="?", default=DEFAULT_CONFIG, help="the file to check (default: ./hub.toml)")
    check.set_defaults(func=cmd_check_config)
    for adapter in adapter_registry().values():
        if adapter.cli is not None:
            adapter.cli(sub)
    return parser


def load_or_exit(path: str) -> Settings:
    """Load settings, or print the one-line error and exit with status 2."""
    try:
        return load_settings(path)
    except ConfigError as exc:
        print(f"hub: config error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = load_or_exit(args.path)
    for warning in settings.warnings:
        print(f"hub: warning: {warning}", file=sys.stderr)
    print(f"{args.path}: ok ({len(settings.projects)} project(s))")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    settings = load_or_exit(args.config)
    configure_logging(settings.hub.log_level, settings.hub.log_format, sys.stderr)
    for warning in settings.warnings:
        log.warning("%s", warning)
    failed: list[BaseException] = []
    running: RunningHub | None = None
    try:
        running = trio.run(_run, settings)
    except* ConfigError as group:
        failed.extend(_leaves(group))
    if failed:
        print(f"hub: config error: {failed[0]}", file=sys.stderr)
        return 2
    if running is not None and running.restart_requested:
        restart(getattr(args, "argv", None))
    log.info("stopped")
    return 0


def restart(argv: Sequence[str] | None) -> None:
    """Replace this process with `python -m hub <the same arguments>` (same pid, environment and directory)."""
    command = [sys.executable, "-m", "hub", *(sys.argv[1:] if argv is None else argv)]
    log.info("restarting: %s", " ".join(command))
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, command)


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (possibly nested) exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


async def _run(settings: Settings) -> RunningHub:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async with trio.open_nursery() as nursery:
            running: RunningHub = await nursery.start(serve, settings)
            nursery.start_soon(_handle_signals, running, signals)
            await running.stopping.wait()  # a signal, or the stats API's stop/restart
            await running.stopped()
            nursery.cancel_scope.cancel()
    return running


async def _handle_signals(running: RunningHub, signals: Any) -> None:
    async for signum in signals:
        if signum == signal.SIGHUP:
            try:
                running.reload_from_file()
            except ConfigError as exc:
                log.error("reload refused: %s", exc)
            continue
        log.info("received %s", signal.Signals(signum).name)
        running.shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return int(args.func(args) or 0)
