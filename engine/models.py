"""Loading model presets: diffusion pipelines, IP-Adapter and OpenCLIP.

Real presets load from the hub cache by their ids (and download on first use
on a machine with internet). The `tiny` preset is built once from configs
with random seeded weights into `<data_dir>/models/tiny/` (`build_tiny`) and
is then loaded by the very same calls: `<Pipeline>.from_pretrained(dir)`,
`pipe.load_ip_adapter(dir, ...)` and
`open_clip.create_model_and_transforms(name, pretrained=file)`. The only
difference between tiny and real is where the files come from.

Only the worker imports this module (torch lives here and below).
"""

from __future__ import annotations

import gc
import gzip
import importlib.util
import json
import logging
import os
import posixpath
import re
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from engine.config import DtypeName
from engine.embed import Captioner, Embedder
from engine.families import Family, family_for
from engine.presets import TINY_OPENCLIP_MODEL, Preset, get_preset

log = logging.getLogger(__name__)

# Bump when build_tiny changes what it writes: older builds are rebuilt.
TINY_BUILD_VERSION = 1
TINY_MARKER = "BUILT"
TINY_IP_ADAPTER_SUBFOLDER = "ip_adapter"
TINY_IP_ADAPTER_WEIGHT = "ip-adapter_tiny.safetensors"
TINY_OPENCLIP_DIR = "openclip"
TINY_OPENCLIP_WEIGHT = "open_clip_model.safetensors"

# Sizes of the tiny modules. The OpenCLIP embedding dim equals the IP-Adapter
# image-embedding dim, as ViT-H-14 (1024) does for the real IP-Adapters.
_TINY_TEXT_DIM = 32  # text encoder width = UNet cross_attention_dim
_TINY_EMBED_DIM = 64  # OpenCLIP embed_dim = IP-Adapter image_embed_dim
_TINY_IP_TOKENS = 4  # the plain IP-Adapter projects one image embedding to 4 tokens

# /describe's captioner: OpenCLIP's CoCa for every real preset (downloaded on first
# use); a tiny random-weight CoCa for the tiny presets, built on first use beside them.
CAPTIONER = ("coca_ViT-L-14", "mscoco_finetuned_laion2b_s13b_b90k")
TINY_COCA_MODEL = "tastemaker-tiny-coca"
TINY_COCA_DIR = "tiny-coca"  # under <data_dir>/models/
TINY_COCA_BUILD = 2  # 2: the decoder's projection is initialised (1 left it as torch.empty's memory)
TINY_COCA_WEIGHT = "open_clip_model.safetensors"


# ----------------------------------------------------------------------------
# Paths and small types
# ----------------------------------------------------------------------------


def tiny_dir(data_dir: str | os.PathLike, arch: str = "sd") -> Path:
    """Where build_tiny puts a tiny build: models/tiny (SD layout) or models/tiny-sdxl."""
    return Path(data_dir) / "models" / ("tiny" if arch == "sd" else f"tiny-{arch}")


def tiny_is_built(data_dir: str | os.PathLike, arch: str = "sd") -> bool:
    return is_built(tiny_dir(data_dir, arch), TINY_BUILD_VERSION)


def is_built(folder: Path, version: int) -> bool:
    """Whether `folder` holds a finished random-weight build of this version (older ones are rebuilt)."""
    try:
        return json.loads((folder / TINY_MARKER).read_text()).get("version") == version
    except (OSError, ValueError):
        return False


def build_in_place(target: Path, version: int, build: Callable[[Path], None], *, force: bool = False) -> Path:
    """Run `build` on a private folder beside `target`, mark it with `version` and rename it into
    place: safe against concurrent builders in other processes (a current build of theirs is
    kept) and replacing an older version. In-process builders hold _LOADING (seeding is global)."""
    if is_built(target, version) and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = target.parent / f".{target.name}-build-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    try:
        build(work)
        (work / TINY_MARKER).write_text(json.dumps({"version": version}))
        if target.exists():
            if is_built(target, version) and not force:
                return target
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(work, target)
        except OSError:
            if not is_built(target, version):
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("built %s", target)
    return target


@dataclass(frozen=True)
class CheckItem:
    name: str
    present: bool
    detail: str


@dataclass
class Loaded:
    """Everything a worker keeps resident for one preset."""

    preset: Preset
    family: Family
    pipe: Any  # the family's txt2img pipeline (StableDiffusionXLPipeline, FluxPipeline, ...)
    img2img: Any  # the img2img pipeline, sharing the components of `pipe` (from_pipe)
    inpaint: Any  # the inpainting pipeline (outpaint, Vary Region), sharing them too
    embedder: Embedder
    device: torch.device
    dtype: torch.dtype
    ip_adapter: bool  # an IP-Adapter is loaded into pipe.unet (the UNet families)
    ip_embed_dim: int | None  # the IP-Adapter's image-embedding dim
    load_seconds: float


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(device: torch.device, dtype: DtypeName = "auto") -> torch.dtype:
    """`dtype`, or for "auto": fp32 on the CPU; on CUDA bf16 where supported, else fp16."""
    if dtype != "auto":
        return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


# ----------------------------------------------------------------------------
# The tiny preset: built from configs, random seeded weights
# ----------------------------------------------------------------------------


def _clip_bpe_vocab() -> tuple[dict[str, int], list[str]]:
    """CLIP's BPE vocab and merges, from the file that ships inside open_clip.

    Mirrors open_clip's SimpleTokenizer (and so the tokenizer of every SD text
    encoder): 256 byte symbols, the same with "</w>", one token per merge,
    then the two special tokens, 49408 in all. Special tokens use the names
    that transformers' CLIPTokenizer expects.
    """
    import open_clip.tokenizer as oct

    merges_raw = gzip.open(oct.default_bpe()).read().decode("utf-8").split("\n")
    merges = merges_raw[1 : 49152 - 256 - 2 + 1]
    byte_symbols = list(oct.bytes_to_unicode().values())
    vocab_list = byte_symbols + [v + "</w>" for v in byte_symbols]
    vocab_list += ["".join(m.split()) for m in merges]
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    return vocab, merges


