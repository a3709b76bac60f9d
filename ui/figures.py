"""Pure plotly figure builders for the app: data in, ``go.Figure`` out (no Streamlit, no I/O).

Every text a figure shows (titles, axis titles, legend names, subplot titles, category labels, hover
text) is escaped once, in ``_layout``, so plotly draws user-controlled strings (metadata values, arm
labels, corpus text) as they are, never as its HTML-like markup (links, bold, line breaks).

Every builder downsamples long series to at most ``MAX_POINTS`` points per trace (as W&B does),
so a chart stays responsive however long a run is. Colours are stable per name (an ordering keeps
its colour on every page).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from delt_engine.organize.registry import ORDERINGS
from ui.safe import html as _plain

MAX_POINTS = 1500
MIN_SMOOTH_POINTS = 20  # sparser curves (a few evaluations) are drawn raw: an EMA over 4 points only lags
TEMPLATE = "plotly_white"
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
# Fixed colours for the paper's orderings, so "folding" is always orange and "shuffle" grey.
NAMED_COLORS = {
    "shuffle": "#7f7f7f",
    "sorting": "#1f77b4",
    "sorting-asc": "#1f77b4",
    "sorting-desc": "#9467bd",
    "folding": "#ff7f0e",
    "zigzag": "#2ca02c",
    "false": "#1f77b4",
    "true": "#d62728",
    "kept": "#2ca02c",
    "discarded": "#b0b0b0",
    "clean": "#1f77b4",
    "noise": "#d62728",
}
_ORDERING_COLORS = {c for name, c in NAMED_COLORS.items() if name.split("-")[0] in ORDERINGS}


@dataclass
class Series:
    """One line: ``name`` labels it, ``group`` (e.g. the ordering) picks its colour."""

    name: str
    x: Sequence[float]
    y: Sequence[float]
    group: str | None = None


@dataclass
class Makeup:
    """The stream's make-up of one ordering (``organize.makeup.stream_makeup``) on a figure's x axis:
    window ``i`` spans ``start[i]``..``end[i]``; ``shares[group][i]`` is that group's share of the
    window's documents; ``mean_score[i]`` the window's mean score (None when unscored)."""

    name: str
    start: Sequence[float]
    end: Sequence[float]
    shares: Mapping[str, Sequence[float]]
    mean_score: Sequence[float | None] = ()


@dataclass
class Band:
    """Mean with a lower/upper band (e.g. 95% interval across seeds) for one group."""

    name: str
    x: Sequence[float]
    mean: Sequence[float]
    lower: Sequence[float]
    upper: Sequence[float]
    n: int = 1


# Groups of documents (e.g. the demo's kinds): more distinct colours than orderings need.
GROUP_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#aec7e8",
    "#ffbb78",
    "#98df8a",
    "#ff9896",
    "#c5b0d5",
    "#c49c94",
    "#f7b6d2",
)
GROUP_FIXED = {"other": "#b0b0b0", "(missing)": "#dddddd"}


def group_colors(groups: Sequence[str]) -> dict[str, str]:
    """A colour per group, by the group's rank in sorted order (the same group keeps its colour in
    every panel and on every page that shows the same groups)."""
    ranked = [g for g in sorted(set(map(str, groups))) if g not in GROUP_FIXED]
    out = {g: GROUP_PALETTE[i % len(GROUP_PALETTE)] for i, g in enumerate(ranked)}
    return {**out, **{g: c for g, c in GROUP_FIXED.items() if g in set(map(str, groups))}}


def color_for(name: str, index: int = 0) -> str:
    """A stable colour for ``name`` (known orderings/flags first, else a hash-free palette slot)."""
    key = str(name).lower()
    for prefix in sorted(NAMED_COLORS, key=len, reverse=True):  # longest first: "sorting-desc" before "sorting"
        color = NAMED_COLORS[prefix]
        if key == prefix or key.startswith(prefix + " ") or key.startswith(prefix + "-"):
            return color
    free = [c for c in PALETTE if c not in _ORDERING_COLORS] or PALETTE  # never an ordering's own colour
    return free[index % len(free)]


def _named_prefix(name: str) -> str | None:
    key = str(name).lower()
    for prefix in sorted(NAMED_COLORS, key=len, reverse=True):
        if key == prefix or key.startswith(prefix + " ") or key.startswith(prefix + "-"):
            return prefix
    return None


def _shade(hex_color: str, amount: float) -> str:
    """``hex_color`` mixed towards black (amount > 0) or white (amount < 0) by |amount|."""
    h = hex_color.lstrip("#")
    rgb = [int(h[i : i + 2], 16) for i in (0, 2, 4)]
    target = 0 if amount > 0 else 255
    mixed = [round(c + (target - c) * abs(amount)) for c in rgb]
    return "#" + "".join(f"{c:02x}" for c in mixed)


def arm_colors(names: Sequence[str]) -> dict[str, str]:
    """One colour per name, distinct within the figure: an ordering's own colour for the only arm of that
    ordering, shades of it when several arms share it (the folding sweep: L = 1..5 from light to dark
    orange), and free palette colours for the rest."""
    names = list(dict.fromkeys(map(str, names)))
    # a family: the arms of one named ordering, else the arms whose labels share their first word
    # ("reverse-folding L=2", "reverse-folding L=3"): one base colour, shaded from light to dark
    first_words = [n.split(" ")[0].lower() for n in names]
    families: dict[str, list[str]] = {}
    for name, word in zip(names, first_words):
        prefix = _named_prefix(name)
        family = prefix if prefix is not None else (f"~{word}" if first_words.count(word) > 1 else f"={name}")
        families.setdefault(family, []).append(name)
    free = [c for c in PALETTE if c not in _ORDERING_COLORS] or list(PALETTE)
    out, n_free = {}, 0
    for family, members in families.items():
        if family in NAMED_COLORS:
            base = NAMED_COLORS[family]
        else:
            base, n_free = free[n_free % len(free)], n_free + 1
        if len(members) == 1:
            out[members[0]] = base
            continue
        steps = [-0.45 + 0.9 * i / (len(members) - 1) for i in range(len(members))]  # light ... dark
        out.update({m: _shade(base, s) for m, s in zip(members, steps)})
    return out


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def downsample_index(n: int, max_points: int = MAX_POINTS) -> np.ndarray:
    """Evenly spaced indices into a series of length ``n`` (first and last kept), at most ``max_points``."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(np.int64))


