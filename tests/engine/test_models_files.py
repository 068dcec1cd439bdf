"""Owner presets from a file, loaded for real: a single-file checkpoint and a
LoRA, both made here from the tiny preset's components and loaded through
engine.models.load (diffusers' from_single_file, load_lora_weights +
fuse_lora); a LoRA that doesn't fit and a checkpoint of another architecture
are refused with messages naming the preset and the file."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engine.presets import load_presets

torch = pytest.importorskip("torch")


# -- a single-file checkpoint in the original SD layout, from a diffusers pipeline ------


_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
           ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"))
_VAE_ATTN = (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out"))


def _rename(rest: str, pairs) -> str:
    head, _, leaf = rest.rpartition(".")
    for new, old in pairs:
        if head == new:
            return f"{old}.{leaf}"
    return rest


def unet_to_ldm(sd: dict, config) -> dict:
    """diffusers UNet keys -> LDM `model.diffusion_model.*` (the inverse of diffusers' convert_ldm_unet_checkpoint)."""
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    direct = {**DIFFUSERS_TO_LDM_MAPPING["unet"]["layers"], **DIFFUSERS_TO_LDM_MAPPING["unet"]["addition_embed_type"]}
    per = config.layers_per_block + 1
    out = {}
    for key, value in sd.items():
        parts = key.split(".")
        if key in direct:
            ldm = direct[key]
        elif parts[0] == "down_blocks":
            i, kind, j, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
            if kind == "resnets":
                ldm = f"input_blocks.{1 + i * per + j}.0.{_rename(rest, _RESNET)}"
            elif kind == "attentions":
                ldm = f"input_blocks.{1 + i * per + j}.1.{rest}"
            else:  # downsamplers.0.conv.*
                ldm = f"input_blocks.{1 + i * per + per - 1}.0.op.{parts[-1]}"
        elif parts[0] == "mid_block":
            kind, j, rest = parts[1], int(parts[2]), ".".join(parts[3:])
            ldm = f"middle_block.{2 * j}.{_rename(rest, _RESNET)}" if kind == "resnets" else f"middle_block.1.{rest}"
        elif parts[0] == "up_blocks":
            i, kind, j, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
            if kind == "resnets":
                ldm = f"output_blocks.{i * per + j}.0.{_rename(rest, _RESNET)}"
            elif kind == "attentions":
                ldm = f"output_blocks.{i * per + j}.1.{rest}"
            else:  # upsamplers.0.conv.*: after the attention when the block has one
                has_attn = any(k.startswith(f"up_blocks.{i}.attentions.") for k in sd)
                ldm = f"output_blocks.{i * per + per - 1}.{2 if has_attn else 1}.conv.{parts[-1]}"
        else:
            raise AssertionError(f"unmapped UNet key {key}")
        out["model.diffusion_model." + ldm] = value
    return out


def vae_to_ldm(sd: dict, config) -> dict:
    """diffusers VAE keys -> LDM `first_stage_model.*`."""
    n = len(config.up_block_types)
    out = {}
    for key, value in sd.items():
        parts = key.split(".")
        coder = parts[0]
        if parts[1] == "down_blocks":
            i = parts[2]
            ldm = (f"encoder.down.{i}.block.{parts[4]}.{'.'.join(parts[5:])}" if parts[3] == "resnets"
                   else f"encoder.down.{i}.downsample.conv.{parts[-1]}")
        elif parts[1] == "up_blocks":
            b = n - 1 - int(parts[2])
            ldm = (f"decoder.up.{b}.block.{parts[4]}.{'.'.join(parts[5:])}" if parts[3] == "resnets"
                   else f"decoder.up.{b}.upsample.conv.{parts[-1]}")
        elif parts[1] == "mid_block":
            rest = ".".join(parts[4:])
            ldm = (f"{coder}.mid.block_{int(parts[3]) + 1}.{rest}" if parts[2] == "resnets"
                   else f"{coder}.mid.attn_1.{_rename(rest, _VAE_ATTN)}")
        else:
            ldm = key.replace("conv_norm_out", "norm_out")
        out["first_stage_model." + ldm.replace("conv_shortcut", "nin_shortcut")] = value
    return out


def save_single_file(pipe, path: Path) -> Path:
    """An SD1.5-layout single-file checkpoint of `pipe` (UNet, VAE, CLIP text encoder)."""
    from safetensors.torch import save_file

    text = {
        "cond_stage_model.transformer." + (k if k.startswith("text_model.") else "text_model." + k): v
        for k, v in pipe.text_encoder.state_dict().items()
    }
    state = {**unet_to_ldm(pipe.unet.state_dict(), pipe.unet.config), **vae_to_ldm(pipe.vae.state_dict(), pipe.vae.config), **text}
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def save_lora(unet, path: Path, seed: int = 0) -> Path:
    """A random LoRA for `unet`'s attention projections (peft), in diffusers' LoRA file layout."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig, get_peft_model_state_dict

    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    StableDiffusionPipeline.save_lora_weights(path.parent, unet_lora_layers=layers, weight_name=path.name)
    return path


@pytest.fixture(scope="module")
def owner_files(tiny_data_dir, tmp_path_factory) -> Path:
    """A folder with a single-file checkpoint of the tiny model, its diffusers configs, and LoRAs."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    from engine import models

    root = tmp_path_factory.mktemp("owner")
    tiny = models.tiny_dir(tiny_data_dir)
    pipe = StableDiffusionPipeline.from_pretrained(tiny, safety_checker=None, requires_safety_checker=False)
    # A checkpoint with other weights than the tiny folder's, so loading it shows.
    torch.manual_seed(11)
    with torch.no_grad():
        for p in pipe.unet.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    save_single_file(pipe, root / "owner-model.safetensors")
    save_lora(pipe.unet, root / "detail-lora.safetensors")
    xl = StableDiffusionXLPipeline.from_pretrained(models.build_tiny(tiny_data_dir, arch="sdxl"))
    save_lora(xl.unet, root / "xl-lora.safetensors")
    return root


def write_presets(folder: Path, body: str) -> Path:
    path = folder / "presets.toml"
    path.write_text(textwrap.dedent(body))
    return path


@pytest.fixture
def registry():
    yield
    load_presets(None)  # the built-ins again for the other tests


def owner_preset(name: str, data_dir: Path):
    """The file preset `name`, embedding with the tiny OpenCLIP instead of ViT-H (no download):
    everything else is the preset exactly as the file declared it."""
    import dataclasses

    from engine import models
    from engine.presets import TINY_OPENCLIP_MODEL, get_preset

    root = models.tiny_dir(data_dir)
    return dataclasses.replace(
        get_preset(name),
        openclip_model=TINY_OPENCLIP_MODEL,
        openclip_pretrained=str(root / models.TINY_OPENCLIP_DIR / models.TINY_OPENCLIP_WEIGHT),
    )


def _unet_weight(loaded):
    return loaded.pipe.unet.down_blocks[1].attentions[0].transformer_blocks[0].attn1.to_q.weight.detach().clone()


def test_single_file_checkpoint_and_lora_load_through_the_preset(owner_files, tiny_data_dir, tmp_path, registry):
    from engine import models
    from engine.generate import Engine

    tiny = models.tiny_dir(tiny_data_dir)
    path = write_presets(tmp_path, f"""
        [presets.owner]
        pipeline = "sd15"
        checkpoint = "{owner_files / 'owner-model.safetensors'}"
        config = "{tiny}"
        steps = 2
        guidance = 3.0
        base_size = 256
        scheduler = "EulerDiscreteScheduler"
        scheduler_options = {{ timestep_spacing = "trailing" }}
        ip_adapter = false

        [presets.owner-lora]
        pipeline = "sd15"
        checkpoint = "{owner_files / 'owner-model.safetensors'}"
        config = "{tiny}"
        steps = 2
        ip_adapter = false
        loras = [{{ path = "{owner_files / 'detail-lora.safetensors'}", weight = 0.5 }}]
    """)
    load_presets(file=path)
    plain = models.load(owner_preset("owner", tiny_data_dir), "cpu", tiny_data_dir)
    reference = models.load("tiny", "cpu", tiny_data_dir)
    # 1. The checkpoint's own weights came in (not the tiny folder's), under the preset's scheduler.
    assert not torch.equal(_unet_weight(plain), _unet_weight(reference))
    assert type(plain.pipe.scheduler).__name__ == "EulerDiscreteScheduler"
    assert plain.pipe.scheduler.config.timestep_spacing == "trailing"
    assert not plain.ip_adapter
    # 2. The LoRA is fused: the weights moved, and no adapter layers are left behind.
    fused = models.load(owner_preset("owner-lora", tiny_data_dir), "cpu", tiny_data_dir)
    assert not torch.equal(_unet_weight(fused), _unet_weight(plain))
    assert not any("lora" in name for name, _ in fused.pipe.unet.named_parameters())
    # 3. It draws through the one engine path.
    from engine.jobs import GenerateSpec, Job, JobKind

    engine = Engine(fused.preset, device="cpu", data_dir=tiny_data_dir)
    engine.loaded = fused
    result = engine.run(Job(kind=JobKind.IMAGINE, user_id=1, preset="owner-lora",
                            generate=GenerateSpec(prompt="a fox", width=128, height=128, seed=3, count=1)))
    assert len(result.images) == 1 and result.images[0].width == 128


def test_a_lora_that_does_not_fit_is_refused_naming_the_preset_and_file(owner_files, tiny_data_dir, tmp_path, registry):
    from engine import models

    path = write_presets(tmp_path, f"""
        [presets.mismatch]
        pipeline = "sd15"
        checkpoint = "{owner_files / 'owner-model.safetensors'}"
        config = "{models.tiny_dir(tiny_data_dir)}"
        ip_adapter = false
        loras = [{{ path = "{owner_files / 'xl-lora.safetensors'}" }}]
    """)
    load_presets(file=path)
    with pytest.raises(models.PresetLoadError) as caught:
        models.load(owner_preset("mismatch", tiny_data_dir), "cpu", tiny_data_dir)
    message = str(caught.value)
    assert "preset 'mismatch'" in message and "xl-lora.safetensors" in message and "does not fit" in message


def test_a_checkpoint_of_another_architecture_is_refused(owner_files, tiny_data_dir, tmp_path, registry):
    from engine import models

    # An SDXL preset over an SD1.5-layout file: diffusers can't make an SDXL model of it.
    path = write_presets(tmp_path, f"""
        [presets.wrong-kind]
        pipeline = "sdxl"
        checkpoint = "{owner_files / 'owner-model.safetensors'}"
        config = "{models.build_tiny(tiny_data_dir, arch='sdxl')}"
        ip_adapter = false
    """)
    load_presets(file=path)
    with pytest.raises(models.PresetLoadError) as caught:
        models.load(owner_preset("wrong-kind", tiny_data_dir), "cpu", tiny_data_dir)
    assert "preset 'wrong-kind'" in str(caught.value) and "owner-model.safetensors" in str(caught.value)


# -- --check: sharded weights ----------------------------------------------------------------


def test_check_reports_a_sharded_component_missing_a_shard(tmp_path):
    """An index.json is only as good as the shards it names (FLUX's transformer and T5 ship sharded)."""
    import json

    from engine import models
    from engine.families import FAMILIES
    from engine.presets import get_preset

    family, root = FAMILIES["flux"], tmp_path / "flux"
    (root / "model_index.json").parent.mkdir(parents=True)
    (root / "model_index.json").write_text("{}")
    for comp, (configs, stem) in family.components.items():
        (root / comp).mkdir()
        for name in configs:
            (root / comp / name).write_text("{}")
        if stem:
            (root / comp / f"{stem}.safetensors").write_bytes(b"x")
    (root / "transformer" / "diffusion_pytorch_model.safetensors").unlink()
    shards = ["diffusion_pytorch_model-00001-of-00002.safetensors", "diffusion_pytorch_model-00002-of-00002.safetensors"]
    (root / "transformer" / "diffusion_pytorch_model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": shards[0], "b": shards[1]}}))
    (root / "transformer" / shards[0]).write_bytes(b"x")

    def weights() -> models.CheckItem:
        items = models._check_diffusers(get_preset("flux-schnell"), family, str(root))
        assert all(i.present for i in items if i.name != "transformer weights")
        return next(i for i in items if i.name == "transformer weights")

    item = weights()
    assert not item.present and item.detail == "missing: 1 of 2 shards"
    (root / "transformer" / shards[1]).write_bytes(b"x")
    item = weights()
    assert item.present and item.detail == f"2 shards in {root / 'transformer'}"
