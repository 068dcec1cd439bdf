"""The taste service (engine/profiles.py) on a synthetic rank pool in a temp DB."""

from __future__ import annotations

import asyncio

import time
from dataclasses import dataclass

import numpy as np
import pytest

from engine import profiles
from engine import taste as tm
from engine.db import connect
from engine.db import taste as q
from engine.profiles import TasteError

D = 48
K = 16
N_STYLES = 6
N_PROMPTS = 10
UNLOCK = 6
STYLE_NAMES = ["watercolor", "neon palette", "charcoal drawing", "35mm lens", "pixel art", "soft light"]


@dataclass
class World:
    db: object
    basis: tm.Basis
    offset: np.ndarray  # shared CLIP-like offset
    styles: np.ndarray  # (N_STYLES, D) style directions
    embeddings: dict[int, np.ndarray]  # pool image id -> raw embedding
    style_of: dict[int, int]  # pool image id -> style index
    prompt_of: dict[int, int]  # pool image id -> prompt group


def _embedding(rng, offset, content, style, scale=1.0):
    x = offset + content + style + 0.05 * rng.standard_normal(D)
    return x * rng.uniform(8.0, 12.0) * scale  # raw OpenCLIP norms vary


async def _make_world(path, seed=0, n_prompts=N_PROMPTS, n_styles=N_STYLES, version=1) -> World:
    rng = np.random.default_rng(seed)
    db = await connect(path)
    offset = 2.0 * rng.standard_normal(D) / np.sqrt(D) * 3
    styles = rng.standard_normal((n_styles, D)) * 0.6 / np.sqrt(D) * 4
    embeddings, style_of, prompt_of = {}, {}, {}
    for p in range(n_prompts):
        content = rng.standard_normal(D) * 0.5 / np.sqrt(D) * 4
        prompt_id = await q.next_prompt_id(db)
        for s in range(n_styles):
            emb = _embedding(rng, offset, content, styles[s])
            image_id = await q.insert_pool_image(
                db, prompt_id, f"prompt {p}", STYLE_NAMES[s % len(STYLE_NAMES)], f"pool/{p}-{s}.png", 7, "tiny", emb
            )
            embeddings[image_id] = emb.astype(np.float32).astype(np.float64)
            style_of[image_id] = s
            prompt_of[image_id] = prompt_id
    basis = await _store_basis(db, version)
    return World(db, basis, offset, styles, embeddings, style_of, prompt_of)


async def _store_basis(db, version=None, k=K) -> tm.Basis:
    images = await q.pool_images_of_dim(db, D)
    version = version or await q.next_basis_version(db)
    basis = tm.Basis.build(np.stack([im.embedding for im in images]), k=k, version=version)
    await q.insert_basis(db, version, "tiny", basis.d, basis.k, len(images), basis.to_bytes())
    await q.assign_pool_basis(db, version, D)
    return basis


@pytest.fixture
def every_change(monkeypatch):
    """A new version on every new vote (the rule before codes stopped churning), for
    tests about versions themselves; test_codes_do_not_churn tests the real rule."""
    monkeypatch.setattr(profiles, "CODE_MOVE_THRESHOLD", -1.0)


@pytest.fixture
async def world(tmp_path):
    w = await _make_world(tmp_path / "t.db")
    yield w
    await w.db.close()


def _loves(world: World, style: int):
    """A member whose utility is the image's alignment with one style direction."""
    direction = world.styles[style] / np.linalg.norm(world.styles[style])

    def utility(image_id: int) -> float:
        e = world.embeddings[image_id]
        return float(e @ direction / np.linalg.norm(e))

    return utility


async def _vote(world: World, user: int, n: int, utility, rng=None) -> list[profiles.Pair]:
    rng = rng or np.random.default_rng(user)
    shown = []
    for _ in range(n):
        pair = await profiles.next_pair(world.db, user, rng)
        assert pair is not None
        choice = "left" if utility(pair.left_id) > utility(pair.right_id) else "right"
        assert await profiles.answer_pair(world.db, user, pair.id, choice)
        shown.append(pair)
    return shown


