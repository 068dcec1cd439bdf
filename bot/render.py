"""What members see: message text, grids and pair composites."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence

import discord
from PIL import Image

from engine.canvas import REGIONS as REGION_LABELS
from engine.db.jobs import JobRecord
from engine.presets import PRESETS

MAX_PROMPT_SHOWN = 1200  # Discord messages stop at 2000 characters


def requester_only(job: JobRecord) -> discord.AllowedMentions:
    """Who a job's messages may ping: its requester, named in the headline, and
    nobody else, whatever the prompt holds (`<@id>`, `<@&role>`, `@everyone`).
    Every other message goes out under the bot's default: no pings at all."""
    return discord.AllowedMentions(
        everyone=False, roles=False, users=[discord.Object(job.user_id)], replied_user=False
    )


def shown_prompt(prompt: str) -> str:
    """A member's prompt in bold text: cut to fit a message, its asterisks kept as they are."""
    prompt = prompt if len(prompt) <= MAX_PROMPT_SHOWN else prompt[: MAX_PROMPT_SHOWN - 1] + "…"
    return prompt.replace("*", "\\*")


def placeholder(prompt: str, user_id: int) -> str:
    """The answer before a job exists (generation.answer_first), as its message will read."""
    return f"**{shown_prompt(prompt)}** - <@{user_id}> (Waiting to start)"


def headline(job: JobRecord) -> str:
    prompt = shown_prompt(job.prompt)
    label = {
        "variation": f" - Variations ({job.request.get('strength_name', 'Strong')})",
        "upscale": f" - Upscaled ({job.request.get('upscale', '×2')})",
        "outpaint": f" - {tool_label(job.request.get('tool', {}))}",
        "video": f" - {job.request.get('label', 'Animate')}",
    }.get(job.kind, "")
    if job.kind == "variation" and "region" in job.request.get("tool", {}):
        label = f" - {tool_label(job.request['tool'])}"
    return f"**{prompt}**{label} - <@{job.user_id}>"


PAN_LABELS = {"left": "Pan ⬅️", "right": "Pan ➡️", "up": "Pan ⬆️", "down": "Pan ⬇️"}


def tool_label(tool: dict) -> str:
    """What a single-image tool did, for its job's headline."""
    if "zoom" in tool:
        return f"Zoom Out {float(tool['zoom']):g}×"
    if "pan" in tool:
        return PAN_LABELS.get(tool["pan"], "Pan")
    if "region" in tool:
        return f"Vary (Region: {REGION_LABELS.get(tool['region'], tool['region'])})"
    return "Make Square"


def waiting(job: JobRecord, position: int | None) -> str:
    where = f" · position {position} in queue" if position else ""
    return f"{headline(job)} (Waiting to start){where}"


def running(job: JobRecord, percent: float | None) -> str:
    return f"{headline(job)} ({int(percent or 0)}%)"


def preset_flag(prompt: str, request: Mapping, default_preset: str) -> str:
    """`--v NAME` when the preset that drew a job is not the bot's own default (TASTEMAKER_MODEL),
    as Midjourney shows its version; '' for the default, or when the prompt already says it."""
    preset = request.get("preset")
    drew, default = PRESETS.get(preset), PRESETS.get(default_preset)  # an alias is its preset
    if not preset or preset == default_preset or (drew is not None and drew is default):
        return ""
    flag = f"--v {preset}"
    return "" if re.search(rf"(^|\s){re.escape(flag)}(\s|$)", prompt) else flag


def finished(job: JobRecord, default_preset: str, detail: str = "") -> str:
    """Every finished job's first line (bot/delivery.py): its headline, what its kind made (`detail`,
    e.g. a moodboard's code), the parameters that drew it (`--p`, `--sref`, `--s`, and `--v` when
    not the bot's default preset), seed, time and its id, which /show takes."""
    details = [detail] if detail else []
    codes, sref = job.request.get("codes"), job.request.get("sref")
    parameters = []
    if codes:
        parameters.append("--p " + " ".join(code if weight == 1 else f"{code}::{weight:g}" for code, weight in codes))
    if sref:  # a code or a link (already in the prompt in full; shortened here)
        parameters.append(f"--sref {sref if len(sref) <= 80 else sref[:79] + '…'}".replace("`", "'"))
    if codes or sref:
        parameters.append(f"--s {job.request.get('stylize', 100)}")
    if flag := preset_flag(job.prompt, job.request, default_preset):
        parameters.append(flag)
    if parameters:
        details.append(f"`{' '.join(parameters)}`")
    if job.request.get("note"):  # e.g. a preset that can't apply a taste (bot/generation.py)
        details.append(job.request["note"])
    if "seed" in job.request:
        details.append(f"seed {job.request['seed']}")
    if job.gpu_seconds:
        details.append(f"{job.gpu_seconds:.1f}s")
    details.append(f"job `{short_id(job.id)}`")  # for /show
    return headline(job) + " · " + " · ".join(details)


SHORT_ID = 8  # hex characters of a job id shown in its message; /show takes this or more


def short_id(job_id: str) -> str:
    return job_id[:SHORT_ID]


MAX_CONFIRM_LINES = 10


def confirm_jobs(prompts: Sequence[tuple[str, int]]) -> str:
    """The private question before a prompt that makes several jobs is queued."""
    jobs = sum(repeat for _, repeat in prompts)
    lines = [f"**This prompt makes {jobs} jobs:**"]
    for number, (prompt, repeat) in enumerate(prompts[:MAX_CONFIRM_LINES], 1):
        shown = (prompt if len(prompt) <= 150 else prompt[:149] + "…").replace("`", "'")
        lines.append(f"{number}. `{shown}`" + (f" ×{repeat}" if repeat > 1 else ""))
    if len(prompts) > MAX_CONFIRM_LINES:
        lines.append(f"… and {len(prompts) - MAX_CONFIRM_LINES} more.")
    lines.append("Queue them all?")
    return "\n".join(lines)


def failed(job: JobRecord) -> str:
    return f"{headline(job)} (failed: {job.error or 'unknown error'})"


def cancelled(job: JobRecord) -> str:
    return f"{headline(job)} (cancelled)"


def single(job: JobRecord, index: int) -> str:
    return f"**{job.prompt[:MAX_PROMPT_SHOWN]}** - Image #{index} <@{job.user_id}>"


def to_png(image: Image.Image) -> bytes:
    """A mask or other picture the bot makes, losslessly."""
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False)
    return out.getvalue()
