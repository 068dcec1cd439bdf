"""What keeps the taste service fast at a community's scale (migration 0013, engine/profiles.py):
counts kept by triggers agree with a recount, from the migration's backfill on, through
votes, likes, signals and deletions; a big profile takes votes, likes and signals from use in
incrementally, from a fit it stored (or the upkeep stored for it), and an exact refit replaces
the folded one."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time

import aiosqlite
import numpy as np
import pytest

from engine import db as database
from engine.db import members
from engine import profiles
from engine import taste as tm
from engine.db import retention
from engine.db import taste as q
from tests.engine.test_profiles import UNLOCK, _grid, _loves, _make_world, _vote


async def recount(db) -> dict:
    """The counts the triggers keep, counted the slow way."""
    likes = {r[0]: r[1] for r in await db.execute_fetchall("SELECT image_id, COUNT(*) FROM likes GROUP BY image_id")}
    per_member: dict[int, list[int]] = {}
    for sql, column in (
        ("SELECT r.user_id, COUNT(*) FROM rank_pairs r JOIN profiles p ON p.id = r.profile_id"
         " WHERE r.choice IN ('left', 'right') AND p.name = 'main' GROUP BY r.user_id", 0),
        ("SELECT user_id, COUNT(*) FROM likes GROUP BY user_id", 1),
        ("SELECT user_id, COUNT(*) FROM use_signals GROUP BY user_id", 2),
    ):
        for user, n in await db.execute_fetchall(sql):
            per_member.setdefault(user, [0, 0, 0])[column] = n
    members = {u: tuple(c) for u, c in per_member.items() if sum(c)}
    return {"likes": likes, "members": members, "totals": (len(members), sum(sum(c) for c in members.values()))}


async def kept(db) -> dict:
    likes = {r[0]: r[1] for r in await db.execute_fetchall("SELECT image_id, likes FROM image_likes WHERE likes > 0")}
    members = {r[0]: (r[1], r[2], r[3]) for r in await db.execute_fetchall(
        "SELECT user_id, votes, likes, signals FROM taste_counts WHERE votes + likes + signals > 0")}
    return {"likes": likes, "members": members, "totals": await q.community_observations(db)}


async def test_counts_kept_by_triggers_agree_with_a_recount_from_the_migration_on(tmp_path):
    counting = next(n for n, f in database.migration_files() if f.stem.endswith("_community_scale"))
    fresh = tmp_path / "fresh.db"
    raw = await aiosqlite.connect(fresh, isolation_level=None)
    raw.row_factory = aiosqlite.Row
    await database.migrate(raw, target=counting - 1)
    await raw.execute("INSERT INTO users (id, created_at) VALUES (1, 0), (2, 0), (3, 0)")
    await raw.execute("INSERT INTO profiles (id, user_id, name, kind, created_at) VALUES (1, 1, 'main', 'votes', 0),"
                      " (2, 2, 'main', 'votes', 0), (3, 2, 'other', 'votes', 0)")
    await raw.execute("INSERT INTO jobs (id, kind, user_id, guild_id, prompt, request, state, created_at)"
                      " VALUES ('a1', 'imagine', 3, 7, 'p', '{}', 'done', 0), ('b2', 'imagine', 1, 7, 'p', '{}', 'done', 0)")
    for n, job in enumerate(("a1", "a1", "b2", "b2")):
        await raw.execute("INSERT INTO images (id, job_id, idx, user_id, path, width, height, seed, created_at)"
                          " VALUES (?, ?, ?, 3, 'x.png', 8, 8, 1, 0)", (n + 1, job, n % 2 + 1))
    await raw.execute("INSERT INTO likes (user_id, image_id, grid_image_id, created_at) VALUES (1, 1, 1, 0), (2, 1, 1, 0),"
                      " (2, 2, 2, 0)")
    await raw.execute("INSERT INTO rank_pairs (user_id, left_id, right_id, shown_at, choice, profile_id) VALUES"
                      " (1, 1, 2, 0, 'left', 1), (2, 1, 2, 0, 'right', 3), (2, 3, 4, 0, 'skip', 2)")
    await raw.execute("INSERT INTO use_signals (user_id, kind, grid_job_id, image_id, created_at) VALUES (1, 'upscale', 'b2', 3, 0)")
    await database.migrate(raw)  # the counting migration backfills
    assert await kept(raw) == await recount(raw)
    assert (await kept(raw))["totals"] == (2, 5)  # 1: a vote, a like, a signal; 2: two likes (not its other profile's vote, nor a skip)
    # then the triggers: a vote answered, a like, a signal, a deleted job taking likes and signals with it
    await raw.execute("INSERT INTO rank_pairs (id, user_id, left_id, right_id, shown_at, profile_id) VALUES (9, 2, 3, 4, 0, 2)")
    await raw.execute("UPDATE rank_pairs SET choice = 'left' WHERE id = 9")
    await raw.execute("INSERT INTO likes (user_id, image_id, grid_image_id, created_at) VALUES (3, 3, 3, 0)")
    await raw.execute("INSERT INTO use_signals (user_id, kind, grid_job_id, image_id, created_at) VALUES (3, 'vary', 'a1', 1, 0)")
    assert await kept(raw) == await recount(raw)
    await retention.delete_job(raw, "b2")
    assert await kept(raw) == await recount(raw)
    assert (await kept(raw))["likes"] == {1: 2, 2: 1}
    await raw.close()


@pytest.fixture
async def world(tmp_path):
    w = await _make_world(tmp_path / "t.db")
    yield w
    await w.db.close()


@pytest.fixture
def small_big(monkeypatch):
    """'Big' profiles from 8 observations, an exact refit every 4 votes."""
    monkeypatch.setattr(profiles, "FIT_INCREMENTAL_FROM", 8)
    monkeypatch.setattr(profiles, "FIT_EXACT_EVERY", 4)


async def exact(world, user: int) -> tm.Posterior:
    """The member's posterior fitted from scratch on every vote (what a small profile gets)."""
    return await exact_with_use(world, user, [], [], [])


