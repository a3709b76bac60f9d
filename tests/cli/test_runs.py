"""`runs list|show|cancel|export|report` and `compare` through the real CLI on a synthetic workspace."""

import json
import os
import subprocess
import sys
import time

import polars as pl
import pytest

from delt_engine.errors import ConfigError
from delt_engine.experiments.spec import demo_spec, parse_spec
from delt_engine.fileio import append_jsonl, write_json
from delt_engine.jobs.protocol import read_status, write_status
from tests.conftest import ROOT


def cli(*args, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "delt_engine", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _run(ws, run_id, arm, seed, cmp_id, shift):
    d = ws / "runs" / run_id
    d.mkdir(parents=True)
    write_json(
        d / "config.json",
        {
            "input": "ordered.parquet",
            "model": "tiny-test",
            "seed": seed,
            "provenance": {
                "comparison": cmp_id,
                "arm": arm,
                "seed": seed,
                "ordering": {"method": arm.split()[0], "label": arm},
            },
        },
    )
    write_status(d, "done", pid=12345)
    for step in (1, 2, 3):
        tokens = 1000 * step + seed
        append_jsonl(d / "metrics.jsonl", {"step": step, "tokens": tokens, "train_loss": 7 - step + shift})
        append_jsonl(
            d / "metrics.jsonl",
            {
                "step": step,
                "tokens": tokens,
                "val_loss": 7.2 - step + shift,
                "target_loss": 7.5 - step + shift + 0.05 * seed,
                "bench_acc": 0.3 - shift / 10,
                "bench_acc_norm": 0.32 - shift / 10,
                "bench": {"t": {"acc": 0.3}},
            },
        )
    write_json(d / "summary.json", {"state": "done", "steps": 3})


@pytest.fixture
def workspace(tmp_path):
    ws = tmp_path / "ws"
    runs = []
    for arm, shift in (("shuffle", 0.0), ("folding L=3", -0.25)):
        for seed in (0, 1):
            run_id = f"run-2025010{seed}-{arm.split()[0]}"
            _run(ws, run_id, arm, seed, "cmp-1", shift)
            runs.append({"id": run_id, "arm": arm, "seed": seed})
    write_json(
        ws / "comparisons" / "cmp-1" / "comparison.json",
        {"id": "cmp-1", "name": "synthetic", "baseline": "shuffle", "runs": runs},
    )
    other = ws / "runs" / "run-other"
    other.mkdir()
    write_json(other / "config.json", {"model": "cpu-demo", "seed": 3})
    return ws


def test_runs_list(workspace):
    out = cli("runs", "list", "--workspace", workspace)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:4] == ["id", "state", "progress", "arm"] and len(lines) == 6
    assert any(line.startswith("run-other") and " created " in line for line in lines)
    assert all("done" in line for line in lines[1:] if "cmp-1" in line)
    only = cli("runs", "list", "--workspace", workspace, "--comparison", "cmp-1", "--json")
    rows = [json.loads(line) for line in only.stdout.splitlines()]
    assert len(rows) == 4 and {r["arm"] for r in rows} == {"shuffle", "folding L=3"}
    assert all(r["last_metrics"]["step"] == 3 for r in rows)