# --- codes ----------------------------------------------------------------------


async def test_code_round_trip_and_new_version_per_vote(world, every_change):
    await _vote(world, 1, UNLOCK, _loves(world, 0))
    code = await profiles.current_code(world.db, 1, UNLOCK)
    assert profiles.CODE_RE.match(code)
    assert await profiles.current_code(world.db, 1, UNLOCK) == code  # unchanged: same code
    snap = await q.get_profile_version(world.db, code)
    taste = await profiles.resolve(world.db, 1, [(code, 1.0)], UNLOCK)
    assert np.array_equal(taste.w, snap.w)
    assert taste.codes == [(code, 1.0)]
    assert taste.basis.version == world.basis.version and taste.preset == "tiny"
    bare = await profiles.resolve(world.db, 1, [(None, 1.0)], UNLOCK)  # bare --p: the current code
    assert bare.codes == [(code, 1.0)] and np.array_equal(bare.w, snap.w)

    await _vote(world, 1, 1, _loves(world, 0))
    new_code = await profiles.current_code(world.db, 1, UNLOCK)
    assert new_code != code
    new = await q.get_profile_version(world.db, new_code)
    assert new.votes == UNLOCK + 1 and new.version == snap.version + 1
    old_again = await profiles.resolve(world.db, 2, [(code, 1.0)], UNLOCK)  # old codes keep working
    assert np.array_equal(old_again.w, snap.w)
    assert not np.allclose(new.w, snap.w)
    listed = await profiles.list_codes(world.db, 1)
    assert [c.code for c in listed] == [new_code, code]


async def test_locked_profile_says_how_many_votes_remain(world):
    await _vote(world, 1, 2, _loves(world, 0))
    with pytest.raises(TasteError, match=f"rank {UNLOCK - 2} more pairs"):
        await profiles.current_code(world.db, 1, UNLOCK)
    with pytest.raises(TasteError, match="rank"):
        await profiles.resolve(world.db, 1, [(None, 1.0)], UNLOCK)
    st = await profiles.status(world.db, 1, UNLOCK)
    assert (st.votes, st.unlocked, st.code, st.remaining) == (2, False, None, UNLOCK - 2)


async def test_private_code_refused_to_others_but_usable_by_owner(world):
    await _vote(world, 1, UNLOCK, _loves(world, 0))
    code = await profiles.current_code(world.db, 1, UNLOCK)
    await profiles.set_public(world.db, 1, code, False)
    with pytest.raises(TasteError, match=code):
        await profiles.resolve(world.db, 2, [(code, 1.0)], UNLOCK)
    assert (await profiles.resolve(world.db, 1, [(code, 1.0)], UNLOCK)).codes == [(code, 1.0)]
    with pytest.raises(TasteError, match="not one of your codes"):
        await profiles.set_public(world.db, 2, code, True)
    await profiles.set_public(world.db, 1, code.upper(), True)  # codes are case-insensitive
    await profiles.resolve(world.db, 2, [(code, 1.0)], UNLOCK)
    assert (await profiles.list_codes(world.db, 1))[0].public


