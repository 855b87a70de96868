"""A newcomer's first hour, through the real entry points: the shipped hub.toml run by `hub run`, a start-up
hint while no user exists, `hub exec` and `from hub import run` on the same machine with no credentials
configured, the README's websocket example as printed, debug log lines, help texts and config errors."""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from hub.cli import build_parser

from .conftest import ROOT, shipped_config
from .test_runtime import read_until_ready

PASSWORD = "first hour"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def checkout(tmp_path: Path, log_level: str = "info") -> tuple[Path, int]:
    """A directory holding the shipped hub.toml with its listeners moved off the default ports (the JSON-RPC
    one to a free port, since `hub exec` finds the hub through hub.toml), as a user would have it."""
    port = free_port()
    text = re.sub(r"(?m)^port = \d+$", "port = 0", shipped_config())
    head, section, rest = text.partition("\n[jsonrpc]\n")
    text = head + section + rest.replace("port = 0", f"port = {port}", 1)
    assert f"port = {port}" in text
    text = text.replace('log_level = "info"', f'log_level = "{log_level}"')
    (tmp_path / "hub.toml").write_text(text)
    return tmp_path, port


def hub_run(cwd: Path) -> tuple[subprocess.Popen, list[str], dict[str, str]]:
    proc = subprocess.Popen([sys.executable, "-m", "hub", "run"], cwd=cwd, stderr=subprocess.PIPE, text=True)
    try:
        lines, urls = read_until_ready(proc)
    except AssertionError:
        proc.kill()
        raise
    return proc, lines, urls


def stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        _, rest = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    return rest