async def test_a_big_profile_takes_votes_in_one_at_a_time_then_refits_exactly(world, small_big):
    taste = _loves(world, 2)
    await _vote(world, 1, 8, taste)  # the 8th vote's fit is exact and stored
    posterior = await profiles.member_posterior(world.db, 1)
    np.testing.assert_allclose(posterior.mean, (await exact(world, 1)).mean, atol=1e-5)  # Newton's tolerance
    main = await q.main_profile(world.db, 1)
    assert (await q.get_fit(world.db, main.id, world.basis.version)).votes == 8
    # A new vote is folded in (taste.update): close to the exact fit, not equal to it.
    await _vote(world, 1, 1, taste)
    folded = await profiles.member_posterior(world.db, 1)
    target = (await exact(world, 1)).mean
    assert not np.allclose(folded.mean, target, atol=1e-9)
    assert np.linalg.norm(folded.mean - target) < 0.1 * np.linalg.norm(target)
    # After FIT_EXACT_EVERY folded votes an exact fit runs in the background and replaces it.
    for _ in range(3):
        await _vote(world, 1, 1, taste)
        await profiles.member_posterior(world.db, 1)
    fit = profiles._fits[world.db][(main.id, world.basis.version)]
    assert fit.refining is not None
    await fit.refining
    again = await profiles.member_posterior(world.db, 1)
    np.testing.assert_allclose(again.mean, (await exact(world, 1)).mean, atol=1e-5)  # Newton's tolerance
    assert (await q.get_fit(world.db, main.id, world.basis.version)).votes == 12


async def test_another_process_starts_from_the_stored_fit_and_takes_a_like_in(world, small_big, monkeypatch, tmp_path):
    taste = _loves(world, 4)
    await _vote(world, 1, 9, taste)
    await profiles.member_posterior(world.db, 1)
    await _vote(world, 1, 2, taste)
    exact_fits = counted_exact_fits(monkeypatch)
    # A second connection (another process, or after a restart) has nothing in memory: it reads
    # the stored fit and folds the two votes answered since, without fitting everything again.
    other = await database.connect(tmp_path / "t.db")
    try:
        posterior = await profiles.member_posterior(other, 1)
        assert exact_fits == []
        assert np.linalg.norm(posterior.mean - (await exact(world, 1)).mean) < 0.1
        # A like is folded in as well: no exact fit on the request path.
        embs = list(world.embeddings.values())
        grid = await _grid(other, owner=2, embeddings=embs[:4])
        assert await profiles.record_like(other, 1, grid[0])
        await profiles.member_posterior(other, 1)
        assert exact_fits == []
    finally:
        await other.close()
    assert (await profiles.status(world.db, 1, UNLOCK)).likes == 1


# Newton's method stops at a decrement of 1e-6: exact fits from different starts (the prior's
# mean, a folded fit's) agree to about this.
NEWTON = 1e-3


def counted_exact_fits(monkeypatch) -> list[int]:
    """The profile ids of every exact fit from now on."""
    fitted: list[int] = []
    real = profiles._exact_fit

    async def counted(*args, **kwargs):
        fitted.append(args[2].id)
        return await real(*args, **kwargs)

    monkeypatch.setattr(profiles, "_exact_fit", counted)
    return fitted


