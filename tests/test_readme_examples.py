"""The README's adapter examples, run as printed: every ```sh block between "## Adapters" and
"<!-- adapters:end -->" is split into commands and run with bash against `hub run` on a temp copy of
the shipped hub.toml, the README's ports rewritten to the test's. Each command's `# ...` comment is
what the README promises it prints, and the reply must match it in shape (keys, statuses, types), so
an example that stops working, or whose answer changes shape, fails here.

How the README is read:
- `# {...}` / `# [...]` (on the command's line or the lines after it) is JSON; `...` / `…` stand for
  any string, a trailing `,...}` for "and other keys". Numbers match by type, except `code`, `rep` and
  `seq`; strings by type, except `status`, `type`, `method`, `target` and `version`; true, false and
  null exactly.
- `# -> a, b` names keys of the reply; `# → line` is a line the block's background command
  (`mosquitto_sub ... &`) prints.
- A command without a comment must exit 0 and, if it prints a JSON object, not an error.
- `NAME=...` lines are kept for the commands after them; `T` and `U`, which the README leaves the
  reader to copy from the chat login's answer (`-> authToken, userId`), are taken from it.
- A command whose comment says the password is prompted gets it on stdin (the one the block logs in
  with), as `hub chat user add` reads it when stdin is not a terminal.
- A command ending in `&` runs in the background for the rest of its block; the next command waits
  until the hub's stats API (`req 4`) lists its subscription, not for a fixed time.
- `pip install ...` is not run (no network in tests; the test extras install those packages).

"Migrating from Platypush"'s hub.toml tables are run too, with the commands their comments show.
"""

from __future__ import annotations

import json
import numbers
import os
import queue
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import ROOT
from .test_first_hour import checkout, hub_run, stop
from .test_runtime import read_until_ready

README = ROOT / "README.md"
# The README's default ports, and the `hub run` listener titles that serve them.
PORTS = {8000: "websocket clients", 8008: "JSON-RPC", 8081: "stats API", 3000: "REST chat", 1884: "MQTT"}
EXACT_NUMBERS = {"code", "rep", "seq"}
EXACT_STRINGS = {"status", "type", "method", "target", "version"}
PLACEHOLDERS = {"...", "…"}
OPEN = "__and_other_keys__"
# Values the README leaves the reader to copy from an answer, by the reply key they come from.
READER_VARS = {"T": "authToken", "U": "userId"}
# Blocks run elsewhere, by a marker just before them.
RUN_ELSEWHERE = {"run by tests/test_first_hour.py": "the Centrifuge 0.8 websocket client: tests/test_first_hour.py runs it"}
BINARIES = ("curl", "openssl", "python3", "mosquitto_pub", "mosquitto_sub")


@dataclass
class Command:
    text: str
    expect: str = ""

    @property
    def background(self) -> bool:
        return self.text.rstrip().endswith("&")


@dataclass
class Block:
    section: str
    text: str
    skip: str = ""


def adapter_blocks(readme: str) -> list[Block]:
    part = readme.split("\n## Adapters\n", 1)[1].split("<!-- adapters:end -->", 1)[0]
    blocks, section = [], ""
    for m in re.finditer(r"^### ([^\n]+)$|^```sh\n(.*?)^```$", part, re.M | re.S):
        if m.group(1):
            section = m.group(1)
            continue
        before = part[max(0, m.start() - 200):m.start()]
        skip = next((why for marker, why in RUN_ELSEWHERE.items() if marker in before), "")
        blocks.append(Block(section, m.group(2), skip))
    return blocks


def _comment_at(text: str) -> int:
    """Where an unquoted `#` comment starts in shell text (-1: none)."""
    single = double = False
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and not single:
            i += 2
            continue
        if c == "'" and not double:
            single = not single
        elif c == '"' and not single:
            double = not double
        elif c == "#" and not single and not double and (i == 0 or text[i - 1].isspace()):
            return i
        i += 1
    return -1


