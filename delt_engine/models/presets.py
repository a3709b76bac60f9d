"""Causal-LM presets built from transformers configs (Mistral architecture, as in the paper),
randomly initialised and deterministic from a seed, or any local Hugging Face causal-LM directory.

A Hugging Face Hub id (``owner/name``) is accepted where a model or tokenizer directory is: the CLI
resolves it with ``resolve_model_spec`` / ``resolve_tokenizer_spec`` to the folder of its snapshot in
the Hugging Face cache (config, tokenizer files and safetensors weights only: never pickled ``.bin``
weights, never repository code), which then loads like any local directory. Nothing is downloaded
unless such an id is given, and with ``HF_HUB_OFFLINE=1`` only the cache is used.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ConfigError, DataError
from .device import resolve_device


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
        vocab_size=vocab_size,
        hidden_size=p.hidden_size,
        num_hidden_layers=p.num_layers,
        num_attention_heads=p.num_heads,
        num_key_value_heads=p.num_heads,
        intermediate_size=p.intermediate_size,
        max_position_embeddings=p.max_positions,
        sliding_window=None,
        tie_word_embeddings=True,
        bos_token_id=eos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        use_cache=False,
    )


def is_model_dir(spec: str) -> bool:
    return Path(spec).is_dir()


# ---------------------------------------------------------------------------- Hugging Face Hub ids

HUB_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json")  # one of them anchors a tokenizer-only fetch


@dataclass(frozen=True)
class HubSnapshot:
    """A Hub model or tokenizer fetched into the Hugging Face cache."""

    repo_id: str
    revision: str  # the commit the files come from
    path: Path  # the snapshot folder: loads like a local model/tokenizer directory


def looks_like_hub_id(spec: str) -> bool:
    """True for ``owner/name`` that is neither a preset nor an existing local path."""
    text = str(spec)
    return (
        bool(HUB_MODEL_ID.fullmatch(text))
        and text not in PRESETS
        and not os.path.lexists(text)
        and not os.path.isdir(text.split("/")[0])
    )


def check_model_spec(spec) -> None:
    """ConfigError unless ``spec`` is a preset, an existing model folder or a Hub id ``owner/name``
    (a Hub id is checked when it is fetched)."""
    text = str(spec)
    if text in PRESETS or os.path.isdir(text) or looks_like_hub_id(text):
        return
    why = "a file, not a folder" if os.path.exists(text) else "no such folder"
    raise ConfigError(
        f"model {text!r} is neither a preset ({', '.join(PRESETS)}) nor a model folder ({why}); "
        "give a preset name, a folder holding config.json and safetensors weights, or a Hub id owner/name"
    )


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` forbids downloads (then only the local cache is used)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in ("", "0", "false", "no", "off")


def resolve_model_spec(spec: str, with_tokenizer: bool = True) -> tuple[str, HubSnapshot | None]:
    """A model spec usable by ``build_model``: presets and local folders unchanged, a Hub id fetched.

    Args:
        spec: a preset name, a local model folder, or a Hub id ``owner/name``.
        with_tokenizer: also fetch the repository's tokenizer (a tokenizer given separately needs none).

    Returns:
        (the spec or the snapshot folder, the HubSnapshot for a Hub id else None).

    Raises:
        ConfigError / DataError: not a preset, folder or fetchable Hub model (offline and not cached,
            unknown id, not a causal LM, custom code required, no safetensors weights), with the fix.
    """
    if not looks_like_hub_id(spec):
        check_model_spec(spec)
        return spec, None
    snapshot = fetch_hub_model(spec, with_tokenizer=with_tokenizer)
    return str(snapshot.path), snapshot


def resolve_tokenizer_spec(spec: str | None) -> tuple[str | None, HubSnapshot | None]:
    """A tokenizer spec: None and local folders unchanged, a Hub id fetched (tokenizer files only)."""
    if spec is None or not looks_like_hub_id(spec):
        return spec, None
    snapshot = fetch_hub_tokenizer(spec)
    return str(snapshot.path), snapshot


def fetch_hub_model(repo_id: str, with_tokenizer: bool = True) -> HubSnapshot:
    """Fetch a causal LM from the Hub into the cache: config.json, then (for a causal-LM architecture that
    needs no custom code) its tokenizer through ``AutoTokenizer.from_pretrained`` and its safetensors
    weights (one file or the shards of model.safetensors.index.json), all from one commit."""
    from transformers import AutoConfig

    config_file = _hub_file(repo_id, "config.json", None, "model")
    folder, revision = config_file.parent, config_file.parent.name
    check_no_custom_code(config_file, f"Hub model {repo_id}")
    try:
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise DataError(
            f"Hub model {repo_id}: its config cannot be used without running the repository's own "
            f"code (trust_remote_code), which DELT never does, or is not a transformers config: "
            f"{_first_line(exc)}; choose a model transformers supports natively"
        ) from None
    archs = getattr(config, "architectures", None) or []
    if archs and not any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in archs):
        raise DataError(f"Hub model {repo_id} is a {archs[0]}, not a causal LM; give a *ForCausalLM model")
    if with_tokenizer:
        _fetch_tokenizer_files(repo_id, revision)
    _fetch_safetensors(repo_id, revision, folder)
    return HubSnapshot(repo_id, revision, folder)


def _fetch_safetensors(repo_id: str, revision: str, folder: Path) -> None:
    """model.safetensors, or the shards model.safetensors.index.json names; never .bin weights."""
    try:
        index = _hub_file(repo_id, "model.safetensors.index.json", revision, "model")
    except (_NotOnHub, _NotCached):
        index = None  # a single-file checkpoint (offline: one fetched without an index)
    if index is not None:
        for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
            _hub_file(repo_id, shard, revision, "model", strict=True)
        return
    try:
        _hub_file(repo_id, "model.safetensors", revision, "model")
    except _NotCached as exc:
        if not list(folder.glob("*.bin")):
            raise DataError(str(exc)) from None
        raise DataError(
            f"the cached copy of Hub model {repo_id} ({folder}) has pickled .bin weights and no "
            "safetensors; DELT loads safetensors only: choose a repository with safetensors weights, or "
            "convert the checkpoint and give its local folder"
        ) from None
    except _NotOnHub:
        raise DataError(
            f"Hub model {repo_id} has no safetensors weights (model.safetensors or a sharded index); "
            "DELT loads safetensors only, never pickled .bin checkpoints: choose a repository with "
            "safetensors weights, or convert the checkpoint and give its local folder"
        ) from None


def fetch_hub_tokenizer(repo_id: str) -> HubSnapshot:
    """Fetch only a tokenizer from the Hub (``AutoTokenizer.from_pretrained``, no custom code)."""
    anchor = None
    for name in TOKENIZER_FILES:
        try:
            anchor = _hub_file(repo_id, name, None, "tokenizer")
            break
        except _NotOnHub:
            continue
        except _NotCached as exc:
            if name == TOKENIZER_FILES[-1]:
                raise DataError(str(exc)) from None
    if anchor is None:
        raise DataError(
            f"Hub repository {repo_id} has no tokenizer (no {' or '.join(TOKENIZER_FILES)}); "
            "give a tokenizer folder or another id with --tokenizer"
        )
    _fetch_tokenizer_files(repo_id, anchor.parent.name)
    return HubSnapshot(repo_id, anchor.parent.name, anchor.parent)


def _fetch_tokenizer_files(repo_id: str, revision: str) -> None:
    """Let transformers fetch every file the tokenizer needs (they land in the snapshot folder)."""
    from transformers import AutoTokenizer

    try:
        AutoTokenizer.from_pretrained(
            repo_id, revision=revision, trust_remote_code=False, local_files_only=hub_offline()
        )
    except (OSError, ValueError) as exc:
        raise DataError(
            f"Hub repository {repo_id}: its tokenizer cannot be loaded without custom code or is "
            f"missing ({_first_line(exc)}); give a tokenizer with --tokenizer (a folder or a Hub id)" + _offline_hint()
        ) from None


class _NotOnHub(Exception):
    """The repository (reached online) has no such file."""


class _NotCached(Exception):
    """The file is not in the cache and cannot be downloaded (offline, or the Hub unreachable)."""


def _hub_file(repo_id: str, filename: str, revision: str | None, what: str, strict: bool = False) -> Path:
    """One file of a Hub repository, from the cache, downloaded first unless ``HF_HUB_OFFLINE`` is set.

    Raises:
        _NotOnHub / _NotCached (DataError instead with ``strict``, and always for config.json);
        DataError: an unknown, gated or private repository, or an unknown revision.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    offline = hub_offline()
    strict = strict or filename == "config.json"
    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision, local_files_only=offline))
    except GatedRepoError:
        raise DataError(
            f"Hub {what} {repo_id} is gated: accept its terms on the Hub and log in "
            "(hf auth login), or give a local folder"
        ) from None
    except RepositoryNotFoundError:
        raise DataError(
            f"{repo_id} is not a model preset ({', '.join(PRESETS)}), not a local folder, and not a "
            "Hugging Face Hub repository you can read; check the name"
        ) from None
    except RevisionNotFoundError:
        raise DataError(f"Hub {what} {repo_id} has no revision {revision}") from None
    except LocalEntryNotFoundError:
        reason = (
            "HF_HUB_OFFLINE=1 forbids downloading it; unset HF_HUB_OFFLINE where the Hub is reachable to "
            "fetch it once (it is cached after)"
            if offline
            else "the Hub could not be reached; check the network or proxy settings"
        )
        message = (
            f"{what} {repo_id!r} is not a preset or a local folder, and its {filename} is not in the "
            f"Hugging Face cache: {reason}; or give a local {what} folder"
        )
        if strict:
            raise DataError(message) from None
        raise _NotCached(message) from None
    except EntryNotFoundError:  # reached online: the repository has no such file
        if strict:
            raise DataError(f"Hub {what} {repo_id} has no {filename}; is it a transformers {what}?") from None
        raise _NotOnHub(filename) from None


