"""Issue 12 in the taste service: several profiles, signals from use, codes that
don't churn, the server's taste and a house taste (engine/profiles.py)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from engine import profiles
from engine import taste as tm
from engine.db import members
from engine.db import taste as q
from engine.profiles import TasteError
from tests.engine import test_profiles as base
from tests.engine.test_profiles import UNLOCK, _grid, _loves

world, every_change = base.world, base.every_change  # the same synthetic rank pool and fixtures


async def _rank(world, user, n, utility, profile_name=None, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        pair = await profiles.next_pair(world.db, user, rng, profile_name)
        choice = "left" if utility(pair.left_id) > utility(pair.right_id) else "right"
        assert await profiles.answer_pair(world.db, user, pair.id, choice)
    return pair


# --- several profiles ---------------------------------------------------------------


async def test_named_profiles_learn_apart(world):
    made = await profiles.create_profile(world.db, 1, "  Portraits  ")
    assert (made.name, made.kind, made.public) == ("Portraits", "votes", True)
    last = await _rank(world, 1, UNLOCK, _loves(world, 1), "portraits")  # names ignore case
    assert last.profile == "Portraits" and last.votes == UNLOCK - 1
    assert (await profiles.status(world.db, 1, UNLOCK)).votes == 0  # main learned nothing
    named = await profiles.status(world.db, 1, UNLOCK, "Portraits")
    assert named.unlocked and named.code and named.profile == "Portraits"
    with pytest.raises(TasteError, match="locked"):
        await profiles.current_code(world.db, 1, UNLOCK)  # main is still locked
    # a pair answered for one profile may be shown for another
    await _rank(world, 1, UNLOCK, _loves(world, 2))
    main_code = await profiles.current_code(world.db, 1, UNLOCK)
    listed = await profiles.list_profiles(world.db, 1)
    assert [(p.name, p.votes) for p in listed] == [("main", UNLOCK), ("Portraits", UNLOCK)]
    assert listed[0].code == main_code and listed[1].code == named.code
    codes = {c.code: c.profile for c in await profiles.list_codes(world.db, 1)}
    assert codes == {main_code: "main", named.code: "Portraits"}
    # the two tastes differ: each learned its own style
    main_w = (await q.get_profile_version(world.db, main_code)).w
    named_w = (await q.get_profile_version(world.db, named.code)).w
    assert np.dot(main_w, named_w) / np.linalg.norm(main_w) / np.linalg.norm(named_w) < 0.9

    # another member has no profile of that name: names are per member
    with pytest.raises(TasteError, match="no profile named `Portraits`"):
        await profiles.next_pair(world.db, 2, np.random.default_rng(0), "Portraits")
    with pytest.raises(TasteError, match="no profile named"):
        await profiles.delete_profile(world.db, 2, "Portraits")

    # delete: gone from the list, its code keeps working, the name is free again
    await profiles.delete_profile(world.db, 1, "portraits")
    assert [p.name for p in await profiles.list_profiles(world.db, 1)] == ["main"]
    await profiles.resolve(world.db, 2, [(named.code, 1.0)], UNLOCK)
    assert (await profiles.create_profile(world.db, 1, "portraits")).name == "portraits"
    with pytest.raises(TasteError, match="can't be deleted"):
        await profiles.delete_profile(world.db, 1, "main")


async def test_profile_names_and_limits(world, monkeypatch):
    await profiles.create_profile(world.db, 1, "dreamy")
    with pytest.raises(TasteError, match="already have a profile named `DREAMY`"):
        await profiles.create_profile(world.db, 1, "DREAMY")
    for bad in ("", "   ", "a" * 40, "no/slashes", "`tick`", "server", "main"):
        with pytest.raises(TasteError):
            await profiles.create_profile(world.db, 1, bad)
    monkeypatch.setattr(profiles, "MAX_PROFILES", 3)
    await profiles.create_profile(world.db, 1, "two")
    with pytest.raises(TasteError, match="the most one member may keep"):
        await profiles.create_profile(world.db, 1, "three")
    board = await profiles.create_moodboard(world.db, 2, next(iter(world.embeddings.values())))
    name = (await profiles.get_code(world.db, board)).profile
    assert name == "moodboard 1"
    with pytest.raises(TasteError, match="is a moodboard"):
        await profiles.next_pair(world.db, 2, np.random.default_rng(0), name)


async def test_a_new_profile_is_private_when_main_is(world):
    await profiles.set_all_public(world.db, 1, False)
    assert not (await profiles.create_profile(world.db, 1, "hidden")).public
    await _rank(world, 1, UNLOCK, _loves(world, 0), "hidden")
    code = await profiles.current_code(world.db, 1, UNLOCK, "hidden")
    with pytest.raises(TasteError, match="private"):
        await profiles.resolve(world.db, 2, [(code, 1.0)], UNLOCK)


async def test_default_mix_is_what_a_bare_p_means(world):
    await _rank(world, 1, UNLOCK, _loves(world, 0))
    await profiles.create_profile(world.db, 1, "ink")
    with pytest.raises(TasteError, match=r"Your profile \*\*ink\*\* is locked: rank 6 more pairs with `/rank profile:ink`"):
        await profiles.set_defaults(world.db, 1, [("main", 1.0), ("ink", 2.0)])
        await profiles.resolve(world.db, 1, [(None, 1.0)], UNLOCK)
    await _rank(world, 1, UNLOCK, _loves(world, 2), "ink")
    stored = await profiles.set_defaults(world.db, 1, [("main", 1.0), ("INK", 2.0)])
    assert stored == [("main", 1.0), ("ink", 2.0)]
    main_code = await profiles.current_code(world.db, 1, UNLOCK)
    ink_code = await profiles.current_code(world.db, 1, UNLOCK, "ink")
    taste = await profiles.resolve(world.db, 1, [(None, 1.0)], UNLOCK)
    assert taste.codes == [(main_code, pytest.approx(1 / 3)), (ink_code, pytest.approx(2 / 3))]
    w_main = (await q.get_profile_version(world.db, main_code)).w
    w_ink = (await q.get_profile_version(world.db, ink_code)).w
    np.testing.assert_allclose(taste.w, w_main / 3 + 2 * w_ink / 3)
    for bad in ([], [("main", 0.0)], [("main", 1.0), ("Main", 1.0)], [("nope", 1.0)]):
        with pytest.raises(TasteError):
            await profiles.set_defaults(world.db, 1, bad)
    await profiles.delete_profile(world.db, 1, "ink")  # a deleted default leaves the mix
    assert (await profiles.resolve(world.db, 1, [(None, 1.0)], UNLOCK)).codes == [(main_code, 1.0)]


# --- signals from use ---------------------------------------------------------------


async def test_signals_from_use_teach_the_main_profile(world):
    embs = list(world.embeddings.values())
    grid = await _grid(world.db, owner=1, embeddings=embs[:4])
    grid_job = (await world.db.execute_fetchall("SELECT job_id FROM images WHERE id = ?", (grid[0],)))[0][0]
    others = await _grid(world.db, owner=2, embeddings=embs[4:8])
    others_job = (await world.db.execute_fetchall("SELECT job_id FROM images WHERE id = ?", (others[0],)))[0][0]

    assert await profiles.record_use(world.db, 1, "upscale", grid_job, image_id=grid[1])
    assert not await profiles.record_use(world.db, 1, "upscale", grid_job, image_id=grid[1])  # once
    assert not await profiles.record_use(world.db, 1, "upscale", others_job, image_id=others[1])  # not theirs
    assert not await profiles.record_use(world.db, 1, "vary", grid_job, image_id=others[1])  # not of that grid
    with pytest.raises(ValueError):
        await profiles.record_use(world.db, 1, "reroll", grid_job, image_id=grid[0])
    st = await profiles.status(world.db, 1, UNLOCK)
    assert st.signals == {"upscale": 1, "vary": 0, "reroll": 0} and st.votes == 0
    assert st.progress == profiles.UNLOCK_CREDIT["upscale"]

    # the U click is the chosen image over the other three, at UPSCALE_WEIGHT
    z = world.basis.whiten(np.stack(embs[:4])).astype(np.float32)  # as the taste index keeps them
    posterior = await profiles.member_posterior(world.db, 1)
    d, w = tm.use_comparisons(z, "upscale", chosen=1)
    expected = tm.fit(d, w, prior=tm.Prior.isotropic(world.basis.k, profiles.PRIOR_SIGMA))
    np.testing.assert_allclose(posterior.mean, expected.mean, atol=1e-9)

    # a reroll counts once its new grid is drawn: each image loses to it
    drawn = await _grid(world.db, owner=1, embeddings=embs[8:12])
    drawn_job = (await world.db.execute_fetchall("SELECT job_id FROM images WHERE id = ?", (drawn[0],)))[0][0]
    assert await profiles.record_use(world.db, 1, "reroll", grid_job, next_job_id=drawn_job)
    d2, w2 = tm.use_comparisons(z, "reroll", z_replacement=world.basis.whiten(np.stack(embs[8:12])).astype(np.float32))
    expected = tm.fit(np.concatenate([d, d2]), np.concatenate([w, w2]),
                      prior=tm.Prior.isotropic(world.basis.k, profiles.PRIOR_SIGMA))
    np.testing.assert_allclose((await profiles.member_posterior(world.db, 1)).mean, expected.mean, atol=1e-9)

    # turned off: nothing new is recorded and what was recorded leaves the fit and the count
    await members.update_settings(world.db, 1, learn_from_use=False)
    assert not await profiles.record_use(world.db, 1, "vary", grid_job, image_id=grid[2])
    assert not np.any((await profiles.member_posterior(world.db, 1)).mean)
    assert (await profiles.status(world.db, 1, UNLOCK)).progress == 0


async def test_use_alone_unlocks_the_main_profile(world):
    """A member who only /imagines and clicks U reaches the unlock by the documented rule."""
    embs = list(world.embeddings.values())
    clicks = int(np.ceil(UNLOCK / profiles.UNLOCK_CREDIT["upscale"]))
    for i in range(clicks):
        grid = await _grid(world.db, owner=1, embeddings=[embs[(4 * i + j) % len(embs)] for j in range(4)])
        job = (await world.db.execute_fetchall("SELECT job_id FROM images WHERE id = ?", (grid[0],)))[0][0]
        with pytest.raises(TasteError, match="locked"):
            await profiles.current_code(world.db, 1, UNLOCK)
        assert await profiles.record_use(world.db, 1, "upscale", job, image_id=grid[0])
    st = await profiles.status(world.db, 1, UNLOCK)
    assert st.unlocked and st.votes == 0 and st.code
    version = await q.get_profile_version(world.db, st.code)
    assert (version.votes, version.signals) == (0, clicks)


# --- codes that don't churn -----------------------------------------------------------


async def test_codes_do_not_churn(world):
    await _rank(world, 1, 3 * UNLOCK, _loves(world, 0))
    first = await profiles.current_code(world.db, 1, UNLOCK)
    basis = world.basis
    pool = await profiles._pool(world.db, basis)
    deltas = pool.z[pool.pairs[:, 0]] - pool.z[pool.pairs[:, 1]]
    kept = 0
    for n in range(profiles.CODE_EVERY_N + 1):
        await _rank(world, 1, 1, _loves(world, 0), seed=100 + n)
        live = (await profiles.member_posterior(world.db, 1)).mean
        snap = await q.get_profile_version(world.db, first)
        moved = profiles.predictions_moved(snap.w, live, deltas)
        code = await profiles.current_code(world.db, 1, UNLOCK)
        if code != first:
            break
        kept += 1
        assert moved <= profiles.CODE_MOVE_THRESHOLD  # kept only while predictions barely moved
    assert kept >= 1, "a consistent vote should not make a new code at once"
    assert code != first  # within CODE_EVERY_N new votes there is a new version
    assert (await q.get_profile_version(world.db, code)).version == 2
    # a member whose taste turns around gets a new code before N votes
    await _rank(world, 1, 2 * UNLOCK, _loves(world, 3), seed=7)
    assert await profiles.current_code(world.db, 1, UNLOCK) != code


def test_predictions_moved():
    deltas = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, -1.0]])
    assert profiles.predictions_moved(np.array([1.0, 1.0]), np.array([2.0, 2.0]), deltas) == 0.0
    assert profiles.predictions_moved(np.array([1.0, 0.1]), np.array([1.0, -0.1]), deltas) == 0.25
    assert profiles.predictions_moved(np.array([1.0, 1.0]), np.array([-1.0, -1.0]), deltas) == 0.75


# --- the server's taste and a house taste -------------------------------------------------


async def _settled_prior(world) -> tm.Prior:
    """The community prior once no refit is running: a stale one is served while a refit
    runs in the background, which could otherwise land between two reads."""
    while True:
        prior = await profiles.community_prior(world.db, world.basis)
        if not profiles._refitting:
            return prior
        await asyncio.gather(*profiles._refitting.values())


async def test_server_taste_and_house_taste(world):
    with pytest.raises(TasteError, match="there is none yet: it forms once 3 members"):
        await profiles.resolve(world.db, 5, [("server", 1.0)], UNLOCK)  # the cold start's mean is no one's taste
    for user, style in ((1, 0), (2, 0), (3, 1), (4, 0)):
        await _rank(world, user, UNLOCK, _loves(world, style), seed=user)
    prior = await _settled_prior(world)
    server = await profiles.resolve(world.db, 5, [("server", 1.0)], UNLOCK)
    np.testing.assert_allclose(server.w, prior.mean)
    assert np.linalg.norm(prior.mean) > 0  # the community leans somewhere: three of four love style 0
    assert server.codes == [("server", 1.0)]

    mine = await profiles.current_code(world.db, 1, UNLOCK)
    house = await profiles.current_code(world.db, 3, UNLOCK)
    w_mine = (await q.get_profile_version(world.db, mine)).w
    w_house = (await q.get_profile_version(world.db, house)).w
    mixed = await profiles.resolve(world.db, 1, [(mine, 1.0)], UNLOCK, house=(house, 0.25, 3))
    np.testing.assert_allclose(mixed.w, 0.75 * w_mine + 0.25 * w_house)
    assert mixed.codes == [(mine, 0.75), (house, 0.25)]
    alone = await profiles.resolve(world.db, 2, [], UNLOCK, house=(house, 0.25, 3))
    np.testing.assert_allclose(alone.w, w_house)
    # the owner's private code serves as the house taste; someone else's doesn't
    await profiles.set_public(world.db, 3, house, False)
    await profiles.resolve(world.db, 2, [], UNLOCK, house=(house, 0.25, 3))
    with pytest.raises(TasteError, match="house taste `.*` is private"):
        await profiles.resolve(world.db, 2, [], UNLOCK, house=(house, 0.25, 4))
    with pytest.raises(TasteError, match="unknown"):
        await profiles.resolve(world.db, 2, [], UNLOCK, house=("abcdefg", 0.25, 4))


async def test_a_tune_is_a_profile_with_a_code(world):
    ids = list(world.embeddings)
    z = world.basis.whiten(np.stack([world.embeddings[i] for i in ids[:8]]))
    code = await profiles.create_tuned_profile(world.db, 1, None, z[:4], z[4:])
    info = await profiles.get_code(world.db, code)
    assert (info.profile, info.profile_kind, info.votes) == ("tune 1", "tune", 4)
    st = await profiles.status(world.db, 1, UNLOCK, "tune 1")
    assert st.unlocked and st.code == code
    second = await profiles.create_tuned_profile(world.db, 1, "Lighthouse", z[4:], z[:4])
    assert (await profiles.get_code(world.db, second)).profile == "Lighthouse"
    w1 = (await q.get_profile_version(world.db, code)).w
    w2 = (await q.get_profile_version(world.db, second)).w
    assert np.dot(w1, w2) < 0  # opposite picks, opposite tastes
    with pytest.raises(TasteError, match="is a tune"):
        await profiles.next_pair(world.db, 1, np.random.default_rng(0), "lighthouse")