async def _job_of(db, image_id: int) -> str:
    return (await db.execute_fetchall("SELECT job_id FROM images WHERE id = ?", (image_id,)))[0][0]


async def exact_with_use(world, user: int, likes: list[list[int]], clicks: list[tuple[str, list[int], int]],
                         rerolls: list[tuple[list[int], list[int]]]) -> tm.Posterior:
    """The member's posterior fitted from scratch on their votes, the likes of each grid's first
    image, U and V clicks (kind, grid, chosen index) and rerolls (grid, the grid it drew), computed here."""
    main = await q.main_profile(world.db, user)
    pool = await q.pool_images_of_dim(world.db, world.basis.d)
    z_pool = {im.id: world.basis.whiten(world.embeddings[im.id]) for im in pool}
    votes = await q.profile_votes(world.db, main.id)
    voted = np.array([z_pool[w] - z_pool[l] for _, w, l, _ in votes]).reshape(-1, world.basis.k)
    parts = [(voted, np.ones(len(votes)))]

    async def z(ids: list[int]) -> np.ndarray:  # as the taste index keeps them: float32
        rows = await world.db.execute_fetchall(f"SELECT embedding FROM images WHERE id IN ({','.join('?' * len(ids))})"
                                               " ORDER BY id", ids)
        return world.basis.whiten(np.stack([q.f32_array(r[0]) for r in rows])).astype(np.float32)

    for grid in likes:
        parts.append(tm.use_comparisons(await z(grid), "like", chosen=0))
    for kind, grid, chosen in clicks:
        parts.append(tm.use_comparisons(await z(grid), kind, chosen=chosen))
    for grid, drawn in rerolls:
        parts.append(tm.use_comparisons(await z(grid), "reroll", z_replacement=await z(drawn)))
    deltas, weights = np.concatenate([d for d, _ in parts]), np.concatenate([w for _, w in parts])
    return tm.fit(deltas, weights, prior=await profiles.community_prior(world.db, world.basis))


async def test_a_big_profile_takes_likes_and_signals_in_one_at_a_time_then_refits_exactly(
    world, small_big, monkeypatch
):
    taste = _loves(world, 2)
    await _vote(world, 1, 8, taste)  # the 8th vote's fit is exact and stored
    await profiles.member_posterior(world.db, 1)
    main = await q.main_profile(world.db, 1)
    exact_fits = counted_exact_fits(monkeypatch)
    embs = list(world.embeddings.values())
    liked = await _grid(world.db, owner=2, embeddings=embs[:4])
    own = await _grid(world.db, owner=1, embeddings=embs[4:8])
    drawn = await _grid(world.db, owner=1, embeddings=embs[8:12])
    await world.db.execute("UPDATE jobs SET state = 'running' WHERE id = ?", (await _job_of(world.db, drawn[0]),))
    # A like, a U click and a reroll whose new grid is still being drawn: folded in, no exact fit.
    assert await profiles.record_like(world.db, 1, liked[0])
    assert await profiles.record_use(world.db, 1, "upscale", await _job_of(world.db, own[0]), image_id=own[2])
    assert await profiles.record_use(world.db, 1, "reroll", await _job_of(world.db, own[0]),
                                     next_job_id=await _job_of(world.db, drawn[0]))
    folded = await profiles.member_posterior(world.db, 1)
    target = (await exact_with_use(world, 1, [liked], [("upscale", own, 2)], [])).mean
    assert exact_fits == []
    assert not np.allclose(folded.mean, target, atol=1e-9)
    assert np.linalg.norm(folded.mean - target) < 0.1 * np.linalg.norm(target)
    # Its grid done, the reroll comes in (each image loses to the new grid), still without an exact fit.
    await world.db.execute("UPDATE jobs SET state = 'done' WHERE id = ?", (await _job_of(world.db, drawn[0]),))
    folded = await profiles.member_posterior(world.db, 1)
    target = (await exact_with_use(world, 1, [liked], [("upscale", own, 2)], [(own, drawn)])).mean
    assert exact_fits == []
    assert np.linalg.norm(folded.mean - target) < 0.1 * np.linalg.norm(target)
    # After FIT_EXACT_EVERY folded observations an exact fit runs in the background and replaces it.
    await _vote(world, 1, 1, taste)
    await profiles.member_posterior(world.db, 1)
    fit = profiles._fits[world.db][(main.id, world.basis.version)]
    assert fit.refining is not None
    await fit.refining
    again = await profiles.member_posterior(world.db, 1)
    target = (await exact_with_use(world, 1, [liked], [("upscale", own, 2)], [(own, drawn)])).mean
    np.testing.assert_allclose(again.mean, target, atol=NEWTON)
    assert exact_fits == [main.id]


