"""Ids of events published without one: 96 random bits each, drawn in blocks."""

import os
import re

from outpost import models


def test_ids_are_unique_across_blocks_and_shaped_like_outposts():
    ids = [models.new_event_id() for _ in range(3 * models.ID_BLOCK + 7)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"evt_[0-9a-f]{24}", i) for i in ids)


def test_a_forked_child_does_not_repeat_its_parents_ids():
    models.new_event_id()  # the parent holds a block not yet handed out
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.write(write, " ".join(models.new_event_id() for _ in range(5)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 4096).decode().split()
    os.close(read)
    parent = [models.new_event_id() for _ in range(5)]
    assert len(child) == 5 and not set(child) & set(parent)