def downsample(x: Sequence[float], y: Sequence[float], max_points: int = MAX_POINTS):
    """Return (x, y) as float arrays with at most ``max_points`` evenly spaced points."""
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(xa) != len(ya):
        raise ValueError(f"x has {len(xa)} points but y has {len(ya)}")
    idx = downsample_index(len(xa), max_points)
    return xa[idx], ya[idx]


def smooth_ema(y: Sequence[float], weight: float) -> np.ndarray:
    """Bias-corrected EMA of ``y`` (``compare.ema``); ``weight`` 0 = raw, towards 1 = smoother."""
    from delt_engine.experiments.stats import ema

    return ema(y, weight)


def _layout(fig: go.Figure, title: str = "", x_title: str = "", y_title: str = "", height: int = 340) -> go.Figure:
    """Title, axis titles, size and legend placement; then every text in the figure escaped (``_escape_text``)."""
    n_legend = sum(1 for t in fig.data if t.showlegend is not False and t.name)
    # A few entries fit in one row above the plot; more go in a column on the right, clear of the title.
    legend = (
        dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0)
        if n_legend <= 4
        else dict(orientation="v", yanchor="top", y=1.0, xanchor="left", x=1.01)
    )
    fig.update_layout(
        template=TEMPLATE,
        title=dict(text=title, x=0.01, font=dict(size=15)),
        height=height,
        margin=dict(l=50, r=20, t=45 if title else 20, b=45),
        legend=legend,
    )
    if x_title:
        fig.update_xaxes(title_text=x_title)
    if y_title:
        fig.update_yaxes(title_text=y_title)
    return _escape_text(fig)


