"""Bot fixtures: the real bot, driven through SimCord, on the tiny preset."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import discord
import pytest

from bot.app import Tastemaker, create_bot
from bot.config import Settings
from bot.resources import open_resources
from simcord_support import under_simcord
from bot.delivery import POLL_S


def make_settings(data_dir: Path, **overrides: str) -> Settings:
    values = {
        "DISCORD_TOKEN": "simcord-does-not-need-one",
        "TASTEMAKER_DATA_DIR": str(data_dir),
        "TASTEMAKER_MODEL": "tiny",
        "TASTEMAKER_WORKERS": "inline",
        "TASTEMAKER_DEVICE": "cpu",
        "TASTEMAKER_QUEUE": "",
        "TASTEMAKER_AUTO_POOL": "0",
        "TASTEMAKER_WEB_PORT": "0",  # the web companion's tests (tests/web) give it a free port
        **overrides,
    }
    return Settings(_env_file=None, **values)


RANK_PROMPTS = [
    "a lighthouse on a rocky coast", "a bowl of ripe fruit", "a fox in the snow", "a foggy pier",
    "an old bicycle", "a mountain village", "a portrait of a sailor", "a city street at night",
]
RANK_STYLES = ["watercolor", "neon palette", "pencil sketch", "1970s film photo"]


@pytest.fixture(scope="session")
def rank_pool(tiny_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with a small rank pool (8 prompts x 3 styles, 24 pairs) built
    once by the real tiny engine through the SQLite queue."""
    from engine import rankpool
    from engine.db import connect
    from engine.generate import Engine
    from engine.queue import open_queue
    from engine.worker import Worker

    data_dir = tmp_path_factory.mktemp("rank-pool")

    async def build() -> None:
        db_path = data_dir / "tastemaker.db"
        db = await connect(db_path)
        queue = await open_queue(f"sqlite:///{db_path}")
        engine = Engine("tiny", device="cpu", data_dir=tiny_models)
        stop = asyncio.Event()
        worker = asyncio.create_task(Worker(queue, engine, poll_s=0.02).run_forever(stop))
        try:
            await rankpool.build_pool(db, queue, data_dir, "tiny", RANK_PROMPTS, RANK_STYLES, 3, seed=3)
        finally:
            stop.set()
            await worker
            await queue.close()
            await db.execute_fetchall("PRAGMA wal_checkpoint(TRUNCATE)")
            await db.close()

    asyncio.run(build())
    return data_dir


@pytest.fixture
def with_rank_pool() -> bool:
    """Override with True (or use the `pooled` marker fixture below) to start from a rank pool."""
    return False


@pytest.fixture
def data_dir(tmp_path: Path, tiny_models: Path, with_rank_pool: bool, request: pytest.FixtureRequest) -> Path:
    """A fresh data dir per test that shares the session's tiny model files
    (and, with `with_rank_pool`, starts from a copy of the session's rank pool)."""
    if with_rank_pool:
        pool = request.getfixturevalue("rank_pool")
        shutil.copy(pool / "tastemaker.db", tmp_path / "tastemaker.db")
        shutil.copytree(pool / "pool", tmp_path / "pool")
    (tmp_path / "models").symlink_to(tiny_models / "models", target_is_directory=True)
    return tmp_path


@pytest.fixture
def bot_overrides() -> dict[str, str]:
    return {}


@pytest.fixture
def settings(data_dir: Path, bot_overrides: dict[str, str]) -> Settings:
    return make_settings(data_dir, **bot_overrides)


class BotProcesses:
    """Bots as processes: each opens its own resources (as `python -m bot` does) and
    closes them when it stops, so a restart loses the old worker and connections."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._running: dict[Tastemaker, contextlib.AsyncExitStack] = {}

    async def start(self) -> Tastemaker:
        stack = contextlib.AsyncExitStack()
        resources = await stack.enter_async_context(open_resources(self.settings))
        bot = under_simcord(create_bot(self.settings, resources))
        self._running[bot] = stack
        return bot

    async def stop(self, bot: Tastemaker) -> None:
        stack = self._running.pop(bot, None)
        if stack is not None:
            await bot.close()
            await stack.aclose()


@pytest.fixture
async def bot_processes(settings: Settings):
    processes = BotProcesses(settings)
    yield processes
    for bot in list(processes._running):
        await processes.stop(bot)


@pytest.fixture
async def simcord_bot(bot_processes: BotProcesses):
    bot = await bot_processes.start()
    yield bot
    await bot_processes.stop(bot)  # after SimCord's shutdown


@pytest.fixture
def world(simcord_env):
    """A guild with a #art channel and two members."""
    guild = simcord_env.create_guild("Art club")
    channel = guild.create_text_channel("art")
    alice = guild.add_member(simcord_env.create_user("alice"))
    bob = guild.add_member(simcord_env.create_user("bob"))
    return guild, channel, alice, bob


@pytest.fixture
def mod(simcord_env, world):
    """A moderator of the world's guild (Manage Server), for /admin."""
    guild, *_ = world
    role = guild.create_role("Mods", permissions=discord.Permissions(manage_guild=True))
    return guild.add_member(simcord_env.create_user("mod"), roles=[role])


async def run_until(env, predicate: Callable[[], bool], timeout: float = 90.0) -> None:
    """Let real time pass for the worker while virtual time drives the bot's job
    pump's ticks (events reach it as they come)."""
    deadline = time.monotonic_ns() + int(timeout * 1e9)
    while not predicate():
        if time.monotonic_ns() > deadline:
            raise AssertionError(f"condition not met within {timeout}s\n{env.transcript()[-3000:]}")
        await asyncio.to_thread(time.sleep, 0.05)
        await env.advance_time(POLL_S)


def private_reply(result) -> str:
    """What the member was told privately: the answer itself, or, where the command answered first
    with a public "(Waiting to start)" placeholder (it fetches images), a private followup, with the
    placeholder gone from the channel."""
    if result.ephemeral:
        return result.response.content
    assert result.response is None, f"the public placeholder is still there: {result.response.content!r}"
    [reply] = [message for message in result.followups if message.ephemeral]
    return reply.content


def acknowledge_user_errors(env) -> list[str]:
    """Member mistakes reach the tree's error handler by design; acknowledge them
    (and only them) so SimCord doesn't report them as bot failures."""
    from bot.errors import _member_message

    messages = []
    for error in env.errors:
        message = _member_message(error)
        assert message is not None, f"unexpected bot error: {error!r}"
        messages.append(message)
    return messages


@pytest.fixture
async def restart_bot(simcord_env, simcord_bot, bot_processes: BotProcesses):
    """Restart as a real process would: a new bot on the same data dir, and the old one gone."""
    bots = [simcord_bot]

    async def restart() -> Tastemaker:
        fresh = await bot_processes.start()
        await simcord_env.restart_bot(fresh)
        await bot_processes.stop(bots[-1])  # the old process is gone: its worker and connections too
        bots.append(fresh)
        return fresh

    yield restart
    for bot in bots[1:]:
        await bot_processes.stop(bot)


def custom_id(message, emoji: str) -> str:
    for row in message.components:
        for child in row.children:
            if str(child.emoji) == emoji:
                return child.custom_id
    raise AssertionError(f"no {emoji} button on {message.content!r}")