async def test_a_deleted_like_or_learning_turned_off_refits_a_big_profile_exactly(world, small_big, monkeypatch):
    await _vote(world, 1, 8, _loves(world, 1))
    embs = list(world.embeddings.values())
    liked = await _grid(world.db, owner=2, embeddings=embs[:4])
    own = await _grid(world.db, owner=1, embeddings=embs[4:8])
    assert await profiles.record_like(world.db, 1, liked[0])
    assert await profiles.record_use(world.db, 1, "vary", await _job_of(world.db, own[0]), image_id=own[1])
    await profiles.member_posterior(world.db, 1)
    exact_fits = counted_exact_fits(monkeypatch)
    # The liked job deleted: its like leaves the fit, which can't be folded out.
    await retention.delete_job(world.db, await _job_of(world.db, liked[0]))
    posterior = await profiles.member_posterior(world.db, 1)
    assert len(exact_fits) == 1
    target = (await exact_with_use(world, 1, [], [("vary", own, 1)], [])).mean
    np.testing.assert_allclose(posterior.mean, target, atol=NEWTON)
    # Learning from use turned off: the signal leaves it too.
    await members.update_settings(world.db, 1, learn_from_use=False)
    posterior = await profiles.member_posterior(world.db, 1)
    assert len(exact_fits) == 2
    np.testing.assert_allclose(posterior.mean, (await exact(world, 1)).mean, atol=NEWTON)


async def test_the_upkeep_stores_a_fit_for_big_profiles_so_no_request_waits_for_one(
    world, small_big, monkeypatch, tmp_path
):
    for user, style in ((1, 0), (2, 3)):
        await _vote(world, user, 9, _loves(world, style))
    await _vote(world, 3, 2, _loves(world, 1))  # small: fitted at every vote anyway
    await world.db.execute("DELETE FROM taste_fits")  # as after the upgrade: none stored yet
    path = str(tmp_path / "t.db")
    assert await profiles.store_fits(world.db, world.basis) == 2
    assert await profiles.store_fits(world.db, world.basis) == 0  # once
    assert await asyncio.to_thread(profiles.fit_profiles, path, world.basis) == 0
    exact_fits = counted_exact_fits(monkeypatch)
    other = await database.connect(path)  # the bot, after the upgrade: nothing in memory
    try:
        for user in (1, 2):
            assert await profiles.next_pair(other, user, np.random.default_rng(user)) is not None
            posterior = await profiles.member_posterior(other, user)
            np.testing.assert_allclose(posterior.mean, (await exact(world, user)).mean, atol=NEWTON)
        assert exact_fits == []
    finally:
        await other.close()


async def test_background_exact_fits_take_turns_in_a_thread(world, small_big, monkeypatch):
    """After a prior refit every active member's next request starts an exact fit in the background:
    they run one at a time, each read and fitted off the bot's loop."""
    for user in (1, 2):
        await _vote(world, user, 8, _loves(world, user))
        await profiles.member_posterior(world.db, user)
    running, most, threads = 0, 0, set()
    counting = threading.Lock()
    real = profiles._apart

    def watched(*args, **kwargs):  # each exact fit, in its thread
        nonlocal running, most
        with counting:
            running += 1
            most = max(most, running)
            threads.add(threading.get_ident())
        try:
            time.sleep(0.05)
            return real(*args, **kwargs)
        finally:
            with counting:
                running -= 1

    monkeypatch.setattr(profiles, "_apart", watched)
    fits = profiles._fits[world.db]
    mains = [await q.main_profile(world.db, user) for user in (1, 2)]
    await asyncio.gather(*(profiles._refine(world.db, world.basis, main, fits[(main.id, world.basis.version)])
                           for main in mains))
    assert most == 1
    assert threads and threading.get_ident() not in threads


async def test_the_upkeep_starts_the_taste_index_only_when_an_image_came(world, tmp_path):
    """images_to_index: two reads on the bot's connection, so a quiet minute starts no thread,
    connection and event loop for index_images."""
    path = str(tmp_path / "t.db")
    assert not await profiles.images_to_index(world.db, world.basis)  # no image yet
    grid = await _grid(world.db, 1, [world.embeddings[i] for i in list(world.embeddings)[:4]])
    assert await profiles.images_to_index(world.db, world.basis)
    assert await asyncio.to_thread(profiles.index_images, path, world.basis) == 4
    assert not await profiles.images_to_index(world.db, world.basis)
    assert sorted(await q.image_z(world.db, world.basis.version, grid)) == grid
    # a new basis: every image again
    assert await profiles.images_to_index(world.db, dataclasses.replace(world.basis, version=2))
