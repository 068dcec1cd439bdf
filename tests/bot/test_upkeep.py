"""The upkeep cog's taste pass (bot/cogs/upkeep.py): the taste index's thread starts only
when an image came since the last pass."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bot.cogs.upkeep import Upkeep
from engine import profiles
from engine.db import taste as q
from tests.engine.test_profiles import _grid, _make_world


@pytest.fixture
async def world(tmp_path):
    w = await _make_world(tmp_path / "tastemaker.db")
    yield w
    await w.db.close()


async def test_a_quiet_minute_starts_no_index_thread(world, tmp_path, monkeypatch):
    bot = SimpleNamespace(db=world.db, settings=SimpleNamespace(db_path=tmp_path / "tastemaker.db"))
    upkeep = Upkeep.__new__(Upkeep)  # the cog without its loop: one pass, now
    upkeep.bot = bot
    started, real = [], profiles.index_images

    def counted(path, basis, **kwargs):
        started.append(path)
        return real(path, basis, **kwargs)

    monkeypatch.setattr(profiles, "index_images", counted)
    await upkeep.taste_upkeep()
    assert started == []  # no image yet
    grid = await _grid(world.db, 1, [world.embeddings[i] for i in list(world.embeddings)[:4]])
    await upkeep.taste_upkeep()
    assert started == [str(tmp_path / "tastemaker.db")]
    assert sorted(await q.image_z(world.db, world.basis.version, grid)) == grid
    await upkeep.taste_upkeep()
    assert len(started) == 1  # indexed through the newest image: nothing to start
