"""AppTest of the Compare page on hand-made runs: verdicts come from the result objects (coloured by
their verdict field) and the Individual-runs pairing never counts a seed twice."""

from __future__ import annotations

from delt_engine.fileio import write_json
from tests.app.conftest import frame_with, open_page, texts
from tests.cli.test_runs import _run


def _two_comparisons(ws):
    """cmp-a: shuffle and folding, seeds 0 and 1; cmp-b: shuffle only, seeds 0 and 1 (much higher loss)."""
    plan = {"cmp-a": {"shuffle": (0.0, 0.0), "folding L=3": (-0.25, -0.20)}, "cmp-b": {"shuffle": (3.0, 2.0)}}
    for cmp_id, arms in plan.items():
        runs = []
        for arm, shifts in arms.items():
            for seed, shift in enumerate(shifts):
                run_id = f"run-{cmp_id}-{arm.split()[0]}-{seed}"
                _run(ws, run_id, arm, seed, cmp_id, shift)
                runs.append({"id": run_id, "arm": arm, "seed": seed})
        write_json(
            ws / "comparisons" / cmp_id / "comparison.json",
            {"id": cmp_id, "name": cmp_id, "baseline": "shuffle", "arms": list(arms), "runs": runs},
        )


def test_individual_runs_pair_on_comparison_and_seed(workspace):
    _two_comparisons(workspace)
    at = open_page("pages/compare.py")
    assert not at.exception, at.exception
    at.radio(key="compare.source").set_value("Individual runs").run()
    picked = [f"run-cmp-a-folding-{s}" for s in (0, 1)] + [
        f"run-{c}-shuffle-{s}" for c in ("cmp-a", "cmp-b") for s in (0, 1)
    ]
    at.multiselect(key="compare.runs").set_value(picked).run()
    assert not at.exception, at.exception
    arms = frame_with(at, "arm", "seeds")
    assert dict(zip(arms["arm"], arms["seeds"])) == {"folding L=3": 2, "shuffle": 4}  # 4 distinct shuffle runs
    table = frame_with(at, "verdict", "Holm-adjusted p", "seeds needed")
    assert set(table["seeds"]) == {2}  # each folding seed paired once, with its own comparison's shuffle run
    shown = texts(at, "success") + texts(at, "warning") + texts(at, "info")
    verdicts = [t for t in shown if "folding L=3" in t and "shuffle" in t]
    assert verdicts and all("with 2 seeds" in t and "with 4 seeds" not in t for t in verdicts), verdicts
    assert not any("no difference" in t or " beats " in t for t in shown)
    # target loss: differences -0.25, -0.20 on 1 dof, p about 0.06 alone, unresolved: shown as info
    # Δ from cmp-a's shuffle runs only (cmp-b's, 2 to 3 higher, would pull it to about -2.7)
    assert any(
        t.startswith("folding L=3 vs shuffle on target loss: not resolved with 2 seeds (Δ -0.2250")
        for t in texts(at, "info")
    ), texts(at, "info")


def test_verdict_colour_follows_the_verdict_field(workspace):
    # cmp-c: folding lower than shuffle by 0.25 and 0.245, sorting higher by as much: t = 99 on 1 dof
    # (p 0.0064), four tests in the Holm family (adjusted 0.026): one better and one worse arm
    runs = []
    for arm, shifts in {"shuffle": (0.0, 0.0), "folding L=3": (-0.25, -0.245), "sorting": (0.25, 0.245)}.items():
        for seed, shift in enumerate(shifts):
            run_id = f"run-cmp-c-{arm.split()[0]}-{seed}"
            _run(workspace, run_id, arm, seed, "cmp-c", shift)
            runs.append({"id": run_id, "arm": arm, "seed": seed})
    write_json(
        workspace / "comparisons" / "cmp-c" / "comparison.json",
        {
            "id": "cmp-c",
            "name": "cmp-c",
            "baseline": "shuffle",
            "runs": runs,
            "arms": ["shuffle", "folding L=3", "sorting"],
        },
    )
    at = open_page("pages/compare.py")
    at.radio(key="compare.source").set_value("A comparison").run()
    at.selectbox(key="compare.comparison").set_value("cmp-c").run()
    assert not at.exception, at.exception
    success, warning = texts(at, "success"), texts(at, "warning")
    assert sorted(t.split(" (")[0] for t in success) == [
        "folding L=3 is better than shuffle on benchmark accuracy",
        "folding L=3 is better than shuffle on target loss",
    ]
    assert sorted(t.split(" (")[0] for t in warning) == [
        "sorting is worse than shuffle on benchmark accuracy",
        "sorting is worse than shuffle on target loss",
    ]
    assert all("Holm-adjusted p = 0.026" in t for t in success + warning), success + warning
    table = frame_with(at, "verdict", "Holm-adjusted p", "seeds needed")
    assert sorted(table["verdict"]) == ["better", "better", "worse", "worse"]
    assert set(table["seeds needed"]) == {"-"}


