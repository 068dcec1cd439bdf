"""engine/taste.py: basis, Bradley-Terry fit, calibration, active choice, community prior.

All problems are planted and seeded: a hidden taste w* generates logistic
votes, and the learner has to find it. No timings are asserted here
(bench/taste_bench.py reports them).
"""

from __future__ import annotations

import numpy as np
import pytest

from engine import taste
from engine.taste import LIKE_WEIGHT, Basis, Posterior, Prior, choose_pair, community_prior, fit


def planted(rng: np.random.Generator, k: int, norm: float) -> np.ndarray:
    w = rng.normal(size=k)
    return w * (norm / np.linalg.norm(w))


def votes(rng: np.random.Generator, w: np.ndarray, n: int) -> np.ndarray:
    """n logistic votes on random pairs, as winner - loser deltas."""
    d = rng.normal(size=(n, w.size))
    first = rng.random(n) < taste.sigmoid(d @ w)
    return np.where(first[:, None], d, -d)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def heldout_accuracy(w_hat: np.ndarray, w: np.ndarray, rng: np.random.Generator, n: int = 4000):
    """(expected accuracy of w_hat's predictions, Bayes rate) on fresh pairs."""
    e = rng.normal(size=(n, w.size))
    p = taste.sigmoid(e @ w)
    acc = float(np.mean(np.where(e @ w_hat > 0, p, 1 - p)))
    return acc, float(np.mean(np.maximum(p, 1 - p)))


# ---------------------------------------------------------------------------
# numerics
# ---------------------------------------------------------------------------


def test_sigmoid_and_log_sigmoid_are_stable():
    x = np.array([-1e4, -50.0, 0.0, 50.0, 1e4])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = taste.sigmoid(x)
        ls = taste.log_sigmoid(x)
    assert s[0] == 0.0 and s[-1] == 1.0 and s[2] == 0.5
    assert np.all(np.isfinite(ls))
    assert ls[0] == pytest.approx(-1e4)
    assert ls[-1] == pytest.approx(0.0)
    assert ls[2] == pytest.approx(np.log(0.5))


# ---------------------------------------------------------------------------
# Basis
# ---------------------------------------------------------------------------


def make_embeddings(rng: np.random.Generator, n: int = 400, d: int = 48) -> np.ndarray:
    scales = np.linspace(2.0, 0.1, d)
    return 3.0 * np.ones(d) + rng.normal(size=(n, d)) * scales


@pytest.mark.parametrize(("n", "d"), [(400, 48), (60, 100)])  # tall (eigh) and wide (SVD) pools
def test_whiten_has_zero_mean_unit_variance_on_build_data(n, d):
    emb = make_embeddings(np.random.default_rng(0), n, d)
    basis = Basis.build(emb, k=16, version=3)
    z = basis.whiten(emb)
    assert z.shape == (n, 16)
    assert np.allclose(z.mean(axis=0), 0.0, atol=1e-9)
    assert np.allclose(z.var(axis=0, ddof=1), 1.0, atol=1e-9)
    assert np.allclose(np.cov(z.T), np.eye(16), atol=1e-9)  # and uncorrelated
    assert basis.k == 16 and basis.version == 3
    assert np.allclose(basis.components.T @ basis.components, np.eye(16), atol=1e-10)
    assert np.all(np.diff(basis.variances) <= 0)
    assert basis.rho == pytest.approx(np.median(np.linalg.norm(emb, axis=1)))
    # the mean is of the unit-normalised embeddings
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    assert np.allclose(basis.mean, unit.mean(axis=0))


def test_whiten_single_vector_and_scale_invariance():
    emb = make_embeddings(np.random.default_rng(1))
    basis = Basis.build(emb, k=8)
    z1 = basis.whiten(emb[5])
    assert z1.shape == (8,)
    assert np.allclose(z1, basis.whiten(emb)[5])
    assert np.allclose(basis.whiten(7.0 * emb[5]), z1)  # phi is normalised first
    with pytest.raises(ValueError):
        basis.whiten(np.ones(3))


def test_basis_bytes_round_trip():
    emb = make_embeddings(np.random.default_rng(2))
    basis = Basis.build(emb, k=12, version=7)
    data = basis.to_bytes()
    assert isinstance(data, bytes)
    back = Basis.from_bytes(data)
    assert back == basis
    assert back.version == 7 and back.k == 12 and back.rho == basis.rho
    assert np.array_equal(back.whiten(emb), basis.whiten(emb))


