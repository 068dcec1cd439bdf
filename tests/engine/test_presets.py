"""The owner's presets file: validated at start, with errors that name the
preset, the field and the problem; merged with the built-ins for --v, the
taste calibration and the default. Torch-free, as the bot reads it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine import params, profiles
from engine.config import EngineSettings
from engine.presets import (
    BUILTIN_PRESETS,
    DEFAULT_PRESET,
    DIFFUSERS_SCHEDULERS,
    PRESETS,
    PresetFileError,
    get_preset,
    load_presets,
    preset_names,
    read_presets,
)


@pytest.fixture(autouse=True)
def builtins_again():
    yield
    load_presets(None)


def safetensors_file(path: Path) -> Path:
    """A real (tiny) .safetensors file, written without torch."""
    import numpy as np
    from safetensors.numpy import save_file

    save_file({"w": np.zeros((2, 2), np.float32)}, str(path))
    return path


def write(folder: Path, body: str) -> Path:
    path = folder / "presets.toml"
    path.write_text(textwrap.dedent(body))
    return path


def test_builtins_default_to_a_4_step_sdxl_at_1024_and_keep_the_old_name():
    default = get_preset(DEFAULT_PRESET)
    assert default.name == "sdxl-lightning" and default.kind == "sdxl" and default.base_size == 1024
    assert default.steps == 4 and not default.uses_cfg and default.reads_images and default.steering == "adapter"
    assert default.scheduler == "EulerDiscreteScheduler" and default.scheduler_options == {"timestep_spacing": "trailing"}
    assert default.ip_adapter_weight == "ip-adapter_sdxl_vit-h.safetensors"
    # sdxl-turbo is now `fast`; the old name still resolves (servers' settings, stored jobs).
    assert get_preset("sdxl-turbo") is get_preset("fast") and get_preset("fast").base_size == 512
    assert preset_names() == ["fast", "flux-schnell", "sd15", "sdxl-lightning", "tiny"]
    assert params.parse("a fox --v sdxl-turbo", PRESETS).preset == "sdxl-turbo"
    assert EngineSettings(_env_file=None).model == DEFAULT_PRESET


def test_a_file_adds_presets_known_to_params_and_calibration(tmp_path):
    ckpt = safetensors_file(tmp_path / "juggernaut.safetensors")
    lora = safetensors_file(tmp_path / "detail.safetensors")
    path = write(tmp_path, """
        [presets.jugger]
        description = "Juggernaut XL"
        checkpoint = "juggernaut.safetensors"   # relative to the file
        steps = 30
        guidance = 5.5
        scheduler = "DPMSolverMultistepScheduler"
        scheduler_options = { use_karras_sigmas = true }
        loras = [{ path = "detail.safetensors", weight = 0.6 }, { repo = "someone/style-lora", weight_name = "style.safetensors" }]
        taste = { tau_max = 2.5, lambda_max = 0.6 }

        [presets.bigg]
        repo = "someone/sdxl-finetune"
        ip_adapter = { repo = "h94/IP-Adapter", subfolder = "sdxl_models", weight = "ip-adapter_sdxl.safetensors", image_encoder = "ViT-bigG-14" }
    """)
    load_presets(file=path)
    jugger = get_preset("jugger")
    assert jugger.single_file == str(ckpt) and jugger.config_repo == "stabilityai/stable-diffusion-xl-base-1.0"
    assert jugger.steps == 30 and jugger.guidance_scale == 5.5 and jugger.uses_cfg
    assert [(l.source, l.weight, l.weight_name) for l in jugger.loras] == [
        (str(lora), 0.6, None), ("someone/style-lora", 1.0, "style.safetensors")]
    assert jugger.reads_images and jugger.ip_adapter_weight == "ip-adapter_sdxl_vit-h.safetensors"
    assert jugger.source == str(path)
    assert profiles.calibration_for("jugger").scale_max == 0.6 and profiles.calibration_for("jugger").tau_max == 2.5
    # An IP-Adapter trained on another encoder than the taste space: not loaded; --p by style words.
    bigg = get_preset("bigg")
    assert not bigg.reads_images and not bigg.has_ip_adapter and bigg.steering == "words"
    assert params.parse("a fox --v jugger", PRESETS).preset == "jugger"
    assert "jugger" in preset_names()
    load_presets(None)
    with pytest.raises(KeyError, match="unknown model preset 'jugger'"):
        get_preset("jugger")


def test_settings_find_the_file_in_the_data_dir_or_at_tastemaker_presets(tmp_path, monkeypatch):
    monkeypatch.setenv("TASTEMAKER_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("TASTEMAKER_PRESETS", raising=False)
    assert EngineSettings(_env_file=None).presets_path is None
    write(tmp_path, '[presets.mine]\nrepo = "someone/model"\n')
    load_presets(EngineSettings(_env_file=None))
    assert get_preset("mine").base_repo == "someone/model"
    other = tmp_path / "elsewhere.toml"
    other.write_text('[presets.theirs]\nrepo = "someone/else"\n')
    monkeypatch.setenv("TASTEMAKER_PRESETS", str(other))
    load_presets(EngineSettings(_env_file=None))
    assert "theirs" in PRESETS and "mine" not in PRESETS
    monkeypatch.setenv("TASTEMAKER_PRESETS", str(tmp_path / "missing.toml"))
    with pytest.raises(PresetFileError, match="TASTEMAKER_PRESETS names .*missing.toml, which is not a file"):
        load_presets(EngineSettings(_env_file=None))


@pytest.mark.parametrize(
    "body,message",
    [
        ('[presets.a]\nrepo = "x/y"\nsteps = 0\n', r"preset 'a', field `steps`: Input should be greater than or equal to 1"),
        ('[presets.a]\nrepo = "x/y"\nstpes = 4\n', r"preset 'a', field `stpes`: Extra inputs are not permitted"),
        ('[presets.a]\nrepo = "x/y"\nbase_size = 1000\n', r"preset 'a', field `base_size`: Input should be a multiple of 64"),
        ('[presets.a]\nrepo = "x/y"\npipeline = "sd4"\n', r"preset 'a', field `pipeline`: Input should be 'sdxl', 'sd15', 'flux' or 'sd3'"),
        ('[presets.a]\nrepo = "x/y"\npipeline = "flux"\nlicence = "Apache-2.0"\nquantize = "int4"\n',
         r"preset 'a', field `quantize`: Input should be 'nf4', 'int8' or 'fp8'"),
        ('[presets.a]\nrepo = "x/y"\npipeline = "sd3"\nlicence = "x"\noffload = "disk"\n',
         r"preset 'a', field `offload`: Input should be 'none', 'model' or 'sequential'"),
        ('[presets.a]\nrepo = "x/y"\npipeline = "flux"\n', r"preset 'a', field `licence`: name the weights' licence"),
        ('[presets.a]\nrepo = "x/y"\nquantize = "int8"\n', r"preset 'a', field `quantize`: quantised weights are for the flux and sd3"),
        ('[presets.a]\ndescription = "no weights"\n', r"preset 'a': .*give either `repo` .* or `checkpoint`"),
        ('[presets.a]\nrepo = "x/y"\nscheduler = "euler"\n', r"preset 'a', field `scheduler`: .*diffusers has no scheduler class 'euler'"),
        ('[presets.a]\nrepo = "x/y"\nscheduler = "EulerDiscretScheduler"\n',
         r"preset 'a', field `scheduler`: .*no scheduler class 'EulerDiscretScheduler'; did you mean EulerDiscreteScheduler\?"),
        ('[presets.a]\nrepo = "x/y"\nloras = [{ weight = 0.5 }]\n', r"preset 'a', field `loras.0`: .*give either `path`"),
        ('[presets.a]\nrepo = "x/y"\ntaste = { lambda_max = 9 }\n', r"preset 'a', field `taste.lambda_max`: Input should be less than or equal to 2"),
        ('[presets.Big_Name]\nrepo = "x/y"\n', r"preset 'Big_Name': a name is 1-32 lowercase letters"),
        ('[presets.tiny]\nrepo = "x/y"\n', r"preset 'tiny': that name is a built-in preset"),
        ('[presets.a\nrepo = "x/y"\n', r"not valid TOML"),
        ('[presets.a]\nrepo = "x/y"\nvideo = { frames = 80 }\n', r"field `video.frames`: .*80 frames: Wan takes 4k \+ 1 frames"),
        ('[presets.a]\nrepo = "x/y"\nvideo = { offload = "disk" }\n', r"field `video.offload`: Input should be 'none', 'model' or"),
    ],
)
def test_bad_entries_are_refused_naming_preset_field_and_problem(tmp_path, body, message):
    path = write(tmp_path, body)
    with pytest.raises(PresetFileError, match=message) as caught:
        load_presets(file=path)
    assert str(path) in str(caught.value)
    assert "a" not in PRESETS  # nothing of a bad file is installed


def test_flux_and_sd3_presets_take_quantize_offload_licence_and_a_gguf_checkpoint(tmp_path):
    (tmp_path / "flux1-dev-Q4_K_S.gguf").write_bytes(b"GGUF" + bytes(60))
    path = write(tmp_path, """
        [presets.dev]
        pipeline = "flux"
        checkpoint = "flux1-dev-Q4_K_S.gguf"     # the transformer; the rest from `config`
        config = "black-forest-labs/FLUX.1-dev"
        steps = 28
        guidance = 3.5
        offload = "model"
        licence = "FLUX.1 [dev] Non-Commercial License"

        [presets.large]
        pipeline = "sd3"
        repo = "stabilityai/stable-diffusion-3.5-large"
        quantize = "nf4"
        licence = "Stability AI Community License"
    """)
    load_presets(file=path)
    dev, large = get_preset("dev"), get_preset("large")
    assert (dev.kind, dev.single_file, dev.config_repo) == ("flux", str(tmp_path / "flux1-dev-Q4_K_S.gguf"), "black-forest-labs/FLUX.1-dev")
    assert (dev.offload, dev.quantize, dev.licence) == ("model", None, "FLUX.1 [dev] Non-Commercial License")
    assert (large.kind, large.quantize, large.offload, large.base_repo) == ("sd3", "nf4", "none", "stabilityai/stable-diffusion-3.5-large")
    # No IP-Adapter reads the taste space for these families: --p steers by style words; no --tile.
    assert not dev.has_ip_adapter and dev.steering == "words" and not dev.can_tile and get_preset("tiny").can_tile
    assert params.parse("a fox --v large", PRESETS).preset == "large"
    # GPU memory as configured: quantised weights and offload make it smaller.
    flux = get_preset("flux-schnell")
    assert flux.kind == "flux" and flux.licence == "Apache-2.0" and flux.quantize == "int8"
    full = dataclasses.replace(flux, quantize=None).gpu_estimate().total_gb
    assert full > flux.gpu_estimate().total_gb > dataclasses.replace(flux, quantize="nf4").gpu_estimate().total_gb
    assert dataclasses.replace(flux, offload="model").gpu_estimate().total_gb < flux.gpu_estimate().total_gb
    assert "OpenCLIP ViT-H 2.0" in large.gpu_estimate().describe()


def test_a_family_mismatch_is_reported_with_every_other_problem(tmp_path):
    (tmp_path / "model.gguf").write_bytes(b"GGUF" + bytes(60))
    (tmp_path / "fake.gguf").write_bytes(b"<html>not a gguf</html>")
    path = write(tmp_path, """
        [presets.xl-gguf]
        pipeline = "sdxl"
        checkpoint = "model.gguf"

        [presets.flux-adapter]
        pipeline = "flux"
        repo = "x/y"
        licence = "Apache-2.0"
        ip_adapter = true

        [presets.gguf-twice]
        pipeline = "flux"
        checkpoint = "model.gguf"
        quantize = "nf4"
        licence = "Apache-2.0"

        [presets.not-gguf]
        pipeline = "sd3"
        checkpoint = "fake.gguf"
    """)
    with pytest.raises(PresetFileError) as caught:
        load_presets(file=path)
    assert str(caught.value).splitlines() == [
        f"{path}: preset 'xl-gguf', field `checkpoint`: a .gguf file loads as a flux or sd3 transformer, not as sdxl",
        f"{path}: preset 'flux-adapter', field `ip_adapter`: no IP-Adapter for flux reads the taste space (OpenCLIP "
        "ViT-H): leave it out; --p steers this family by style words",
        f"{path}: preset 'gguf-twice', field `quantize`: a .gguf checkpoint is quantised already: leave `quantize` out",
        f"{path}: preset 'not-gguf', field `checkpoint`: {tmp_path / 'fake.gguf'} is not a GGUF file (it does not start with GGUF)",
        f"{path}: preset 'not-gguf', field `licence`: name the weights' licence for `make check` (a sd3 model's is "
        "its own: FLUX.1 [dev] and its fine-tunes are non-commercial, SD 3.5 is under the Stability AI Community License)",
    ]
    assert "flux-adapter" not in PRESETS


def test_a_missing_checkpoint_or_a_file_that_is_not_safetensors_is_refused(tmp_path):
    path = write(tmp_path, '[presets.gone]\ncheckpoint = "nowhere.safetensors"\n')
    with pytest.raises(PresetFileError, match=r"preset 'gone', field `checkpoint`: .*nowhere.safetensors does not exist"):
        read_presets(path)
    (tmp_path / "fake.safetensors").write_bytes(b"<html>a download page, not weights</html>")
    path = write(tmp_path, '[presets.bad]\ncheckpoint = "fake.safetensors"\n')
    with pytest.raises(PresetFileError, match=r"preset 'bad', field `checkpoint`: .*fake.safetensors is not a .safetensors file"):
        read_presets(path)
    safetensors_file(tmp_path / "ok.safetensors")
    path = write(tmp_path, '[presets.lora]\ncheckpoint = "ok.safetensors"\nloras = [{ path = "missing-lora.safetensors" }]\n')
    with pytest.raises(PresetFileError, match=r"preset 'lora', field `loras\[0\].path`: .*missing-lora.safetensors does not exist"):
        read_presets(path)


def test_reading_presets_never_imports_torch(tmp_path):
    path = write(tmp_path, '[presets.mine]\nrepo = "someone/model"\n')
    code = (
        "import sys; from engine.presets import load_presets, get_preset;"
        f"load_presets(file={str(path)!r}); get_preset('mine'); assert 'torch' not in sys.modules, 'torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


ROOT = Path(__file__).parents[2]


def every_kind_of_problem(folder: Path) -> tuple[Path, list[str]]:
    """A file with a field error in one preset, a missing checkpoint and LoRA in another and a
    scheduler diffusers doesn't have in a third, and the line each must get."""
    path = write(folder, """
        [presets.few-steps]
        repo = "someone/model"
        steps = 0

        [presets.missing-files]
        checkpoint = "gone.safetensors"
        loras = [{ path = "loras/gone-too.safetensors" }]

        [presets.odd-scheduler]
        repo = "someone/model"
        scheduler = "NoSuchScheduler"

        [presets.fine]
        repo = "someone/model"
        scheduler = "DPMSolverMultistepScheduler"
    """)
    return path, [
        f"{path}: preset 'few-steps', field `steps`: Input should be greater than or equal to 1",
        f"{path}: preset 'missing-files', field `checkpoint`: {folder / 'gone.safetensors'} does not exist",
        f"{path}: preset 'missing-files', field `loras[0].path`: {folder / 'loras/gone-too.safetensors'} does not exist",
        f"{path}: preset 'odd-scheduler', field `scheduler`: Value error, diffusers has no scheduler class "
        "'NoSuchScheduler'; name a class like EulerDiscreteScheduler",
    ]