async def test_privacy_lasts_across_new_versions_and_moodboards(world, every_change):
    def refused_to_bob(code):
        return pytest.raises(TasteError, match=f"Code `{code}` is private: only its owner can use it")

    await _vote(world, 1, UNLOCK, _loves(world, 0))
    old = await profiles.current_code(world.db, 1, UNLOCK)
    made = await profiles.set_public(world.db, 1, old, False)
    assert (made.code, made.public, made.kind) == (old, False, "votes")
    # a first moodboard follows the main profile: a member who hid their taste doesn't share a board by surprise
    assert await profiles.privacy(world.db, 1) == {"votes": False, "moodboard": False}

    # One more vote: a new version, private like the profile; the old one stays private.
    await _vote(world, 1, 1, _loves(world, 0))
    st = await profiles.status(world.db, 1, UNLOCK)
    assert st.code != old and not st.public
    board = world.embeddings[next(iter(world.embeddings))][None, :]
    bobs = await profiles.create_moodboard(world.db, 2, board)
    for code in (old, st.code):
        with refused_to_bob(code):
            await profiles.resolve(world.db, 2, [(code, 1.0)], UNLOCK)
        with refused_to_bob(code):  # mixed with a code bob may use, still refused
            await profiles.resolve(world.db, 2, [(bobs, 1.0), (code, 1.0)], UNLOCK)
    assert (await profiles.resolve(world.db, 1, [(st.code, 1.0)], UNLOCK)).codes == [(st.code, 1.0)]

    # Sharing one code shares that code only: the next version is private again.
    await profiles.set_public(world.db, 1, st.code, True)
    await profiles.resolve(world.db, 2, [(st.code, 1.0)], UNLOCK)
    await _vote(world, 1, 1, _loves(world, 0))
    newest = await profiles.current_code(world.db, 1, UNLOCK)
    with refused_to_bob(newest):
        await profiles.resolve(world.db, 2, [(newest, 1.0)], UNLOCK)

    # Moodboards are profiles of their own: a later one starts as the member's last one is.
    first = await profiles.create_moodboard(world.db, 1, board)
    assert not (await profiles.get_code(world.db, first)).public
    await profiles.set_public(world.db, 1, first, True)
    assert (await profiles.get_code(world.db, first)).public
    await profiles.set_public(world.db, 1, first, False)
    second = await profiles.create_moodboard(world.db, 1, board)
    assert not (await profiles.get_code(world.db, second)).public

    # All at once: every code and every later one.
    assert await profiles.set_all_public(world.db, 1, True) == 4  # old, newest, two moodboards
    assert all(c.public for c in await profiles.list_codes(world.db, 1))
    await _vote(world, 1, 1, _loves(world, 0))
    await profiles.resolve(world.db, 2, [(await profiles.current_code(world.db, 1, UNLOCK), 1.0)], UNLOCK)
    assert await profiles.set_all_public(world.db, 1, False) == 6
    assert not any(c.public for c in await profiles.list_codes(world.db, 1))
    third = await profiles.create_moodboard(world.db, 1, board)
    assert not (await profiles.get_code(world.db, third)).public
    assert await profiles.privacy(world.db, 2) == {"votes": True, "moodboard": True}  # others untouched


async def test_migration_keeps_a_private_latest_version_private(tmp_path, monkeypatch):
    """Before 0005 privacy was per version: a member whose latest version was private stays private."""
    import engine.db

    every = engine.db.migration_files()
    monkeypatch.setattr(engine.db, "migration_files", lambda: every[:4])  # the schema before 0005
    db = await connect(tmp_path / "old.db")
    await db.execute("INSERT INTO bases VALUES (1, 'tiny', 2, 2, 0, 0, x'')")
    rows = [  # (code, user, kind, version, public)
        ("aaaaaaa", 1, "votes", 1, 1), ("bbbbbbb", 1, "votes", 2, 0),  # latest private
        ("ccccccc", 2, "votes", 1, 0), ("ddddddd", 2, "votes", 2, 1),  # latest public
        ("eeeeeee", 2, "moodboard", 1, 0),
    ]
    for code, user, kind, version, public in rows:
        await db.execute(
            "INSERT INTO profile_versions VALUES (?, ?, ?, ?, 1, x'', 0, 0, 0, 0, ?, 0)", (code, user, kind, version, public)
        )
    await db.close()
    monkeypatch.setattr(engine.db, "migration_files", lambda: every)
    db = await connect(tmp_path / "old.db")  # applies 0005 onward
    try:
        assert await profiles.privacy(db, 1) == {"votes": False, "moodboard": False}  # no board: as main
        assert await profiles.privacy(db, 2) == {"votes": True, "moodboard": False}
        assert [(p.name, p.kind) for p in await profiles.list_profiles(db, 2)] == [("main", "votes"), ("moodboard 1", "moodboard")]
        assert (await profiles.get_code(db, "eeeeeee")).profile == "moodboard 1"
        assert (await profiles.get_code(db, "bbbbbbb")).profile == "main"
        assert not (await profiles.get_code(db, "ccccccc")).public  # versions keep their own flag
    finally:
        await db.close()