def _escape_text(fig: go.Figure) -> go.Figure:
    """Make plotly show every string of ``fig`` literally (see ``ui.safe.html``). Called once per figure,
    by ``_layout``; hover templates and ``customdata`` (selection ids) are left as they are."""
    fig.layout.title.text = _plain(fig.layout.title.text) if fig.layout.title.text else fig.layout.title.text
    for axis in list(fig.select_xaxes()) + list(fig.select_yaxes()):
        if axis.title.text:
            axis.title.text = _plain(axis.title.text)
    for note in fig.layout.annotations:
        note.text = _plain(note.text)
    for trace in fig.data:
        if trace.name:
            trace.name = _plain(trace.name)
        for key in ("text", "hovertext", "x", "y"):
            value = getattr(trace, key, None)
            if isinstance(value, str):
                setattr(trace, key, _plain(value))
            elif value is not None and len(value) and any(isinstance(v, str) for v in value):
                setattr(trace, key, [_plain(v) if isinstance(v, str) else v for v in value])
    return fig


def bin_range(finite: np.ndarray, tail_ratio: float = 10.0) -> tuple[float, float, bool]:
    """(low, high, clamped): the full range, or the 1st-99th percentile range when a few extreme values
    would stretch the axis more than ``tail_ratio`` times (gradient scores have such tails)."""
    if finite.size == 0:
        return 0.0, 1.0, False
    lo, hi = float(finite.min()), float(finite.max())
    q_lo, q_hi = (float(q) for q in np.quantile(finite, [0.01, 0.99]))
    if q_hi > q_lo and hi - lo > tail_ratio * (q_hi - q_lo):
        return q_lo, q_hi, True
    return lo, hi, False


def histogram(
    values: Sequence[float],
    groups: Sequence | None = None,
    title: str = "",
    x_title: str = "",
    nbins: int = 40,
    cutoff: float | None = None,
    cutoff_label: str = "cutoff",
) -> go.Figure:
    """Histogram of ``values``, one overlaid colour per distinct value of ``groups``, optional cutoff line.

    Heavy tails (see ``bin_range``) are piled into the two edge bins, and the axis title says so.
    """
    vals = np.asarray(values, dtype=float)
    fig = go.Figure()
    lo, hi, clamped = bin_range(vals[np.isfinite(vals)])
    if clamped:
        vals = np.clip(vals, lo, hi)
        x_title = f"{x_title} (values beyond the 1st/99th percentile piled into the edge bins)"
    finite = vals[np.isfinite(vals)]
    size = (hi - lo) / nbins if hi > lo else 1.0
    bins = dict(start=lo, end=hi + size * 1e-6, size=size)
    if groups is None:
        fig.add_trace(go.Histogram(x=finite, xbins=bins, name="all", marker_color=PALETTE[0], showlegend=False))
    else:
        labels = np.asarray([str(g) for g in groups])
        for i, label in enumerate(sorted(set(labels.tolist()))):
            pick = vals[(labels == label) & np.isfinite(vals)]
            fig.add_trace(go.Histogram(x=pick, xbins=bins, name=label, opacity=0.7, marker_color=color_for(label, i)))
        fig.update_layout(barmode="overlay")
    if cutoff is not None and math.isfinite(cutoff):
        fig.add_vline(
            x=cutoff,
            line=dict(color="#d62728", width=2, dash="dash"),
            annotation_text=cutoff_label,
            annotation_position="top",
        )
    return _layout(fig, title, x_title, "samples")


def bar(
    labels: Sequence[str], values: Sequence[float], title: str = "", x_title: str = "", y_title: str = ""
) -> go.Figure:
    """A simple bar chart (e.g. documents per kind)."""
    fig = go.Figure(
        go.Bar(
            x=[str(v) for v in labels],
            y=list(values),
            marker_color=[color_for(str(v), i) for i, v in enumerate(labels)],
        )
    )
    return _layout(fig, title, x_title, y_title, height=280)


