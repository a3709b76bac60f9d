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
        write_json(ws / "comparisons" / cmp_id / "comparison.json",
                   {"id": cmp_id, "name": cmp_id, "baseline": "shuffle", "arms": list(arms), "runs": runs})


def test_individual_runs_pair_on_comparison_and_seed(workspace):
    _two_comparisons(workspace)
    at = open_page("pages/compare.py")
    assert not at.exception, at.exception
    at.radio(key="compare.source").set_value("Individual runs").run()
    picked = [f"run-cmp-a-folding-{s}" for s in (0, 1)] + [f"run-{c}-shuffle-{s}" for c in ("cmp-a", "cmp-b")
                                                           for s in (0, 1)]
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
    assert any(t.startswith("folding L=3 vs shuffle on target loss: not resolved with 2 seeds (Δ -0.2250")
               for t in texts(at, "info")), texts(at, "info")


def test_verdict_colour_follows_the_verdict_field(workspace):
    # cmp-c: folding lower than shuffle by 0.25 and 0.245, sorting higher by as much: t = 99 on 1 dof
    # (p 0.0064), four tests in the Holm family (adjusted 0.026): one better and one worse arm
    runs = []
    for arm, shifts in {"shuffle": (0.0, 0.0), "folding L=3": (-0.25, -0.245), "sorting": (0.25, 0.245)}.items():
        for seed, shift in enumerate(shifts):
            run_id = f"run-cmp-c-{arm.split()[0]}-{seed}"
            _run(workspace, run_id, arm, seed, "cmp-c", shift)
            runs.append({"id": run_id, "arm": arm, "seed": seed})
    write_json(workspace / "comparisons" / "cmp-c" / "comparison.json",
               {"id": "cmp-c", "name": "cmp-c", "baseline": "shuffle", "runs": runs,
                "arms": ["shuffle", "folding L=3", "sorting"]})
    at = open_page("pages/compare.py")
    at.radio(key="compare.source").set_value("A comparison").run()
    at.selectbox(key="compare.comparison").set_value("cmp-c").run()
    assert not at.exception, at.exception
    success, warning = texts(at, "success"), texts(at, "warning")
    assert sorted(t.split(" (")[0] for t in success) == [
        "folding L=3 is better than shuffle on benchmark accuracy", "folding L=3 is better than shuffle on target loss"]
    assert sorted(t.split(" (")[0] for t in warning) == [
        "sorting is worse than shuffle on benchmark accuracy", "sorting is worse than shuffle on target loss"]
    assert all("Holm-adjusted p = 0.026" in t for t in success + warning), success + warning
    table = frame_with(at, "verdict", "Holm-adjusted p", "seeds needed")
    assert sorted(table["verdict"]) == ["better", "better", "worse", "worse"]
    assert set(table["seeds needed"]) == {"-"}