async def test_unknown_code(world):
    for bad in ("abcdefg", "not-a-code", "zzzzzzz"):
        with pytest.raises(TasteError, match="Unknown code"):
            await profiles.resolve(world.db, 1, [(bad, 1.0)], UNLOCK)
    with pytest.raises(TasteError, match="Unknown code"):
        await profiles.set_public(world.db, 1, "abcdefg", False)


async def test_mixing_is_linear(world):
    await _vote(world, 1, UNLOCK, _loves(world, 0))
    await _vote(world, 2, UNLOCK, _loves(world, 3))
    a = await profiles.current_code(world.db, 1, UNLOCK)
    b = await profiles.current_code(world.db, 2, UNLOCK)
    wa = (await q.get_profile_version(world.db, a)).w
    wb = (await q.get_profile_version(world.db, b)).w
    mix = await profiles.resolve(world.db, 3, [(a, 2.0), (b, 1.0)], UNLOCK)
    np.testing.assert_allclose(mix.w, (2 * wa + wb) / 3)
    assert mix.codes == [(a, pytest.approx(2 / 3)), (b, pytest.approx(1 / 3))]
    with pytest.raises(TasteError, match="weights"):
        await profiles.resolve(world.db, 3, [(a, 0.0)], UNLOCK)


async def test_no_pool(tmp_path):
    db = await connect(tmp_path / "empty.db")
    try:
        assert await profiles.next_pair(db, 1, np.random.default_rng(0)) is None
        with pytest.raises(TasteError, match="python -m engine.rankpool build"):
            await profiles.resolve(db, 1, [("abcdefg", 1.0)], 0)
        with pytest.raises(TasteError, match="rankpool build"):
            await profiles.create_moodboard(db, 1, np.ones((2, D)))
        st = await profiles.status(db, 1, UNLOCK)
        assert (st.votes, st.code, st.toward) == (0, None, [])
    finally:
        await db.close()


# --- conditioning and reranking ---------------------------------------------------


def test_conditioning_off_norm_and_monotone(world):
    basis = world.basis
    w = np.random.default_rng(1).standard_normal(K)
    off = profiles.conditioning(w, basis, 0, "tiny")
    assert off.vector is None and off.scale == 0.0
    direction = basis.unwhiten_direction(w)
    cosines, scales = [], []
    for s in (1, 50, 100, 250, 500, 750, 1000):
        c = profiles.conditioning(w, basis, s, "sdxl-turbo")
        v = np.array(c.vector)
        assert v.shape == (D,)
        assert np.linalg.norm(v) == pytest.approx(basis.rho)
        cosines.append(v @ direction / np.linalg.norm(v) / np.linalg.norm(direction))
        scales.append(c.scale)
    assert all(b > a for a, b in zip(cosines, cosines[1:], strict=False))
    assert all(b >= a for a, b in zip(scales, scales[1:], strict=False)) and scales[0] > 0
    assert scales[-1] == pytest.approx(profiles.calibration_for("sdxl-turbo").scale_max)
    # unknown presets use the default curve; a Taste works as well as a bare w
    taste = profiles.Taste(w=w, basis=basis, codes=[])
    assert profiles.conditioning(taste, None, 100, "nope").scale == profiles.DEFAULT_CALIBRATION.scale(100)
    with pytest.raises(ValueError):
        profiles.conditioning(w, basis, 1001, "tiny")