async def hub_cli(cwd: Path, *args: str, stdin: bytes = b"", env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return await trio.run_process([sys.executable, "-m", "hub", *args], cwd=cwd, stdin=stdin, capture_stdout=True,
                                  capture_stderr=True, check=False, env={**os.environ, **(env or {})})


async def test_hub_exec_and_run_work_out_of_the_box(tmp_path: Path):
    cwd, port = checkout(tmp_path)
    proc, lines, urls = hub_run(cwd)
    try:
        hint = [line for line in lines if "no JSON-RPC users yet" in line]
        assert hint and "hub user add NAME" in hint[0] and "POST /register" in hint[0], "".join(lines)
        # Nobody yet: hub exec says what to do.
        none = await hub_cli(cwd, "exec", "hub.channels")
        assert none.returncode == 1 and b"add one with `hub user add NAME`" in none.stderr, none.stderr
        assert (await hub_cli(cwd, "user", "add", "me", stdin=f"{PASSWORD}\n".encode())).returncode == 0
        # One user on this machine: hub exec and run() act as that user, with a short token signed here.
        out = await hub_cli(cwd, "exec", "hub.publish", "channel=public:news", 'data={"n": 1}')
        assert out.returncode == 0 and json.loads(out.stdout)["channel"] == "public:news", out.stderr
        code = "from hub import run\nprint(json.dumps(run('procedure.at_home', who='me')))"
        script = await trio.run_process([sys.executable, "-c", "import json\n" + code], cwd=cwd, capture_stdout=True,
                                        capture_stderr=True, check=False)
        assert script.returncode == 0 and json.loads(script.stdout) == {"success": True}, script.stderr
        # A second user: name one (--user, HUB_USER) or give a token (--token, HUB_TOKEN).
        assert (await hub_cli(cwd, "user", "add", "you", stdin=b"other\n")).returncode == 0
        several = await hub_cli(cwd, "exec", "hub.stats")
        assert several.returncode == 1 and b"several users (me, you)" in several.stderr
        assert (await hub_cli(cwd, "exec", "--user", "you", "hub.stats")).returncode == 0
        assert (await hub_cli(cwd, "exec", "hub.stats", env={"HUB_USER": "me"})).returncode == 0
        async with httpx.AsyncClient() as http:
            token = (await http.post(f"http://127.0.0.1:{port}/auth", json={"username": "me", "password": PASSWORD})).json()["token"]
        assert (await hub_cli(cwd, "exec", "--token", token, "hub.stats")).returncode == 0
        assert (await hub_cli(cwd, "exec", "hub.stats", env={"HUB_TOKEN": token})).returncode == 0
        bad = await hub_cli(cwd, "exec", "hub.stats", env={"HUB_TOKEN": "x.y.z"})
        assert bad.returncode == 1 and b"Invalid credentials (invalid token)" in bad.stderr
        nouser = await hub_cli(cwd, "exec", "--user", "zed", "hub.stats")
        assert nouser.returncode == 1 and b"unknown user 'zed'" in nouser.stderr
        # From elsewhere, --config names the file; the users file is found from where the command runs.
        elsewhere = await hub_cli(tmp_path.parent, "exec", "--config", str(cwd / "hub.toml"), "hub.stats")
        assert elsewhere.returncode == 1 and b"no users file" in elsewhere.stderr
    finally:
        stop(proc)
    assert urls


async def test_readme_websocket_example_runs_as_printed(tmp_path: Path):
    """The README's client block, run with this interpreter (what `make install` installs), against `hub run`."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- README websocket example: run by tests/test_first_hour.py -->", 1)[1]
    script = block.split("<<'PY'\n", 1)[1].split("\nPY\n", 1)[0]
    assert "websocat" not in readme and "wscat" not in script
    cwd, _ = checkout(tmp_path)
    proc, _, urls = hub_run(cwd)
    client = None
    try:
        ws_host = urls["websocket clients"].removeprefix("http://")
        client = subprocess.Popen([sys.executable, "-c", script.replace("127.0.0.1:8000", ws_host)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        async def line() -> object:
            with trio.fail_after(10):
                return json.loads(await trio.to_thread.run_sync(client.stdout.readline, abandon_on_cancel=True))

        first = await line()
        assert first[0]["method"] == "connect", first
        while not isinstance(frame := await line(), list):  # a join push may come first
            assert frame["method"] == "join"
        assert frame[0]["method"] == "subscribe" and frame[0]["error"] is None
        async with httpx.AsyncClient() as http:  # the README's publish command
            response = await http.post(urls["command API"] + "/api/publish", headers={"X-API-Key": "development-api-key"},
                                       json={"channel": "news", "data": {"text": "hello"}})
            assert response.status_code == 200, response.text
        while (push := await line())["method"] != "message":
            pass
        assert push["body"]["data"] == {"text": "hello"} and push["body"]["channel"] == "news"
    finally:
        if client is not None:
            client.kill()
            client.communicate()
        stop(proc)


async def test_debug_logs_one_line_per_request_and_connection(tmp_path: Path):
    cwd, port = checkout(tmp_path, log_level="debug")
    proc, _, urls = hub_run(cwd)
    try:
        async with httpx.AsyncClient() as http:
            await http.get(f"http://127.0.0.1:{port}/nowhere")
            await http.post(f"http://127.0.0.1:{port}/execute?token=s3cr3t-value", json={})
        from tests.legacy_client import legacy_client

        async with legacy_client(urls["websocket clients"]) as client:
            await client.connect("alice")
    finally:
        log = stop(proc)
    lines = log.splitlines()
    assert len([line for line in lines if '"GET /nowhere" 404' in line]) == 1, log
    assert len([line for line in lines if '"POST /execute?token=***" 412' in line]) == 1, log  # no user yet: 412
    assert "s3cr3t-value" not in log
    assert len([line for line in lines if '"GET /connection/websocket" 101 websocket closed' in line]) == 1, log


def _all_parsers(parser: argparse.ArgumentParser, name: str = "hub"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, child in action.choices.items():
                yield from _all_parsers(child, f"{name} {sub}")


def test_help_texts_have_no_doubled_words_and_say_what_each_argument_is():
    texts = []
    for name, parser in _all_parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                texts += [a.help or "" for a in action._choices_actions]
                continue
            texts.append(action.help or "")
            if name.split()[1:2] in (["run"], ["check-config"], ["user"], ["token"], ["exec"]):
                assert action.help, f"{name}: {action.dest} has no help"
    for text in texts:
        assert not re.search(r"\b(\w+) \1\b", text), text
        assert not re.search(r"\ba (\w+) a \1\b", text), text
    assert "take a role from a user" in texts and not any(t.endswith("a user a role") and "take" in t for t in texts)


def test_config_errors_name_the_file_without_a_placeholder(tmp_path: Path):
    proc = subprocess.run([sys.executable, "-m", "hub", "run", "--config", "missing.toml"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 2 and proc.stderr.strip() == "hub: config error: missing.toml: file not found"
    (tmp_path / "bad.toml").write_text("[hub\n")
    proc = subprocess.run([sys.executable, "-m", "hub", "check-config", "bad.toml"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 2 and proc.stderr.startswith("hub: config error: bad.toml: not valid TOML: "), proc.stderr
    assert ": -:" not in proc.stderr


def test_the_suite_never_reads_the_working_copys_hub_toml(tmp_path: Path):
    """The tests that use the shipped config pass on a clone of this commit whose hub.toml a user has broken."""
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    copy = tmp_path / "checkout"
    subprocess.run(["git", "clone", "--quiet", "--shared", "--no-checkout", str(ROOT), str(copy)], check=True, timeout=60)
    subprocess.run(["git", "-C", str(copy), "checkout", "--quiet", head.stdout.strip()], check=True, timeout=60)
    (copy / "hub.toml").write_text("this is [not toml, as a half-done edit leaves it\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "PYTEST_"))}
    env["PYTHONPATH"] = str(copy)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/test_config.py::test_shipped_hub_toml_is_valid",
                           "tests/protocols/chat/test_cli_config.py::test_shipped_hub_toml_is_valid",
                           "tests/test_first_hour.py::test_hub_exec_and_run_work_out_of_the_box"],
                          cwd=copy, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0 and "3 passed" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]
