"""Taste model: whitened CLIP features, Bradley-Terry votes, Laplace posterior.

numpy only: the bot process imports this module and refits a member's taste
after every vote (about a millisecond at k = 64).

The pieces, in the order the bot uses them:

1. ``Basis``: built once per rank pool. ``whiten`` maps an image embedding phi
   to z = Lambda^-1/2 U^T (phi/|phi| - mu), k numbers with unit variance over
   the pool.
2. ``Prior``: what we believe about a member's taste w before their votes.
   ``community_prior`` estimates it from everyone's votes (empirical Bayes):
   N(m, S), and, once the server has enough members, its taste clusters, a
   mixture sum_c pi_c N(m_c, S_w) with one shared covariance. A newcomer's
   first votes then pick the cluster they belong to instead of being pulled
   toward one server-wide mean. ``Prior.isotropic`` is the cold start.
3. ``fit``: a comparison "a beats b" is an observation of delta = z_a - z_b
   with P(a beats b) = sigma(w^T delta) (Bradley-Terry), of weight c: the
   log-likelihood is sum c log sigma(w^T delta). Newton's method finds the
   MAP w-hat; the Hessian there is the precision H of the Laplace posterior
   N(w-hat, H^-1). Under a clustered prior the posterior is the mixture of
   the clusters' posteriors, weighted by their evidence.
4. ``Posterior.prob``: predictive P(a beats b), moderated by the posterior
   uncertainty along delta. ``choose_pair`` shows the pair whose outcome most
   sharpens the predictions on pairs like the ones on offer.

What enters the fit, each as weighted comparisons (``use_comparisons``):

=========  ======================================================  ======
signal     comparisons                                             weight
=========  ======================================================  ======
/rank vote the chosen image over the other                         1
U click    the upscaled image over each other image of its grid    UPSCALE_WEIGHT = 1
V click    the varied image over each other image of its grid      VARY_WEIGHT = 0.25
like       the liked image over each other image of its grid       LIKE_WEIGHT = 0.3
reroll     the mean of the grid it drew over each rerolled image   REROLL_WEIGHT = 0.4
=========  ======================================================  ======

The U, V and reroll weights are set by ``bench/taste_bench.py``: simulated
members who only use /imagine (a reroll when the best image of a grid is in
their own worst fifth, else a U on their favourite or a V on a noisier
favourite, judged with the same noise as their votes); each weight is the
value on a grid whose use-only fits score best on held-out pairs (log score,
so calibration counts), one signal at a time, on members of their own. The
bench finds each of a U click's three comparisons worth about a full vote
(the chosen image beat all three at once), and a V, a noisier pick, a
quarter of that. A reroll compares
against the replacement grid, not the pool's average image, so the prompt's
content cancels as it does in a /rank pair. The like weight predates the
bench and is kept.

Speed at k = 64 and 200 votes, one core: ``fit`` about 1 ms from the prior
mean, about 0.3-0.5 ms warm-started with ``init=`` the previous posterior
mean; a clustered prior adds a few k x k solves (bench/taste_bench.py prints
the median). Matrices this small gain nothing from BLAS threads, and under
load threads can stall a call for many milliseconds, so a process that refits
per vote is best run with OPENBLAS_NUM_THREADS=1.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

LIKE_WEIGHT = 0.3  # a like is a win of this weight over the images shown beside it
# Signals from use, each a weighted comparison (see ``use_comparisons``); the
# weights are set by bench/taste_bench.py (its "weights of signals from use").
UPSCALE_WEIGHT = 1.0  # a U click: the chosen image over each other image of its grid
VARY_WEIGHT = 0.25  # a V click: the same, weaker
REROLL_WEIGHT = 0.4  # a reroll: each image of the grid loses to the grid that replaced it
DEFAULT_K = 64

__all__ = [
    "LIKE_WEIGHT",
    "REROLL_WEIGHT",
    "UPSCALE_WEIGHT",
    "VARY_WEIGHT",
    "Basis",
    "Posterior",
    "Prior",
    "choose_pair",
    "community_prior",
    "fit",
    "log_sigmoid",
    "sigmoid",
    "update",
    "use_comparisons",
]


# ---------------------------------------------------------------------------
# small numerics
# ---------------------------------------------------------------------------


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    """1 / (1 + e^-x), stable for any x (no overflow warnings)."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def log_sigmoid(x: np.ndarray | float) -> np.ndarray:
    """log sigma(x) = -log(1 + e^-x), stable for any x."""
    return -np.logaddexp(0.0, -np.asarray(x, dtype=np.float64))


def _frozen(a, ndim: int, name: str) -> np.ndarray:
    """A private read-only float64 copy, so cached factorisations stay valid."""
    arr = np.array(a, dtype=np.float64, copy=True)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-d, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has non-finite values")
    arr.setflags(write=False)
    return arr


def _cholesky(a: np.ndarray, name: str) -> np.ndarray:
    """Lower Cholesky factor; retries with a tiny jitter for round-off."""
    try:
        return np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        scale = max(float(np.mean(np.diag(a))), 1e-300)
        try:
            return np.linalg.cholesky(a + 1e-10 * scale * np.eye(a.shape[0]))
        except np.linalg.LinAlgError:
            raise ValueError(f"{name} is not positive definite") from None


