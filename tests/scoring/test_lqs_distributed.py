"""LQS (and perplexity) under torchrun (2 processes, gloo on CPU) equal the single-process result.

Every rank computes trajectory and co-state; contributions are sharded by chunk; rank 0 returns the
merged table and the other rank returns None. Checked through a small script that calls
``score_lqs`` and through the ``score`` CLI.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from delt_engine.scoring import ScoreContext
from delt_engine.scoring import lqs as lqs_module

ROOT = Path(__file__).resolve().parents[2]
TEXTS = [
    f"The {a} cat sat on the {b} mat near bird {i}."
    for i, (a, b) in enumerate(zip(["red", "old", "small", "grey", "lazy"] * 3, ["blue", "warm", "soft"] * 5))
]
TEXTS += ["zq xj vv kk pp qq " * 3, "Click here! Subscribe now! " * 3, "mat mat the the cat"]
TARGET = ["The old cat sat on the warm mat.", "A small bird sat near the grey cat."]
OPTIONS = {"steps": 4, "delta": 2, "warmup_steps": 2, "eta": 0.3, "chunk_size": 3, "vocab_size": 320}
SETTINGS = dict(model="tiny-test", device="cpu", max_length=24, batch_size=4, seed=0)

SCRIPT = """
import json, os, sys
import polars as pl
sys.path.insert(0, {root!r})
from delt_engine.scoring import ScoreContext
from delt_engine.scoring.lqs import score_lqs
spec = json.load(open(sys.argv[1]))
frame = pl.DataFrame({{"id": [f"s{{i}}" for i in range(len(spec["texts"]))], "text": spec["texts"]}})
out = score_lqs(ScoreContext(frame=frame, target_texts=spec["target"], options=spec["options"], **spec["settings"]))
rank = int(os.environ.get("RANK", "0"))
if rank == 0:
    out.write_parquet(sys.argv[2])
else:
    open(sys.argv[2] + f".rank{{rank}}", "w").write("none" if out is None else "table")
"""


def torchrun(tmp_path: Path, nproc: int, *args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def single_process():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun worker (OMP_NUM_THREADS=1), so kernels sum in one order
    try:
        lqs_module._CACHE.clear()
        frame = pl.DataFrame({"id": [f"s{i}" for i in range(len(TEXTS))], "text": TEXTS})
        return lqs_module.score_lqs(ScoreContext(frame=frame, target_texts=TARGET, options=dict(OPTIONS), **SETTINGS))
    finally:
        torch.set_num_threads(threads)


def assert_same_scores(got: pl.DataFrame, expected: pl.DataFrame) -> None:
    got = got.join(expected.select("id"), on="id", how="semi")
    assert sorted(got["id"].to_list()) == sorted(expected["id"].to_list())
    got = expected.select("id").join(got, on="id", how="left", maintain_order="left")
    for col in ("lqs", "pds", "quality", "learnability"):
        np.testing.assert_allclose(got[col].to_numpy(), expected[col].to_numpy(), rtol=1e-6, atol=1e-9, err_msg=col)
    np.testing.assert_allclose(
        np.array(got["grad_norm"].to_list()), np.array(expected["grad_norm"].to_list()), rtol=1e-6
    )


def test_two_processes_equal_one(tmp_path, single_process):
    (tmp_path / "run.py").write_text(SCRIPT.format(root=str(ROOT)))
    spec = {"texts": TEXTS, "target": TARGET, "options": OPTIONS, "settings": SETTINGS}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    torchrun(tmp_path, 2, "run.py", "spec.json", "out.parquet")
    assert (tmp_path / "out.parquet.rank1").read_text() == "none"  # only rank 0 returns the table
    got = pl.read_parquet(tmp_path / "out.parquet")
    assert got["id"].to_list() == single_process["id"].to_list()  # merged back into corpus order
    assert_same_scores(got, single_process)
    # same kernels on one thread each: the shards are in fact bit-identical to the single process
    assert got["lqs"].to_list() == single_process["lqs"].to_list()


def test_score_cli_under_torchrun(tmp_path, single_process):
    (tmp_path / "corpus.jsonl").write_text(
        "".join(json.dumps({"id": f"s{i}", "text": t}) + "\n" for i, t in enumerate(TEXTS))
    )
    (tmp_path / "target.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in TARGET))
    sets = [x for k, v in OPTIONS.items() for x in ("--set", f"{k}={v}")]
    torchrun(
        tmp_path,
        2,
        "-m",
        "delt_engine",
        "score",
        "--input",
        "corpus.jsonl",
        "--method",
        "lqs",
        "--target",
        "target.jsonl",
        "--output",
        "out.parquet",
        "--model",
        "tiny-test",
        "--device",
        "cpu",
        "--max-length",
        "24",
        "--batch-size",
        "4",
        "--seed",
        "0",
        *sets,
    )
    got = pl.read_parquet(tmp_path / "out.parquet")
    assert got.height == len(TEXTS) and got["score"].to_list() == got["lqs"].to_list()
    assert_same_scores(got, single_process)


def test_perplexity_is_sharded_under_torchrun(tmp_path):
    from delt_engine.scoring.runner import run_scoring

    (tmp_path / "corpus.jsonl").write_text(
        "".join(json.dumps({"id": f"s{i}", "text": t}) + "\n" for i, t in enumerate(TEXTS))
    )
    args = [
        "--model",
        "tiny-test",
        "--device",
        "cpu",
        "--max-length",
        "24",
        "--batch-size",
        "4",
        "--seed",
        "0",
        "--set",
        "vocab_size=320",
    ]
    torchrun(
        tmp_path,
        2,
        "-m",
        "delt_engine",
        "score",
        "--input",
        "corpus.jsonl",
        "--method",
        "perplexity",
        "--output",
        "out.parquet",
        *args,
    )
    got = pl.read_parquet(tmp_path / "out.parquet")
    frame = pl.DataFrame({"id": [f"s{i}" for i in range(len(TEXTS))], "text": TEXTS})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        expected = run_scoring(
            frame,
            "perplexity",
            model="tiny-test",
            device="cpu",
            max_length=24,
            batch_size=4,
            seed=0,
            options={"vocab_size": 320},
        ).scores
    finally:
        torch.set_num_threads(threads)
    assert got["id"].to_list() == expected["id"].to_list()
    np.testing.assert_allclose(got["score"].to_numpy(), expected["score"].to_numpy(), rtol=1e-6)
    assert got["score"].n_unique() > 10  # every sample got its own value back, none left at zero