def data_map(
    x: Sequence[float],
    y: Sequence[float],
    text: Sequence[str],
    groups: Sequence | None = None,
    ids: Sequence[str] | None = None,
    title: str = "",
    x_title: str = "learnability",
    y_title: str = "quality",
    max_points: int = 5000,
) -> go.Figure:
    """Scatter of two score components (a data map); hover shows the sample text (first 200 chars)."""
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    idx = downsample_index(len(xa), max_points)
    hover = np.asarray([(t[:200] + "…") if len(t) > 200 else t for t in (str(s) for s in text)], dtype=object)
    id_arr = np.asarray([str(i) for i in ids] if ids is not None else [str(i) for i in range(len(xa))], dtype=object)
    labels = np.asarray([str(g) for g in groups]) if groups is not None else np.full(len(xa), "all")
    fig = go.Figure()
    for i, label in enumerate(sorted(set(labels[idx].tolist()))):
        pick = idx[labels[idx] == label]
        fig.add_trace(
            go.Scattergl(
                x=xa[pick],
                y=ya[pick],
                mode="markers",
                name=label,
                customdata=id_arr[pick],
                text=hover[pick],
                hovertext=id_arr[pick],  # the id again, escaped for the hover (customdata stays the raw id)
                marker=dict(size=6, opacity=0.7, color=color_for(label, i)),
                hovertemplate="<b>%{hovertext}</b><br>" + f"{_plain(x_title)}=%{{x:.3g}} {_plain(y_title)}=%{{y:.3g}}"
                "<br>%{text}<extra></extra>",
            )
        )
    fig.update_layout(showlegend=groups is not None)
    return _layout(fig, title, x_title, y_title, height=420)


def step_components(steps: Sequence[int], components: Mapping[str, Sequence[float]], title: str = "") -> go.Figure:
    """One sample's per-step LQS factors (one small panel per component, shared step axis)."""
    names = list(components)
    if not names:
        raise ValueError("no components to plot")
    fig = make_subplots(rows=len(names), cols=1, shared_xaxes=True, vertical_spacing=0.04, subplot_titles=names)
    for row, name in enumerate(names, start=1):
        fig.add_trace(
            go.Scatter(
                x=list(steps),
                y=list(components[name]),
                mode="lines+markers",
                name=name,
                line=dict(color=PALETTE[(row - 1) % len(PALETTE)]),
                showlegend=False,
            ),
            row=row,
            col=1,
        )
    fig.update_xaxes(title_text="proxy training step", row=len(names), col=1)
    fig = _layout(fig, title, height=min(120 + 110 * len(names), 700))
    fig.update_annotations(font_size=12)
    return fig


def heatmap(
    matrix: Sequence[Sequence[float]],
    labels: Sequence[str],
    title: str = "",
    zmin: float = -1.0,
    zmax: float = 1.0,
    colorscale: str = "RdBu",
) -> go.Figure:
    """Square matrix (e.g. Spearman correlation or top-k Jaccard between scorers) with values written in."""
    z = np.asarray(matrix, dtype=float)
    if z.shape != (len(labels), len(labels)):
        raise ValueError(f"matrix of shape {z.shape} does not match {len(labels)} labels")
    text = [["" if math.isnan(v) else f"{v:.2f}" for v in row] for row in z]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(labels),
            y=list(labels),
            zmin=zmin,
            zmax=zmax,
            colorscale=colorscale,
            text=text,
            texttemplate="%{text}",
            hovertemplate="%{y} vs %{x}: %{z:.3f}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, title, height=120 + 60 * max(len(labels), 3))