def _chol_inverse(chol: np.ndarray) -> np.ndarray:
    """A^-1 from A's lower Cholesky factor L: (L^-1)^T L^-1."""
    l_inv = np.linalg.solve(chol, np.eye(chol.shape[0]))
    return l_inv.T @ l_inv


def _as_deltas(deltas, k: int | None) -> np.ndarray:
    d = np.asarray(deltas, dtype=np.float64)
    if d.ndim == 1:
        d = d.reshape(0, k) if (d.size == 0 and k is not None) else d[None, :]
    if d.ndim != 2:
        raise ValueError(f"deltas must be (n, k), got shape {d.shape}")
    if k is not None and d.shape[1] != k:
        raise ValueError(f"deltas have {d.shape[1]} features, the prior has {k}")
    return d


def _as_weights(weights, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n)
    c = np.asarray(weights, dtype=np.float64).reshape(-1)
    if c.shape != (n,):
        raise ValueError(f"weights must have shape ({n},), got {c.shape}")
    if np.any(c < 0) or not np.all(np.isfinite(c)):
        raise ValueError("weights must be finite and >= 0")
    return c


# ---------------------------------------------------------------------------
# 1. Basis
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Basis:
    """The whitening basis of one rank pool (one ``version``)."""

    version: int
    mean: np.ndarray  # (d,) mean of the unit-normalised pool embeddings (mu-hat)
    components: np.ndarray  # (d, k) U, orthonormal columns, top-k principal directions
    variances: np.ndarray  # (k,) Lambda, variances along U
    rho: float  # median |phi| of the raw embeddings

    def __post_init__(self) -> None:
        object.__setattr__(self, "version", int(self.version))
        object.__setattr__(self, "rho", float(self.rho))
        object.__setattr__(self, "mean", _frozen(self.mean, 1, "mean"))
        object.__setattr__(self, "components", _frozen(self.components, 2, "components"))
        object.__setattr__(self, "variances", _frozen(self.variances, 1, "variances"))
        d, k = self.components.shape
        if self.mean.shape != (d,) or self.variances.shape != (k,):
            raise ValueError(
                f"inconsistent basis shapes: mean {self.mean.shape}, "
                f"components {self.components.shape}, variances {self.variances.shape}"
            )
        if np.any(self.variances <= 0):
            raise ValueError("variances must be > 0")

    @classmethod
    def build(cls, embeddings: np.ndarray, k: int = DEFAULT_K, version: int = 1) -> Basis:
        """PCA of the unit-normalised embeddings; k is capped at min(n-1, d)."""
        # 1. check inputs
        phi = np.asarray(embeddings, dtype=np.float64)
        if phi.ndim != 2 or phi.shape[0] < 2:
            raise ValueError(f"need (n >= 2, d) embeddings, got shape {phi.shape}")
        n, d = phi.shape
        k = int(min(k, n - 1, d))
        if k < 1:
            raise ValueError("k must be >= 1")
        # 2. normalise; rho is the typical raw norm (conditioning is rescaled to it)
        norms = np.linalg.norm(phi, axis=1)
        rho = float(np.median(norms))
        x = phi / np.maximum(norms, 1e-12)[:, None]
        # 3. centre and take the top-k principal directions
        mu = x.mean(axis=0)
        xc = x - mu
        if n > 2 * d:  # tall pool: eigen-decompose the d x d covariance (cheaper)
            evals, evecs = np.linalg.eigh(xc.T @ xc / (n - 1))
            comps = evecs[:, ::-1][:, :k].copy()
            var = np.maximum(evals[::-1][:k], 0.0)
        else:
            _, s, vt = np.linalg.svd(xc, full_matrices=False)
            comps = vt[:k].T.copy()  # (d, k)
            var = s[:k] ** 2 / (n - 1)
        # 4. deterministic signs (largest |entry| of each column positive)
        idx = np.argmax(np.abs(comps), axis=0)
        comps *= np.sign(comps[idx, np.arange(k)])
        # 5. floor degenerate directions so whitening never divides by ~0
        var = np.maximum(var, 1e-12 * max(float(var[0]), 1e-300))
        return cls(version=version, mean=mu, components=comps, variances=var, rho=rho)

    @property
    def k(self) -> int:
        return int(self.components.shape[1])

    @property
    def d(self) -> int:
        return int(self.components.shape[0])

    @cached_property
    def _projector(self) -> np.ndarray:
        return self.components / np.sqrt(self.variances)  # U Lambda^-1/2, (d, k)

    def whiten(self, embeddings: np.ndarray) -> np.ndarray:
        """z = Lambda^-1/2 U^T (phi/|phi| - mu) for (n, d) or (d,) embeddings."""
        phi = np.asarray(embeddings, dtype=np.float64)
        if phi.shape[-1] != self.d or phi.ndim not in (1, 2):
            raise ValueError(f"embeddings must be (n, {self.d}) or ({self.d},), got {phi.shape}")
        norms = np.linalg.norm(phi, axis=-1, keepdims=True)
        x = phi / np.maximum(norms, 1e-12)
        return (x - self.mean) @ self._projector

    def unwhiten_direction(self, w: np.ndarray) -> np.ndarray:
        """U Lambda^1/2 w: a taste vector as a direction in embedding space."""
        return self.components @ (np.sqrt(self.variances) * np.asarray(w, dtype=np.float64))

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(
            buf,
            version=np.int64(self.version),
            mean=self.mean,
            components=self.components,
            variances=self.variances,
            rho=np.float64(self.rho),
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Basis:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return cls(
                version=int(z["version"]),
                mean=z["mean"],
                components=z["components"],
                variances=z["variances"],
                rho=float(z["rho"]),
            )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Basis):
            return NotImplemented
        return (
            self.version == other.version
            and self.rho == other.rho
            and np.array_equal(self.mean, other.mean)
            and np.array_equal(self.components, other.components)
            and np.array_equal(self.variances, other.variances)
        )

    __hash__ = None  # type: ignore[assignment]