def test_basis_k_is_capped():
    rng = np.random.default_rng(3)
    assert Basis.build(rng.normal(size=(10, 32)), k=64).k == 9  # n - 1
    assert Basis.build(rng.normal(size=(100, 5)), k=64).k == 5  # d
    assert Basis.build(rng.normal(size=(100, 32))).k == 32
    with pytest.raises(ValueError):
        Basis.build(rng.normal(size=(1, 8)))


# ---------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "n"), [(16, 300), (32, 300), (64, 500)])
def test_fit_recovers_planted_taste(k, n):
    rng = np.random.default_rng(10 + k)
    w = planted(rng, k, 4.0)
    post = fit(votes(rng, w, n), prior=Prior.isotropic(k, 4.0 / np.sqrt(k)))
    assert cosine(post.mean, w) > 0.9
    acc, bayes = heldout_accuracy(post.mean, w, rng)
    assert acc > bayes - 0.06
    if k <= 16:
        assert acc > bayes - 0.03


def test_fit_default_prior_and_recovery_at_k16():
    rng = np.random.default_rng(11)
    w = planted(rng, 16, 3.0)
    post = fit(votes(rng, w, 300))  # default N(0, I)
    assert cosine(post.mean, w) > 0.9


def test_fit_is_the_map_and_precision_is_the_hessian():
    rng = np.random.default_rng(12)
    k = 8
    w = planted(rng, k, 2.0)
    d = votes(rng, w, 60)
    prior = Prior(mean=rng.normal(size=k) * 0.3, cov=np.diag(rng.uniform(0.5, 2.0, size=k)))
    post = fit(d, prior=prior, tol=1e-14)
    p = taste.sigmoid(d @ post.mean)
    grad = d.T @ (1 - p) - np.linalg.solve(prior.cov, post.mean - prior.mean)
    assert np.abs(grad).max() < 1e-6
    hess = (d.T * (p * (1 - p))) @ d + np.linalg.inv(prior.cov)
    assert np.allclose(post.precision, hess, atol=1e-8)
    assert np.allclose(post.covariance, np.linalg.inv(hess), atol=1e-8)


def test_fit_with_no_votes_is_the_prior():
    prior = Prior(mean=np.arange(4.0), cov=np.diag([1.0, 2.0, 3.0, 4.0]))
    post = fit(np.empty((0, 4)), prior=prior)
    assert np.array_equal(post.mean, prior.mean)
    assert np.allclose(post.covariance, prior.cov)
    post0 = fit(np.ones((3, 4)), weights=np.zeros(3), prior=prior)  # all weights 0
    assert np.array_equal(post0.mean, prior.mean)


def test_fit_survives_separable_data_and_big_inputs():
    rng = np.random.default_rng(13)
    d = np.abs(rng.normal(size=(50, 6))) * 100.0  # every vote agrees with w = +1: separable
    post = fit(d, prior=Prior.isotropic(6, 10.0))
    assert np.all(np.isfinite(post.mean)) and np.all(np.isfinite(post.precision))
    assert np.all(post.mean > 0)


def test_weight_zero_is_no_vote_and_weight_two_is_voting_twice():
    rng = np.random.default_rng(14)
    k = 10
    w = planted(rng, k, 2.0)
    d = votes(rng, w, 40)
    prior = Prior.isotropic(k, 0.7)
    extra = votes(rng, -w, 5)  # contrary votes, weighted 0
    a = fit(np.vstack([d, extra]), weights=np.r_[np.ones(40), np.zeros(5)], prior=prior, tol=1e-14)
    b = fit(d, prior=prior, tol=1e-14)
    assert np.allclose(a.mean, b.mean, atol=1e-9)
    assert np.allclose(a.precision, b.precision, atol=1e-9)

    weights = np.ones(40)
    weights[:7] = 2.0
    c = fit(d, weights=weights, prior=prior, tol=1e-14)
    e = fit(np.vstack([d, d[:7]]), prior=prior, tol=1e-14)
    assert np.allclose(c.mean, e.mean, atol=1e-9)
    assert np.allclose(c.precision, e.precision, atol=1e-9)

    # a like (weight LIKE_WEIGHT) moves the taste less than a vote
    like = fit(d[:1], weights=[LIKE_WEIGHT], prior=prior)
    vote = fit(d[:1], prior=prior)
    assert 0 < np.linalg.norm(like.mean) < np.linalg.norm(vote.mean)

    with pytest.raises(ValueError):
        fit(d, weights=-np.ones(40), prior=prior)
    with pytest.raises(ValueError):
        fit(d, weights=np.ones(3), prior=prior)
    with pytest.raises(ValueError):
        fit(np.ones((2, k + 1)), prior=prior)