def _tiny_openclip_config() -> dict:
    return {
        "embed_dim": _TINY_EMBED_DIM,
        "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "mlp_ratio": 2.0, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2, "mlp_ratio": 2.0},
    }


def register_tiny_openclip(config_path: str | os.PathLike) -> None:
    """Make the tiny OpenCLIP architecture known to open_clip (once per process)."""
    import open_clip

    if TINY_OPENCLIP_MODEL not in open_clip.list_models():
        open_clip.add_model_config(Path(config_path))


def _tiny_coca_config() -> dict:
    # coca_ViT-L-14's layout (attentional pooler, CLS token, a multimodal decoder), tiny sizes.
    text = {"context_length": 76, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}
    return {
        "embed_dim": 64,
        "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16,
                       "attentional_pool": True, "attn_pooler_heads": 2, "output_tokens": True},
        "text_cfg": {**text, "embed_cls": True, "output_tokens": True},
        "multimodal_cfg": {**text, "attn_pooler_heads": 2},
        "custom_text": True,
    }


def _register_openclip_config(name: str, config_path: str | os.PathLike) -> None:
    import open_clip

    if name not in open_clip.list_models():
        open_clip.add_model_config(Path(config_path))


def build_tiny_coca(data_dir: str | os.PathLike) -> Path:
    """A tiny random-weight CoCa (seeded) under <data_dir>/models/tiny-coca/, once:
    its config and weights, loaded like the real one by create_model_and_transforms."""

    def build(work: Path) -> None:
        import open_clip
        from safetensors.torch import save_file

        config_path = work / f"{TINY_COCA_MODEL}.json"
        config_path.write_text(json.dumps(_tiny_coca_config(), indent=2))
        _register_openclip_config(TINY_COCA_MODEL, config_path)
        with torch.random.fork_rng():
            torch.manual_seed(6)
            model = open_clip.create_model(TINY_COCA_MODEL, pretrained=None)
            # open_clip leaves the decoder's vocabulary projection as torch.empty (its
            # MultimodalTransformer.init_parameters is never called, and broken): zeros on
            # one machine, NaN on another. Initialise it as CLIP's text projection is.
            decoder = model.text_decoder
            torch.nn.init.normal_(decoder.text_projection, std=decoder.width**-0.5)
        weights = {k: v.contiguous() for k, v in model.state_dict().items()}
        if bad := [k for k, v in weights.items() if v.is_floating_point() and not torch.isfinite(v).all()]:
            raise RuntimeError(f"tiny CoCa built with non-finite weights: {', '.join(bad)}")
        save_file(weights, str(work / TINY_COCA_WEIGHT))

    with _LOADING:
        return build_in_place(Path(data_dir) / "models" / TINY_COCA_DIR, TINY_COCA_BUILD, build)


def load_captioner(preset: Preset, device: str | torch.device, data_dir: str | os.PathLike) -> Captioner:
    """/describe's CoCa for this preset (tiny presets: the tiny CoCa, built on first use)."""
    if preset.kind == "tiny" or preset.openclip_model == TINY_OPENCLIP_MODEL:
        root = build_tiny_coca(data_dir)
        _register_openclip_config(TINY_COCA_MODEL, root / f"{TINY_COCA_MODEL}.json")
        name, pretrained = TINY_COCA_MODEL, str(root / TINY_COCA_WEIGHT)
    else:
        name, pretrained = CAPTIONER
    with _LOADING:
        return Captioner.load(name, pretrained, device=resolve_device(device))


def random_ip_adapter_state_dict(unet, seed: int, embed_dim: int = _TINY_EMBED_DIM) -> dict[str, torch.Tensor]:
    """A random plain IP-Adapter for `unet` (any size; bench/gpu_check.py builds a full SDXL one)."""
    return _tiny_ip_adapter_state_dict(unet, seed, embed_dim)


def _tiny_ip_adapter_state_dict(unet, seed: int, embed_dim: int = _TINY_EMBED_DIM) -> dict[str, torch.Tensor]:
    """A plain IP-Adapter in the layout of the released weight files.

    image_proj.{proj,norm}.*: ImageProjection, one image embedding -> 4 tokens.
    ip_adapter.{k}.to_{k,v}_ip.weight: for the k-th attention processor of the
    UNet (in unet.attn_processors order) when it is a cross-attention (attn2);
    the file numbers every processor and only cross-attentions have weights,
    hence k = 1, 3, 5, ... exactly as diffusers' loader reads them.
    """
    g = torch.Generator().manual_seed(seed)
    cross = unet.config.cross_attention_dim
    channels = list(unet.config.block_out_channels)

    def randn(*shape, fan_in):
        return torch.randn(*shape, generator=g) / fan_in**0.5

    sd = {
        "image_proj.proj.weight": randn(cross * _TINY_IP_TOKENS, embed_dim, fan_in=embed_dim),
        "image_proj.proj.bias": torch.zeros(cross * _TINY_IP_TOKENS),
        "image_proj.norm.weight": torch.ones(cross),
        "image_proj.norm.bias": torch.zeros(cross),
    }
    for key_id, name in enumerate(unet.attn_processors.keys()):
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(channels))[int(name[len("up_blocks.")])]
        else:
            hidden = channels[int(name[len("down_blocks.")])]
        # Larger than a trained adapter's so that its effect shows on a random UNet.
        sd[f"ip_adapter.{key_id}.to_k_ip.weight"] = randn(hidden, cross, fan_in=cross / 4)
        sd[f"ip_adapter.{key_id}.to_v_ip.weight"] = randn(hidden, cross, fan_in=cross / 4)
    return sd