def commands(block: str) -> list[Command]:
    """Commands of a block: backslash continuations joined, heredocs kept whole, comments split off."""
    lines = block.splitlines()
    out: list[Command] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip():
            continue
        if line.lstrip().startswith("#"):
            assert out, f"a comment before any command: {line}"
            out[-1].expect += " " + line.lstrip()[1:].strip()
            continue
        text = line
        while text.endswith("\\") and i < len(lines):
            text += "\n" + lines[i]
            i += 1
        heredoc = re.search(r"<<'?(\w+)'?", text)
        if heredoc:
            while i < len(lines) and lines[i] != heredoc.group(1):
                text += "\n" + lines[i]
                i += 1
            text += "\n" + lines[i]
            i += 1
            out.append(Command(text))
            continue
        at = _comment_at(text)
        out.append(Command(text[:at].rstrip(), text[at + 1:].strip()) if at >= 0 else Command(text))
    return out


def with_ports(text: str, ports: dict[int, int]) -> str:
    """The README's ports replaced by the running hub's."""
    def host_port(m: re.Match) -> str:
        port = int(m.group(2))
        return f"{m.group(1)}:{ports[port]}" if port in ports else m.group(0)

    text = re.sub(r"(127\.0\.0\.1|localhost):(\d+)", host_port, text)
    return re.sub(r"(-p )(\d+)\b", lambda m: f"-p {ports.get(int(m.group(2)), m.group(2))}", text)


def expected_json(expect: str) -> Any:
    """The JSON a `# ...` comment shows, or None if it shows none."""
    starts = [i for i in (expect.find("{"), expect.find("[")) if i >= 0]
    if not starts:
        return None
    text = re.sub(r",\s*(\.\.\.|…)\s*}", f', "{OPEN}": true}}', expect[min(starts):])
    value, _ = json.JSONDecoder().raw_decode(text)
    return value


def reply_of(stdout: str) -> tuple[int | None, str]:
    """(HTTP status if curl -i printed the head, body)."""
    if stdout.startswith("HTTP/"):
        head, _, body = stdout.replace("\r\n", "\n").partition("\n\n")
        return int(head.split()[1]), body
    return None, stdout


def same_shape(expected: Any, actual: Any, path: str = "$", key: str = "") -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {actual!r}"
        open_ = expected.get(OPEN, False)
        keys = set(expected) - {OPEN}
        assert not keys - set(actual), f"{path}: missing {sorted(keys - set(actual))} in {actual!r}"
        assert open_ or not set(actual) - keys, f"{path}: unexpected {sorted(set(actual) - keys)} in {actual!r}"
        for k in keys:
            same_shape(expected[k], actual[k], f"{path}.{k}", k)
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{path}: expected {expected!r}, got {actual!r}"
        for n, (e, a) in enumerate(zip(expected, actual, strict=True)):
            same_shape(e, a, f"{path}[{n}]", key)
    elif expected is None or isinstance(expected, bool):
        assert actual is expected, f"{path}: expected {expected!r}, got {actual!r}"
    elif isinstance(expected, numbers.Real):
        assert isinstance(actual, numbers.Real) and not isinstance(actual, bool), f"{path}: expected a number, got {actual!r}"
        assert key not in EXACT_NUMBERS or actual == expected, f"{path}: expected {expected!r}, got {actual!r}"
    else:
        assert isinstance(actual, str), f"{path}: expected a string, got {actual!r}"
        if key in EXACT_STRINGS and expected not in PLACEHOLDERS:
            assert actual == expected, f"{path}: expected {expected!r}, got {actual!r}"