def test_warm_start_gives_the_same_fit():
    rng = np.random.default_rng(15)
    w = planted(rng, 32, 3.0)
    d = votes(rng, w, 120)
    cold = fit(d, tol=1e-12)
    warm = fit(d, init=fit(d[:-1]).mean, tol=1e-12)
    assert np.allclose(cold.mean, warm.mean, atol=1e-7)


def test_update_approximates_a_refit():
    rng = np.random.default_rng(16)
    k = 16
    w = planted(rng, k, 3.0)
    d = votes(rng, w, 80)
    prior = Prior.isotropic(k, 0.75)
    post = fit(d[:-1], prior=prior)
    upd = taste.update(post, d[-1], 1.0, prior)
    ref = fit(d, prior=prior)
    assert cosine(upd.mean - post.mean, ref.mean - post.mean) > 0.9
    assert np.linalg.norm(upd.mean - ref.mean) < 0.2 * np.linalg.norm(ref.mean - post.mean) + 1e-3
    assert taste.update(post, d[-1], 0.0) is post


# ---------------------------------------------------------------------------
# prob, confidence
# ---------------------------------------------------------------------------


def test_prob_is_calibrated_on_planted_data():
    k = 16
    preds, truths = [], []
    for seed in range(4):
        rng = np.random.default_rng(20 + seed)
        w = planted(rng, k, 3.0)
        post = fit(votes(rng, w, 150), prior=Prior.isotropic(k, 3.0 / np.sqrt(k)))
        e = rng.normal(size=(3000, k))
        preds.append(post.prob(e))
        truths.append(taste.sigmoid(e @ w))
    pred, truth = np.concatenate(preds), np.concatenate(truths)
    bins = np.minimum((pred * 10).astype(int), 9)
    ece = sum(np.mean(bins == b) * abs(pred[bins == b].mean() - truth[bins == b].mean()) for b in np.unique(bins))
    assert ece < 0.03
    # symmetric: P(a beats b) = 1 - P(b beats a); a single delta gives a scalar
    assert np.allclose(post.prob(e[:10]) + post.prob(-e[:10]), 1.0)
    assert np.ndim(post.prob(e[0])) == 0


def test_prob_is_moderated_by_uncertainty():
    d = np.array([[1.0, 0.0]])
    sure = Posterior(mean=np.array([2.0, 0.0]), precision=np.eye(2) * 1e6)
    unsure = Posterior(mean=np.array([2.0, 0.0]), precision=np.eye(2) * 0.01)
    assert sure.prob(d)[0] == pytest.approx(taste.sigmoid(2.0), abs=1e-5)
    assert 0.5 < unsure.prob(d)[0] < sure.prob(d)[0] - 0.1


def test_confidence_rises_with_evidence():
    rng = np.random.default_rng(30)
    k = 16
    w = planted(rng, k, 3.0)
    d = votes(rng, w, 400)
    prior = Prior.isotropic(k, 1.0)
    conf = [fit(d[:n], prior=prior).confidence() for n in (0, 10, 40, 100, 400)]
    assert conf[0] == 0.0
    assert all(0.0 <= c <= 1.0 for c in conf)
    assert all(b > a for a, b in zip(conf, conf[1:], strict=False))
    assert conf[-1] > 0.8


# ---------------------------------------------------------------------------
# choose_pair
# ---------------------------------------------------------------------------


def test_choose_pair_prefers_uncertain_informative_pairs():
    post = Posterior(mean=np.array([3.0, 0.0]), precision=np.eye(2))
    cands = np.array([[2.0, 0.0], [0.0, 2.0], [0.0, 0.1], [-2.0, 0.0]])
    rng = np.random.default_rng(0)
    # [0, 2]: prediction 0.5 and the largest variance along it
    assert choose_pair(post, cands, rng, explore=0.0) == 1
    picks = {choose_pair(post, cands, rng, explore=1.0) for _ in range(200)}
    assert picks == {0, 1, 2, 3}  # explore=1 is uniform
    with pytest.raises(ValueError):
        choose_pair(post, np.empty((0, 2)), rng)