def _tiny_unet(arch: str):
    from diffusers import UNet2DConditionModel

    common = dict(
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        norm_num_groups=16,
    )
    if arch == "sd":
        return UNet2DConditionModel(sample_size=16, cross_attention_dim=_TINY_TEXT_DIM, **common)
    # SDXL layout: two text encoders (concatenated) and the "text_time" added conditioning.
    return UNet2DConditionModel(
        sample_size=16,
        cross_attention_dim=2 * _TINY_TEXT_DIM,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + _TINY_TEXT_DIM,
        transformer_layers_per_block=(1, 1),
        **common,
    )


def _tiny_text_config(**extra):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=49408,
        hidden_size=_TINY_TEXT_DIM,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=_TINY_TEXT_DIM,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
        **extra,
    )


def _tiny_sd_pipe(arch: str):
    """The tiny SD 1.5 ("sd") or SDXL layout: a two-level UNet, an SD VAE, CLIP text encoder(s)."""
    from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    # 1. UNet: two levels, cross-attention on the lower one.
    torch.manual_seed(0)
    unet = _tiny_unet(arch)
    # 2. VAE: four levels, so latents are 1/8 of the image per side as in SD.
    torch.manual_seed(1)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(16, 16, 32, 32),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=128,
    )
    # 3. Text encoder(s) + a real CLIP tokenizer (offline, from open_clip's BPE file).
    torch.manual_seed(2)
    text_encoder = CLIPTextModel(_tiny_text_config())
    tokenizer = _clip_tokenizer()
    # 4. Scheduler: Euler ancestral with trailing timesteps, as few-step turbo models use.
    scheduler = EulerAncestralDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        timestep_spacing="trailing",
        steps_offset=1,
    )
    if arch == "sd":
        pipe = StableDiffusionPipeline(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            unet=unet,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            image_encoder=None,
            requires_safety_checker=False,
        )
    else:
        torch.manual_seed(5)
        text_encoder_2 = CLIPTextModelWithProjection(_tiny_text_config())
        pipe = StableDiffusionXLPipeline(
            vae=vae,
            text_encoder=text_encoder,
            text_encoder_2=text_encoder_2,
            tokenizer=tokenizer,
            tokenizer_2=tokenizer,
            unet=unet,
            scheduler=scheduler,
            image_encoder=None,
            feature_extractor=None,
            force_zeros_for_empty_prompt=True,
        )
    return pipe


def _clip_tokenizer():
    """A real CLIP tokenizer, offline, from open_clip's BPE file."""
    from transformers import CLIPTokenizer

    vocab, merges = _clip_bpe_vocab()
    return CLIPTokenizer(vocab=vocab, merges=[tuple(m.split()) for m in merges], model_max_length=77)


def _t5_tokenizer():
    """A T5 (unigram) tokenizer over letters, digits and punctuation: what the tiny T5 reads."""
    import string

    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces += [("\u2581" + c, -1.0) for c in string.ascii_lowercase]
    pieces += [(c, -2.0) for c in string.ascii_lowercase + string.digits + ",.:;!?'-"]
    return T5Tokenizer(vocab=pieces, extra_ids=0)


def _tiny_t5(d_model: int):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(vocab_size=128, d_model=d_model, d_kv=8, d_ff=2 * d_model, num_layers=2,
                                   num_heads=4, relative_attention_num_buckets=8, decoder_start_token_id=0))


def _tiny_vae16(scaling_factor: float, shift_factor: float):
    """The 16-channel VAE layout of FLUX and SD 3.5 (no quant convs), tiny widths."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(16, 16, 32, 32), layers_per_block=1,
        latent_channels=16, norm_num_groups=8, sample_size=128, use_quant_conv=False, use_post_quant_conv=False,
        scaling_factor=scaling_factor, shift_factor=shift_factor,
    )


def _tiny_flux_pipe():
    """FLUX.1 [schnell]'s layout: double- and single-stream blocks, CLIP (pooled) + T5, flow matching."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel

    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=_TINY_TEXT_DIM,
        guidance_embeds=False, axes_dims_rope=(4, 6, 6),
    )
    torch.manual_seed(1)
    vae = _tiny_vae16(scaling_factor=0.3611, shift_factor=0.1159)
    torch.manual_seed(2)
    text_encoder = CLIPTextModel(_tiny_text_config())
    torch.manual_seed(5)
    text_encoder_2 = _tiny_t5(32)
    return FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0),
        vae=vae, text_encoder=text_encoder, tokenizer=_clip_tokenizer(), text_encoder_2=text_encoder_2,
        tokenizer_2=_t5_tokenizer(), transformer=transformer, image_encoder=None, feature_extractor=None,
    )


