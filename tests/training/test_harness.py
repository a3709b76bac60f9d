"""lm-evaluation-harness bridge: exported tasks, `runs eval`, and per-choice parity with the built-in evaluation.

The lm-eval tests run a tiny kept model offline (sockets blocked). They skip when lm-eval is not installed,
unless DELT_REQUIRE_LMEVAL is set (then they fail): install it with `pip install -r requirements-dev.txt`.
"""

import importlib.util
import json
import os
import shutil
import socket
import sys

import pytest

from delt_engine.cli import main
from delt_engine.data.benchmark import Item, load_benchmark
from delt_engine.demo.generate import generate_demo
from delt_engine.errors import ConfigError, DataError, DeltError
from delt_engine.training.evaluation import evaluate
from delt_engine.training.harness import MANIFEST, eval_run, export_task, run_lm_eval, task_name

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Items whose requests take every path: empty contexts, trailing space and newline moved to the
# continuation, non-ASCII text, a context starting with the prefix token's string, multi-token choices.
EDGE_ITEMS = [
    {
        "id": "e1",
        "task": "edge cases",
        "context": "",
        "choices": ["He gave Tom a plum.", "Him gave Tom a plum."],
        "answer": 0,
    },
    {
        "id": "e2",
        "task": "edge cases",
        "context": "Question: which colour?\nAnswer: ",
        "choices": ["red", "a very green stone"],
        "answer": 1,
    },
    {
        "id": "e3",
        "task": "edge cases",
        "context": "The café sold\n",
        "choices": ["crêpes", "naïve résumés", "x"],
        "answer": 2,
    },
    {
        "id": "e4",
        "task": "edge cases",
        "context": "<|endoftext|>The river of Dom is the",
        "choices": ["Tound", "Loun"],
        "answer": 0,
    },
]