def test_choose_pair_skips_a_rare_extreme_pair_for_the_directions_comparisons_vary_along():
    # 20 pairs differ along e0, one larger pair along e1: a vote on e1 would tell
    # most about w, but only a vote on e0 sharpens predictions on pairs like these
    post = Posterior(mean=np.zeros(2), precision=np.eye(2))
    cands = np.vstack([np.tile([1.0, 0.0], (20, 1)), [[0.0, 1.5]]])
    assert choose_pair(post, cands, np.random.default_rng(0), explore=0.0) < 20


def _active_run(seed: int, active: bool, k: int = 16, n: int = 60, n_cand: int = 30):
    rng = np.random.default_rng(seed)
    w = planted(rng, k, 3.0)
    pools = rng.normal(size=(n, n_cand, k))  # the same candidate pools for both arms
    coins = rng.random(n)
    random_pick = rng.integers(n_cand, size=n)
    prior = Prior.isotropic(k, 3.0 / np.sqrt(k))
    choice_rng = np.random.default_rng(seed + 1000)
    post = fit(np.empty((0, k)), prior=prior)
    chosen = []
    for t in range(n):
        i = choose_pair(post, pools[t], choice_rng) if active else random_pick[t]
        d = pools[t, i]
        chosen.append(d if coins[t] < taste.sigmoid(d @ w) else -d)
        post = fit(np.array(chosen), prior=prior, init=post.mean)
    acc, _ = heldout_accuracy(post.mean, w, np.random.default_rng(seed + 5))
    return acc, cosine(post.mean, w)


def test_active_choice_beats_random_pairs():
    seeds = range(12)
    active = np.array([_active_run(s, True) for s in seeds])
    rand = np.array([_active_run(s, False) for s in seeds])
    gain = active - rand  # columns: held-out accuracy, cosine to w*
    assert gain[:, 0].mean() > 0.008, gain[:, 0]
    assert gain[:, 1].mean() > 0.02, gain[:, 1]
    assert np.mean(gain[:, 0] > 0) >= 0.6


# ---------------------------------------------------------------------------
# community prior
# ---------------------------------------------------------------------------


def test_community_prior_points_to_the_shared_taste_and_helps_newcomers():
    k = 16
    rng = np.random.default_rng(40)
    w0 = planted(rng, k, 3.0)

    def member() -> np.ndarray:
        return w0 + rng.normal(size=k) * (1.5 / np.sqrt(k))

    # members with 0..few votes as well as regulars
    counts = [0, 1, 2, 3] + [30] * 36
    hist = [votes(rng, member(), n) for n in counts]
    prior = community_prior(hist, k=k)
    assert cosine(prior.mean, w0) > 0.7
    assert np.all(np.linalg.eigvalsh(prior.cov) > 0)

    iso = Prior.isotropic(k, 1.0)
    gains = []
    for _ in range(12):
        w = member()
        d = votes(rng, w, 5)
        e_rng = np.random.default_rng(int(rng.integers(1 << 30)))
        acc_c, _ = heldout_accuracy(fit(d, prior=prior).mean, w, e_rng)
        e_rng = np.random.default_rng(int(rng.integers(1 << 30)))
        acc_i, _ = heldout_accuracy(fit(d, prior=iso).mean, w, e_rng)
        gains.append(acc_c - acc_i)
    assert np.mean(gains) > 0.05


def test_community_prior_falls_back_and_is_robust():
    k = 6
    rng = np.random.default_rng(41)
    # too few members who voted -> isotropic
    p = community_prior([np.empty((0, k)), votes(rng, np.ones(k), 3)], k=k, sigma=2.0)
    assert np.array_equal(p.mean, np.zeros(k)) and np.allclose(p.cov, 4.0 * np.eye(k))
    assert community_prior([], k=k).k == k
    with pytest.raises(ValueError):
        community_prior([])  # no way to know k
    # k is inferred; all-zero weights count as not voting; tiny members are fine
    hist = [votes(rng, np.ones(k), n) for n in (1, 1, 2, 0, 1)]
    weights = [np.ones(len(h)) for h in hist]
    weights[0] = np.zeros(1)
    p = community_prior(hist, weights)
    assert p.k == k
    assert np.all(np.isfinite(p.mean)) and np.all(np.linalg.eigvalsh(p.cov) > 0)
    with pytest.raises(ValueError):
        community_prior(hist, weights[:2])