def test_rerank_direction_orders_like_the_profile(world):
    rng = np.random.default_rng(2)
    w = rng.standard_normal(K)
    phi = np.stack(list(world.embeddings.values()))[:40] * rng.uniform(0.5, 2.0, (40, 1))
    direction = np.array(profiles.rerank_direction(world.basis, w))
    by_direction = (phi / np.linalg.norm(phi, axis=1, keepdims=True)) @ direction
    by_profile = world.basis.whiten(phi) @ w
    assert np.array_equal(np.argsort(by_direction), np.argsort(by_profile))
    np.testing.assert_allclose(by_direction - by_direction.mean(), (by_profile - by_profile.mean()) / np.linalg.norm(
        profiles.reward_direction(world.basis, w)), atol=1e-9)


# --- /rank ------------------------------------------------------------------------


async def test_next_pair_same_prompt_and_never_repeats(tmp_path):
    world = await _make_world(tmp_path / "small.db", n_prompts=3, n_styles=3)
    try:
        rng = np.random.default_rng(0)
        seen = set()
        for i in range(9):  # 3 prompts x 3 pairs each
            pair = await profiles.next_pair(world.db, 5, rng)
            assert world.prompt_of[pair.left_id] == world.prompt_of[pair.right_id]
            assert pair.left_style != pair.right_style and pair.left_path != pair.right_path
            assert pair.prompt == f"prompt {world.prompt_of[pair.left_id] - 1}"
            key = frozenset((pair.left_id, pair.right_id))
            assert key not in seen
            seen.add(key)
            assert await profiles.answer_pair(world.db, 5, pair.id, "skip" if i % 3 == 0 else "left")
        with pytest.raises(TasteError, match="ranked all 9 pairs"):
            await profiles.next_pair(world.db, 5, rng)
        assert (await profiles.status(world.db, 5, UNLOCK)).votes == 6  # skips are not votes
        assert await profiles.next_pair(world.db, 6, rng) is not None  # another member starts fresh
    finally:
        await world.db.close()


async def test_answer_twice_and_foreign_pair(world):
    pair = await profiles.next_pair(world.db, 1, np.random.default_rng(0))
    assert not await profiles.answer_pair(world.db, 2, pair.id, "left")  # not your pair
    assert await profiles.answer_pair(world.db, 1, pair.id, "right")
    assert not await profiles.answer_pair(world.db, 1, pair.id, "left")  # second click
    assert not await profiles.answer_pair(world.db, 1, 999_999, "left")
    with pytest.raises(ValueError):
        await profiles.answer_pair(world.db, 1, pair.id, "up")
    assert (await q.get_rank_pair(world.db, pair.id)).choice == "right"
    # the same two images shown again in an older, still open message: not a second vote
    main = await q.main_profile(world.db, 1)
    stale = await q.insert_rank_pair(world.db, 1, pair.right_id, pair.left_id, main.id)
    assert not await profiles.answer_pair(world.db, 1, stale, "left")
    assert (await profiles.status(world.db, 1, UNLOCK)).votes == 1


async def test_votes_learn_the_taste(world):
    utility = _loves(world, 2)
    await _vote(world, 1, 30, utility)
    posterior = await profiles.member_posterior(world.db, 1)
    ids = list(world.embeddings)
    z = world.basis.whiten(np.stack([world.embeddings[i] for i in ids]))
    predicted = dict(zip(ids, z @ posterior.mean, strict=True))
    pairs = [(a, b) for a in ids for b in ids if a < b and world.prompt_of[a] == world.prompt_of[b]]
    agree = [(predicted[a] > predicted[b]) == (utility(a) > utility(b)) for a, b in pairs]
    assert np.mean(agree) > 0.85  # same-prompt pairs ordered as the member would
    assert 0 < posterior.confidence() <= 1