def _tiny_sd3_pipe():
    """SD 3.5's layout: an MMDiT with 2x2 patches, two CLIPs with projections + T5, flow matching."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection

    torch.manual_seed(0)
    transformer = SD3Transformer2DModel(
        sample_size=16, patch_size=2, in_channels=16, num_layers=2, attention_head_dim=8, num_attention_heads=4,
        joint_attention_dim=2 * _TINY_TEXT_DIM, caption_projection_dim=32, pooled_projection_dim=2 * _TINY_TEXT_DIM,
        out_channels=16, pos_embed_max_size=64,
    )
    torch.manual_seed(1)
    vae = _tiny_vae16(scaling_factor=1.5305, shift_factor=0.0609)
    torch.manual_seed(2)
    text_encoder = CLIPTextModelWithProjection(_tiny_text_config())
    torch.manual_seed(5)
    text_encoder_2 = CLIPTextModelWithProjection(_tiny_text_config())
    torch.manual_seed(6)
    text_encoder_3 = _tiny_t5(2 * _TINY_TEXT_DIM)
    tokenizer = _clip_tokenizer()
    return StableDiffusion3Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0),
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer, text_encoder_3=text_encoder_3, tokenizer_3=_t5_tokenizer(),
        transformer=transformer, image_encoder=None, feature_extractor=None,
    )


TINY_ARCHS = {
    "sd": lambda: _tiny_sd_pipe("sd"),
    "sdxl": lambda: _tiny_sd_pipe("sdxl"),
    "flux": _tiny_flux_pipe,
    "sd3": _tiny_sd3_pipe,
}


# Loading builds modules on torch's meta device through process-wide patches, so
# two loads at once in one process (inline workers, tests) can leave a module
# on meta ("Cannot copy out of meta tensor"). Loads and builds take turns.
_LOADING = threading.RLock()


def build_tiny(data_dir: str | os.PathLike, *, arch: str = "sd", force: bool = False) -> Path:
    """Build a tiny random-weight preset under <data_dir>/models/ (once; seeded, so deterministic).

    arch "sd" (the `tiny` preset, SD1.5 layout), "sdxl" (SDXL layout: two
    text encoders, text_time conditioning), "flux" (FLUX.1's: a flux
    transformer, CLIP and T5, 16-channel latents) or "sd3" (SD 3.5's: an
    MMDiT, two CLIPs and T5), each for the tests of its family's code path.
    Writes a standard diffusers pipeline folder (denoiser, vae, text encoders,
    tokenizers, scheduler, model_index.json), for the UNet layouts an
    IP-Adapter weight file in the released layout, and an OpenCLIP config +
    weights whose embedding dim equals the IP-Adapter's image-embedding dim. Safe against concurrent
    builders: it builds in a private folder and renames it into place, and
    within one process builds take turns (seeding is global).
    """
    with _LOADING:
        return _build_tiny(data_dir, arch, force)


def _build_tiny(data_dir: str | os.PathLike, arch: str, force: bool) -> Path:
    if arch not in TINY_ARCHS:
        raise ValueError(f"unknown tiny arch {arch!r}: use one of {', '.join(TINY_ARCHS)}")

    def build(work: Path) -> None:
        from safetensors.torch import save_file

        import open_clip

        # 1-4. The pipeline's modules (seeded), saved as a diffusers folder.
        pipe = TINY_ARCHS[arch]()
        pipe.save_pretrained(work, safe_serialization=True)

        # 5. IP-Adapter weights in the released file layout (the UNet families' adapter).
        if hasattr(pipe, "unet"):
            (work / TINY_IP_ADAPTER_SUBFOLDER).mkdir()
            save_file(
                {k: v.contiguous() for k, v in _tiny_ip_adapter_state_dict(pipe.unet, seed=3).items()},
                str(work / TINY_IP_ADAPTER_SUBFOLDER / TINY_IP_ADAPTER_WEIGHT),
            )

        # 6. OpenCLIP: register the architecture, random seeded init, save weights.
        clip_dir = work / TINY_OPENCLIP_DIR
        clip_dir.mkdir()
        config_path = clip_dir / f"{TINY_OPENCLIP_MODEL}.json"
        config_path.write_text(json.dumps(_tiny_openclip_config(), indent=2))
        register_tiny_openclip(config_path)
        torch.manual_seed(4)
        clip_model = open_clip.create_model(TINY_OPENCLIP_MODEL, pretrained=None)
        save_file(
            {k: v.contiguous() for k, v in clip_model.state_dict().items()},
            str(clip_dir / TINY_OPENCLIP_WEIGHT),
        )

    # 7. Moved into place; a concurrent builder's finished build is kept.
    return build_in_place(tiny_dir(data_dir, arch), TINY_BUILD_VERSION, build, force=force)


def tiny_sdxl_preset(data_dir: str | os.PathLike, **overrides) -> Preset:
    """A preset for the tiny SDXL-layout build (tests): loaded like a real SDXL preset,
    from_pretrained on a local folder instead of a hub id. Builds it if needed."""
    root = build_tiny(data_dir, arch="sdxl")
    fields = dict(
        name="tiny-sdxl",
        description="Tiny random-weight SDXL-layout model (tests)",
        kind="sdxl",
        base_repo=str(root),
        variant=None,
        ip_adapter_repo=str(root),
        ip_adapter_subfolder=TINY_IP_ADAPTER_SUBFOLDER,
        ip_adapter_weight=TINY_IP_ADAPTER_WEIGHT,
        ip_adapter_encoder=TINY_OPENCLIP_MODEL,  # the tiny adapter reads the tiny OpenCLIP, as ViT-H ones read ViT-H
        openclip_model=TINY_OPENCLIP_MODEL,
        openclip_pretrained=str(root / TINY_OPENCLIP_DIR / TINY_OPENCLIP_WEIGHT),
        embed_dim=_TINY_EMBED_DIM,
        base_size=128,
        steps=4,
        guidance_scale=0.0,
        upscale_strength=0.5,
    )
    fields.update(overrides)
    return Preset(**fields)


def tiny_family_preset(data_dir: str | os.PathLike, family: str, **overrides) -> Preset:
    """A preset for the tiny FLUX ("flux") or SD 3.5 ("sd3") build (tests): loaded like a real
    preset of that family, from_pretrained on a local folder. Builds it if needed."""
    root = build_tiny(data_dir, arch=family)
    fields = dict(
        name=f"tiny-{family}",
        description=f"Tiny random-weight {family}-layout model (tests)",
        kind=family,
        base_repo=str(root),
        variant=None,
        openclip_model=TINY_OPENCLIP_MODEL,  # the taste space of the tests
        openclip_pretrained=str(root / TINY_OPENCLIP_DIR / TINY_OPENCLIP_WEIGHT),
        embed_dim=_TINY_EMBED_DIM,
        base_size=128,
        steps=2,
        guidance_scale=3.0 if family == "sd3" else 0.0,  # sd3 exercises classifier-free guidance
        upscale_strength=0.5,
        licence="random weights (tests)",
    )
    fields.update(overrides)
    return Preset(**fields)


# ----------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------


def _dtype_kw() -> str:
    """diffusers renamed from_pretrained's `torch_dtype` to `dtype` (and warns on the old name)."""
    try:
        from diffusers.utils import deprecation_utils

        return "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"
    except ImportError:
        return "torch_dtype"