# ---------------------------------------------------------------------------
# 2. Prior
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Prior:
    """w ~ N(mean, cov) before a member's own votes, or a mixture of clusters.

    A clustered prior (``Prior.mixture``) is sum_c pi_c N(m_c, S_w): the
    server's taste clusters share one within-cluster covariance S_w. Its
    ``mean`` and ``cov`` are then the mixture's overall moments (the server's
    taste, a Gaussian stand-in wherever one is needed), and ``fit`` uses the
    clusters.
    """

    mean: np.ndarray  # (k,)
    cov: np.ndarray  # (k, k)
    cluster_weights: np.ndarray | None = None  # (c,) pi, summing to 1
    cluster_means: np.ndarray | None = None  # (c, k) m_c
    cluster_cov: np.ndarray | None = None  # (k, k) S_w, shared by the clusters

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", _frozen(self.mean, 1, "prior mean"))
        object.__setattr__(self, "cov", _frozen(self.cov, 2, "prior cov"))
        k = self.mean.shape[0]
        if self.cov.shape != (k, k):
            raise ValueError(f"prior cov must be ({k}, {k}), got {self.cov.shape}")
        parts = (self.cluster_weights, self.cluster_means, self.cluster_cov)
        if all(x is None for x in parts):
            return
        if any(x is None for x in parts):
            raise ValueError("a clustered prior needs cluster_weights, cluster_means and cluster_cov")
        pi = _frozen(self.cluster_weights, 1, "cluster weights")
        means = _frozen(self.cluster_means, 2, "cluster means")
        cov_w = _frozen(self.cluster_cov, 2, "cluster cov")
        if means.shape != (pi.shape[0], k) or cov_w.shape != (k, k):
            raise ValueError(f"cluster shapes: weights {pi.shape}, means {means.shape}, cov {cov_w.shape}, k={k}")
        if np.any(pi <= 0) or abs(float(pi.sum()) - 1.0) > 1e-6:
            raise ValueError("cluster weights must be > 0 and sum to 1")
        object.__setattr__(self, "cluster_weights", pi)
        object.__setattr__(self, "cluster_means", means)
        object.__setattr__(self, "cluster_cov", cov_w)

    @classmethod
    def isotropic(cls, k: int, sigma: float = 1.0) -> Prior:
        if k < 1 or not sigma > 0:
            raise ValueError("need k >= 1 and sigma > 0")
        return cls(mean=np.zeros(k), cov=(float(sigma) ** 2) * np.eye(k))

    @classmethod
    def mixture(cls, weights: np.ndarray, means: np.ndarray, cov: np.ndarray) -> Prior:
        """sum_c weights[c] N(means[c], cov); one cluster is a plain Gaussian."""
        pi = np.asarray(weights, dtype=np.float64)
        means = np.asarray(means, dtype=np.float64)
        if len(pi) == 1:
            return cls(mean=means[0], cov=cov)
        pi = pi / pi.sum()
        mean = pi @ means
        r = means - mean
        total = cov + (r.T * pi) @ r  # within + between clusters
        return cls(mean=mean, cov=0.5 * (total + total.T), cluster_weights=pi, cluster_means=means, cluster_cov=cov)

    @property
    def k(self) -> int:
        return int(self.mean.shape[0])

    @property
    def clusters(self) -> int:
        return 1 if self.cluster_weights is None else int(self.cluster_weights.shape[0])

    @cached_property
    def components(self) -> tuple[tuple[float, Prior], ...]:
        """(pi_c, N(m_c, S_w)) per cluster; ((1, self),) for a plain Gaussian."""
        if self.cluster_weights is None:
            return ((1.0, self),)
        return tuple(
            (float(p), Prior(mean=m, cov=self.cluster_cov))
            for p, m in zip(self.cluster_weights, self.cluster_means, strict=True)
        )

    @cached_property
    def precision(self) -> np.ndarray:
        """S^-1 (computed once, via Cholesky)."""
        p = _chol_inverse(self._chol)
        p = 0.5 * (p + p.T)
        p.setflags(write=False)
        return p

    @cached_property
    def _chol(self) -> np.ndarray:
        return _cholesky(self.cov, "prior cov")

    @cached_property
    def _half_logdet_precision(self) -> float:
        return -float(np.sum(np.log(np.diag(self._chol))))

    @cached_property
    def _cluster_precision(self) -> np.ndarray:
        """S_w^-1 of a clustered prior."""
        p = _chol_inverse(_cholesky(self.cluster_cov, "cluster cov"))
        return 0.5 * (p + p.T)

    @cached_property
    def _precision_mean(self) -> np.ndarray:
        return self.precision @ self.mean  # S^-1 m

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Named arrays for storage (np.savez); ``from_arrays`` reads them back."""
        out = {"mean": self.mean, "cov": self.cov}
        if self.cluster_weights is not None:
            out.update(cluster_weights=self.cluster_weights, cluster_means=self.cluster_means, cluster_cov=self.cluster_cov)
        return out

    @classmethod
    def from_arrays(cls, arrays) -> Prior:
        names = ("cluster_weights", "cluster_means", "cluster_cov")
        extra = {n: arrays[n] for n in names if n in arrays}
        return cls(mean=arrays["mean"], cov=arrays["cov"], **extra)


# ---------------------------------------------------------------------------
# 3. Posterior
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Posterior:
    """Laplace posterior N(mean, precision^-1) over a member's taste w."""

    mean: np.ndarray  # w-hat (k,)
    precision: np.ndarray  # H (k, k) = sum c p(1-p) d d^T + S^-1

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", _frozen(self.mean, 1, "posterior mean"))
        object.__setattr__(self, "precision", _frozen(self.precision, 2, "precision"))
        k = self.mean.shape[0]
        if self.precision.shape != (k, k):
            raise ValueError(f"precision must be ({k}, {k}), got {self.precision.shape}")

    @property
    def k(self) -> int:
        return int(self.mean.shape[0])

    @cached_property
    def _chol(self) -> np.ndarray:
        return _cholesky(self.precision, "posterior precision")

    @cached_property
    def covariance(self) -> np.ndarray:
        """H^-1."""
        c = _chol_inverse(self._chol)
        c = 0.5 * (c + c.T)
        c.setflags(write=False)
        return c

    def variance_along(self, deltas: np.ndarray) -> np.ndarray:
        """v = d^T H^-1 d for each row d (via the Cholesky factor of H)."""
        d = _as_deltas(deltas, self.k)
        half = np.linalg.solve(self._chol, d.T)  # L^-1 d, (k, n)
        return np.einsum("ij,ij->j", half, half)

    def _moderated(self, d: np.ndarray, v: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(P(first beats second), v) for each row of d; ``v``: d^T H^-1 d, when the caller has it."""
        v = self.variance_along(d) if v is None else v
        pbar = sigmoid((d @ self.mean) / np.sqrt(1.0 + (math.pi / 8.0) * v))
        return pbar, v

    def prob(self, deltas: np.ndarray) -> np.ndarray:
        """P(first beats second) for each row delta = z_a - z_b.

        The probit-style moderation sigma(w^T d / sqrt(1 + pi v / 8)) averages
        the sigmoid over the posterior, so uncertain directions stay near 0.5.
        A 1-d delta gives a 0-d array.
        """
        single = np.ndim(deltas) == 1
        pbar, _ = self._moderated(_as_deltas(deltas, self.k))
        return pbar[0] if single else pbar

    def score(self, deltas_or_z: np.ndarray) -> np.ndarray:
        """w-hat^T z: the utility the profile gives to (whitened) images."""
        return np.asarray(deltas_or_z, dtype=np.float64) @ self.mean

    def confidence(self) -> float:
        """How well the profile is pinned down, in [0, 1].

        It is the expected correlation, under the posterior, between the
        profile's scores w-hat^T d and the member's true scores w^T d over
        isotropic random feature differences d:
        |w-hat| / sqrt(|w-hat|^2 + tr H^-1). It is 0 with no votes under a
        zero-mean prior and approaches 1 as votes shrink the posterior
        variance relative to the size of the learned taste.
        """
        sig = float(self.mean @ self.mean)
        noise = float(np.trace(self.covariance))
        if sig <= 0.0:
            return 0.0
        return float(math.sqrt(sig / (sig + noise)))


# ---------------------------------------------------------------------------
# 4. Fitting
# ---------------------------------------------------------------------------


def fit(
    deltas: np.ndarray,
    weights: np.ndarray | None = None,
    prior: Prior | None = None,
    *,
    max_iter: int = 20,
    tol: float = 1e-6,
    init: np.ndarray | None = None,
) -> Posterior:
    """MAP Bradley-Terry taste under the prior, with its Laplace precision.

    deltas[i] = z(winner) - z(loser), shape (n, k), n may be 0 (then the
    posterior is the prior). weights[i] >= 0: 1.0 for a vote, LIKE_WEIGHT for
    a like, the ``use_comparisons`` weights for signals from use; a weight of
    2 counts exactly like the same comparison given twice. ``init`` (e.g. the
    previous posterior mean) warm-starts Newton's method.

    Under a clustered prior the posterior is a mixture too: each cluster's
    posterior, weighted by its evidence pi_c p(votes | cluster). The votes'
    likelihood enters as the Gaussian message of one Laplace fit under the
    prior's overall moments (so a refit costs one fit plus a few k x k
    solves); the returned posterior has the mixture's mean and covariance.
    """
    # 1. check inputs; the prior fixes k (or defaults to isotropic N(0, I))
    d = _as_deltas(deltas, prior.k if prior is not None else None)
    n, k = d.shape
    if prior is None:
        prior = Prior.isotropic(k)
    c = _as_weights(weights, n)
    keep = c > 0
    if not np.all(keep):
        d, c = d[keep], c[keep]

    # 2. a plain Gaussian prior: one Laplace fit
    if prior.clusters == 1:
        return _laplace(d, c, prior, max_iter, tol, init)[0]

    # 3. a clustered prior: one Laplace fit under its overall Gaussian gives the
    #    votes' likelihood as a Gaussian message exp(b.w - w.L w / 2), with
    #    L = H0 - P and b = H0 w0 - P m
    post0 = _laplace(d, c, Prior(mean=prior.mean, cov=prior.cov), max_iter, tol, init)[0]
    if d.shape[0] == 0:
        return post0
    p_tot = prior.precision
    b = post0.precision @ post0.mean - p_tot @ prior.mean
    lik_prec = post0.precision - p_tot
    # 4. each cluster N(m_c, S_w) times the message: the same precision
    #    H = L + S_w^-1 for all, mean w_c = H^-1 (b + S_w^-1 m_c), and evidence
    #    log pi_c - m_c.S_w^-1 m_c / 2 + w_c.H w_c / 2 (+ the same constant)
    p_w = prior._cluster_precision
    h = 0.5 * (lik_prec + p_w + (lik_prec + p_w).T)
    h_chol = _cholesky(h, "cluster posterior precision")
    rhs = b[:, None] + p_w @ prior.cluster_means.T  # (k, c)
    w_c = np.linalg.solve(h_chol.T, np.linalg.solve(h_chol, rhs)).T  # (c, k)
    log_ev = (
        np.log(prior.cluster_weights)
        - 0.5 * np.einsum("ck,kj,cj->c", prior.cluster_means, p_w, prior.cluster_means)
        + 0.5 * np.einsum("ck,ck->c", w_c, rhs.T)
    )
    resp = np.exp(log_ev - log_ev.max())
    resp /= resp.sum()
    # 5. moment-match the mixture: mean sum r w_c, cov H^-1 + the spread of the w_c
    mean = resp @ w_c
    r = (w_c - mean) * np.sqrt(resp)[:, None]
    cov = _chol_inverse(h_chol) + r.T @ r
    precision = _chol_inverse(_cholesky(0.5 * (cov + cov.T), "posterior covariance"))
    return Posterior(mean=mean, precision=0.5 * (precision + precision.T))


def _laplace(
    d: np.ndarray, c: np.ndarray, prior: Prior, max_iter: int, tol: float, init: np.ndarray | None
) -> tuple[Posterior, float]:
    """Newton's method for the MAP under one Gaussian prior: (posterior, the
    negative log posterior at the mode, up to a constant)."""
    k = prior.k
    p_mat = prior.precision
    m = prior.mean
    if d.shape[0] == 0:
        return Posterior(mean=m, precision=p_mat), 0.0

    def objective(w: np.ndarray, s: np.ndarray) -> float:
        # negative log posterior (up to a constant); s = d @ w
        r = w - m
        return float(-(c @ log_sigmoid(s)) + 0.5 * r @ p_mat @ r)

    # 1. Newton's method with backtracking on the negative log posterior
    w = m.copy() if init is None else np.array(init, dtype=np.float64).reshape(k)
    s = d @ w
    f = objective(w, s)
    for _ in range(max_iter):
        p = sigmoid(s)
        grad = d.T @ (c * (1.0 - p)) - p_mat @ (w - m)  # ascent direction of log posterior
        hess = (d.T * (c * p * (1.0 - p))) @ d + p_mat  # positive definite: S^-1 plus a PSD sum
        step = np.linalg.solve(hess, grad)  # one LU; two triangular solves via LU cost twice that
        decrement = float(grad @ step)  # Newton decrement^2
        if decrement < tol:
            break
        # 2. backtrack until the objective decreases (rarely needed)
        t = 1.0
        ds = d @ step
        while True:
            s_new = s + t * ds
            f_new = objective(w + t * step, s_new)
            if f_new <= f - 0.25 * t * decrement or t < 1e-8:
                break
            t *= 0.5
        w = w + t * step
        s, f = s_new, f_new
        if t * t * decrement < tol:
            break

    # 3. the Laplace precision at the mode
    p = sigmoid(s)
    hess = (d.T * (c * p * (1.0 - p))) @ d + p_mat
    return Posterior(mean=w, precision=0.5 * (hess + hess.T)), f


def update(
    posterior: Posterior,
    delta: np.ndarray,
    weight: float = 1.0,
    prior: Prior | None = None,
) -> Posterior:
    """Cheap approximate update with one new vote (assumed-density filtering).

    Treats the current posterior as the prior for the new vote and solves the
    resulting one-dimensional MAP problem exactly, O(k^2). It drifts slightly
    from ``fit`` on all votes (earlier votes are not re-linearised), so the bot
    should still refit now and then. ``prior`` is accepted for symmetry with
    ``fit`` and unused.
    """
    del prior
    # 1. the MAP moves along H^-1 d only: w = w0 + a H^-1 d
    d = np.asarray(delta, dtype=np.float64).reshape(posterior.k)
    c = float(weight)
    if c < 0:
        raise ValueError("weight must be >= 0")
    if c == 0:
        return posterior
    hd = np.linalg.solve(posterior._chol.T, np.linalg.solve(posterior._chol, d))
    v = float(d @ hd)
    s0 = float(d @ posterior.mean)
    # 2. solve a = c (1 - sigma(s0 + a v)) by Newton in one dimension
    a = 0.0
    for _ in range(50):
        p = float(sigmoid(s0 + a * v))
        g = c * (1.0 - p) - a
        if abs(g) < 1e-12:
            break
        a += g / (1.0 + c * p * (1.0 - p) * v)
    w = posterior.mean + a * hd
    p = float(sigmoid(s0 + a * v))
    h = posterior.precision + (c * p * (1.0 - p)) * np.outer(d, d)
    return Posterior(mean=w, precision=h)


def use_comparisons(
    z_grid: np.ndarray,
    signal: str,
    chosen: int | None = None,
    z_replacement: np.ndarray | None = None,
    weight: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A signal from use as weighted comparisons (deltas, weights) for ``fit``.

    z_grid: (n, k) whitened embeddings of one grid's images (one prompt).

    - ``"upscale"`` (U), ``"vary"`` (V), ``"like"``: image ``chosen`` beat each
      other image of the grid: n - 1 comparisons of weight UPSCALE_WEIGHT,
      VARY_WEIGHT or LIKE_WEIGHT. A choice of one out of n is not n - 1
      independent votes, hence weights below 1 (the bench sets them).
    - ``"reroll"``: "none of these": each image of the grid loses, at weight
      REROLL_WEIGHT, to the mean of ``z_replacement``, the grid the reroll
      drew (the same prompt, so the prompt's content cancels as it does in a
      /rank pair, and the member asked for a fresh draw over these). Against
      the pool's average image instead, a reroll would also teach the profile
      to dislike whatever the prompt depicts.

    ``weight`` overrides the signal's default weight (the bench sweeps it).
    """
    z = np.asarray(z_grid, dtype=np.float64)
    if z.ndim != 2 or len(z) < 2:
        raise ValueError(f"z_grid must be (n >= 2, k), got shape {z.shape}")
    if signal == "reroll":
        if z_replacement is None:
            raise ValueError("a reroll needs z_replacement, the grid it drew")
        ref = np.asarray(z_replacement, dtype=np.float64).reshape(-1, z.shape[1]).mean(axis=0)
        return ref - z, np.full(len(z), REROLL_WEIGHT if weight is None else float(weight))
    default = {"upscale": UPSCALE_WEIGHT, "vary": VARY_WEIGHT, "like": LIKE_WEIGHT}.get(signal)
    if default is None:
        raise ValueError(f"unknown signal {signal!r}: upscale, vary, like or reroll")
    weight = default if weight is None else float(weight)
    if chosen is None or not 0 <= chosen < len(z):
        raise ValueError(f"chosen must index the grid's {len(z)} images, got {chosen}")
    others = np.delete(z, chosen, axis=0)
    return z[chosen] - others, np.full(len(others), weight)