def batch_means(scores: Sequence[float], batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean score of each consecutive batch of ``batch_size`` positions: (batch start positions, means)."""
    s = np.asarray(scores, dtype=float)
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1")
    starts = np.arange(0, len(s), batch_size)
    means = np.array(
        [np.nanmean(s[i : i + batch_size]) if np.isfinite(s[i : i + batch_size]).any() else np.nan for i in starts]
    )
    return starts, means


def _add_layout_traces(
    fig: go.Figure,
    scores: Sequence[float],
    layer_starts: Sequence[int],
    batch_size: int,
    color: str,
    row: int | None = None,
    col: int | None = None,
    legend: bool = True,
):
    s = np.asarray(scores, dtype=float)
    pos = np.arange(len(s))
    xs, ys = downsample(pos, s)
    where = dict(row=row, col=col) if row else {}
    few = len(s) <= 100  # a teaching-size example: connect the samples so the saw-tooth is visible
    fig.add_trace(
        go.Scattergl(
            x=xs,
            y=ys,
            mode="lines+markers" if few else "markers",
            name="sample score",
            showlegend=legend,
            line=dict(color=color, width=1),
            marker=dict(size=7 if few else 3, color=color, opacity=0.9 if few else 0.45),
        ),
        **where,
    )
    if batch_size > 1 and len(s):
        bx, by = batch_means(s, batch_size)
        bx, by = downsample(bx + (batch_size - 1) / 2, by)
        fig.add_trace(
            go.Scatter(
                x=bx, y=by, mode="lines", name="batch mean", showlegend=legend, line=dict(color="#222222", width=2)
            ),
            **where,
        )
    for b in layer_starts:
        if 0 < b < len(s):
            fig.add_vline(x=b - 0.5, line=dict(color="#d62728", width=1, dash="dot"), **where)


def ordering_layout(
    scores: Sequence[float], layer_starts: Sequence[int] = (), batch_size: int = 16, title: str = "", name: str = ""
) -> go.Figure:
    """Score against training position: folding's saw-tooth, sorting's ramp, shuffle's noise.

    Args:
        scores: the score of the sample at each training position (in training order).
        layer_starts: positions where a new folding layer starts (drawn as dotted lines).
        batch_size: positions per batch for the "mean score per batch" line (0 = no line).
    """
    fig = go.Figure()
    _add_layout_traces(fig, scores, layer_starts, batch_size, color_for(name or title))
    return _layout(fig, title, "training position", "score", height=320)


def ordering_grid(
    layouts: Mapping[str, tuple[Sequence[float], Sequence[int]]],
    batch_size: int = 16,
    title: str = "",
    makeups: Mapping[str, Makeup] | None = None,
) -> go.Figure:
    """Several orderings side by side: ``{name: (scores in training order, layer starts)}``.

    With ``makeups`` ({name: Makeup on the training-position axis}), a second row under each ordering
    shows its stream make-up (share of each group per window), on the same x axis as the scores.
    """
    names = list(layouts)
    if not names:
        raise ValueError("no orderings to plot")
    rows = 2 if makeups else 1
    fig = make_subplots(
        rows=rows,
        cols=len(names),
        shared_yaxes=True,
        shared_xaxes=bool(makeups),
        subplot_titles=names,
        horizontal_spacing=0.03,
        vertical_spacing=0.08,
        row_heights=[0.6, 0.4] if makeups else None,
    )
    colors = group_colors([g for m in (makeups or {}).values() for g in m.shares])
    shown: set = set()
    for col, name in enumerate(names, start=1):
        scores, starts = layouts[name]
        _add_layout_traces(fig, scores, starts, batch_size, color_for(name, col - 1), row=1, col=col, legend=col == 1)
        if makeups and name in makeups:
            _add_makeup(fig, makeups[name], colors, shown, row=2, col=col)
        fig.update_xaxes(title_text="training position", row=rows, col=col)
    fig.update_yaxes(title_text="score", row=1, col=1)
    if makeups:
        fig.update_yaxes(title_text="share", row=2, col=1)
    fig = _layout(fig, title, height=560 if makeups else 360)
    # Subplot titles sit where a top legend would go: put the legend under the panels.
    fig.update_layout(
        legend=dict(orientation="h", yanchor="top", y=-0.14 if makeups else -0.22, xanchor="left", x=0.0),
        margin=dict(b=110 if makeups else 80),
    )
    return fig


def makeup_from_frame(frame, name: str, x_of_step=None) -> Makeup:
    """A ``Makeup`` from ``stream_makeup``'s long frame (window, start_step, end_step, group, share,
    mean_score); ``x_of_step`` maps a step count to the x axis (default: steps; e.g. training positions
    ``step * batch_size``, or the tokens seen by that step). Window i spans x_of_step(start_step - 1)
    to x_of_step(end_step)."""
    x_of_step = x_of_step or (lambda step: float(step))
    windows = frame.select("window", "start_step", "end_step", "mean_score").unique("window").sort("window")
    start = [float(x_of_step(s - 1)) for s in windows["start_step"].to_list()]
    end = [float(x_of_step(e)) for e in windows["end_step"].to_list()]
    shares = {}
    for group in sorted(frame["group"].unique().to_list()):
        part = frame.filter(frame["group"] == group).sort("window")
        by_window = dict(zip(part["window"].to_list(), part["share"].to_list()))
        shares[group] = [float(by_window.get(w, 0.0)) for w in windows["window"].to_list()]
    return Makeup(name, start, end, shares, windows["mean_score"].to_list())


def _add_makeup(
    fig: go.Figure,
    makeup: Makeup,
    colors: Mapping[str, str],
    shown: set,
    row: int,
    col: int = 1,
    score_axis: bool = False,
) -> None:
    """Stacked bars, one per window and group (width = the window), and the mean score per window on a
    secondary y axis when ``score_axis``. Each group's legend entry is shown once (``shown``)."""
    start, end = np.asarray(makeup.start, dtype=float), np.asarray(makeup.end, dtype=float)
    centre, width = (start + end) / 2, end - start
    for group, share in makeup.shares.items():
        fig.add_trace(
            go.Bar(
                x=centre,
                y=list(share),
                width=width,
                name=group,
                legendgroup=f"group:{group}",
                showlegend=group not in shown,
                marker=dict(color=colors.get(group, "#888888"), line=dict(width=0)),
                hovertemplate=f"{group}: %{{y:.0%}}<extra>{makeup.name}</extra>",
            ),
            row=row,
            col=col,
        )
        shown.add(group)
    scores = [np.nan if v is None else float(v) for v in makeup.mean_score]
    if score_axis and np.isfinite(scores).any():
        fig.add_trace(
            go.Scatter(
                x=centre,
                y=scores,
                mode="lines+markers",
                name="mean score per window",
                legendgroup="mean score",
                showlegend="mean score" not in shown,
                line=dict(color="#222222", width=1.5, dash="dot"),
                marker=dict(size=4),
                hovertemplate="mean score %{y:.3g}<extra></extra>",
            ),
            row=row,
            col=col,
            secondary_y=True,
        )
        fig.update_yaxes(
            nticks=3, row=row, col=col, secondary_y=True, **({"rangemode": "tozero"} if np.nanmin(scores) >= 0 else {})
        )
        shown.add("mean score")
    fig.update_yaxes(range=[0, 1], tickformat=".0%", row=row, col=col, **({"secondary_y": False} if score_axis else {}))
    fig.update_layout(barmode="stack", bargap=0)