def test_prior_validation():
    with pytest.raises(ValueError):
        Prior(mean=np.zeros(3), cov=np.eye(2))
    with pytest.raises(ValueError):
        Prior.isotropic(3, sigma=0.0)
    prior = Prior.isotropic(3, 2.0)
    assert np.allclose(prior.precision, np.eye(3) / 4.0)
    with pytest.raises(ValueError):
        prior.mean[0] = 1.0  # read-only: cached factorisations stay valid


# ---------------------------------------------------------------------------
# clustered community prior (issue 12)
# ---------------------------------------------------------------------------


def _clustered_members(rng: np.random.Generator, k: int, centres: np.ndarray):
    def member() -> np.ndarray:
        return centres[rng.integers(len(centres))] + rng.normal(size=k) * (0.5 / np.sqrt(k))

    return member


def test_fit_under_a_clustered_prior_follows_the_cluster_the_votes_point_to():
    k = 8
    rng = np.random.default_rng(50)
    a, b = planted(rng, k, 3.0), planted(rng, k, 3.0)
    prior = Prior.mixture([0.5, 0.5], [a, b], 0.05 * np.eye(k))
    assert prior.clusters == 2
    # no votes: the mixture's mean, and its covariance includes the clusters' spread
    post = fit(np.zeros((0, k)), prior=prior)
    assert np.allclose(post.mean, (a + b) / 2)
    spread = np.outer(a - b, a - b) / 4
    assert np.allclose(prior.cov, 0.05 * np.eye(k) + spread)
    # a few votes from a member near b: the posterior sits on b, not between
    d = votes(rng, b, 6)
    post = fit(d, prior=prior)
    assert np.linalg.norm(post.mean - b) < 0.25 * np.linalg.norm(a - b)
    # one Gaussian with the same mean and covariance cannot do that
    gauss = fit(d, prior=Prior(mean=prior.mean, cov=prior.cov))
    assert np.linalg.norm(post.mean - b) < np.linalg.norm(gauss.mean - b)


def test_community_prior_finds_taste_clusters_and_they_help_newcomers():
    k = 12
    rng = np.random.default_rng(51)
    centres = np.array([planted(rng, k, 2.5) for _ in range(3)])
    member = _clustered_members(rng, k, centres)
    hist = [votes(rng, member(), 30) for _ in range(60)]
    clustered = community_prior(hist, k=k, min_cluster_members=10, clusters=3)
    single = community_prior(hist, k=k, clusters=1)
    assert clustered.clusters == 3 and single.clusters == 1
    # each planted centre has a cluster mean close to it
    for c in centres:
        assert max(cosine(c, m) for m in clustered.cluster_means) > 0.9
    gains = []
    for _ in range(16):
        w = member()
        d = votes(rng, w, 4)
        e_rng = np.random.default_rng(int(rng.integers(1 << 30)))
        acc_c, _ = heldout_accuracy(fit(d, prior=clustered).mean, w, e_rng)
        e_rng = np.random.default_rng(int(rng.integers(1 << 30)))
        acc_s, _ = heldout_accuracy(fit(d, prior=single).mean, w, e_rng)
        gains.append(acc_c - acc_s)
    assert np.mean(gains) > 0.01, gains


def test_community_prior_keeps_one_gaussian_without_enough_members_per_cluster():
    k = 6
    rng = np.random.default_rng(52)
    hist = [votes(rng, planted(rng, k, 2.0), 10) for _ in range(20)]
    assert community_prior(hist, k=k).clusters == 1  # 20 members < 2 x 30


def test_clustered_prior_round_trips_and_validates():
    k = 4
    prior = Prior.mixture([0.25, 0.75], np.eye(k)[:2], 0.5 * np.eye(k))
    back = Prior.from_arrays(prior.to_arrays())
    assert back.clusters == 2
    for name in ("mean", "cov", "cluster_weights", "cluster_means", "cluster_cov"):
        assert np.array_equal(getattr(back, name), getattr(prior, name))
    plain = Prior.from_arrays(Prior.isotropic(k).to_arrays())
    assert plain.clusters == 1 and set(Prior.isotropic(k).to_arrays()) == {"mean", "cov"}
    with pytest.raises(ValueError):
        Prior(mean=np.zeros(k), cov=np.eye(k), cluster_weights=np.array([0.5, 0.4]),
              cluster_means=np.zeros((2, k)), cluster_cov=np.eye(k))
    with pytest.raises(ValueError):
        Prior(mean=np.zeros(k), cov=np.eye(k), cluster_weights=np.array([1.0]))