# ---------------------------------------------------------------------------
# 5. Choosing the next pair
# ---------------------------------------------------------------------------


def choose_pair(
    posterior: Posterior,
    candidate_deltas: np.ndarray,
    rng: np.random.Generator,
    explore: float = 0.15,
    *,
    spread: np.ndarray | None = None,
) -> int:
    """Index of the candidate pair to show next.

    The pair whose answer is expected to shrink the posterior predictive
    variance most, averaged over the candidate pairs themselves (V-optimal
    design): a vote on d moves H to H + c d d^T with c = pbar (1 - pbar), which
    lowers the mean variance of w^T e over candidates e by
    c d^T C Sigma C d / (1 + c d^T C d), with C = H^-1 and Sigma the candidates'
    second moment. Unlike maximising v pbar (1 - pbar) alone, it favours
    directions the member's comparisons actually vary along, so votes are not
    spent on rare, extreme pairs. ``spread`` is Sigma when the pairs whose
    predictions matter are more than the candidates (a caller that offers a
    sample of the pool passes the whole pool's (k, k) second moment). With
    probability ``explore`` a uniformly random index is returned instead, to
    guard against a biased model.
    """
    d = _as_deltas(candidate_deltas, posterior.k)
    n = d.shape[0]
    if n == 0:
        raise ValueError("no candidate pairs")
    if explore > 0 and rng.random() < explore:
        return int(rng.integers(n))
    cd = d @ posterior.covariance  # rows C d
    pbar, v = posterior._moderated(d, np.einsum("ij,ij->i", cd, d))  # v = d^T C d, from C d at hand
    if spread is None:
        spread = (d.T @ d) / n  # Sigma
    elif np.shape(spread) != (posterior.k, posterior.k):
        raise ValueError(f"spread must be ({posterior.k}, {posterior.k}), got {np.shape(spread)}")
    reduction = np.einsum("ij,ij->i", cd @ spread, cd)  # d^T C Sigma C d
    c = pbar * (1.0 - pbar)
    return int(np.argmax(c * reduction / (1.0 + c * v)))