def curves(
    series: Sequence[Series],
    title: str = "",
    x_title: str = "step",
    y_title: str = "",
    smoothing: float = 0.0,
    max_points: int = MAX_POINTS,
) -> go.Figure:
    """Overlaid curves; with ``smoothing`` > 0 the EMA is drawn solid and the raw curve faint behind
    (only for curves with at least MIN_SMOOTH_POINTS points)."""
    fig = go.Figure()
    colors = arm_colors([s.group or s.name for s in series])
    for s in series:
        key = s.group or s.name
        color = colors[key]
        x, y = downsample(s.x, s.y, max_points)
        if smoothing > 0 and len(y) >= MIN_SMOOTH_POINTS:
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    mode="lines",
                    name=f"{s.name} (raw)",
                    showlegend=False,
                    line=dict(color=_rgba(color, 0.25), width=1),
                    hoverinfo="skip",
                )
            )
            y = smooth_ema(y, smoothing)
        mode = "lines+markers" if len(x) < 30 else "lines"
        fig.add_trace(
            go.Scatter(
                x=x, y=y, mode=mode, name=s.name, line=dict(color=color, width=2), marker=dict(size=5), legendgroup=key
            )
        )
    return _layout(fig, title, x_title, y_title)


def bands(
    items: Sequence[Band],
    title: str = "",
    x_title: str = "tokens",
    y_title: str = "",
    smoothing: float = 0.0,
    max_points: int = MAX_POINTS,
) -> go.Figure:
    """Mean curve per group with a shaded band (e.g. mean ± 95% interval across seeds)."""
    fig = go.Figure()
    colors = arm_colors([b.name for b in items])
    for b in items:
        color = colors[b.name]
        x, mean, lo, hi = _band_arrays(b, smoothing, downsample_index(len(b.x), max_points))
        if b.n > 1:
            fig.add_trace(_band_fill(x, lo, hi, color, b.name))
        label = f"{b.name} (n={b.n})" if b.n > 1 else b.name
        fig.add_trace(
            go.Scatter(
                x=x,
                y=mean,
                mode="lines+markers" if len(x) < 30 else "lines",
                name=label,
                line=dict(color=color, width=2),
                legendgroup=b.name,
            )
        )
    return _layout(fig, title, x_title, y_title)