_DTYPE_KW = _dtype_kw()


def _sources(preset: Preset, data_dir: str | os.PathLike) -> dict[str, Any]:
    """Where each part of a preset comes from: hub ids, or the tiny folder."""
    if preset.kind == "tiny":
        root = tiny_dir(data_dir)
        return {
            "base": str(root),
            "ip_adapter": (str(root), TINY_IP_ADAPTER_SUBFOLDER, TINY_IP_ADAPTER_WEIGHT),
            "openclip": (TINY_OPENCLIP_MODEL, str(root / TINY_OPENCLIP_DIR / TINY_OPENCLIP_WEIGHT)),
        }
    return {
        "base": preset.base_repo,
        "ip_adapter": (
            (preset.ip_adapter_repo, preset.ip_adapter_subfolder, preset.ip_adapter_weight)
            if preset.ip_adapter_repo
            else None
        ),
        "openclip": (preset.openclip_model, preset.openclip_pretrained),
    }


class PresetLoadError(RuntimeError):
    """A preset's files are there but don't make a model (a LoRA that doesn't fit,
    an unknown scheduler, a checkpoint of another architecture). The message names
    the preset and the file; retrying won't help."""


def _local_or_hub(repo: str, filename: str, subfolder: str | None = None) -> str:
    """A file inside a local folder or a hub repo (downloaded into the hub cache on first use)."""
    local = Path(repo) / (subfolder or "") / filename
    if local.is_file():
        return str(local)
    from huggingface_hub import hf_hub_download

    return hf_hub_download(repo, filename, subfolder=subfolder)


def _unet_override(preset: Preset, dtype: torch.dtype):
    """The preset's own UNet, if it has one: a diffusers UNet folder, or one weight file
    in the base model's UNet layout (how SDXL-Lightning ships its 4-step UNet)."""
    from diffusers import UNet2DConditionModel

    if not preset.unet_repo:
        return None
    if not preset.unet_weight:
        return UNet2DConditionModel.from_pretrained(
            preset.unet_repo, subfolder=preset.unet_subfolder, variant=preset.variant, **{_DTYPE_KW: dtype}
        )
    from safetensors.torch import load_file

    config = UNet2DConditionModel.load_config(preset.base_repo, subfolder="unet")
    unet = UNet2DConditionModel.from_config(config)
    path = _local_or_hub(preset.unet_repo, preset.unet_weight, preset.unet_subfolder)
    try:
        unet.load_state_dict(load_file(path))
    except RuntimeError as error:
        raise PresetLoadError(
            f"preset {preset.name!r}: the UNet in {path} does not fit {preset.base_repo}'s UNet: {_first_line(error)}"
        ) from None
    return unet.to(dtype)


def _from_single_file(family: Family, pipeline_cls, preset: Preset, kwargs: dict[str, Any]):
    """A single-file checkpoint, converted by diffusers against the diffusers configs in
    preset.config_repo (a hub id, cached on first use, or a folder). SD 1.5 and SDXL files hold
    the whole pipeline; a FLUX or SD 3.5 file (.safetensors or .gguf) is read for its transformer
    and the rest comes from the config repo."""
    kwargs = dict(kwargs)
    try:
        transformer_cls = family.transformer_class()
        if transformer_cls is None:
            return pipeline_cls.from_single_file(preset.single_file, config=preset.config_repo, **kwargs)
        quantization = kwargs.pop("quantization_config", None)
        transformer = transformer_cls.from_single_file(
            preset.single_file, config=preset.config_repo, subfolder="transformer",
            quantization_config=_transformer_quantization(preset, kwargs[_DTYPE_KW]),
            **{_DTYPE_KW: kwargs[_DTYPE_KW]},
        )
        if quantization is not None:
            kwargs["quantization_config"] = quantization  # the T5's, if any
        return pipeline_cls.from_pretrained(preset.config_repo, transformer=transformer, **kwargs)
    except (ValueError, KeyError, RuntimeError, OSError) as error:
        raise PresetLoadError(
            f"preset {preset.name!r}: could not load the checkpoint {preset.single_file} as a "
            f"{preset.kind} model (configs from {preset.config_repo}): {_first_line(error)}"
        ) from None


# ----------------------------------------------------------------------------
# Fitting the GPU: quantisation (diffusers' own support) and what it needs
# ----------------------------------------------------------------------------


def _is_gguf(preset: Preset) -> bool:
    return bool(preset.single_file and preset.single_file.endswith(".gguf"))


