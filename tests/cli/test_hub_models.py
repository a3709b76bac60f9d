"""Hub model and tokenizer ids (``--model owner/name``) for scoring and training.

The Hub is never reached: a Hugging Face cache is laid out by hand (what a download leaves behind) and
the commands run with HF_HUB_OFFLINE=1, so they take the same path as after a real download; the online
branches run against a mocked ``hf_hub_download``.
"""

import json
import os
import subprocess
import sys
import types

import polars as pl
import pytest

from delt_engine.data.corpus import read_records, read_score_meta
from delt_engine.errors import DataError
from delt_engine.models import presets
from tests.conftest import ROOT

pytestmark = pytest.mark.usefixtures("one_torch_thread")

COMMIT = "0123456789abcdef0123456789abcdef01234567"
TEXTS = [
    "the cat sat on the mat",
    "a dog ran to the park",
    "the sun is warm today",
    "birds sing in the tree",
    "we read a book at night",
    "rain fell on the roof",
    "she wrote a short letter",
    "the river runs north",
]


def snapshot_dir(cache, repo_id):
    return cache / f"models--{repo_id.replace('/', '--')}" / "snapshots" / COMMIT


def lay_out(cache, repo_id):
    """An empty snapshot of ``repo_id`` at COMMIT, with refs/main pointing to it (as a download leaves it)."""
    folder = snapshot_dir(cache, repo_id)
    folder.mkdir(parents=True)
    (folder.parents[1] / "refs").mkdir()
    (folder.parents[1] / "refs" / "main").write_text(COMMIT)
    return folder


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    """A Hugging Face cache holding owner/tiny (model + tokenizer), owner/sharded (weights in shards),
    owner/bin-only (pickled weights only) and owner/custom (needs remote code)."""
    from delt_engine.data.tokenizer import train_tokenizer
    from delt_engine.models.presets import build_model

    cache = tmp_path_factory.mktemp("hf") / "hub"
    tok = train_tokenizer(TEXTS * 4, vocab_size=300)
    model = build_model(
        "tiny-test",
        vocab_size=len(tok),
        seed=3,
        device="cpu",
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    for repo, shard in (("owner/tiny", None), ("owner/sharded", "40KB")):
        folder = lay_out(cache, repo)
        model.save_pretrained(str(folder), **({"max_shard_size": shard} if shard else {}))
        tok.save_pretrained(str(folder))
    assert (snapshot_dir(cache, "owner/sharded") / "model.safetensors.index.json").is_file()
    folder = lay_out(cache, "owner/bin-only")
    model.config.save_pretrained(str(folder))
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    tok.save_pretrained(str(folder))
    folder = lay_out(cache, "owner/custom")
    (folder / "config.json").write_text(
        json.dumps(
            {
                "model_type": "my-own-arch",
                "architectures": ["MyForCausalLM"],
                "auto_map": {"AutoConfig": "configuration_my.MyConfig"},
            }
        )
    )
    return cache


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    return path


def cli(*args, cache, offline="1"):
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": offline}
    return subprocess.run(
        [sys.executable, "-m", "delt_engine", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


SCORE = ["--method", "perplexity", "--device", "cpu", "--max-length", "16", "--batch-size", "4"]


def test_score_with_a_hub_id_equals_the_local_folder(hub_cache, corpus, tmp_path):
    by_id, by_dir = tmp_path / "id.jsonl", tmp_path / "dir.jsonl"
    done = cli("score", "--input", corpus, "--model", "owner/tiny", "--output", by_id, *SCORE, cache=hub_cache)
    assert done.returncode == 0, done.stderr
    done = cli(
        "score",
        "--input",
        corpus,
        "--model",
        snapshot_dir(hub_cache, "owner/tiny"),
        "--output",
        by_dir,
        *SCORE,
        cache=hub_cache,
    )
    assert done.returncode == 0, done.stderr
    a, b = read_records(by_id), read_records(by_dir)
    assert a["score"].to_list() == b["score"].to_list() and a["score"].null_count() == 0
    settings = read_score_meta(by_id)["settings"]
    assert settings["model_id"] == "owner/tiny" and settings["model_revision"] == COMMIT
    assert settings["model"] == str(snapshot_dir(hub_cache, "owner/tiny"))


def test_sharded_weights_and_a_hub_tokenizer(hub_cache, corpus, tmp_path):
    out = tmp_path / "s.parquet"
    done = cli(
        "score",
        "--input",
        corpus,
        "--model",
        "owner/sharded",
        "--tokenizer",
        "owner/tiny",
        "--output",
        out,
        *SCORE,
        cache=hub_cache,
    )
    assert done.returncode == 0, done.stderr
    reference = tmp_path / "r.parquet"
    assert (
        cli(
            "score", "--input", corpus, "--model", "owner/tiny", "--output", reference, *SCORE, cache=hub_cache
        ).returncode
        == 0
    )
    assert pl.read_parquet(out)["score"].to_list() == pytest.approx(pl.read_parquet(reference)["score"].to_list())
    assert read_score_meta(out)["settings"]["tokenizer_id"] == "owner/tiny"


def test_train_with_a_hub_id_records_local_paths_and_provenance(hub_cache, corpus, tmp_path):
    run = tmp_path / "run"
    done = cli(
        "train",
        "--input",
        corpus,
        "--run-dir",
        run,
        "--model",
        "owner/tiny",
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--max-length",
        "16",
        "--device",
        "cpu",
        cache=hub_cache,
    )
    assert done.returncode == 0, done.stderr
    config = json.loads((run / "config.json").read_text())
    folder = str(snapshot_dir(hub_cache, "owner/tiny"))
    assert config["model"] == folder and config["tokenizer"] == folder  # the model's own tokenizer
    assert config["provenance"] == {"model_id": "owner/tiny", "model_revision": COMMIT}
    assert json.loads((run / "summary.json").read_text())["state"] == "done"


@pytest.mark.parametrize(
    "model, message",
    [
        ("owner/not-cached", "config.json is not in the Hugging Face cache: HF_HUB_OFFLINE=1 forbids downloading it"),
        ("owner/bin-only", "has pickled .bin weights and no safetensors; DELT loads safetensors only"),
        ("owner/custom", "trust_remote_code"),
    ],
)
def test_unusable_hub_models_are_one_line_errors(hub_cache, corpus, tmp_path, model, message):
    done = cli("score", "--input", corpus, "--model", model, "--output", tmp_path / "o.jsonl", *SCORE, cache=hub_cache)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ") and message in done.stderr
    assert not (tmp_path / "o.jsonl").exists()


def test_offline_default_unchanged_for_presets_and_methods_without_a_model(hub_cache, corpus, tmp_path):
    # a model-free method never resolves --model, so even an uncached id costs nothing
    done = cli(
        "score",
        "--input",
        corpus,
        "--method",
        "length",
        "--model",
        "owner/not-cached",
        "--output",
        tmp_path / "len.jsonl",
        cache=hub_cache,
    )
    assert done.returncode == 0, done.stderr
    assert not (hub_cache / "models--owner--not-cached").exists()


def test_hub_id_shape():
    assert presets.looks_like_hub_id("owner/name") and presets.looks_like_hub_id("Qwen/Qwen2.5-0.5B")
    assert not presets.looks_like_hub_id("tiny-test")  # a preset
    assert not presets.looks_like_hub_id("tests/cli")  # an existing folder
    assert not presets.looks_like_hub_id("tests/missing-model")  # under an existing folder: a mistyped path
    assert not presets.looks_like_hub_id("a/b/c") and not presets.looks_like_hub_id("./x")
    assert presets.resolve_model_spec("cpu-demo") == ("cpu-demo", None)
    assert presets.resolve_tokenizer_spec(None) == (None, None)


def http_error(cls, message):
    return cls(message, response=types.SimpleNamespace(headers={}, request=None))


def test_online_errors_from_a_mocked_hub(monkeypatch, tmp_path):
    """With the Hub reachable (mocked): an unknown id and a repository without safetensors."""
    import huggingface_hub
    from huggingface_hub.errors import RemoteEntryNotFoundError, RepositoryNotFoundError

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    folder = lay_out(tmp_path, "owner/pickled")
    (folder / "config.json").write_text(
        json.dumps(
            {
                "model_type": "mistral",
                "architectures": ["MistralForCausalLM"],
                "vocab_size": 300,
                "hidden_size": 32,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "intermediate_size": 64,
            }
        )
    )
    asked = []

    def fake_download(repo_id, filename, revision=None, local_files_only=False):
        asked.append((repo_id, filename, revision, local_files_only))
        if repo_id == "nobody/nothing":
            raise http_error(RepositoryNotFoundError, "404")
        if filename == "config.json":
            return str(folder / "config.json")
        raise http_error(RemoteEntryNotFoundError, f"no {filename}")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    with pytest.raises(DataError, match="not a Hugging Face Hub repository you can read"):
        presets.resolve_model_spec("nobody/nothing")
    asked.clear()
    with pytest.raises(DataError, match="has no safetensors weights"):
        presets.resolve_model_spec("owner/pickled", with_tokenizer=False)
    assert [a[1] for a in asked] == ["config.json", "model.safetensors.index.json", "model.safetensors"]
    assert all(a[3] is False for a in asked)  # online: downloads allowed
    assert all(a[2] == COMMIT for a in asked[1:])  # every file from the commit the config came from


@pytest.mark.parametrize(
    "patch, words",
    [
        ({"model_type": "my-own-arch"}, "has model_type 'my-own-arch', which needs the model's own Python code"),
        ({"auto_map": {"AutoModelForCausalLM": "modeling_my.MyLM"}}, "maps AutoModelForCausalLM to code of its own"),
    ],
)
def test_local_model_folders_that_need_their_own_code_are_refused(hub_cache, tmp_path, patch, words):
    """A built-in model_type with an auto_map for the model would load the built-in class and silently drop
    the folder's code; an unknown model_type cannot load at all. Both say why and what to use instead."""
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(snapshot_dir(hub_cache, "owner/tiny"), folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **patch}))
    with pytest.raises(DataError, match="trust_remote_code stays off") as info:
        presets.load_model_dir(folder)
    assert words in str(info.value)
    assert presets.load_model_dir(snapshot_dir(hub_cache, "owner/tiny")).config.model_type == config["model_type"]