async def test_community_prior_is_cached_and_refreshed(world):
    for user in (1, 2, 3):
        await _vote(world, user, 4, _loves(world, 1))
    await profiles.member_posterior(world.db, 4)
    members, obs, mean, cov = await q.get_community_prior(world.db, world.basis.version)
    # fitted when the third member arrived (9 observations), still fresh at 12
    assert (members, obs) == (3, 9) and mean.shape == (K,) and cov.shape == (K, K)
    prior = await profiles.community_prior(world.db, world.basis)
    assert np.array_equal(prior.mean, mean)  # served from the cache
    # a new member's starting point leans toward the community's favourite
    fresh = await profiles.member_posterior(world.db, 4)
    assert fresh.mean @ (await profiles.member_posterior(world.db, 1)).mean > 0
    # a new member makes it stale (13 observations): the stale prior is served at
    # once and the refit runs in the background; PRIOR_REFRESH more votes again
    await _vote(world, 5, 1, _loves(world, 1))
    await profiles.member_posterior(world.db, 5)
    assert (await q.get_community_prior(world.db, world.basis.version))[:2] == (3, 9)
    await asyncio.gather(*profiles._refitting.values())
    assert (await q.get_community_prior(world.db, world.basis.version))[:2] == (4, 13)
    await _vote(world, 5, profiles.PRIOR_REFRESH, _loves(world, 1))
    await profiles.member_posterior(world.db, 5)
    await asyncio.gather(*profiles._refitting.values())
    assert (await q.get_community_prior(world.db, world.basis.version))[:2] == (4, 13 + profiles.PRIOR_REFRESH)


async def test_a_waited_for_refit_serves_the_prior_it_fitted(world, monkeypatch):
    """A small community's first request waits for the refit and gets the prior it stored, with
    its created_at, without reading it back: the next requests are served that same object."""
    for user in (1, 2, 3):
        await _vote(world, user, 4, _loves(world, 1))
    await world.db.execute("DELETE FROM community_priors")  # none stored yet: the next request waits for one
    decoded = []
    real = q.get_community_prior_arrays

    async def counted(db, version):
        decoded.append(version)
        return await real(db, version)

    monkeypatch.setattr(q, "get_community_prior_arrays", counted)
    prior, made = await profiles._community_prior(world.db, world.basis)
    assert decoded == []
    assert made == (await q.community_prior_stamp(world.db, world.basis.version))[2] > 0
    assert await profiles._community_prior(world.db, world.basis) == (prior, made)
    assert decoded == []
    members, obs, mean, cov = await q.get_community_prior(world.db, world.basis.version)
    assert (members, obs) == (3, 12) and np.array_equal(prior.mean, mean) and np.array_equal(prior.cov, cov)


# --- likes ------------------------------------------------------------------------


async def _grid(db, owner: int, embeddings: list[np.ndarray], parent: int | None = None) -> list[int]:
    """A finished job of `owner` with one image per embedding; returns image ids."""
    job_id = f"job-{owner}-{time.time_ns()}"
    for user in {owner}:
        await db.execute("INSERT OR IGNORE INTO users (id, created_at) VALUES (?, ?)", (user, time.time()))
    await db.execute(
        "INSERT INTO jobs (id, kind, user_id, prompt, request, parent_image_id, state, created_at)"
        " VALUES (?, 'imagine', ?, 'p', '{}', ?, 'done', ?)",
        (job_id, owner, parent, time.time()),
    )
    ids = []
    for i, emb in enumerate(embeddings, start=1):
        cur = await db.execute(
            "INSERT INTO images (job_id, idx, user_id, path, width, height, seed, embedding, created_at)"
            " VALUES (?, ?, ?, 'x.png', 64, 64, 1, ?, ?)",
            (job_id, i, owner, q.f32_blob(emb), time.time()),
        )
        ids.append(cur.lastrowid)
    return ids