def test_every_problem_of_every_preset_is_reported_together_one_line_each(tmp_path):
    path, expected = every_kind_of_problem(tmp_path)
    with pytest.raises(PresetFileError) as caught:
        load_presets(file=path)
    assert str(caught.value).splitlines() == expected
    assert "fine" not in PRESETS  # nothing of a bad file is installed


@pytest.mark.parametrize("command", [["-m", "bot"], ["-m", "engine.worker", "--check", "--preset", "tiny"]])
def test_the_bot_and_a_worker_check_stop_with_every_problem_and_exit_2(tmp_path, command):
    """`python -m bot` and `python -m engine.worker --check` read the same file and stop at start:
    every line, exit 2, no traceback (the bot before it opens anything)."""
    data = tmp_path / "data"
    data.mkdir()
    _, expected = every_kind_of_problem(data)
    env = {
        "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "DISCORD_TOKEN": "not-needed-to-fail",
        "TASTEMAKER_DATA_DIR": str(data), "TASTEMAKER_WORKERS": "0", "TASTEMAKER_WEB_PORT": "0",
    }
    out = subprocess.run([sys.executable, *command, "--data-dir", str(data)] if "--check" in command
                         else [sys.executable, *command], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    for line in expected:
        assert line in out.stderr.splitlines() or f"error: {line}" in out.stderr.splitlines(), (line, out.stderr)
    assert not (data / "tastemaker.db").exists()  # stopped before the database was opened


def test_the_scheduler_list_is_the_installed_diffusers_own():
    """The bot checks names without importing diffusers; this keeps its list true to diffusers.
    A diffusers upgrade that adds or drops a scheduler fails here: update DIFFUSERS_SCHEDULERS."""
    import diffusers

    installed = {name for name in dir(diffusers) if name.endswith("Scheduler") and not name.startswith("Flax")}
    assert DIFFUSERS_SCHEDULERS == installed
    assert {p.scheduler for p in BUILTIN_PRESETS if p.scheduler} <= DIFFUSERS_SCHEDULERS


def test_worker_check_names_each_familys_licence_steering_memory_and_quantisation(tmp_path):
    """`python -m engine.worker --check` on a presets file with every family: each preset's
    licence, how --p steers it, its estimated GPU memory as configured, and, on this CPU-only
    machine, nf4 refused in one line (exit 1: something is missing)."""
    data = tmp_path / "data"
    data.mkdir()
    safetensors_file(data / "sd15-model.safetensors")
    write(data, """
        [presets.my-xl]
        repo = "someone/xl"

        [presets.my-sd15]
        pipeline = "sd15"
        checkpoint = "sd15-model.safetensors"

        [presets.my-flux]
        pipeline = "flux"
        repo = "black-forest-labs/FLUX.1-dev"
        quantize = "nf4"
        licence = "FLUX.1 [dev] Non-Commercial License"

        [presets.my-sd35]
        pipeline = "sd3"
        repo = "stabilityai/stable-diffusion-3.5-medium"
        quantize = "int8"
        offload = "model"
        licence = "Stability AI Community License"
    """)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "TASTEMAKER_DATA_DIR": str(data), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "engine.worker", "--check", "--preset", "flux-schnell",
                          "--data-dir", str(data), "--device", "cpu"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 1, out.stderr
    text = out.stdout
    for name in ("flux-schnell", "my-xl", "my-sd15", "my-flux", "my-sd35"):
        assert f"preset {name}" in text
    assert "licence: Apache-2.0" in text and "licence: FLUX.1 [dev] Non-Commercial License" in text
    assert "licence: Stability AI Community License" in text and "licence: not named" in text
    assert "GPU memory, estimated (int8): ≈ 24 GB" in text  # flux-schnell as built in
    assert "GPU memory, estimated (nf4): ≈ 17 GB" in text and "GPU memory, estimated (int8, offload model)" in text
    assert "--p steers through its ViT-H IP-Adapter" in text and "--p steers through the taste's style words" in text
    assert 'MISSING  quantize' in text and 'quantize = "nf4" needs bitsandbytes on a CUDA GPU' in text
    assert "ok       quantize" in text and "int8: transformer, text_encoder_3" in text
    assert "transformer weights" in text and "text_encoder_3 weights" in text and "tokenizer_2" in text


def test_a_preset_animates_with_the_built_in_video_model_or_its_own_or_none(tmp_path):
    (tmp_path / "my-wan").mkdir()
    path = write(tmp_path, """
        [presets.plain]
        repo = "x/y"

        [presets.mine]
        repo = "x/y"
        video = { repo = "my-wan", frames = 49, fps = 24, steps = 20, offload = "sequential", fp8 = false }

        [presets.still]
        repo = "x/y"
        video = false
    """)
    load_presets(file=path)
    try:
        assert get_preset("plain").video == get_preset("sdxl-lightning").video
        assert get_preset("sdxl-lightning").video.repo == "Wan-AI/Wan2.2-I2V-A14B-Diffusers"
        mine = get_preset("mine").video
        assert (mine.repo, mine.frames, mine.fps, mine.steps, mine.offload, mine.fp8) == (
            str(tmp_path / "my-wan"), 49, 24, 20, "sequential", False)
        assert get_preset("still").video is None and get_preset("tiny").video.repo == "tiny-video"
    finally:
        load_presets(None)