def _grouped_comparison(ws, cmp_id="zz-groups"):
    """Two arms x two seeds evaluated by kind: folding forgets "story" (its loss climbs back from 3.0 to
    4.2), shuffle does not; one ordered data file per arm with a kind column (the stream make-up: 4 steps
    of 8 documents; folding shows the 16 stories first)."""
    import polars as pl

    from delt_engine.fileio import append_jsonl
    from delt_engine.jobs.protocol import write_status

    data = ws / "comparisons" / cmp_id / "data"
    data.mkdir(parents=True)
    kinds = ["story"] * 16 + ["arithmetic"] * 16
    files = {"shuffle": ["story", "arithmetic"] * 16, "folding L=3": kinds}  # folding: all stories first
    losses = {
        "shuffle": {"story": [6.0, 4.0, 3.5], "arithmetic": [6.0, 5.0, 4.0]},
        "folding L=3": {"story": [6.0, 3.0, 4.2], "arithmetic": [6.0, 5.5, 3.5]},
    }
    runs = []
    for arm, order in files.items():
        path = data / f"{arm.split()[0]}.parquet"
        pl.DataFrame(
            {
                "id": [str(i) for i in range(32)],
                "text": ["x"] * 32,
                "kind": order,
                "score": [float(i) for i in range(32)],
            }
        ).write_parquet(path)
        for seed in (0, 1):
            run_id = f"run-{cmp_id}-{arm.split()[0]}-{seed}"
            d = ws / "runs" / run_id
            d.mkdir(parents=True)
            write_json(
                d / "config.json",
                {
                    "input": str(path),
                    "model": "tiny-test",
                    "seed": seed,
                    "batch_size": 8,
                    "steps": 4,
                    "group_by": "kind",
                    "provenance": {"comparison": cmp_id, "arm": arm, "seed": seed},
                },
            )
            write_status(d, "done", pid=12345)
            for i, step in enumerate((0, 2, 4)):
                groups = {k: v[i] + 0.05 * seed for k, v in losses[arm].items()}
                append_jsonl(d / "metrics.jsonl", {"step": step, "tokens": 40 * step, "train_loss": 5 - 0.1 * step})
                append_jsonl(
                    d / "metrics.jsonl",
                    {
                        "step": step,
                        "tokens": 40 * step,
                        "val_loss": sum(groups.values()) / 2,
                        "target_loss": sum(groups.values()) / 2 + 0.1,
                        "group_loss": {"kind": groups},
                    },
                )
            write_json(d / "summary.json", {"state": "done", "steps": 4, "total_steps": 4})
            runs.append({"id": run_id, "arm": arm, "seed": seed})
    write_json(
        ws / "comparisons" / cmp_id / "comparison.json",
        {
            "id": cmp_id,
            "name": cmp_id,
            "baseline": "shuffle",
            "arms": list(files),
            "runs": runs,
            "spec": {"group_by": "kind"},
        },
    )
    return cmp_id


def test_compare_and_learn_explain_the_result_by_group(workspace):
    from delt_engine.experiments import forgetting
    from delt_engine.experiments.summary import summarize
    from delt_engine.workspace.layout import Workspace
    from tests.app.conftest import bar_groups, figure

    cmp_id = _grouped_comparison(workspace)
    at = open_page("pages/compare.py")
    at.radio(key="compare.source").set_value("A comparison").run()
    at.selectbox(key="compare.comparison").set_value(cmp_id).run()
    assert not at.exception, at.exception
    at.radio(key="compare.x").set_value("step").run()
    curves = figure(at, "validation loss per run")
    assert bar_groups(curves) == {"story", "arithmetic"}
    folding = [
        t
        for t in curves["data"]
        if t.get("type") == "bar" and t["name"] == "story" and t["hovertemplate"].endswith("<extra>folding L=3</extra>")
    ]
    # folding's 4 steps of 8 documents (windows of 1 step): all 16 stories in steps 1-2
    assert folding[0]["y"] == [1.0, 1.0, 0.0, 0.0]
    panels = figure(at, "Validation loss by kind: mean ± 95% interval across seeds")
    assert [a["text"] for a in panels["layout"]["annotations"]] == ["arithmetic", "story"]
    table = frame_with(at, "arm", "group", "lowest loss", "final loss", "rise")
    fold_story = table[(table["arm"] == "folding L=3") & (table["group"] == "story")].iloc[0]
    assert fold_story["lowest loss"] == "3.025" and fold_story["final loss"] == "4.225"
    assert fold_story["rise"].startswith("1.200") and fold_story["Δ rise vs baseline"].startswith("+1.200")
    summary = summarize(Workspace(workspace).comparison_curves(cmp_id), baseline="shuffle")
    words = forgetting.explain_groups(summary)
    assert words and all(any(w in m.value for m in at.markdown) for w in words)
    assert "Most of that gap is forgetting" in words[0]

    learn = open_page("pages/learn.py")
    learn.radio(key="learn.prediction").set_value("shuffle").run()
    learn.button(key="learn.reveal").click().run()
    assert not learn.exception, learn.exception
    shown = " ".join(m.value for m in learn.markdown)
    assert all(w in shown for w in words)  # the same sentences, from the same data
    assert "In folding L=3, step 1 is 100% story (50% of the whole stream)." in shown
    assert "In shuffle, no window's mix strays from the whole stream's by more than chance" in shown
    assert figure(learn, f"Validation loss by kind in comparison {cmp_id}")
    assert bar_groups(figure(learn, "Train loss and the stream's make-up per arm")) == {"story", "arithmetic"}