async def test_likes(world):
    embs = list(world.embeddings.values())
    grid = await _grid(world.db, owner=2, embeddings=embs[:4])
    own = await _grid(world.db, owner=1, embeddings=embs[4:8])
    before = await profiles.member_posterior(world.db, 1)
    assert not await profiles.record_like(world.db, 1, own[0])  # own images do not count
    assert await q.like_count(world.db, 1) == 0
    assert await profiles.record_like(world.db, 1, grid[0])
    assert not await profiles.record_like(world.db, 1, grid[0])  # once
    st = await profiles.status(world.db, 1, UNLOCK)
    assert st.likes == 1 and st.votes == 0
    # a like is a weighted win over the 3 other images of the grid
    after = await profiles.member_posterior(world.db, 1)
    z = world.basis.whiten(np.stack(embs[:4])).astype(np.float32)  # as the taste index keeps them
    expected = tm.fit(z[0] - z[1:], np.full(3, tm.LIKE_WEIGHT), prior=tm.Prior.isotropic(K, profiles.PRIOR_SIGMA))
    np.testing.assert_allclose(after.mean, expected.mean, atol=1e-9)
    assert not np.allclose(after.mean, before.mean)
    # a single image (an upscale) is credited against its parent's grid
    upscale = await _grid(world.db, owner=2, embeddings=[embs[1] * 2], parent=grid[1])
    assert await profiles.record_like(world.db, 1, upscale[0])
    assert len(await q.like_pairs(world.db, 1)) == 6
    with pytest.raises(TasteError):
        await profiles.record_like(world.db, 1, 999_999)


# --- moodboards and explanations ---------------------------------------------------


async def test_moodboard_points_toward_its_images(world):
    rng = np.random.default_rng(3)
    style = 4
    board = np.stack(
        [_embedding(rng, world.offset, rng.standard_normal(D) * 2 / np.sqrt(D), world.styles[style] * 2) for _ in range(5)]
    )
    code = await profiles.create_moodboard(world.db, 7, board)
    version = await q.get_profile_version(world.db, code)
    assert (version.kind, version.user_id, version.images, version.votes) == ("moodboard", 7, 5, 0)
    assert np.linalg.norm(version.w) == pytest.approx(profiles.DEFAULT_TASTE_NORM)
    taste = await profiles.resolve(world.db, 8, [(code, 1.0)], UNLOCK)  # public: anyone may use it
    own = world.basis.whiten(board) @ taste.w
    pool = world.basis.whiten(np.stack(list(world.embeddings.values()))) @ taste.w
    assert own.min() > np.median(pool) and own.mean() > np.percentile(pool, 90)
    # it also prefers pool images of the moodboard's style
    styled = [world.basis.whiten(e) @ taste.w for i, e in world.embeddings.items() if world.style_of[i] == style]
    assert np.mean(styled) > np.mean(pool)
    assert [c.kind for c in await profiles.list_codes(world.db, 7)] == ["moodboard"]


def test_explain_planted_words(world):
    basis = world.basis
    rng = np.random.default_rng(4)
    w = rng.standard_normal(K)
    gap = rng.standard_normal(D) * 3  # text embeddings sit apart from images
    words = [f"word{i}" for i in range(8)] + ["loved", "hated"]
    texts = [gap + basis.mean + 0.3 * rng.standard_normal(D) / np.sqrt(D) for _ in range(8)]
    texts.append(gap + basis.mean + 2.0 * basis.unwhiten_direction(w))
    texts.append(gap + basis.mean - 2.0 * basis.unwhiten_direction(w))
    toward, away = profiles.explain(w, basis, words, np.stack(texts), n=3)
    assert toward[0] == "loved" and away[0] == "hated"
    assert len(toward) == len(away) == 3 and not set(toward) & set(away)
    assert profiles.explain(np.zeros(K), basis, words, np.stack(texts)) == ([], [])
    assert profiles.explain(w, basis, [], None) == ([], [])


