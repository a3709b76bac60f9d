"""AppTest: lm-eval results (<run>/lm_eval.json) on the Compare page, and the Train page's tracker option."""

from __future__ import annotations

import json

from delt_engine.errors import DeltError
from delt_engine.fileio import write_json
from tests.app.conftest import ensure_length_scores, frames, open_page, texts
from tests.cli.test_runs import _run


def _lm_eval(acc_group: float, acc_facts: float) -> dict:
    """lm_eval.json as `delt runs eval` writes it: lm-eval's results dict, a group and its sub-task."""
    return {
        "results": {
            "delt_benchmark": {
                "alias": "delt_benchmark",
                "acc,none": acc_group,
                "acc_stderr,none": 0.021,
                "acc_norm,none": acc_group + 0.02,
                "acc_norm_stderr,none": 0.022,
            },
            "delt_facts": {
                "alias": " - delt_facts",
                "acc,none": acc_facts,
                "acc_stderr,none": "N/A",
                "acc_norm,none": acc_facts + 0.01,
                "acc_norm_stderr,none": 0.03,
                "sample_len": 40,
            },
        },
        "delt": {"run": "x", "tasks": ["delt_benchmark"]},
    }


def test_compare_shows_lm_eval_results_per_arm(workspace):
    runs = []
    for arm, shift in (("shuffle", 0.0), ("folding L=3", -0.25)):
        for seed in (0, 1):
            run_id = f"run-lm-{arm.split()[0]}-{seed}"
            _run(workspace, run_id, arm, seed, "cmp-lm", shift)
            runs.append({"id": run_id, "arm": arm, "seed": seed})
    write_json(
        workspace / "comparisons" / "cmp-lm" / "comparison.json",
        {"id": "cmp-lm", "name": "cmp-lm", "baseline": "shuffle", "arms": ["shuffle", "folding L=3"], "runs": runs},
    )
    (workspace / "runs" / "run-lm-shuffle-0" / "lm_eval.json").write_text(json.dumps(_lm_eval(0.6125, 0.5)))
    (workspace / "runs" / "run-lm-folding-1" / "lm_eval.json").write_text(json.dumps(_lm_eval(0.65, 0.55)))
    (workspace / "runs" / "run-lm-folding-0" / "lm_eval.json").write_text("{not json")  # damaged
    at = open_page("pages/compare.py")
    at.radio(key="compare.source").set_value("A comparison").run()
    at.selectbox(key="compare.comparison").set_value("cmp-lm").run()
    assert not at.exception, at.exception
    assert "lm-evaluation-harness" in [h.value for h in at.subheader]
    tables = [f for f in frames(at) if {"task", "acc", "acc_norm", "seed", "run"} <= set(f.columns)]
    assert len(tables) == 2  # one per arm with results: folding L=3 (seed 1), shuffle (seed 0)
    by_run = {f["run"].iloc[0]: f for f in tables}
    shuffle = by_run["run-lm-shuffle-0"]
    assert shuffle.to_dict("records") == [
        {
            "seed": 0,
            "task": "delt_benchmark",
            "acc": "0.6125",
            "± acc": "0.0210",
            "acc_norm": "0.6325",
            "± acc_norm": "0.0220",
            "run": "run-lm-shuffle-0",
        },
        {
            "seed": 0,
            "task": "- delt_facts",
            "acc": "0.5000",
            "± acc": "-",
            "acc_norm": "0.5100",
            "± acc_norm": "0.0300",
            "run": "run-lm-shuffle-0",
        },
    ]
    assert list(by_run["run-lm-folding-1"]["acc"]) == ["0.6500", "0.5500"]
    assert any("Not shown" in t and "run-lm-folding-0" in t and "not valid JSON" in t for t in texts(at, "caption"))


def test_compare_without_lm_eval_files_has_no_section(workspace):
    for seed in (0, 1):
        _run(workspace, f"run-nolm-{seed}", "shuffle", seed, "cmp-nolm", 0.0)
    write_json(
        workspace / "comparisons" / "cmp-nolm" / "comparison.json",
        {
            "id": "cmp-nolm",
            "name": "cmp-nolm",
            "baseline": "shuffle",
            "arms": ["shuffle"],
            "runs": [{"id": f"run-nolm-{s}", "arm": "shuffle", "seed": s} for s in (0, 1)],
        },
    )
    at = open_page("pages/compare.py")
    at.radio(key="compare.source").set_value("A comparison").run()
    at.selectbox(key="compare.comparison").set_value("cmp-nolm").run()
    assert not at.exception, at.exception
    assert "lm-evaluation-harness" not in [h.value for h in at.subheader]


def test_train_page_passes_report_to_into_the_spec(workspace, monkeypatch):
    import ui.comparisons
    from delt_engine.jobs import trackers

    captured = []

    def start(spec, root):
        from delt_engine.experiments.spec import parse_spec

        parse_spec(spec)  # what the real start checks first: report_to is a valid train field
        captured.append(spec)
        raise DeltError("stopped by the test")

    monkeypatch.setattr(ui.comparisons, "start", start)
    open_page()
    ensure_length_scores(workspace)
    at = open_page("pages/train.py")
    at.selectbox(key="train.model").set_value("tiny-test").run()
    at.button(key="train.launch").click().run()
    assert not at.exception, at.exception
    assert "report_to" not in captured[-1]["train"]  # nothing chosen: no tracker
    at.multiselect(key="train.report_to").set_value(["tensorboard", "mlflow"]).run()
    assert any("tensorboard --logdir" in t and "mlruns" in t for t in texts(at, "caption")), texts(at, "caption")
    at.button(key="train.launch").click().run()
    assert captured[-1]["train"]["report_to"] == ["tensorboard", "mlflow"]
    assert any("stopped by the test" in t for t in texts(at, "error"))
    monkeypatch.setattr(trackers, "missing_packages", lambda names: list(names))
    at.run()
    assert any(
        "Not installed: tensorboard, mlflow" in t and "delt-studio[trackers]" in t for t in texts(at, "warning")
    ), texts(at, "warning")
