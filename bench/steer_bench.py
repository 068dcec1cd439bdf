"""How --s steers one preset: the measurements behind its taste calibration.

    .venv/bin/python bench/steer_bench.py --preset sdxl-turbo   # a GPU with the weights: calibrates
    .venv/bin/python bench/steer_bench.py                       # tiny on the CPU: a smoke run

A taste should pull the images toward itself as --s grows while the prompt
still decides what is drawn. In one run, one seed per prompt:

1. A small rank pool through the pool job: --prompts prompts from
   data/rank_prompts.txt, each in --styles styles from data/styles.txt; its
   embeddings make the Basis.
2. One taste per style: the moodboard of that style's pool images (w toward
   the mean of their whitened embeddings, |w| = 1).
3. Held-out prompts drawn through the imagine job with each taste at each s,
   exactly as `--p` sends them. Per s, over tastes, prompts and images:
   - lift: the taste's score w.z above the same prompt at s = 0, in standard
     deviations of that taste's scores over the pool;
   - hit: the share of images whose closest style text is the taste's own
     style (at s = 0 that is chance);
   - fidelity: the prompt-image cosine as a ratio to s = 0.
   On FLUX and SD 3.5 (no IP-Adapter reads the taste space) each taste
   steers by its nearest style words at lambda(s), as the bot sends it.
4. The same at s = 1000 for a grid of (tau_max, lambda_max). The candidate
   with the most (positive) lift that keeps fidelity >= --min-fidelity is
   printed as the values for engine/presets.py.

The tiny preset has random weights: its numbers show that the bench runs,
not what a real model does.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import profiles  # noqa: E402
from engine import taste as tm  # noqa: E402
from engine.config import EngineSettings  # noqa: E402
from engine.generate import Engine  # noqa: E402
from engine.jobs import EmbedSpec, GenerateSpec, Job, JobKind, JobResult, PoolSpec  # noqa: E402
from engine.presets import get_preset, load_presets  # noqa: E402
from engine.rankpool import PROMPTS_FILE, STYLES_FILE, read_lines  # noqa: E402

S_GRID = (0, 50, 100, 250, 500, 1000)
TAU_GRID = (1.5, 3.0, 6.0)
LAMBDA_GRID = (0.4, 0.6, 0.8, 1.0)


@dataclass
class Steer:
    lift: float  # standard deviations of pool scores
    hit: float  # share of images nearest to the taste's style
    fidelity: float  # prompt-image cosine / the same at s = 0


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class Bench:
    def __init__(self, engine: Engine, size: int, seed: int):
        self.engine, self.size, self.seed = engine, size, seed
        self.preset = engine.preset.name

    def job(self, kind: JobKind, **spec) -> JobResult:
        return self.engine.run(Job(kind=kind, preset=self.preset, **spec))

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        return np.array(self.job(JobKind.EMBED, embed=EmbedSpec(texts=texts)).text_embeddings)

    def pool(self, prompts: list[str], styles: list[str]) -> tuple[np.ndarray, list[str]]:
        embs, labels = [], []
        for i, prompt in enumerate(prompts):
            spec = PoolSpec(prompt=prompt, styles=styles, seed=self.seed + i, width=self.size, height=self.size)
            for im in self.job(JobKind.POOL, pool=spec).images:
                embs.append(im.embedding)
                labels.append(im.label)
        return np.array(embs), labels

    def draw(self, prompt: str, seed: int, cond: profiles.Conditioning, words: list[str] | None = None) -> np.ndarray:
        """One grid with the taste as --p sends it: the conditioning vector (an IP-Adapter in the
        taste space), or the taste's style words at lambda(s) (FLUX, SD 3.5)."""
        steer = (dict(taste_words=words, taste_words_weight=cond.scale) if words and cond.vector is not None
                 else dict(conditioning=cond.vector, ip_adapter_scale=cond.scale))
        spec = GenerateSpec(prompt=prompt, seed=seed, width=self.size, height=self.size, **steer)
        return np.array([im.embedding for im in self.job(JobKind.IMAGINE, generate=spec).images])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny")
    settings = EngineSettings()
    ap.add_argument("--device", default=settings.device)
    ap.add_argument("--data-dir", default=settings.data_dir, help="where the tiny preset is built")
    ap.add_argument("--prompts", type=int, default=12, help="rank-pool prompts for the basis")
    ap.add_argument("--styles", type=int, default=6, help="styles per pool prompt; one taste per style")
    ap.add_argument("--tastes", type=int, default=3, help="how many of those styles become tastes")
    ap.add_argument("--eval", type=int, default=3, help="held-out prompts drawn with each taste")
    ap.add_argument("--min-fidelity", type=float, default=0.9)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    load_presets(settings)  # the owner's presets.toml too: --preset NAME measures any of them
    preset = get_preset(args.preset)
    rng = np.random.default_rng(args.seed)
    all_prompts, all_styles = read_lines(PROMPTS_FILE), read_lines(STYLES_FILE)
    picked = rng.permutation(len(all_prompts))[: args.prompts + args.eval]
    pool_prompts = [all_prompts[i] for i in picked[: args.prompts]]
    eval_prompts = [all_prompts[i] for i in picked[args.prompts :]]
    styles = [all_styles[i] for i in rng.permutation(len(all_styles))[: args.styles]]

    # 1. the pool, its basis, and the texts to compare images with
    engine = Engine(preset, device=args.device, data_dir=args.data_dir, dtype=settings.dtype, compile=settings.compile)
    bench = Bench(engine, size=preset.base_size, seed=args.seed)
    pool, labels = bench.pool(pool_prompts, styles)
    basis = tm.Basis.build(pool, k=min(tm.DEFAULT_K, len(pool) - 1))
    z_pool = basis.whiten(pool)
    style_raw = bench.embed_texts(styles)
    style_text = unit(style_raw)
    prompt_text = unit(bench.embed_texts(eval_prompts))

    # 2. one moodboard taste per style
    tastes = []
    for j, style in enumerate(styles[: args.tastes]):
        m = z_pool[[label == style for label in labels]].mean(axis=0)
        w = m / np.linalg.norm(m)
        tastes.append((j, w, float(np.std(z_pool @ w))))

    # 3. s = 0 once per prompt (no taste), then each taste at each setting
    plain = [bench.draw(p, args.seed + 100 + i, profiles.Conditioning(None, 0.0)) for i, p in enumerate(eval_prompts)]

    def measure(s: float, cal: profiles.Calibration | None) -> Steer:
        lifts, hits, fids = [], [], []
        for j, w, spread in tastes:
            cond = profiles.conditioning(w, basis, s, preset.name, calibration=cal)
            # FLUX, SD 3.5: the taste's nearest style words (profiles.taste_words), at lambda(s)
            words = (profiles.explain(w, basis, styles, style_raw, n=profiles.TASTE_WORDS)[0]
                     if preset.steering == "words" else None)
            for i, prompt in enumerate(eval_prompts):
                emb = bench.draw(prompt, args.seed + 100 + i, cond, words) if s > 0 else plain[i]
                lifts.append((basis.whiten(emb) @ w - basis.whiten(plain[i]) @ w).mean() / spread)
                hits.append(np.mean(np.argmax(unit(emb) @ style_text.T, axis=1) == j))
                fids.append(np.mean(unit(emb) @ prompt_text[i]) / np.mean(unit(plain[i]) @ prompt_text[i]))
        return Steer(float(np.mean(lifts)), float(np.mean(hits)), float(np.mean(fids)))

    print(f"steer bench  preset={preset.name} ({preset.kind}, --p by {'the IP-Adapter' if preset.steering == 'adapter' else 'style words'})"
          f"  device={engine.load().device}  seed={args.seed}")
    if preset.kind == "tiny":
        print("tiny preset: random weights; these numbers show the bench runs, not what a real model does")
    print(
        f"pool: {len(pool_prompts)} prompts x {len(styles)} styles ({len(pool)} images, basis k={basis.k}); "
        f"{len(tastes)} moodboard tastes x {len(eval_prompts)} held-out prompts x 4 images per setting"
    )
    cal = profiles.calibration_for(preset.name)
    print(f"\nnow: tau_max={cal.tau_max}, lambda_max={cal.scale_max}")
    print(f"{'s':>5} | {'tau':>5} | {'lambda':>6} | {'lift (sd)':>9} | {'hit':>5} | {'fidelity':>8}")
    for s in S_GRID:
        r = measure(s, None)
        print(f"{s:>5} | {cal.tau(s):>5.2f} | {cal.scale(s):>6.2f} | {r.lift:>9.2f} | {r.hit:>5.2f} | {r.fidelity:>8.3f}")

    # 4. candidates for s = 1000
    print(f"\nat s=1000 (hit rate with no taste: {measure(0, None).hit:.2f})")
    print(f"{'tau_max':>7} | {'lambda_max':>10} | {'lift (sd)':>9} | {'hit':>5} | {'fidelity':>8}")
    best = None
    for tau_max in TAU_GRID:
        for lam in LAMBDA_GRID:
            r = measure(1000, profiles.Calibration(tau_max=tau_max, scale_max=lam))
            print(f"{tau_max:>7.2f} | {lam:>10.2f} | {r.lift:>9.2f} | {r.hit:>5.2f} | {r.fidelity:>8.3f}")
            if r.lift > 0 and r.fidelity >= args.min_fidelity and (best is None or r.lift > best[2].lift):
                best = (tau_max, lam, r)
    print(f"\nelapsed: {time.perf_counter() - t_start:.1f} s")
    if best is None:
        print(f"no candidate steers toward the taste with fidelity >= {args.min_fidelity}; keep the current values")
    else:
        print(
            f"suggested for engine/presets.py ({preset.name}): taste_tau_max={best[0]}, taste_lambda_max={best[1]} "
            f"(lift {best[2].lift:.2f} sd, fidelity {best[2].fidelity:.3f})"
        )


if __name__ == "__main__":
    main()