def fit_problem(preset: Preset, device: torch.device) -> str | None:
    """Why this machine can't load the preset's quantised weights (None when it can): one line
    for `--check` and for the worker at start."""
    needs = []
    if preset.quantize == "nf4":
        if device.type != "cuda":
            return (f"preset {preset.name!r}: quantize = \"nf4\" needs bitsandbytes on a CUDA GPU, and this worker "
                    f"runs on {device.type}: use \"int8\" or \"fp8\" (torchao), or a .gguf checkpoint")
        needs.append("bitsandbytes")
    if preset.quantize in ("int8", "fp8"):
        needs.append("torchao")
    if _is_gguf(preset):
        needs.append("gguf")
    missing = [name for name in needs if importlib.util.find_spec(name) is None]
    if missing:
        what = f"quantize = \"{preset.quantize}\"" if preset.quantize else "a .gguf checkpoint"
        return f"preset {preset.name!r}: {what} needs {', '.join(missing)}: pip install {' '.join(missing)}"
    return None


def _quant_configs(preset: Preset, dtype: torch.dtype) -> tuple[Any, Any]:
    """(diffusers, transformers) quantisation configs for `preset.quantize`."""
    import diffusers
    import transformers

    if preset.quantize == "nf4":
        kw = dict(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype)
        return diffusers.BitsAndBytesConfig(**kw), transformers.BitsAndBytesConfig(**kw)
    from torchao.quantization import Float8WeightOnlyConfig, Int8WeightOnlyConfig

    weights = Int8WeightOnlyConfig() if preset.quantize == "int8" else Float8WeightOnlyConfig()
    return diffusers.TorchAoConfig(weights), transformers.TorchAoConfig(weights)


def _pipeline_quantization(preset: Preset, family: Family, dtype: torch.dtype):
    """diffusers' PipelineQuantizationConfig: the denoiser and the T5 quantised (None: full precision)."""
    if preset.quantize is None:
        return None
    from diffusers import PipelineQuantizationConfig

    denoiser, text = _quant_configs(preset, dtype)
    mapping = {name: denoiser if name == family.denoiser_name else text for name in family.quantized_components}
    if preset.single_file and family.transformer_class() is not None:
        mapping.pop(family.denoiser_name)  # quantised as it loads from its own file
    return PipelineQuantizationConfig(quant_mapping=mapping) if mapping else None


def _transformer_quantization(preset: Preset, dtype: torch.dtype) -> Any:
    """The quantisation a single-file transformer loads with: GGUF's own, or `quantize`'s."""
    if _is_gguf(preset):
        from diffusers import GGUFQuantizationConfig

        return GGUFQuantizationConfig(compute_dtype=dtype)
    return _quant_configs(preset, dtype)[0] if preset.quantize else None


def _scheduler(preset: Preset, config):
    import diffusers

    cls = getattr(diffusers, preset.scheduler, None)
    if cls is None or not hasattr(cls, "from_config"):
        raise PresetLoadError(f"preset {preset.name!r}: diffusers has no scheduler called {preset.scheduler!r}")
    return cls.from_config(config, **dict(preset.scheduler_options))


def _fuse_loras(pipe, preset: Preset) -> None:
    """Load each LoRA, fuse them at their weights, then drop the adapters (quantised weights: kept as adapters)."""
    names = []
    for i, lora in enumerate(preset.loras):
        name = f"lora{i}"
        where = lora.source if not lora.weight_name else f"{lora.source}/{lora.weight_name}"
        extra = {"weight_name": lora.weight_name} if lora.weight_name else {}
        try:
            pipe.load_lora_weights(lora.source, adapter_name=name, **extra)
        except (RuntimeError, ValueError, KeyError) as error:
            raise PresetLoadError(
                f"preset {preset.name!r}: the LoRA {where} does not fit this model: {_first_line(error)}"
            ) from None
        if not any(name in adapters for adapters in pipe.get_list_adapters().values()):
            raise PresetLoadError(f"preset {preset.name!r}: the LoRA {where} matches no layer of this model")
        names.append(name)
    pipe.set_adapters(names, adapter_weights=[lora.weight for lora in preset.loras])
    if preset.quantize or _is_gguf(preset):
        return  # quantised weights can't take a fused LoRA: it stays an adapter (a little cost per step)
    pipe.fuse_lora(adapter_names=names, lora_scale=1.0)
    pipe.unload_lora_weights()


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    # torch's load_state_dict puts the useful part on the second line
    return " ".join(lines[:2])[:400] if lines else type(error).__name__



def load(
    preset: Preset | str,
    device: str | torch.device = "auto",
    data_dir: str | os.PathLike = "data",
    *,
    ip_adapter: bool = True,
    dtype: DtypeName = "auto",
    compile: bool = False,
) -> Loaded:
    """Load a preset's pipelines and embedder onto `device` (tiny: built first if needed).

    `ip_adapter=False` skips the IP-Adapter (personalization then is
    unavailable); the result is then exactly a pipeline that never saw one.
    `dtype` is the weights' dtype (see resolve_dtype); `compile` runs
    torch.compile on the UNet on CUDA (a slow first job, faster after).
    """
    with _LOADING:
        return _load(preset, device, data_dir, ip_adapter=ip_adapter, dtype_name=dtype, compile=compile)