# ---------------------------------------------------------------------------
# 6. Community prior (empirical Bayes)
# ---------------------------------------------------------------------------


def community_prior(
    per_member_deltas: list[np.ndarray],
    per_member_weights: list[np.ndarray] | None = None,
    *,
    k: int | None = None,
    min_members: int = 3,
    sigma: float = 1.0,
    rounds: int = 30,
    tol: float = 1e-4,
    shrink: float = 1.0,
    accelerate: bool = True,
    clusters: int = 4,
    min_cluster_members: int = 30,
    cluster_rounds: int = 10,
) -> Prior:
    """Estimate the prior N(m, S) of a new member's taste from everyone's votes.

    Empirical Bayes by EM on the Laplace approximation: fit each member under
    the current prior, then set m = mean of the w-hats and S = covariance of
    the w-hats + mean posterior covariance. S is shrunk toward a multiple of
    the identity by alpha = shrink * k / (k + members), so it stays well
    conditioned with few members. Plain EM crawls here (each member's 40 or
    so votes leave most directions to the prior), so the EM map is
    extrapolated with SQUAREM (Varadhan & Roland 2008), falling back to the
    plain step whenever the extrapolation is not positive definite.

    Members without votes carry no information and are skipped; with fewer
    than ``min_members`` members who voted, the isotropic N(0, sigma^2 I) prior
    is returned. ``rounds`` counts EM maps (member refits of everyone).

    Then the server's taste clusters: with at least ``min_cluster_members``
    members per cluster, up to ``clusters`` of them are found by EM for a
    mixture sum_c pi_c N(m_c, S_w) with one shared (tied, shrunk the same way)
    covariance, started from k-means on the members' fits under the Gaussian
    prior and run for ``cluster_rounds`` maps. A cluster that ends up with
    fewer than ``min_cluster_members`` members' worth of weight is dropped.
    ``clusters=1`` gives the Gaussian prior alone.

    What limits this prior is the data, not these knobs: shrink 0.5 and up to
    8 clusters of at least 20 members gained 0.002-0.004 accuracy at 20 votes
    on each of bench/taste_eval.py's seeds but lost about as much on two of
    bench/taste_bench.py's three, so the defaults stayed. A prior built from
    many members' near-true tastes is worth 0.025-0.03 at 20 votes in
    taste_eval's world (it prints that diagnostic); 30-40 random votes per
    member do not reveal that structure to this Laplace EM, nor to the
    alternatives tried (a rank-r + isotropic covariance, a logistic factor
    model, importance-sampled E-steps, moment estimates). More data does: a
    history of 2000 members x 30 votes, or 200 x 300, lifts taste_eval's
    learner from 0.674-0.687 to 0.696-0.708 at 20 votes, and in taste_bench
    the history members' signals from use (which the bot's prior sees too)
    save 10 votes (--history random+use).
    """
    # 1. collect members who actually voted
    if k is None:
        for arr in per_member_deltas:
            a = np.asarray(arr)
            if a.ndim == 2:
                k = int(a.shape[1])
                break
            if a.ndim == 1 and a.size:
                k = int(a.size)
                break
    if k is None:
        raise ValueError("cannot infer k from no data; pass k=")
    if per_member_weights is not None and len(per_member_weights) != len(per_member_deltas):
        raise ValueError("per_member_weights must match per_member_deltas")
    members: list[tuple[np.ndarray, np.ndarray]] = []
    for i, arr in enumerate(per_member_deltas):
        d = _as_deltas(arr, k)
        c = _as_weights(None if per_member_weights is None else per_member_weights[i], d.shape[0])
        if c.sum() > 0:
            members.append((d[c > 0], c[c > 0]))
    n_members = len(members)
    if n_members < max(min_members, 2):
        return Prior.isotropic(k, sigma)

    alpha = min(1.0, shrink * k / (k + n_members))
    eye = np.eye(k)
    inits: list[np.ndarray | None] = [None] * n_members

    # 2. one EM map: refit everyone under (m, S), re-estimate (m, S)
    def em(m: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        prior = Prior(mean=m, cov=s)
        w_hats = np.empty((n_members, k))
        cov_sum = np.zeros((k, k))
        for j, (d, c) in enumerate(members):
            post = fit(d, c, prior, init=inits[j])
            w_hats[j] = inits[j] = post.mean
            cov_sum += post.covariance
        m_new = w_hats.mean(axis=0)
        r = w_hats - m_new
        s_hat = (r.T @ r + cov_sum) / n_members
        s_new = (1.0 - alpha) * s_hat + alpha * (np.trace(s_hat) / k) * eye
        return m_new, 0.5 * (s_new + s_new.T)

    def is_pd(s: np.ndarray) -> bool:
        try:
            np.linalg.cholesky(s)
            return True
        except np.linalg.LinAlgError:
            return False

    # 3. SQUAREM: two EM maps, extrapolate along their path, one stabilising map
    m, s = np.zeros(k), (float(sigma) ** 2) * eye
    used = 0
    while used < rounds:
        m1, s1 = em(m, s)
        used += 1
        if not accelerate or used + 2 > rounds:
            done = np.linalg.norm(s1 - s) < tol * np.linalg.norm(s)
            m, s = m1, s1
            if done:
                break
            continue
        m2, s2 = em(m1, s1)
        used += 1
        r_m, r_s = m1 - m, s1 - s
        v_m, v_s = m2 - 2 * m1 + m, s2 - 2 * s1 + s
        r_norm = math.sqrt(float(r_m @ r_m) + float(np.sum(r_s * r_s)))
        v_norm = math.sqrt(float(v_m @ v_m) + float(np.sum(v_s * v_s)))
        if r_norm < tol * np.linalg.norm(s):
            m, s = m2, s2
            break
        # step = -1 reproduces the two plain EM maps; longer steps extrapolate
        step = min(-r_norm / max(v_norm, 1e-300), -1.0)
        while True:
            m_x = m - 2 * step * r_m + step * step * v_m
            s_x = s - 2 * step * r_s + step * step * v_s
            if step >= -1.0 or is_pd(s_x):
                break
            step = min(step / 2.0, -1.0)
        if step >= -1.0:
            m, s = m2, s2
            continue
        m, s = em(m_x, 0.5 * (s_x + s_x.T))  # stabilising map
        used += 1
    n_clusters = min(int(clusters), n_members // max(int(min_cluster_members), 1))
    if n_clusters < 2 or cluster_rounds < 1:
        return Prior(mean=m, cov=s)
    w_hats = np.array([fit(d, c, Prior(mean=m, cov=s), init=inits[j]).mean for j, (d, c) in enumerate(members)])
    return _cluster_prior(members, w_hats, s, n_clusters, alpha, min_cluster_members, cluster_rounds)


def _kmeans(x: np.ndarray, n_clusters: int, rounds: int = 50) -> np.ndarray:
    """Labels of plain k-means, seeded by k-means++ with a fixed seed (the same
    data gives the same prior)."""
    rng = np.random.default_rng(0)
    centres = [x[rng.integers(len(x))]]
    for _ in range(1, n_clusters):
        gap = np.min([np.sum((x - c) ** 2, axis=1) for c in centres], axis=0)
        centres.append(x[rng.choice(len(x), p=gap / gap.sum())] if gap.sum() > 0 else x[rng.integers(len(x))])
    centres = np.array(centres)
    labels = None
    for _ in range(rounds):
        labels_new = np.argmin(((x[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
        if labels is not None and np.array_equal(labels_new, labels):
            break
        labels = labels_new
        for q in range(n_clusters):
            if np.any(labels == q):
                centres[q] = x[labels == q].mean(axis=0)
    return labels


def _cluster_prior(
    members: list[tuple[np.ndarray, np.ndarray]],
    w_hats: np.ndarray,
    cov: np.ndarray,
    n_clusters: int,
    alpha: float,
    min_cluster_members: int,
    rounds: int,
) -> Prior:
    """EM for sum_c pi_c N(m_c, S_w) on the Laplace approximation: each member
    is fitted under each cluster, weighted by the evidence (see ``fit``)."""
    # 1. start: k-means on the members' fits, the Gaussian prior's covariance
    n, k = w_hats.shape
    labels = _kmeans(w_hats, n_clusters)
    means = np.array([w_hats[labels == q].mean(axis=0) for q in range(n_clusters) if np.any(labels == q)])
    pi = np.array([np.mean(labels == q) for q in range(n_clusters) if np.any(labels == q)])
    eye = np.eye(k)
    inits = np.repeat(w_hats[:, None, :], len(pi), axis=1)
    for _ in range(rounds):
        # 2. E: every member under every cluster; responsibilities from the evidence
        parts = [Prior(mean=mq, cov=cov) for mq in means]
        c_n = len(parts)
        w_all = np.empty((n, c_n, k))
        log_ev = np.empty((n, c_n))
        posts: list[list[Posterior]] = []
        for j, (d, c) in enumerate(members):
            row = []
            for q, part in enumerate(parts):
                post, neg_log_post = _laplace(d, c, part, 20, 1e-6, inits[j, q])
                w_all[j, q] = post.mean
                log_ev[j, q] = -neg_log_post - float(np.sum(np.log(np.diag(post._chol))))
                row.append(post)
            posts.append(row)
        inits = w_all
        log_ev += np.log(pi)
        resp = np.exp(log_ev - log_ev.max(axis=1, keepdims=True))
        resp /= resp.sum(axis=1, keepdims=True)
        cov_sum = sum(resp[j, q] * posts[j][q].covariance for j in range(n) for q in range(c_n))
        # 3. M: weights, means, one shared covariance shrunk like the Gaussian prior's
        n_q = resp.sum(axis=0)
        means = np.einsum("jq,jqk->qk", resp, w_all) / n_q[:, None]
        r = w_all - means[None]
        s_hat = (np.einsum("jq,jqa,jqb->ab", resp, r, r) + cov_sum) / n
        cov = (1.0 - alpha) * s_hat + alpha * (np.trace(s_hat) / k) * eye
        cov = 0.5 * (cov + cov.T)
        pi = n_q / n
        # 4. drop clusters too small to estimate
        keep = n_q >= min_cluster_members
        if not np.any(keep):
            break
        if not np.all(keep):
            means, pi, inits = means[keep], pi[keep] / pi[keep].sum(), inits[:, keep]
    return Prior.mixture(pi, means, cov)