def _band_arrays(b: Band, smoothing: float, idx=None) -> tuple[np.ndarray, ...]:
    """x, mean, lower, upper of a band as floats (at ``idx`` when given), EMA-smoothed when asked."""
    x, mean, lo, hi = (np.asarray(v, dtype=float) for v in (b.x, b.mean, b.lower, b.upper))
    if idx is not None:
        x, mean, lo, hi = x[idx], mean[idx], lo[idx], hi[idx]
    if smoothing > 0 and len(x) >= MIN_SMOOTH_POINTS:
        mean, lo, hi = smooth_ema(mean, smoothing), smooth_ema(lo, smoothing), smooth_ema(hi, smoothing)
    return x, mean, lo, hi


def _band_fill(x, lo, hi, color: str, group: str) -> go.Scatter:
    """The shaded interval between ``lo`` and ``hi``, in the legend group of its curve."""
    return go.Scatter(
        x=np.concatenate([x, x[::-1]]),
        y=np.concatenate([hi, lo[::-1]]),
        mode="lines",
        fill="toself",
        fillcolor=_rgba(color, 0.18),
        line=dict(width=0),
        hoverinfo="skip",
        showlegend=False,
        legendgroup=group,
    )


def curves_with_trace(
    top: Sequence[Series],
    bottom: Sequence[Series],
    title: str = "",
    x_title: str = "step",
    top_title: str = "loss",
    bottom_title: str = "batch mean score",
    smoothing: float = 0.0,
    makeups: Mapping[str, Makeup] | None = None,
) -> go.Figure:
    """Loss curves on top and, on a shared x axis below, the mean score of each training batch; with
    ``makeups`` ({arm: Makeup on the same x axis}) one more row per arm shows its stream make-up (share
    of each group per window, and the window's mean score on a right-hand axis)."""
    extra = len(makeups or {})
    heights = [0.68, 0.32] if not extra else [0.45, 0.17] + [0.38 / extra] * extra
    specs = [[{}], [{}]] + [[{"secondary_y": True}]] * extra
    titles = ["", ""] + [f"stream make-up: {arm}" for arm in (makeups or {})]
    fig = make_subplots(
        rows=2 + extra,
        cols=1,
        shared_xaxes=True,
        row_heights=heights,
        vertical_spacing=0.05,
        specs=specs,
        subplot_titles=titles if extra else None,
    )
    colors = arm_colors([s.group or s.name for s in list(top) + list(bottom)])
    groups: dict[str, int] = {}
    for row, items in ((1, top), (2, bottom)):
        for s in items:
            key = s.group or s.name
            groups.setdefault(key, len(groups))
            color = colors[key]
            x, y = downsample(s.x, s.y)
            if row == 1 and smoothing > 0 and len(y) >= MIN_SMOOTH_POINTS:
                fig.add_trace(
                    go.Scatter(
                        x=x,
                        y=y,
                        mode="lines",
                        showlegend=False,
                        hoverinfo="skip",
                        line=dict(color=_rgba(color, 0.25), width=1),
                    ),
                    row=row,
                    col=1,
                )
                y = smooth_ema(y, smoothing)
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    mode="lines",
                    name=s.name,
                    legendgroup=key,
                    showlegend=row == 1,
                    line=dict(color=color, width=2 if row == 1 else 1),
                ),
                row=row,
                col=1,
            )
    colors = group_colors([g for m in (makeups or {}).values() for g in m.shares])
    shown: set = set()
    for row, makeup in enumerate((makeups or {}).values(), start=3):
        _add_makeup(fig, makeup, colors, shown, row=row, score_axis=True)
        fig.update_yaxes(title_text="share", row=row, col=1, secondary_y=False)
        fig.update_yaxes(title_text="score", row=row, col=1, secondary_y=True, showgrid=False)
    fig.update_yaxes(title_text=top_title, row=1, col=1)
    fig.update_yaxes(title_text=bottom_title, row=2, col=1)
    fig.update_xaxes(title_text=x_title, row=2 + extra, col=1)
    fig = _layout(fig, title, height=460 + 130 * extra)
    if extra:
        fig.update_annotations(font_size=12, x=0.0, xanchor="left")
    return fig