def _load(
    preset: Preset | str,
    device: str | torch.device,
    data_dir: str | os.PathLike,
    *,
    ip_adapter: bool,
    dtype_name: DtypeName,
    compile: bool,
) -> Loaded:
    t0 = time.perf_counter()
    if isinstance(preset, str):
        preset = get_preset(preset)
    dev = resolve_device(device)
    dtype = resolve_dtype(dev, dtype_name)
    if dev.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()  # whatever a previous model left behind
    if preset.kind == "tiny":
        build_tiny(data_dir)
    if (problem := fit_problem(preset, dev)) is not None:
        raise PresetLoadError(problem)
    src = _sources(preset, data_dir)
    clip_name, clip_pretrained = src["openclip"]
    if clip_name == TINY_OPENCLIP_MODEL:
        register_tiny_openclip(Path(clip_pretrained).parent / f"{TINY_OPENCLIP_MODEL}.json")
    family = family_for(preset)
    txt2img_cls, img2img_cls, inpaint_cls = family.pipeline_classes()

    # 1. Diffusion pipeline (fp16 weight files are cast to `dtype`): a diffusers
    #    folder or hub repo, or one single-file checkpoint read against its configs;
    #    quantised as it loads when the preset asks (diffusers' PipelineQuantizationConfig).
    kwargs: dict[str, Any] = {_DTYPE_KW: dtype, **family.load_kwargs()}
    if (quantization := _pipeline_quantization(preset, family, dtype)) is not None:
        kwargs["quantization_config"] = quantization
    unet = _unet_override(preset, dtype)
    if unet is not None:
        kwargs["unet"] = unet
    if preset.single_file:
        pipe = _from_single_file(family, txt2img_cls, preset, kwargs)
    else:
        if preset.variant:
            kwargs["variant"] = preset.variant
        pipe = txt2img_cls.from_pretrained(src["base"], use_safetensors=True, **kwargs)
    if preset.scheduler:
        pipe.scheduler = _scheduler(preset, pipe.scheduler.config)

    # 2. LoRAs, fused into the weights (then unloaded: no per-step cost, plain modules).
    if preset.loras:
        _fuse_loras(pipe, preset)

    # 3. IP-Adapter, loaded once; the image encoder is OpenCLIP (step 5), not CLIPVision.
    #    An adapter trained on another encoder is never loaded: no personalization.
    ip_embed_dim = None
    has_ip = bool(ip_adapter and src["ip_adapter"] and preset.has_ip_adapter and family.has_ip_adapter)
    if has_ip:
        repo, subfolder, weight = src["ip_adapter"]
        try:
            pipe.load_ip_adapter(repo, subfolder=subfolder, weight_name=weight, image_encoder_folder=None)
        except (RuntimeError, ValueError, KeyError) as error:
            raise PresetLoadError(
                f"preset {preset.name!r}: the IP-Adapter {repo}/{subfolder}/{weight} does not fit this model: "
                f"{_first_line(error)}"
            ) from None
        pipe.set_ip_adapter_scale(0.0)
        ip_embed_dim = int(pipe.unet.encoder_hid_proj.image_projection_layers[0].image_embeds.in_features)

    # 4. img2img and inpaint share every component (from_pipe casts them to fp32 unless
    #    told the dtype, which would change `pipe` too); a plain denoiser inpaints by
    #    blending the known latents back at each step. Then the device, or CPU offload
    #    (each pipeline's hooks; they share the modules); memory format; compile.
    if preset.quantize or _is_gguf(preset):  # from_pipe casts every module, which quantised ones refuse
        img2img, inpaint = img2img_cls(**pipe.components), inpaint_cls(**pipe.components)
    else:
        img2img = img2img_cls.from_pipe(pipe, **{_DTYPE_KW: dtype})
        inpaint = inpaint_cls.from_pipe(pipe, **{_DTYPE_KW: dtype})
    for p in (pipe, img2img, inpaint):
        p.set_progress_bar_config(disable=True)
        if dev.type == "cuda" and preset.offload == "model":
            p.enable_model_cpu_offload(device=dev)
        elif dev.type == "cuda" and preset.offload == "sequential":
            p.enable_sequential_cpu_offload(device=dev)
    if dev.type != "cuda" or preset.offload == "none":
        pipe.to(dev)
    if dev.type == "cuda":
        if family.denoiser_name == "unet":
            pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
        if compile:
            family.denoiser(pipe).compile()  # in place: img2img and inpaint share this module

    # 5. OpenCLIP embedder (the taste space; the same space the IP-Adapter reads).
    embedder = Embedder.load(clip_name, clip_pretrained, device=dev)
    if ip_embed_dim is not None and ip_embed_dim != embedder.dim:
        raise PresetLoadError(
            f"preset {preset.name!r}: IP-Adapter takes {ip_embed_dim}-d image embeddings "
            f"but {clip_name} makes {embedder.dim}-d ones"
        )

    seconds = time.perf_counter() - t0
    log.info("loaded preset %s on %s (%s) in %.1f s", preset.name, dev, dtype, seconds)
    return Loaded(
        preset=preset,
        family=family,
        pipe=pipe,
        img2img=img2img,
        inpaint=inpaint,
        embedder=embedder,
        device=dev,
        dtype=dtype,
        ip_adapter=has_ip,
        ip_embed_dim=ip_embed_dim,
        load_seconds=seconds,
    )


def release(loaded: Loaded | None) -> None:
    """Drop a loaded preset and give its memory back (call when switching models)."""
    if loaded is None:
        return
    loaded.pipe = loaded.img2img = loaded.inpaint = loaded.embedder = None
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------
# What is present locally (python -m engine.worker --check); never downloads
# ----------------------------------------------------------------------------

def _cached(repo: str, filename: str) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(repo, filename)
    return hit if isinstance(hit, str) else None


_SHARD_INDEX = re.compile(r"\.safetensors\.index(\.[^./]+)?\.json$")  # x.safetensors.index[.fp16].json


def _find(repo: str, filename: str) -> str | None:
    if os.path.isdir(repo):  # a preset may name a local folder instead of a hub id
        return str(Path(repo) / filename) if os.path.isfile(Path(repo) / filename) else None
    return _cached(repo, filename)


def _check_files(name: str, repo: str, alternatives: list[str]) -> CheckItem:
    for filename in alternatives:
        hit = _find(repo, filename)
        if hit and _SHARD_INDEX.search(filename):
            return _check_shards(name, repo, filename, hit)
        if hit:
            return CheckItem(name, True, hit)
    return CheckItem(name, False, f"missing: {repo}/{alternatives[0]}")