def _offline_hint() -> str:
    return " (HF_HUB_OFFLINE=1: only cached files are used)" if hub_offline() else ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def build_model(
    spec: str = DEFAULT_PRESET,
    vocab_size: int | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    dtype: torch.dtype = torch.float32,
    eos_token_id: int = 0,
    pad_token_id: int | None = None,
    attn_implementation: str = "eager",
):
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


def check_no_custom_code(config_file: Path, where: str) -> None:
    """DataError when a model's config.json needs code of its own: an ``auto_map`` entry for the model
    (loading the built-in class instead would silently drop that code) or a ``model_type`` transformers
    does not know. DELT Studio never runs code from a model folder (``trust_remote_code`` stays off)."""
    import json

    from transformers import CONFIG_MAPPING

    try:
        raw = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # missing or unreadable: AutoConfig says so
    if not isinstance(raw, dict):
        return
    mapped = [k for k in (raw.get("auto_map") or {}) if k.startswith("AutoModel")]
    model_type = raw.get("model_type")
    if mapped or (model_type and model_type not in CONFIG_MAPPING):
        what = f"maps {mapped[0]} to code of its own (auto_map)" if mapped else f"has model_type {model_type!r}"
        raise DataError(
            f"{where}: its config.json {what}, which needs the model's own Python code; DELT Studio never "
            "runs code that comes with a model (trust_remote_code stays off): use a model whose architecture "
            "transformers has built in (e.g. Llama, Mistral, GPT-2, Qwen2)"
        )


def load_model_dir(path: str | Path, dtype: torch.dtype = torch.float32, attn_implementation: str = "eager"):
    """Load a local causal LM with safetensors weights; no remote code, no network."""
    from transformers import AutoConfig, AutoModelForCausalLM

    path = Path(path)
    check_no_custom_code(path / "config.json", str(path))
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
            str(path),
            local_files_only=True,
            trust_remote_code=False,
            use_safetensors=True,
            dtype=dtype,
            attn_implementation=attn_implementation,
        )
    except (OSError, ValueError) as exc:
        raise DataError(f"could not load a causal LM from {path}: {exc}") from exc


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
