"""Fixtures shared by tests/bot and tests/engine."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def discord_limits(request: pytest.FixtureRequest):
    """Discord's rate limits, upload limits and 3 s first answer over SimCord (tests/discord_limits.py)
    for every test that runs the bot: a test whose bot broke one fails."""
    if "simcord_env" not in request.fixturenames:
        yield None
        return
    from discord_limits import DiscordLimits

    limits = DiscordLimits().install()
    try:
        yield limits
    finally:
        limits.uninstall()
    assert not limits.violations, "the bot broke Discord's limits:\n" + "\n".join(map(str, limits.violations))


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir holding the tiny preset, built once per test session."""
    from engine import models

    data_dir = tmp_path_factory.mktemp("tiny-data")
    models.build_tiny(data_dir)
    return data_dir


# -- Redis: one real redis-server per session (tests/redis_server.py) ---------


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory):
    """Skips without redis-server on PATH, unless TASTEMAKER_REQUIRE_REDIS=1."""
    from redis_server import RedisServer

    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_url(redis_server) -> str:
    """redis://127.0.0.1:PORT/0 on an empty server."""
    redis_server.flushall()
    return redis_server.url()