def _check_shards(name: str, repo: str, index: str, hit: str) -> CheckItem:
    """A sharded weight: its index is present, but loading needs every shard it names."""
    folder = posixpath.dirname(index)
    shards = sorted(set(json.loads(Path(hit).read_text())["weight_map"].values()))
    missing = [s for s in shards if not _find(repo, posixpath.join(folder, s))]
    if missing:
        return CheckItem(name, False, f"missing: {len(missing)} of {len(shards)} shards")
    return CheckItem(name, True, f"{len(shards)} shards in {Path(hit).parent}")


def check(preset: Preset | str, data_dir: str | os.PathLike = "data", device: str = "auto") -> list[CheckItem]:
    """What a preset needs and whether it is present locally (and whether this machine can
    load its quantised weights on `device`). Never downloads."""
    if isinstance(preset, str):
        preset = get_preset(preset)
    if preset.kind == "tiny":
        root = tiny_dir(data_dir)
        built = tiny_is_built(data_dir)
        detail = str(root) if built else f"not built yet: {root} (built on first load)"
        return [CheckItem("tiny model", built, detail)]

    items: list[CheckItem] = []
    family = family_for(preset)
    if preset.single_file:
        items.append(_check_local("checkpoint", preset.single_file))
        if family.transformer_class() is None:
            items.append(_check_files("checkpoint configs", preset.config_repo, ["model_index.json"]))
        else:  # the transformer's file: the rest of the pipeline comes from the config repo
            items.extend(_check_diffusers(preset, family, preset.config_repo, weightless=family.denoiser_name))
    else:
        items.extend(_check_diffusers(preset, family, preset.base_repo))
    if preset.quantize or _is_gguf(preset):
        problem = fit_problem(preset, resolve_device(device))
        what = f"{preset.quantize or 'gguf'}: {', '.join(family.quantized_components)}"
        items.append(CheckItem("quantize", problem is None, problem or what))
    if preset.unet_repo and preset.unet_weight:
        sub = f"{preset.unet_subfolder}/" if preset.unet_subfolder else ""
        items.append(_check_files("unet weights", preset.unet_repo, [sub + preset.unet_weight]))
    for i, lora in enumerate(preset.loras):
        if lora.weight_name:
            items.append(_check_files(f"lora {i + 1} (x{lora.weight:g})", lora.source, [lora.weight_name]))
        else:
            items.append(_check_local(f"lora {i + 1} (x{lora.weight:g})", lora.source))
    if preset.scheduler:
        import diffusers

        known = hasattr(diffusers, preset.scheduler)
        items.append(CheckItem("scheduler", known, preset.scheduler if known else f"diffusers has no {preset.scheduler}"))
    if preset.ip_adapter_repo and preset.has_ip_adapter:
        path = f"{preset.ip_adapter_subfolder}/{preset.ip_adapter_weight}".lstrip("/")
        items.append(_check_files("ip_adapter", preset.ip_adapter_repo, [path]))
    elif preset.ip_adapter_repo:
        items.append(CheckItem("ip_adapter", True, f"not loaded: trained on {preset.ip_adapter_encoder}, "
                               f"not {preset.openclip_model} (--p by style words)"))
    else:
        items.append(CheckItem("ip_adapter", True, "none (--p by style words)"))
    items.append(_check_openclip(preset))
    items.append(_check_openclip_weights("describe captioner", *CAPTIONER))
    return items


def _check_local(name: str, path: str) -> CheckItem:
    present = os.path.isfile(path)
    return CheckItem(name, present, path if present else f"missing: {path}")


def _check_diffusers(preset: Preset, family: Family, repo: str, weightless: str = "") -> list[CheckItem]:
    """A diffusers folder or hub repo: model_index, and each of the family's components' config and
    weights (whole or sharded; `weightless`: a component whose weights come from elsewhere)."""
    items = [_check_files("model_index", repo, ["model_index.json"])]
    for comp, (config, stem) in family.components.items():
        if comp == weightless:
            stem = None
        if comp == "unet" and preset.unet_repo and not preset.unet_weight:
            sub = f"{preset.unet_subfolder}/" if preset.unet_subfolder else ""
            comp_repo, prefix = preset.unet_repo, sub
        else:
            comp_repo, prefix = repo, f"{comp}/"
        items.append(_check_files(f"{comp} config" if stem else comp, comp_repo, [prefix + c for c in config]))
        if stem and not (comp == "unet" and preset.unet_weight):
            names = [f"{prefix}{stem}.safetensors", f"{prefix}{stem}.safetensors.index.json"]
            if preset.variant:
                names[:0] = [f"{prefix}{stem}.{preset.variant}.safetensors", f"{prefix}{stem}.safetensors.index.{preset.variant}.json"]
            items.append(_check_files(f"{comp} weights", comp_repo, names))
    return items


def _check_openclip(preset: Preset) -> CheckItem:
    return _check_openclip_weights("openclip", preset.openclip_model, preset.openclip_pretrained)


def _check_openclip_weights(label: str, model: str, pretrained: str) -> CheckItem:
    import open_clip

    name = f"{label} {model}/{pretrained}"
    if os.path.isfile(pretrained):
        return CheckItem(name, True, pretrained)
    cfg = open_clip.get_pretrained_cfg(model, pretrained)
    hub = (cfg or {}).get("hf_hub", "")
    if not hub:
        return CheckItem(name, False, "no hub source known for this OpenCLIP tag")
    repo, filename = os.path.split(hub)  # as open_clip reads it: "org/repo/" or "org/repo/file"
    names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    if filename.endswith((".bin", ".pth")):
        names.insert(0, filename[:-4] + ".safetensors")
    return _check_files(name, repo, names)
