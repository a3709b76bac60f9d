"""Causal-LM presets built from transformers configs (Mistral architecture, as in the paper),
randomly initialised and deterministic from a seed, or any local Hugging Face causal-LM directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .device import resolve_device
from ..errors import ConfigError, DataError


@dataclass(frozen=True)
class Preset:
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_positions: int
    note: str


# Parameter counts below assume the demo tokenizer's vocabulary (2048) and tied embeddings.
PRESETS: dict[str, Preset] = {
    "tiny-test": Preset(32, 2, 2, 64, 256, "a few ten-thousand parameters; unit tests"),
    "cpu-demo": Preset(128, 4, 4, 384, 512, "~1.1M parameters; the CPU demo default"),
    "cpu-small": Preset(256, 6, 4, 768, 512, "~5.4M parameters; a larger CPU model"),
    "gpu-30m": Preset(512, 8, 8, 1536, 1024, "~26M parameters (+embeddings); a GPU model"),
    "gpu-160m": Preset(768, 12, 12, 3072, 2048, "~113M parameters (+embeddings); the paper's smallest size class"),
}
DEFAULT_PRESET = "cpu-demo"


def preset_config(name: str, vocab_size: int, eos_token_id: int = 0, pad_token_id: int | None = None):
    """The transformers MistralConfig of preset ``name`` for a tokenizer of ``vocab_size``."""
    from transformers import MistralConfig

    if name not in PRESETS:
        raise ConfigError(f"model preset {name!r} is not known; use one of {', '.join(PRESETS)} or a model directory")
    p = PRESETS[name]
    return MistralConfig(
        vocab_size=vocab_size, hidden_size=p.hidden_size, num_hidden_layers=p.num_layers,
        num_attention_heads=p.num_heads, num_key_value_heads=p.num_heads,
        intermediate_size=p.intermediate_size, max_position_embeddings=p.max_positions,
        sliding_window=None, tie_word_embeddings=True, bos_token_id=eos_token_id,
        eos_token_id=eos_token_id, pad_token_id=pad_token_id, use_cache=False,
    )


def is_model_dir(spec: str) -> bool:
    return Path(spec).is_dir()


def build_model(spec: str = DEFAULT_PRESET, vocab_size: int | None = None, seed: int = 0,
                device: str | torch.device = "auto", dtype: torch.dtype = torch.float32,
                eos_token_id: int = 0, pad_token_id: int | None = None, attn_implementation: str = "eager"):
    """A causal LM from a preset name (random init, seeded) or a local model directory (safetensors).

    Args:
        spec: a key of PRESETS, or a path to a Hugging Face causal-LM directory.
        vocab_size: required for presets (the tokenizer's ``len(tokenizer)``).
        attn_implementation: "eager" works everywhere (including torch.func transforms); "sdpa" is faster.
    """
    dev = resolve_device(device)
    if is_model_dir(spec):
        model = load_model_dir(spec, dtype=dtype, attn_implementation=attn_implementation)
    else:
        if vocab_size is None or vocab_size <= 0:
            raise ConfigError("vocab_size must be given (the tokenizer's vocabulary size) to build a preset model")
        from transformers import MistralForCausalLM

        config = preset_config(spec, vocab_size, eos_token_id, pad_token_id)
        config._attn_implementation = attn_implementation
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = MistralForCausalLM(config)
        model = model.to(dtype=dtype)
    model.config.use_cache = False
    return model.to(dev)


def load_model_dir(path: str | Path, dtype: torch.dtype = torch.float32, attn_implementation: str = "eager"):
    """Load a local causal LM with safetensors weights; no remote code, no network."""
    from transformers import AutoConfig, AutoModelForCausalLM

    path = Path(path)
    try:
        config = AutoConfig.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a Hugging Face model directory (no usable config.json): {exc}") from exc
    archs = getattr(config, "architectures", None) or []
    if archs and not any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in archs):
        raise DataError(f"{path} holds a {archs[0]}, not a causal LM; give a *ForCausalLM model directory")
    if not list(path.glob("*.safetensors")):
        raise DataError(f"{path} has no .safetensors weights; convert the checkpoint to safetensors first")
    try:
        return AutoModelForCausalLM.from_pretrained(
            str(path), local_files_only=True, trust_remote_code=False, use_safetensors=True,
            dtype=dtype, attn_implementation=attn_implementation)
    except (OSError, ValueError) as exc:
        raise DataError(f"could not load a causal LM from {path}: {exc}") from exc


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