# ---------------------------------------------------------------------------
# signals from use (issue 12)
# ---------------------------------------------------------------------------


def test_use_comparisons_are_weighted_bradley_terry_deltas():
    rng = np.random.default_rng(60)
    z = rng.normal(size=(4, 5))
    d, c = taste.use_comparisons(z, "upscale", chosen=2)
    assert np.allclose(d, z[2] - z[[0, 1, 3]]) and np.allclose(c, taste.UPSCALE_WEIGHT)
    d, c = taste.use_comparisons(z, "vary", chosen=0)
    assert np.allclose(d, z[0] - z[1:]) and np.allclose(c, taste.VARY_WEIGHT)
    d, c = taste.use_comparisons(z, "like", chosen=3)
    assert np.allclose(c, LIKE_WEIGHT) and len(d) == 3
    # a reroll: each image loses to the mean of the grid that replaced it
    new = rng.normal(size=(4, 5))
    d, c = taste.use_comparisons(z, "reroll", z_replacement=new)
    assert np.allclose(d, new.mean(axis=0) - z) and np.allclose(c, taste.REROLL_WEIGHT)
    d, c = taste.use_comparisons(z, "upscale", chosen=1, weight=2.0)
    assert np.allclose(c, 2.0)
    for bad in (
        {"signal": "upscale"},
        {"signal": "upscale", "chosen": 4},
        {"signal": "reroll"},
        {"signal": "zoom", "chosen": 0},
    ):
        with pytest.raises(ValueError):
            taste.use_comparisons(z, **bad)


def test_u_clicks_alone_learn_the_taste():
    """A member who only picks favourites of four-image grids (Thurstonian
    choice, so noisy) is learned through the U comparisons."""
    k = 8
    rng = np.random.default_rng(61)
    w = planted(rng, k, 3.0)
    ds, cs = [], []
    for _ in range(60):
        z = rng.normal(size=(4, k))
        chosen = int(np.argmax(z @ w + rng.gumbel(size=4)))
        d, c = taste.use_comparisons(z, "upscale", chosen=chosen)
        ds.append(d)
        cs.append(c)
    post = fit(np.concatenate(ds), np.concatenate(cs), prior=Prior.isotropic(k))
    assert cosine(post.mean, w) > 0.85


def test_choose_pair_targets_the_spread_it_is_given():
    """With ``spread`` the pairs whose predictions matter are named: the vote
    goes to the direction they vary along, not the candidates' own."""
    k = 4
    post = fit(np.zeros((0, k)), prior=Prior.isotropic(k))
    cand = np.eye(k)[:2] * 1.0  # two equally uncertain candidates
    rng = np.random.default_rng(70)
    along_second = np.diag([0.0, 1.0, 0.0, 0.0])
    along_first = np.diag([1.0, 0.0, 0.0, 0.0])
    assert choose_pair(post, cand, rng, explore=0.0, spread=along_second) == 1
    assert choose_pair(post, cand, rng, explore=0.0, spread=along_first) == 0
    with pytest.raises(ValueError):
        choose_pair(post, cand, rng, explore=0.0, spread=np.eye(k + 1))


async def test_the_cached_community_prior_keeps_its_clusters(tmp_path):
    """profiles caches the prior in the database; a clustered one comes back
    clustered (and a plain one plain), so the bot's refits use the clusters."""
    from engine.db import connect
    from engine.db import taste as q

    k = 4
    db = await connect(tmp_path / "t.db")
    try:
        basis = Basis.build(np.random.default_rng(71).normal(size=(10, 6)), k=k)
        for version in (1, 2):
            await q.insert_basis(db, version, "tiny", basis.d, k, 10, basis.to_bytes())
        clustered = Prior.mixture([0.25, 0.75], np.eye(k)[:2], 0.5 * np.eye(k))
        await q.put_community_prior(db, 1, 80, 900, **clustered.to_arrays())
        members, obs, arrays = await q.get_community_prior_arrays(db, 1)
        back = Prior.from_arrays(arrays)
        assert (members, obs, back.clusters) == (80, 900, 2)
        assert np.array_equal(back.cluster_means, clustered.cluster_means)
        await q.put_community_prior(db, 2, 5, 40, **Prior.isotropic(k).to_arrays())
        assert Prior.from_arrays((await q.get_community_prior_arrays(db, 2))[2]).clusters == 1
        assert (await q.get_community_prior(db, 1))[3].shape == (k, k)  # the plain reader still works
    finally:
        await db.close()