def all_keys(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield k, v
            yield from all_keys(v)
    elif isinstance(value, list):
        for v in value:
            yield from all_keys(v)


class Background:
    """A `... &` command: its stdout lines, read by a thread, until the block ends."""

    def __init__(self, text: str, env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(["bash", "-c", "exec " + text.rstrip().removesuffix("&")], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect_line(self, line: str, timeout: float = 10) -> None:
        seen = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                got = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if got == line:
                return
            seen.append(got)
        raise AssertionError(f"the background command did not print {line!r} (printed {seen!r})")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


@dataclass
class Hub:
    cwd: Path
    ports: dict[int, int]
    stats: tuple[str, str, str]  # URL, app_id, app_secret

    def wait_for_subscription(self, topic: str, timeout: float = 10) -> None:
        """Until the stats API lists a client subscribed to `topic` (the background subscriber is ready)."""
        url, user, password = self.stats
        deadline = time.monotonic() + timeout
        with httpx.Client(auth=(user, password)) as http:
            while time.monotonic() < deadline:
                clients = http.post(f"{url}/api/v1", json={"req": 4, "seq": 1}).json()["data"]
                if any(s["topic"] == topic for c in clients for s in c["subscriptions"]):
                    return
                time.sleep(0.02)  # polling the hub's own state, bounded by the deadline
        raise AssertionError(f"no subscription to {topic!r} within {timeout} s")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    cwd, _ = checkout(tmp_path_factory.mktemp("readme"))
    proc, _, urls = hub_run(cwd)
    try:
        ports = {port: int(urls[title].rsplit(":", 1)[1]) for port, title in PORTS.items()}
        stats = tomllib.loads((cwd / "hub.toml").read_text())["stats"]
        yield Hub(cwd, ports, (urls["stats API"], stats["app_id"], stats["app_secret"]))
    finally:
        stop(proc)


BLOCKS = adapter_blocks(README.read_text())


def test_the_adapter_sections_have_examples_to_run():
    """A README restructure that leaves this test nothing to run fails instead of passing silently."""
    sections = {b.section.split(" (")[0].split(":")[0] for b in BLOCKS if not b.skip}
    assert {"Command API", "MQTT-style stats", "JSON-RPC", "Rocket.Chat", "MQTT"} <= sections, sections
    assert all(commands(b.text) for b in BLOCKS)


def block_id(block: Block) -> str:
    """`command-api`, `json-rpc`, `mqtt`, ...: the section's name before its port, and the block's number in it."""
    name = re.sub(r"\W+", "-", block.section.split(" (")[0].split(":")[0]).strip("-").lower()
    same = [b for b in BLOCKS if b.section == block.section]
    return name if len(same) == 1 else f"{name}-{same.index(block) + 1}"


@pytest.mark.parametrize("block", BLOCKS, ids=block_id)
def test_readme_example_runs_as_printed(hub: Hub, block: Block):
    if block.skip:
        pytest.skip(block.skip)
    missing = [b for b in BINARIES if re.search(rf"(^|[\s|(]){b}\b", block.text, re.M) and shutil.which(b) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (curl, openssl and mosquitto-clients run these examples)")
    if "centrifuge import" in block.text:
        pytest.importorskip("centrifuge", reason="centrifuge-python (test extras) runs this example")
    password = re.search(r"password=([^&\"'\s]+)", block.text)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    background: list[Background] = []
    try:
        for command in commands(block.text):
            text = with_ports(command.text, hub.ports)
            if text.startswith("pip install"):
                continue  # no network in tests; the test extras install these packages
            if command.background:
                background.append(Background(text, env, hub.cwd))
                words = shlex.split(text)
                hub.wait_for_subscription(words[words.index("-t") + 1])
                continue
            run_one(command, text, env, hub, background, password.group(1) if password else "")
    finally:
        for bg in background:
            bg.close()


def run_one(command: Command, text: str, env: dict[str, str], hub: Hub, background: list[Background], password: str) -> None:
    stdin = ""
    if "prompted" in command.expect:
        assert password, f"{command.text}: the block shows no password to type at the prompt"
        stdin = password + "\n"
    assignment = re.match(r"([A-Z_][A-Z0-9_]*)=", text)
    script = f"{text}\nprintf %s \"${assignment.group(1)}\"" if assignment else text
    proc = subprocess.run(["bash", "-c", script], input=stdin, capture_output=True, text=True, env=env, cwd=hub.cwd,
                          timeout=60)
    what = f"README command failed: {command.text}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert proc.returncode == 0, what
    if assignment:
        assert proc.stdout, what
        env[assignment.group(1)] = proc.stdout
        return
    status, body = reply_of(proc.stdout)
    expect = command.expect
    arrow = re.match(r"(->|→)\s*(.*)", expect)
    if arrow and background:
        background[-1].expect_line(arrow.group(2).strip())
        return
    if arrow and not expected_json(arrow.group(2)):
        keys = dict(all_keys(json.loads(body)))
        for name in re.findall(r"\w+", arrow.group(2)):
            assert name in keys, f"{what}\nno {name!r} in the reply"
        for var, key in READER_VARS.items():
            if key in keys:
                env[var] = str(keys[key])
        return
    expected = None if "prompted" in expect else expected_json(expect)
    assert status is None or 200 <= status < 300, what
    if expected is not None:
        try:
            actual = json.loads(body)
        except ValueError:
            raise AssertionError(f"{what}\nthe README shows JSON: {expect}") from None
        same_shape(expected, actual)
        return
    assert proc.stdout.strip() or "prompted" in expect or stdin, what
    try:
        reply = json.loads(body)
    except ValueError:
        return  # text (metrics, a CLI's message): its exit status says it worked
    if isinstance(reply, dict):
        assert reply.get("success") is not False and reply.get("status") != "error" and not reply.get("error"), what


def test_platypush_migration_example_runs(tmp_path: Path):
    """"Migrating from Platypush"'s hub.toml tables, appended to the shipped config: the hook answers with its token
    (and 401 without), `hub exec` runs the procedure (the token's variable set for it too, as the README says), and
    both steps ran: the publication on public:home and the chat message in GENERAL."""
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    section = README.read_text().split("\n## Migrating from Platypush\n", 1)[1].split("\n## ", 1)[0]
    toml = re.search(r"^( *)```toml\n(.*?)^\1```$", section, re.M | re.S)
    assert toml, "no ```toml block in the Platypush migration section"
    snippet = "\n".join(line.removeprefix(toml.group(1)) for line in toml.group(2).splitlines())
    cwd, jsonrpc_port = checkout(tmp_path)
    with (cwd / "hub.toml").open("a") as f:
        f.write("\n" + snippet + "\n")
    env = {**os.environ, "ARRIVED_TOKEN": "t0ken-of-the-test", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen([sys.executable, "-m", "hub", "run"], cwd=cwd, env=env, stderr=subprocess.PIPE, text=True)
    try:
        _, urls = read_until_ready(proc)

        def sh(command: str, stdin: str = "") -> str:
            done = subprocess.run(["bash", "-c", command], input=stdin, capture_output=True, text=True, env=env, cwd=cwd,
                                  timeout=60)
            assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
            return done.stdout

        sh("hub chat user add sing --password-stdin", "sing's password\n")  # the user chat.send names
        sh("hub user add me", "my password\n")  # a JSON-RPC user for hub exec
        hook = re.search(r"# (curl [^\n]*hook/arrived[^\n]*)", snippet).group(1)
        assert json.loads(sh(with_ports(hook, {8008: jsonrpc_port}))) == {"status": "ok"}
        assert sh(with_ports(hook.replace("$ARRIVED_TOKEN", "wrong"), {8008: jsonrpc_port}) + " -o /dev/null -w '%{http_code}'") == "401"
        run = re.search(r"`(hub exec procedure\.arrived[^`]*)`", snippet).group(1)
        assert json.loads(sh(run)) == {"success": True}
        api = urls["command API"]
        history = [json.loads(sh(f"curl -s -H 'X-API-Key: development-api-key' {api}/api/history "
                                 f"-d '{{\"channel\": \"{channel}\", \"limit\": 10}}'"))["result"]["publications"]
                   for channel in ("public:home", "chat:GENERAL")]
        assert [p["data"] for p in history[0]] == [{"event": "arrived", "who": "me"}] * 2
        assert [p["data"]["msg"] for p in history[1]] == ["me is home"] * 2
    finally:
        stop(proc)