async def test_status_explains_a_learned_taste(world, every_change):
    # style words: the style directions, seen through a modality gap
    rng = np.random.default_rng(5)
    gap = rng.standard_normal(D)
    for s, name in enumerate(STYLE_NAMES):
        await q.upsert_style_word(world.db, name, "tiny", world.offset + world.styles[s] * 3 + gap)
    await _vote(world, 1, 25, _loves(world, 0))
    st = await profiles.status(world.db, 1, UNLOCK)
    assert st.unlocked and st.code is not None and 0 < st.confidence <= 1
    assert st.toward[0] == STYLE_NAMES[0] and STYLE_NAMES[0] not in st.away
    assert len(st.toward) == len(st.away) == 3
    # showing an unchanged profile again keeps the code; a new vote makes a new one
    assert (await profiles.status(world.db, 1, UNLOCK)).code == st.code
    await _vote(world, 1, 1, _loves(world, 0))
    assert (await profiles.status(world.db, 1, UNLOCK)).code != st.code


# --- a new basis ---------------------------------------------------------------------


async def test_codes_from_an_older_basis_are_projected(world):
    utility = _loves(world, 1)
    await _vote(world, 1, 20, utility)
    code = await profiles.current_code(world.db, 1, UNLOCK)
    old_w = (await q.get_profile_version(world.db, code)).w
    # grow the pool and build basis 2
    rng = np.random.default_rng(9)
    for p in range(4):
        content = rng.standard_normal(D) * 2 / np.sqrt(D)
        prompt_id = await q.next_prompt_id(world.db)
        for s in range(N_STYLES):
            emb = _embedding(rng, world.offset, content, world.styles[s])
            image_id = await q.insert_pool_image(world.db, prompt_id, f"new {p}", STYLE_NAMES[s], "x.png", 1, "tiny", emb)
            world.embeddings[image_id] = emb
    new_basis = await _store_basis(world.db)
    assert new_basis.version == 2
    taste = await profiles.resolve(world.db, 2, [(code, 1.0)], UNLOCK)
    assert taste.basis.version == 2
    phi = np.stack(list(world.embeddings.values()))
    before = world.basis.whiten(phi) @ old_w
    after = new_basis.whiten(phi) @ taste.w
    assert np.corrcoef(before, after)[0, 1] > 0.95
    # the member's next use snapshots a new version on the new basis; the old code still works
    new_code = await profiles.current_code(world.db, 1, UNLOCK)
    assert new_code != code and (await q.get_profile_version(world.db, new_code)).basis_version == 2
    # next_pair now draws from the larger pool
    pair = await profiles.next_pair(world.db, 3, np.random.default_rng(0))
    assert pair is not None


async def test_migration_makes_a_kind_private_where_one_of_its_profiles_was(tmp_path, monkeypatch):
    """Before 0011 privacy was per profile: a kind with a private profile becomes private in all of them."""
    import engine.db

    every = engine.db.migration_files()
    mine = next(n for n, file in every if file.name.endswith("_privacy_and_roles.sql"))
    monkeypatch.setattr(engine.db, "migration_files", lambda: [m for m in every if m[0] < mine])  # the schema before it
    db = await connect(tmp_path / "old.db")
    rows = [  # (user, name, kind, public)
        (1, "main", "votes", 1), (1, "portraits", "votes", 0), (1, "moodboard 1", "moodboard", 0),
        (1, "moodboard 2", "moodboard", 1), (2, "main", "votes", 1), (2, "tune 1", "tune", 1),
    ]
    for user, name, kind, public in rows:
        await db.execute("INSERT INTO profiles (user_id, name, kind, public, created_at) VALUES (?, ?, ?, ?, 0)",
                         (user, name, kind, public))
    await db.commit()
    await db.close()
    monkeypatch.setattr(engine.db, "migration_files", lambda: every)
    db = await connect(tmp_path / "old.db")  # applies it
    try:
        assert await profiles.privacy(db, 1) == {"votes": False, "moodboard": False}
        assert [p.public for p in await profiles.list_profiles(db, 1)] == [False, False, False, False]
        assert await profiles.privacy(db, 2) == {"votes": True, "moodboard": True}
        assert [p.public for p in await profiles.list_profiles(db, 2)] == [True, True]
    finally:
        await db.close()