def test_runs_list_env_workspace_and_empty(tmp_path):
    env = {**os.environ, "DELT_WORKSPACE": str(tmp_path / "none")}
    out = subprocess.run(
        [sys.executable, "-m", "delt_engine", "runs", "list"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.startswith("no runs in")


def test_runs_show(workspace):
    out = cli("runs", "show", "run-20250101-folding", "--workspace", workspace)
    assert out.returncode == 0, out.stderr
    assert "state: done" in out.stdout and "metrics: 6 records" in out.stdout
    assert '"arm": "folding L=3"' in out.stdout and '"steps": 3' in out.stdout
    missing = cli("runs", "show", "nope", "--workspace", workspace)
    assert missing.returncode == 2 and missing.stderr.startswith("error: run 'nope' not found")


def test_runs_report_and_export(workspace, tmp_path):
    out = cli("runs", "report", "cmp-1", "--workspace", workspace)
    assert out.returncode == 0, out.stderr
    assert "folding L=3" in out.stdout and "target loss" in out.stdout
    # folding is lower by exactly 0.25 on both seeds: a zero-variance paired difference, no test
    assert (
        "- folding L=3 vs shuffle on target loss: not resolved with 2 seeds; the difference is -0.2500 in each "
        "of the 2 seeds; with no spread between seeds there is no test, run more seeds"
    ) in out.stdout
    assert "no difference" not in out.stdout and " beats " not in out.stdout
    exp = cli("runs", "export", "cmp-1", "--out", tmp_path / "exp", "--workspace", workspace)
    assert exp.returncode == 0, exp.stderr
    curves = pl.read_csv(tmp_path / "exp" / "curves.csv")
    assert curves.height == 24 and {"run", "arm", "seed", "step", "tokens", "target_loss", "bench.t.acc"} <= set(
        curves.columns
    )
    summary = json.loads((tmp_path / "exp" / "summary.json").read_text())
    assert summary["arms"]["folding L=3"]["target_loss"]["mean"] == pytest.approx(4.5 - 0.25 + 0.025)
    assert (tmp_path / "exp" / "curves_by_arm.csv").exists()
    bad = cli("runs", "export", "cmp-nope", "--out", tmp_path / "x", "--workspace", workspace)
    assert bad.returncode == 2 and "comparison 'cmp-nope' not found" in bad.stderr


def _three_seed_comparison(ws):
    """cmp-3: folding lower than shuffle on every seed (resolved), sorting within its spread (unresolved)."""
    runs = []
    shifts = {"shuffle": (0.0, 0.0, 0.0), "folding L=3": (-0.25, -0.23, -0.26), "sorting": (0.1, -0.1, 0.05)}
    for arm, per_seed in shifts.items():
        for seed, shift in enumerate(per_seed):
            run_id = f"run-3-{arm.split()[0]}-{seed}"
            _run(ws, run_id, arm, seed, "cmp-3", shift)
            runs.append({"id": run_id, "arm": arm, "seed": seed})
    write_json(
        ws / "comparisons" / "cmp-3" / "comparison.json",
        {"id": "cmp-3", "name": "three seeds", "baseline": "shuffle", "runs": runs},
    )
    return shifts


def test_runs_report_json_verdicts(tmp_path):
    from delt_engine.experiments.verdicts import JSON_KEYS, holm

    ws = tmp_path / "ws"
    shifts = _three_seed_comparison(ws)
    out = cli("runs", "report", "cmp-3", "--workspace", ws, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)  # one JSON object, nothing else on stdout
    assert report["baseline"] == "shuffle" and set(report["arms"]) == set(shifts)
    found = {(v["arm"], v["metric"]): v for v in report["verdicts"]}
    assert set(found) == {(a, m) for a in ("folding L=3", "sorting") for m in ("target_loss", "bench_acc_norm")}
    assert all(list(v) == list(JSON_KEYS) for v in report["verdicts"])
    assert all(
        v["verdict"] in ("better", "worse", "unresolved") and v["baseline"] == "shuffle" and v["n_seeds"] == 3
        for v in report["verdicts"]
    )
    # folding: target-loss differences -0.25, -0.23, -0.26 (the seed terms cancel); t on 2 dof
    d = [-0.25, -0.23, -0.26]
    mean, sd = sum(d) / 3, (sum((x - sum(d) / 3) ** 2 for x in d) / 2) ** 0.5
    t = mean / (sd / 3**0.5)
    p = 1 - abs(t) / (2 + t * t) ** 0.5
    fold = found[("folding L=3", "target_loss")]
    assert fold["delta"] == pytest.approx(mean) and fold["p"] == pytest.approx(p, rel=1e-6)
    assert fold["ci_low"] < mean < fold["ci_high"] < 0
    # the accuracy differences are the same numbers / -10, so the same p; four tests in the Holm family
    assert found[("folding L=3", "bench_acc_norm")]["p"] == pytest.approx(p, rel=1e-6)
    assert fold["p_adjusted"] == pytest.approx(4 * p, rel=1e-6)
    assert [v["p_adjusted"] for v in report["verdicts"]] == pytest.approx(holm([v["p"] for v in report["verdicts"]]))
    assert fold["verdict"] == "better" and found[("folding L=3", "bench_acc_norm")]["verdict"] == "better"
    assert fold["seeds_needed"] is None
    sort = found[("sorting", "target_loss")]
    assert sort["verdict"] == "unresolved" and sort["p"] > 0.05 and sort["p_adjusted"] >= sort["p"]
    assert sort["seeds_needed"] == ">1000" or sort["seeds_needed"] > 3
    assert not any("no difference" in t for t in report["verdict_texts"])

    text = cli("runs", "report", "cmp-3", "--workspace", ws)
    assert text.returncode == 0, text.stderr
    assert "Holm-adjusted across 4 tests" in text.stdout and "seeds needed" in text.stdout
    assert "- folding L=3 is better than shuffle on target loss (Δ -0.2467" in text.stdout
    assert "- sorting vs shuffle on target loss: not resolved with 3 seeds (Δ +0.0167" in text.stdout
    assert "no difference" not in text.stdout and " beats " not in text.stdout


def test_runs_cancel_running_job(workspace):
    d = workspace / "runs" / "run-live"
    d.mkdir()
    write_json(d / "config.json", {"model": "tiny-test"})
    code = (
        "import os, sys, time\nfrom delt_engine.jobs.protocol import StopFlag, write_status\n"
        "d = sys.argv[1]\nstop = StopFlag(d)\nwrite_status(d, 'running', pid=os.getpid())\n"
        "while not stop(): time.sleep(0.02)\nwrite_status(d, 'cancelled', message='stopped by flag')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(d)], cwd=ROOT, start_new_session=True)
    try:
        for _ in range(500):
            if read_status(d).get("state") == "running":
                break
            time.sleep(0.02)
        out = cli("runs", "cancel", "run-live", "--workspace", workspace, "--grace", 5)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "run run-live: cancelled"
        assert read_status(d)["message"] == "stopped by flag" and proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    again = cli("runs", "cancel", "run-20250100-shuffle", "--workspace", workspace)
    assert again.returncode == 1 and "done" in again.stdout  # a finished run stays done


def test_compare_rejects_bad_spec(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"corpus": "demo", "orderings": [{"method": "spiral"}]}))
    out = cli("compare", "--spec", spec, "--workspace", tmp_path / "ws")
    assert out.returncode == 2 and "needs a 'method' in shuffle, sorting, folding, zigzag" in out.stderr
    seeds = cli("compare", "--demo", "--seeds", "a,b", "--workspace", tmp_path / "ws")
    assert seeds.returncode == 2 and "--seeds 'a,b' must be integers" in seeds.stderr
    train = cli("compare", "--demo", "--train", "stepz=3", "--workspace", tmp_path / "ws")
    assert train.returncode == 2 and "unknown run config key(s) stepz" in train.stderr
    scorer = cli("compare", "--demo", "--scorer", "magic", "--workspace", tmp_path / "ws")
    assert scorer.returncode == 2 and "scoring method 'magic' is not known" in scorer.stderr
    assert not (tmp_path / "ws" / "runs").exists()  # nothing was prepared


# ----------------------------------------------------------------------------- spec parsing


def test_parse_spec_and_labels(tmp_path):
    (tmp_path / "c.jsonl").write_text('{"text": "a"}\n')
    path = tmp_path / "spec.json"
    path.write_text(
        json.dumps(
            {
                "name": "x",
                "corpus": "c.jsonl",
                "orderings": ["shuffle", {"method": "folding"}, {"method": "sorting", "descending": True}],
                "seeds": [0, 2],
                "train": {"steps": 10},
            }
        )
    )
    spec = parse_spec(path)
    assert spec.corpus == str(tmp_path / "c.jsonl")  # relative to the spec file
    assert spec.labels == ["shuffle", "folding L=3", "sorting desc"]
    assert spec.seeds == (0, 2) and spec.scorer.method == "length" and spec.scorer.to_dict() == {"method": "length"}
    demo = parse_spec(demo_spec())
    assert demo.labels == ["shuffle", "sorting", "folding L=3"] and demo.seeds == (0, 1, 2)


@pytest.mark.parametrize(
    "bad,match",
    [
        ({"seeds": [0, 0]}, "distinct"),
        ({"seeds": []}, "non-empty"),
        ({"orderings": [{"method": "folding", "layers": 0}]}, "layers"),
        ({"orderings": ["shuffle", "shuffle"]}, "the same label"),
        ({"train": {"seed": 3}}, "train.seed is set by the comparison"),
        ({"scorer": {"method": "nope"}}, "not known"),
        ({"scorer": {}}, "score_field"),
        ({"selection": {"method": "best"}}, "top-k"),
        ({"orderings": ["shuffle"], "arms": [{"ordering": "shuffle"}]}, "not both"),
        (
            {"arms": [{"ordering": "shuffle", "label": "Arm A"}, {"ordering": "sorting", "label": "arm-a"}]},
            "'Arm A' and 'arm-a' have the same file name",
        ),
        ({"arms": [{"ordering": "shuffle", "colour": "red"}]}, "unknown key"),
        ({"orderings": ["shuffle"], "baseline": "folding"}, "baseline='folding' is not one of the arms"),
        ({"eval_target_fraction": 1.0}, "eval_target_fraction"),
        ({"colour": "red"}, "unknown spec key"),
        ({"validation_fraction": 0.9}, "validation_fraction"),
        ({"train": {"stepz": 3}}, "unknown run config key"),
        ({"train": {"lr": -1}}, "lr=-1 is out of range"),
        ({"dedup": {"mode": "fuzzy"}}, "dedup .* needs a 'mode' in exact, near"),
        ({"dedup": {"mode": "near", "threshold": 2}}, "threshold=2"),
        ({"dedup": {"mode": "edit", "threshold": 0.5}}, "too low for mode 'edit'"),
        ({"dedup": {"mode": "exact", "k": 1}}, "unknown dedup key"),
    ],
)
def test_parse_spec_errors(bad, match):
    with pytest.raises(ConfigError, match=match):
        parse_spec({"corpus": "demo", **({} if "arms" in bad else {"orderings": ["shuffle"]}), **bad})


def test_failed_preparation_leaves_no_comparison(tmp_path):
    from delt_engine.errors import DataError
    from delt_engine.experiments.prepare import prepare_comparison
    from delt_engine.workspace.layout import Workspace

    ws = Workspace(tmp_path / "ws")
    with pytest.raises(DataError):
        prepare_comparison({"corpus": str(tmp_path / "missing.jsonl"), "orderings": ["shuffle"]}, ws)
    assert list(ws.comparisons.iterdir()) == [] and ws.list_runs() == []


def test_duplicates_are_dropped_before_selection(tmp_path):
    from delt_engine.data.corpus import load_corpus
    from delt_engine.experiments.prepare import prepare_comparison
    from delt_engine.experiments.spec import describe_data
    from delt_engine.workspace.layout import Workspace

    texts = [f"document number {i} " + "word " * i for i in range(20)]
    rows = [{"id": f"d{i}", "text": t} for i, t in enumerate(texts)]
    rows += [{"id": f"copy{i}", "text": texts[i].upper()} for i in (3, 7, 9)]  # same text once normalised
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {
        "corpus": str(tmp_path / "c.jsonl"),
        "validation_fraction": 0.0,
        "dedup": {"mode": "exact"},
        "selection": {"method": "top-k", "k": 10},
        "orderings": ["sorting"],
        "train": {"steps": 1},
    }
    cmp = prepare_comparison(spec, Workspace(tmp_path / "ws"))
    data = cmp.manifest["arm_data"]["sorting"]
    assert data["n_duplicates"] == 3 and data["n_selected"] == 10
    assert describe_data(cmp.manifest) == (
        "23 training documents · scored by length · 3 exact duplicates dropped · top-k 10 kept 10"
    )
    ids = load_corpus(cmp.manifest["runs"][0]["input"]).frame["id"].to_list()
    # length keeps the shortest: without dedup the copies of d3, d7 and d9 would take three of the ten places
    assert sorted(ids) == sorted(f"d{i}" for i in range(10))
    plain = prepare_comparison({**spec, "dedup": None}, Workspace(tmp_path / "ws"))
    ids = load_corpus(plain.manifest["runs"][0]["input"]).frame["id"].to_list()
    assert plain.manifest["arm_data"]["sorting"]["n_duplicates"] == 0 and {"copy3", "copy7"} <= set(ids)  # tied: kept


# ----------------------------------------------------------------------------- end to end (real training)


TINY_TRAIN = {"model": "tiny-test", "batch_size": 8, "max_length": 32, "vocab_size": 300, "device": "cpu"}


def _tiny_corpus(folder):
    import random

    rng = random.Random(0)
    words = "the cat sat on a mat and a dog ran far into the big green field under the warm sun".split()
    docs = [
        {"id": f"d{i}", "text": " ".join(rng.choice(words) for _ in range(rng.randint(3, 30))), "is_noise": i % 10 == 0}
        for i in range(60)
    ]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / "target.jsonl").write_text(
        "".join(json.dumps({"text": " ".join(words[i : i + 8])}) + "\n" for i in range(8))
    )
    items = [
        {"task": f"t{i % 2}", "context": "the cat", "choices": ["sat on a mat", "green sun"], "answer": 0}
        for i in range(6)
    ]
    (folder / "bench.jsonl").write_text("".join(json.dumps(it) + "\n" for it in items))


