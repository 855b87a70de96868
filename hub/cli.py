"""The `hub` command: run, check-config, and the adapters' own subcommands."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import trio

from . import gctune
from .adapters import adapter_registry
from .config import ConfigError, Settings, load_settings
from .logs import configure as configure_logging
from .runtime import RunningHub, serve
from .security import production_problems
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
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="TABLE.KEY=VALUE",
                     help="override one key of the config file (repeatable), e.g. --set realtime.port=8100")
    run.add_argument("--workers", type=int, default=1, metavar="N",
                     help="run N processes sharing every port (SO_REUSEPORT); needs [engine] type = \"redis\"")
    run.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    run.add_argument("--port", type=int, help="port of the websocket/API listener (as `centrifuge --port`)")
    run.add_argument("--address", help="address of the websocket/API listener (as `centrifuge --address`)")
    run.set_defaults(func=cmd_run)
    check = sub.add_parser("check-config", help="validate a hub.toml and exit (status 2 if bad)")
    check.add_argument("path", nargs="?", default=DEFAULT_CONFIG, help="the file to check (default: ./hub.toml)")
    check.add_argument("--production", action="store_true",
                       help="also fail (status 1) on default credentials, short secrets, open registration and "
                            "listeners reachable from other machines without TLS, listing each")
    check.set_defaults(func=cmd_check_config)
    for adapter in adapter_registry().values():
        if adapter.cli is not None:
            adapter.cli(sub)
    return parser


# Adapters whose state is a local file (chat's SQLite database, JSON-RPC's users and tokens): with
# `--workers N` only worker 0 runs them; across machines, run them on one designated node.
STATEFUL_ADAPTERS = ("chat", "jsonrpc")


def load_or_exit(path: str, overrides: list[str] | None = None) -> Settings:
    """Load settings, or print the one-line error and exit with status 2."""
    try:
        return load_settings(path, overrides=overrides)
    except ConfigError as exc:
        print(f"hub: config error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = load_or_exit(args.path)
    for warning in settings.warnings:
        print(f"hub: warning: {warning}", file=sys.stderr)
    if getattr(args, "production", False):
        problems = production_problems(settings)
        if problems:
            print(f"{args.path}: not ready for production ({len(problems)} problem(s)):", file=sys.stderr)
            for problem in problems:
                print(f"  {args.path}: {problem}", file=sys.stderr)
            return 1
    passed = ", production checks passed" if getattr(args, "production", False) else ""
    print(f"{args.path}: ok ({len(settings.projects)} project(s)){passed}")
    return 0


def _listen_on(settings: Settings, port: int | None, address: str | None) -> None:
    """Move the listener of the websocket clients (and every adapter sharing it) to `address`:`port`."""
    main = settings.adapters.get("realtime")
    if main is None or (port is None and address is None):
        return
    where = (main.host, main.port)
    for adapter in settings.adapters.values():
        if (adapter.host, adapter.port) == where:
            adapter.port = adapter.port if port is None else port
            adapter.host = adapter.host if address is None else address


def cmd_run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.worker_index:
        overrides += [f"{name}.enabled=false" for name in STATEFUL_ADAPTERS]
    settings = load_or_exit(args.config, overrides)
    _listen_on(settings, args.port, args.address)
    if args.workers < 1:
        print("hub: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.workers > 1:
        return run_workers(args, settings)
    settings.reuse_port = args.worker_index is not None
    configure_logging(settings.hub.log_level, settings.hub.log_format, sys.stderr)
    for warning in settings.warnings:
        log.warning("%s", warning)
    failed: list[BaseException] = []
    running: RunningHub | None = None
    gctune.install()
    try:
        running = trio.run(_run, settings)
    except* ConfigError as group:
        failed.extend(_leaves(group))
    if failed:
        print(f"hub: config error: {failed[0]}", file=sys.stderr)
        return 2
    log.info("%s", gctune.report())
    if running is not None and running.restart_requested:
        restart(getattr(args, "argv", None))
    log.info("stopped")
    gc.freeze()  # the process ends: interpreter exit then skips a full collection of everything (seconds at 10,000 connections)
    return 0


def run_workers(args: argparse.Namespace, settings: Settings) -> int:
    """`hub run --workers N`: N hub processes that bind every listener with SO_REUSEPORT and share state
    through the Redis engine. Signals are passed on to every worker; exits when they all have."""
    if settings.engine.type == "memory":
        print(f"hub: config error: {settings.source}: engine.type: --workers {args.workers} needs the redis engine "
              "(the memory engine is one process): set [engine] type = \"redis\"", file=sys.stderr)
        return 2
    for name in adapter_registry():
        adapter = settings.adapters[name]
        if adapter.enabled and adapter.port == 0:
            print(f"hub: config error: {settings.source}: {name}.port: --workers needs fixed ports, not 0", file=sys.stderr)
            return 2
    import subprocess

    base = [sys.executable, "-m", "hub", "run", "--config", args.config]
    for item in args.overrides:
        base += ["--set", item]
    if args.port is not None:
        base += ["--port", str(args.port)]
    if args.address is not None:
        base += ["--address", args.address]
    # Own sessions: a terminal's Ctrl-C reaches the parent only, which passes it on once.
    procs = [subprocess.Popen([*base, "--worker-index", str(i)], start_new_session=True) for i in range(args.workers)]

    def forward(signum: int, _frame: object) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    codes = [proc.wait() for proc in procs]
    return max(codes, key=abs) if any(codes) else 0


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
            gctune.freeze()  # start-up's heap (modules, config, adapters) is never walked by the collector again
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