def group_panels(
    panels: Mapping[str, Sequence[Band]],
    title: str = "",
    x_title: str = "step",
    y_title: str = "loss",
    cols: int = 4,
    smoothing: float = 0.0,
) -> go.Figure:
    """Small multiples: one panel per group (``{group: [Band per arm]}``), each arm's curve with its
    band across seeds; arms keep one colour in every panel, each panel has its own y range."""
    names = list(panels)
    if not names:
        raise ValueError("no groups to plot")
    cols = max(1, min(int(cols), len(names)))
    rows = -(-len(names) // cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=names,
        shared_xaxes="all",
        horizontal_spacing=0.06,
        vertical_spacing=0.16 if rows > 1 else 0.1,
    )
    arms: dict[str, int] = {}
    colors = arm_colors([b.name for name in names for b in panels[name]])
    for i, name in enumerate(names):
        row, col = divmod(i, cols)
        for b in panels[name]:
            first = b.name not in arms
            arms.setdefault(b.name, len(arms))
            color = colors[b.name]
            x, mean, lo, hi = _band_arrays(b, smoothing)
            if b.n > 1:
                fig.add_trace(_band_fill(x, lo, hi, color, b.name), row=row + 1, col=col + 1)
            label = f"{b.name} (n={b.n})" if b.n > 1 else b.name
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=mean,
                    mode="lines+markers" if len(x) < 30 else "lines",
                    name=label,
                    legendgroup=b.name,
                    showlegend=first,
                    line=dict(color=color, width=2),
                    marker=dict(size=4),
                    hovertemplate=f"{name}: %{{y:.4f}}<extra>{b.name}</extra>",
                ),
                row=row + 1,
                col=col + 1,
            )
    for c in range(1, cols + 1):
        fig.update_xaxes(title_text=x_title, row=rows, col=c)
    for r in range(1, rows + 1):
        fig.update_yaxes(title_text=y_title, row=r, col=1)
    height = 150 + 230 * rows
    fig = _layout(fig, title, height=height)
    fig.update_annotations(font_size=12)
    # the arms' legend goes under the panels: above them it would collide with the title and panel titles
    plot_px = height - 45 - 110
    fig.update_layout(
        legend=dict(orientation="h", yanchor="top", y=-70 / plot_px, xanchor="left", x=0.0), margin=dict(b=110)
    )
    return fig