def _needs_lm_eval():
    if importlib.util.find_spec("lm_eval") is None or importlib.util.find_spec("accelerate") is None:
        if os.environ.get("DELT_REQUIRE_LMEVAL"):
            pytest.fail("DELT_REQUIRE_LMEVAL is set but lm-eval is not installed: pip install -r requirements-dev.txt")
        pytest.skip("lm-eval is not installed (pip install 'lm-eval[hf]==0.4.13'); set DELT_REQUIRE_LMEVAL to fail")


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Every socket connection fails and is recorded; the datasets cache goes to tmp_path."""
    attempts = []

    def refuse(self, address, *args):
        attempts.append(address)
        raise OSError(f"network disabled in this test (tried {address})")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    yield attempts
    assert attempts == [], f"something tried the network: {attempts}"


@pytest.fixture(scope="module")
def kept_run(tmp_path_factory):
    """A tiny run trained on the demo corpus with --save-model, its benchmark (demo items of every task,
    the grammar task's empty contexts among them, plus EDGE_ITEMS) and that benchmark exported."""
    from delt_engine.jobs.train_job import train
    from delt_engine.training.config import RunConfig

    root = tmp_path_factory.mktemp("lmeval")
    demo = generate_demo(0, n_docs=200)
    with open(root / "corpus.jsonl", "w") as fh:
        fh.writelines(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in demo.corpus.iter_rows(named=True))
    items = []
    for task in ("facts", "arithmetic", "grammar"):
        rows = [r for r in demo.benchmark.iter_rows(named=True) if r["task"] == task]
        items += [r for r in rows if r["context"] == ""][:3] + [r for r in rows if r["context"]][:4]
    items += EDGE_ITEMS
    with open(root / "bench.jsonl", "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in items)
    config = RunConfig(
        input=str(root / "corpus.jsonl"),
        model="tiny-test",
        cache_dir=str(root / "cache"),
        batch_size=8,
        max_length=48,
        device="cpu",
        lr=1e-2,
        steps=4,
        benchmark=str(root / "bench.jsonl"),
        save_model=True,
    )
    summary = train(config, root / "run")
    exported = export_task(load_benchmark(root / "bench.jsonl"), root / "tasks")
    return {
        "root": root,
        "run": root / "run",
        "summary": summary,
        "exported": exported,
        "items": load_benchmark(root / "bench.jsonl"),
    }


# ----------------------------------------------------------------------------------------- export


def test_export_writes_one_lm_eval_task_per_benchmark_task(tmp_path):
    yaml = pytest.importorskip("yaml")
    items = [
        Item("a1", "facts", "The sky is", ("blue", "green"), 0),
        Item("g1", "my task!", "", ("Yes.", "No."), 1),
        Item("a2", "facts", "Snow is", ("white", "black"), 0),
    ]
    out = export_task(items, tmp_path / "tasks")
    assert out.tasks == {"facts": "delt_facts", "my task!": "delt_my_task_"} and out.group == "delt_benchmark"
    for task, name in out.tasks.items():
        cfg = yaml.safe_load((tmp_path / "tasks" / f"{name}.yaml").read_text())
        assert cfg["task"] == name and cfg["output_type"] == "multiple_choice" and cfg["target_delimiter"] == " "
        assert (cfg["doc_to_text"], cfg["doc_to_choice"], cfg["doc_to_target"]) == ("context", "choices", "answer")
        assert [m["metric"] for m in cfg["metric_list"]] == ["acc", "acc_norm"]
        data = cfg["dataset_kwargs"]["data_files"][cfg["test_split"]]
        docs = [json.loads(line) for line in open(data)]
        want = [it for it in items if it.task == task]
        assert docs == [
            {"id": it.id, "context": it.context, "choices": list(it.choices), "answer": it.answer} for it in want
        ]
    group = yaml.safe_load((tmp_path / "tasks" / "delt_benchmark.yaml").read_text())
    assert group["task"] == ["delt_facts", "delt_my_task_"]
    assert all(m["weight_by_size"] is False for m in group["aggregate_metric_list"])


def test_export_again_removes_its_own_stale_files_only(tmp_path):
    folder = tmp_path / "tasks"
    export_task([Item("1", "old", "c", ("a", "b"), 0)], folder, group=None)
    (folder / "notes.txt").write_text("mine")
    out = export_task([Item("1", "new", "c", ("a", "b"), 0)], folder, prefix="x_", group="all")
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(["all.yaml", "x_new.jsonl", "x_new.yaml", MANIFEST, "notes.txt"])
    assert json.loads((folder / MANIFEST).read_text())["tasks"] == {"new": "x_new"} and out.group == "all"


def test_export_refuses_colliding_names_and_bad_prefixes(tmp_path):
    with pytest.raises(DataError, match="'a b' and 'a_b' both become"):
        export_task([Item("1", "a b", "c", ("x", "y"), 0), Item("2", "a_b", "c", ("x", "y"), 0)], tmp_path)
    with pytest.raises(ConfigError, match="prefix"):
        export_task([Item("1", "t", "c", ("x", "y"), 0)], tmp_path, prefix="a b")
    with pytest.raises(ConfigError, match="also a task name"):
        export_task([Item("1", "t", "c", ("x", "y"), 0)], tmp_path, group="delt_t")
    with pytest.raises(DataError, match="no benchmark items"):
        export_task([], tmp_path)
    assert task_name("grammar") == "delt_grammar"


def test_cli_exports_the_demo_benchmark_by_default(tmp_path, capsys):
    assert main(["benchmark", "export", "--format", "lm-eval", "--out", str(tmp_path / "t"), "--n-docs", "200"]) == 0
    manifest = json.loads((tmp_path / "t" / MANIFEST).read_text())
    demo = generate_demo(0, n_docs=200).benchmark
    assert manifest["tasks"] == {t: f"delt_{t}" for t in ("facts", "arithmetic", "grammar")}
    assert manifest["n_items"] == {t: int((demo["task"] == t).sum()) for t in manifest["tasks"]}
    assert "--tasks delt_benchmark" in capsys.readouterr().out


def test_cli_export_names_a_bad_input_line(tmp_path, capsys):
    bad = tmp_path / "bench.jsonl"
    bad.write_text('{"task": "t", "context": "c", "choices": ["a"], "answer": 0}\n')
    assert main(["benchmark", "export", "--input", str(bad), "--out", str(tmp_path / "t")]) == 2
    assert "bench.jsonl:1" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------- evaluate


def test_missing_lm_eval_names_the_extra(tmp_path, monkeypatch, capsys):
    (tmp_path / "run" / "model").mkdir(parents=True)
    (tmp_path / "run" / "config.json").write_text("{}")  # a run folder, as train --run-dir makes one
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # import lm_eval now raises ImportError
    with pytest.raises(DeltError, match=r"delt-studio\[eval\]"):
        run_lm_eval(tmp_path / "run" / "model", ["delt_facts"])
    assert main(["runs", "eval", str(tmp_path / "run"), "--tasks", "delt_facts"]) == 2
    assert "pip install 'delt-studio[eval]'" in capsys.readouterr().err


def test_a_run_without_a_kept_model_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(DataError, match="--save-model"):
        eval_run(tmp_path / "run", ["delt_facts"])


def test_runs_eval_stores_lm_eval_results_equal_to_the_runs_own_figures(kept_run, no_network, capsys):
    _needs_lm_eval()
    run, summary, exported = kept_run["run"], kept_run["summary"], kept_run["exported"]
    assert (
        main(
            [
                "runs",
                "eval",
                str(run),
                "--tasks",
                exported.group,
                "--include-path",
                str(exported.out_dir),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    record = json.loads((run / "lm_eval.json").read_text())
    results = record["results"]
    assert set(summary["bench"]) == set(exported.tasks) and len(exported.tasks) == 4
    for task, name in exported.tasks.items():
        assert results[name]["acc,none"] == pytest.approx(summary["bench"][task]["acc"], abs=1e-12)
        assert results[name]["acc_norm,none"] == pytest.approx(summary["bench"][task]["acc_norm"], abs=1e-12)
    assert results[exported.group]["acc,none"] == pytest.approx(summary["bench_acc"], abs=1e-12)
    assert results[exported.group]["acc_norm,none"] == pytest.approx(summary["bench_acc_norm"], abs=1e-12)
    assert record["delt"]["tasks"] == [exported.group] and record["delt"]["lm_eval_version"] == "0.4.13"
    assert record["delt"]["device"] == "cpu" and "wrote" in capsys.readouterr().out


def test_limit_evaluates_the_first_documents_of_each_task(kept_run, no_network):
    _needs_lm_eval()
    exported = kept_run["exported"]
    _, record = eval_run(kept_run["run"], ["delt_facts"], include_path=exported.out_dir, limit=2, device="cpu")
    assert record["n-samples"]["delt_facts"] == {"original": 4, "effective": 2}
    from delt_engine.data.tokenizer import load_tokenizer
    from delt_engine.models.presets import load_model_dir

    model_dir = kept_run["run"] / "model"
    first = [it for it in kept_run["items"] if it.task == "facts"][:2]
    own = evaluate(load_model_dir(model_dir), load_tokenizer(model_dir), first)
    assert record["results"]["delt_facts"]["acc,none"] == pytest.approx(own["acc"])
    assert record["results"]["delt_facts"]["acc_norm,none"] == pytest.approx(own["acc_norm"])


def test_unknown_include_path_is_refused(kept_run, tmp_path):
    _needs_lm_eval()
    with pytest.raises(ConfigError, match="not a folder"):
        eval_run(kept_run["run"], ["delt_facts"], include_path=tmp_path / "nowhere", device="cpu")


def _tokenizer_adding_bos(model_dir, out):
    """A copy of ``model_dir`` whose tokenizer puts BOS (= EOS) before every text it encodes by default."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    from delt_engine.data.tokenizer import load_tokenizer

    shutil.copytree(model_dir, out)
    tok = load_tokenizer(model_dir)
    inner = tok.backend_tokenizer
    inner.post_processor = processors.TemplateProcessing(
        single=f"{tok.bos_token} $A", special_tokens=[(tok.bos_token, tok.bos_token_id)]
    )
    for path in out.glob("tokenizer*"):
        path.unlink()
    PreTrainedTokenizerFast(
        tokenizer_object=inner, eos_token=tok.eos_token, bos_token=tok.bos_token, pad_token=tok.pad_token
    ).save_pretrained(str(out))
    return out


@pytest.mark.parametrize("tokenizer", ["trained", "adds-bos"])
def test_every_choice_has_the_log_likelihood_lm_eval_gives_it(kept_run, no_network, tmp_path, tokenizer):
    _needs_lm_eval()
    from delt_engine.data.tokenizer import load_tokenizer
    from delt_engine.models.presets import load_model_dir

    model_dir = kept_run["run"] / "model"
    if tokenizer == "adds-bos":
        model_dir = _tokenizer_adding_bos(model_dir, tmp_path / "model")
    exported, items = kept_run["exported"], kept_run["items"]
    tok = load_tokenizer(model_dir)
    assert (tok("a")["input_ids"][0] == tok.bos_token_id) == (tokenizer == "adds-bos")
    out = run_lm_eval(model_dir, [exported.group], include_path=exported.out_dir, device="cpu", log_samples=True)
    theirs = {}
    for name, samples in out["samples"].items():
        for sample in samples:
            doc = sample["doc"]
            # the requests lm-eval built: the context as it is, the choice after the " " delimiter
            assert [tuple(a) for a in sample["arguments"]] == [(doc["context"], " " + c) for c in doc["choices"]]
            theirs[(name, doc["id"])] = [float(r[0]) for r in sample["filtered_resps"]]
    own = evaluate(load_model_dir(model_dir), tok, items, "cpu", batch_size=5)
    assert len(theirs) == len(items) and sum(it.context == "" for it in items) == 4
    worst = 0.0
    for item, ll in zip(items, own["loglik"]):
        other = theirs[(exported.tasks[item.task], item.id)]
        assert ll == pytest.approx(other, abs=1e-4), item
        worst = max(worst, max(abs(a - b) for a, b in zip(ll, other)))
    for task, name in exported.tasks.items():
        assert out["results"][name]["acc,none"] == pytest.approx(own["tasks"][task]["acc"])
        assert out["results"][name]["acc_norm,none"] == pytest.approx(own["tasks"][task]["acc_norm"])
    print(f"largest per-choice log-likelihood difference ({tokenizer} tokenizer): {worst:.2e}")
