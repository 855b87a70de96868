"""Session ids: 32 random hex characters, never repeated, and a forked process never draws its parent's."""

from __future__ import annotations

import os

from hub.core.session import new_client_id


def test_ids_are_32_hex_characters_and_unique() -> None:
    ids = [new_client_id() for _ in range(1000)]  # past one 4 KiB pool (256 ids)
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_a_forked_child_draws_its_own_ids() -> None:
    new_client_id()  # the pool holds ids not yet taken
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, "".join(new_client_id() for _ in range(3)).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 4096).decode()
    os.waitpid(pid, 0)
    os.close(read)
    mine = "".join(new_client_id() for _ in range(3))
    assert len(child) == 96 and child != mine
    assert not {child[i:i + 32] for i in range(0, 96, 32)} & {mine[i:i + 32] for i in range(0, 96, 32)}