def test_compare_end_to_end_no_wait(tmp_path):
    """compare --no-wait prepares once, a detached launcher trains 2 orderings x 2 seeds, report reads them."""
    from delt_engine.experiments.prepare import prepare_comparison
    from delt_engine.fileio import read_json
    from delt_engine.workspace.layout import Workspace

    _tiny_corpus(tmp_path)
    spec = {
        "name": "tiny",
        "corpus": "corpus.jsonl",
        "target": "target.jsonl",
        "benchmark": "bench.jsonl",
        "scorer": {"method": "length"},
        "selection": {"method": "top-r", "ratio": 0.8},
        "orderings": ["shuffle", {"method": "folding", "layers": 2}],
        "seeds": [0, 1],
        "train": {**TINY_TRAIN, "steps": 4, "eval_every": 2},
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    ws_dir = tmp_path / "ws"
    out = cli(
        "compare",
        "--spec",
        tmp_path / "spec.json",
        "--workspace",
        ws_dir,
        "--max-concurrent",
        2,
        "--no-wait",
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    cmp_id = out.stdout.strip().splitlines()[-1]
    ws = Workspace(ws_dir)
    manifest = ws.load_comparison(cmp_id)
    assert manifest["arms"] == ["shuffle", "folding L=2"] and len(manifest["runs"]) == 4
    held = set(pl.read_ndjson(manifest["validation"])["id"].to_list())
    assert len(held) == 3  # 5% of the 54 clean documents, with any copies of theirs out of training too
    n_train = 60 - 3 - manifest["n_copies_removed"]
    assert manifest["n_train_docs"] == n_train and manifest["arm_data"]["shuffle"]["n_selected"] == int(0.8 * n_train)
    assert manifest["overlap"]["validation"] == {"exact": 0, "near": 0}
    inputs = {(r["arm"], r["seed"]): r["input"] for r in manifest["runs"]}
    assert inputs[("folding L=2", 0)] == inputs[("folding L=2", 1)]  # deterministic order: one shared file
    assert inputs[("shuffle", 0)] != inputs[("shuffle", 1)]
    shuffled = [pl.read_parquet(inputs[("shuffle", s)])["id"].to_list() for s in (0, 1)]
    assert shuffled[0] != shuffled[1] and sorted(shuffled[0]) == sorted(shuffled[1])
    assert not held & set(shuffled[0])
    configs = [read_json(ws_dir / "runs" / r["id"] / "config.json") for r in manifest["runs"]]
    assert len({c["tokenizer"] for c in configs}) == 1 and [c["seed"] for c in configs] == [0, 1, 0, 1]
    assert configs[2]["provenance"]["arm"] == "folding L=2" and configs[2]["provenance"]["corpus_hash"]

    deadline = time.monotonic() + 240
    while True:
        infos = ws.list_runs(comparison=cmp_id)
        if infos and all(i.finished for i in infos):
            break
        assert time.monotonic() < deadline, [(i.id, i.state) for i in infos]
        time.sleep(1.0)
    assert [i.state for i in infos] == ["done"] * 4, [i.error for i in infos]
    assert all(i.last_metrics.get("target_loss") is not None for i in infos)
    report = cli("runs", "report", cmp_id, "--workspace", ws_dir)
    assert report.returncode == 0, report.stderr
    lines = report.stdout.splitlines()
    assert "folding L=2 vs shuffle on target loss" in report.stdout and "shuffle" in lines[4]
    assert lines[1].startswith("data: ") and "training documents · scored by length" in lines[1]
    evals = [r for r in ws.load_run(infos[0].id).metrics.to_dicts() if r.get("target_loss") is not None]
    assert [r["step"] for r in evals] == [0, 2, 4]  # step 0: the untrained model

    again = prepare_comparison(tmp_path / "spec.json", ws)  # same corpus + scorer: scores come from the cache
    assert (
        again.manifest["scores"]["cached"] and again.manifest["scores"]["scores_id"] == manifest["scores"]["scores_id"]
    )
    assert again.manifest["tokenizer"] == manifest["tokenizer"]


@pytest.mark.parametrize("grouped", [False, True], ids=["one-by-one", "grouped"])
def test_compare_interrupted_cancels_its_runs(tmp_path, grouped):
    """SIGTERM to a waiting `compare` cancels the running training (it stops itself) and the queued one;
    with group training both runs train in one process, and both stop there, keeping their metrics."""
    from delt_engine.workspace.layout import Workspace

    _tiny_corpus(tmp_path)
    spec = {
        "name": "stop",
        "corpus": "corpus.jsonl",
        "scorer": {"method": "length"},
        "orderings": ["shuffle"],
        "seeds": [0, 1],
        "train": {
            "model": "tiny-test",
            "steps": 5000,
            "epochs": 1000,
            "batch_size": 4,
            "max_length": 16,
            "vocab_size": 300,
            "device": "cpu",
        },
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    ws = Workspace(tmp_path / "ws")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "delt_engine",
            "compare",
            "--spec",
            str(tmp_path / "spec.json"),
            "--workspace",
            str(ws.root),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DELT_GROUP_TRAINING": "1" if grouped else "0"},
    )
    try:
        deadline = time.monotonic() + 120
        while not any(i.phase == "train" for i in ws.list_runs()):
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() else ""
            time.sleep(0.2)
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "interrupted: cancelling the runs" in err
    infos = ws.list_runs()
    assert [i.state for i in infos] == ["cancelled", "cancelled"]
    if grouped:  # one process trained both: each stopped part-way and wrote its own summary
        assert all(0 < (i.progress or 0) < 1 and ws.load_run(i.id).summary["stopped_early"] is True for i in infos)
        return
    assert 0 < (infos[0].progress or 0) < 1 and infos[1].progress is None  # the second never started
    assert ws.load_run(infos[0].id).summary["stopped_early"] is True  # training wrote its own summary


def test_the_readme_example_spec_is_valid():
    spec = parse_spec(ROOT / "assets" / "example_comparison.json")
    assert spec.labels == ["shuffle", "sorting", "folding L=3", "folding L=3 + local shuffle"]
    assert spec.seeds == (0, 1, 2) and spec.scorer.method == "lqs" and spec.selection.ratio == 0.9


def test_compare_stops_on_sigint_even_when_the_shell_ignored_it(tmp_path):
    """A job started with & from a script inherits SIGINT as ignored; compare (like train) still cancels its
    runs on it and keeps what they recorded."""
    import signal

    from delt_engine.workspace.layout import Workspace

    _tiny_corpus(tmp_path)
    spec = {
        "name": "sigint",
        "corpus": "corpus.jsonl",
        "scorer": {"method": "length"},
        "orderings": ["shuffle"],
        "seeds": [0],
        "train": {**TINY_TRAIN, "steps": 100000, "epochs": 100000, "eval_every": None},
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    ws_dir = tmp_path / "ws"
    proc = subprocess.Popen(
        [sys.executable, "-m", "delt_engine", "compare", "--spec", "spec.json", "--workspace", str(ws_dir)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            runs = Workspace(ws_dir).list_runs() if (ws_dir / "runs").exists() else []
            if runs and runs[0].last_metrics.get("train_loss") is not None:
                break
            time.sleep(0.5)
        assert runs and runs[0].last_metrics, "the run never started"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:  # the test failed: stop compare and the run it started
            proc.kill()
            from delt_engine.jobs.manager import JobManager

            for run in Workspace(ws_dir).list_runs():
                JobManager().cancel(run.dir)
    assert proc.returncode == 130, err
    (run,) = Workspace(ws_dir).list_runs()
    assert run.state == "cancelled" and run.last_metrics.get("train_loss") is not None
