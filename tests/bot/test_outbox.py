"""The outbox on its own (bot/outbox.py): one budget per bucket, results first, one waiting write
per message, backoffs that hold. Small budgets in real time; the flow tests run it under Discord's
limits through SimCord (tests/bot/test_busy_server.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot import outbox
from bot.outbox import Outbox, Priority, Target, Write

WINDOW = 0.3


class Recorded(Target):
    """A message whose edits are recorded instead of sent."""

    def __init__(self, channel_id: int, message_id: int, sent: list):
        super().__init__(channel_id, message_id)
        self.sent = sent

    async def edit(self, bot, now: float, **changes) -> None:
        self.sent.append((changes["what"], time.monotonic()))


def write(priority: Priority, what: str, **hooks) -> Write:
    async def build() -> dict:
        return {"what": what}

    return Write(priority, build=build, **hooks)


@pytest.fixture
def box(monkeypatch) -> tuple[Outbox, list]:
    monkeypatch.setattr(outbox, "MESSAGE_WRITES", (3, WINDOW))
    monkeypatch.setattr(outbox, "RESERVE", 1)
    sent: list = []
    box = Outbox(bot=None)
    for n in range(8):
        box.targets[f"m{n}"] = Recorded(1, n, sent)
    box.targets["elsewhere"] = Recorded(2, 99, sent)
    yield box, sent
    box.stop()


async def settled(box: Outbox, sent: list, count: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while len(sent) < count:
        assert time.monotonic() < deadline, sent
        await asyncio.sleep(0.01)


async def test_results_go_first_and_progress_leaves_them_room(box):
    box, sent = box
    for n in range(6):
        box.put(f"m{n}", write(Priority.POSITION if n % 2 else Priority.PROGRESS, f"progress {n}"))
    await asyncio.sleep(0.01)  # progress may take 2 of the channel's 3: one is kept for results
    box.put("m7", write(Priority.RESULT, "result 7"))
    box.put("elsewhere", write(Priority.PROGRESS, "other channel"))  # another bucket: never waits on this one
    await settled(box, sent, 8)
    order = [what for what, _ in sent]
    assert order[:2] == ["progress 0", "progress 2"]  # progress before positions, oldest first
    assert set(order[2:4]) == {"result 7", "other channel"}  # at once, in the room left to results
    channel = [at for what, at in sent if what != "other channel"]
    for i in range(len(channel) - 3):  # never more than 3 in any window
        assert channel[i + 3] - channel[i] >= WINDOW - 0.02


async def test_a_message_has_one_waiting_write_and_a_result_is_never_replaced_by_progress(box):
    box, sent = box
    box.put("m0", write(Priority.PROGRESS, "a"))
    box.put("m1", write(Priority.PROGRESS, "b"))
    box.put("m2", write(Priority.PROGRESS, "c"))  # the channel's progress room is used: m2 waits
    await asyncio.sleep(0.01)
    box.put("m2", write(Priority.PROGRESS, "c, newer"))
    box.put("m2", write(Priority.RESULT, "c, done"))
    box.put("m2", write(Priority.PROGRESS, "c, late progress"))
    await settled(box, sent, 3)
    await asyncio.sleep(WINDOW)
    assert [what for what, _ in sent] == ["a", "b", "c, done"]


async def test_a_refused_write_is_tried_again_after_its_backoff_and_a_replacement_waits_too(box):
    box, sent = box
    tries: list[float] = []

    async def refused(error: BaseException) -> float:
        tries.append(time.monotonic())
        return 0.2 if len(tries) == 1 else None

    async def build_that_fails() -> dict:
        raise ConnectionError("Discord is having a moment")

    started = time.monotonic()
    box.put("m0", Write(Priority.PROGRESS, build=build_that_fails, failed=refused))
    await asyncio.sleep(0.05)
    box.put("m0", write(Priority.RESULT, "done"))  # replaces the retry, and waits out its backoff
    await settled(box, sent, 1)
    [(what, at)] = sent
    assert what == "done" and at - started >= 0.2 and len(tries) == 1
