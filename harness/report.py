"""Reports: seaborn plots and a Markdown + self-contained HTML report of a
sweep folder, read from its CSV files (``summary.csv``, each run's
``metrics.csv`` and ``confusion.csv``) and ``config.json``; nothing is trained.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from . import store
from .errors import ConfigError
from .status import RunStatus, in_comparison

# Settings that, when they vary, tell grouped runs apart in the tables.
SETTING_COLUMNS = ("lr", "optimizer", "batch_size", "activation", "init", "dtype", "iterations", "epochs",
                   "weight_decay", "dropout", "lr_schedule", "warmup", "early_stopping")
ARTICLE_CLAIMS = {"784-10-10": (1000, 0.88), "784-256-128-64-10": (500, 0.97)}
PLOTS = {
    "acc_vs_depth": "Validation accuracy against depth",
    "acc_vs_width": "Validation accuracy against width",
    "acc_vs_time": "Accuracy against time per iteration, with the Pareto front",
    "time_vs_flops": "Time per iteration against FLOPs per iteration",
    "learning_curves": "Learning curves",
    "confusion": "Confusion matrix of the best run (validation data)",
}


# --- reading ------------------------------------------------------------------

def load(folder):
    """``(summary, metrics, folder)``: the summary (one row per run) and all
    runs' metrics rows with their run id. Raises ConfigError for a folder
    that holds no sweep results."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such results folder")
    path = folder / "summary.csv"
    if not path.is_file():
        raise ConfigError(f"{folder}: no summary.csv here; is this a sweep's results folder (results/<name>)?")
    try:
        summary = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        summary = pd.DataFrame()
    if summary.empty:
        raise ConfigError(f"{path}: no runs recorded yet; run the sweep first")
    frames = []
    for run_id in summary.run_id:
        mpath = folder / "runs" / run_id / "metrics.csv"
        if mpath.is_file():
            m = pd.read_csv(mpath)
            m["run_id"] = run_id
            frames.append(m)
    metrics = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(store.METRIC_COLUMNS) + ["run_id"])
    return summary, metrics.merge(summary[["run_id", "layers", "seed"]], on="run_id"), folder


def _environment(folder, summary):
    for run_id in summary.run_id:
        path = folder / "runs" / run_id / "config.json"
        if path.is_file():
            conf = json.loads(path.read_text())
            return {
                "CPU": conf.get("cpu", "?"),
                "cores": conf.get("cores", "?"),
                "host": conf.get("host", "?"),
                "numpy": conf.get("numpy", "?"),
                "BLAS": f"{conf.get('blas', '?')} ({conf.get('blas_threads', '?')} thread per chunk)",
                "threads per run": conf.get("threads", "?"),
                "harness": conf.get("harness", "?"),
            }
    return {}


# --- tables -------------------------------------------------------------------

def variant_keys(summary):
    """The columns that tell runs apart apart from their seed: the layers and
    any setting that varies in this sweep."""
    return ["layers"] + [c for c in SETTING_COLUMNS if c in summary and summary[c].nunique() > 1]


def variant_label(row, keys):
    """"784-256-10" alone, or with the settings that tell its variants apart."""
    return ", ".join([row["layers"]] + [f"{k} {row[k]}" for k in keys[1:]])


def grouped(summary):
    """Runs grouped over seeds, mean and std, sorted by validation accuracy."""
    ok = summary[in_comparison(summary.status)]
    keys = variant_keys(ok)
    g = ok.groupby(keys, sort=False)
    out = g.agg(
        seeds=("seed", "count"),
        val_acc=("final_val_acc", "mean"), val_sd=("final_val_acc", "std"),
        train_acc=("final_train_acc", "mean"), train_sd=("final_train_acc", "std"),
        depth=("depth", "first"), width=("width", "first"),
        n_params=("n_params", "first"), flops_per_iter=("flops_per_iter", "first"),
        s_per_iter=("median_iter_seconds", "median"),
        diverged=("status", lambda s: int((s == RunStatus.DIVERGED).sum())),
        **({"test_acc": ("test_acc", "mean"), "test_sd": ("test_acc", "std")}
           if "test_acc" in ok and ok.test_acc.notna().any() else {}),
    ).reset_index()
    out["label"] = [variant_label(row, keys) for _, row in out.iterrows()]
    return out.sort_values("val_acc", ascending=False, na_position="last").reset_index(drop=True)


def pareto(points):
    """Rows of ``points`` (columns s_per_iter, val_acc) on the Pareto front:
    each is more accurate than every cheaper one. Sorted by time."""
    front, best = [], -math.inf
    for i, row in points.sort_values(["s_per_iter", "val_acc"], ascending=[True, False]).iterrows():
        if row.val_acc > best:
            front.append(i)
            best = row.val_acc
    return points.loc[front]


def _pct(mean, sd=None):
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    text = f"{100 * mean:.2f}%"
    if sd is not None and not (isinstance(sd, float) and math.isnan(sd)):
        text += f" ± {100 * sd:.2f}"
    return text


def _si(x):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


# --- plots --------------------------------------------------------------------

def _shape(layers):
    """'constant', 'halving' or 'other' for a layer string like 784-128-64-10."""
    hidden = [int(n) for n in layers.split("-")[1:-1]]
    if len(set(hidden)) <= 1:
        return "constant"
    if all(b == a // 2 for a, b in zip(hidden, hidden[1:])):
        return "halving"
    return "other"


def _palette(summary):
    """One colour per architecture, ordered by size, shared by every plot."""
    import seaborn as sns

    archs = summary.sort_values(["n_params", "layers"]).layers.drop_duplicates().tolist()
    return dict(zip(archs, sns.color_palette("husl", len(archs))))


def plot_all(summary, metrics, folder, plots_dir):
    """Write every plot as PNG into ``plots_dir``; returns {name: path}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    plots_dir.mkdir(parents=True, exist_ok=True)
    palette = _palette(summary)
    ok = summary[in_comparison(summary.status)].copy()
    ok["shape"] = ok.layers.map(_shape)
    written = {}

    def save(fig, name):
        path = plots_dir / f"{name}.png"
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        store.atomic_write_bytes(path, buf.getvalue())
        written[name] = path

    def empty(ax, text="no finished runs"):
        ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)

    # accuracy against depth, coloured by width; and against width, coloured by depth
    for name, x, hue, xlabel, huelabel in (
        ("acc_vs_depth", "depth", "width", "depth (hidden layers)", "first hidden width (units)"),
        ("acc_vs_width", "width", "depth", "first hidden width (units, log scale)", "depth (hidden layers)"),
    ):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        if ok.empty:
            empty(ax)
        else:
            shapes = ok["shape"].nunique() > 1
            sns.lineplot(data=ok, x=x, y="final_val_acc", hue=hue, style="shape" if shapes else None,
                         markers=shapes, marker=None if shapes else "o", dashes=shapes,
                         errorbar="sd", err_style="bars", palette="viridis", ax=ax,
                         hue_norm=matplotlib.colors.LogNorm() if hue == "width" and ok.width.min() > 0 else None)
            ax.legend(title=huelabel, fontsize=8)
            if x == "width" and ok.width.min() > 0:
                ax.set_xscale("log", base=2)
            if x == "depth":
                ax.set_xticks(sorted(ok.depth.unique()))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("final validation accuracy (fraction)")
        ax.set_title(PLOTS[name] + (" (mean ± sd over seeds)" if ok.seed.nunique() > 1 else ""))
        save(fig, name)

    g = grouped(summary) if not ok.empty else None

    # accuracy against time per iteration, Pareto front
    fig, ax = plt.subplots(figsize=(7.5, 5))
    if g is None or g.empty:
        empty(ax)
    else:
        markers = {}
        for _, row in g.iterrows():  # colour: architecture; marker: its variant
            markers[row.layers] = markers.get(row.layers, -1) + 1
            ax.errorbar(row.s_per_iter, row.val_acc, yerr=0 if math.isnan(row.val_sd) else row.val_sd,
                        fmt="osD^vP*X"[markers[row.layers] % 8], color=palette[row.layers], label=row.label,
                        capsize=3, markersize=7)
        front = pareto(g)
        ax.step(front.s_per_iter, front.val_acc, where="post", color="black", linestyle="--", linewidth=1,
                label="Pareto front")
        ax.scatter(front.s_per_iter, front.val_acc, s=160, facecolors="none", edgecolors="black", zorder=3)
        ax.set_xscale("log")
        ax.legend(fontsize=7, ncol=2 if g.label.str.len().max() < 24 else 1, title="architecture",
                  title_fontsize=8, bbox_to_anchor=(1.02, 1), loc="upper left")
    ax.set_xlabel("median time per training iteration (seconds, log scale)")
    ax.set_ylabel("final validation accuracy (fraction)")
    ax.set_title(PLOTS["acc_vs_time"])
    save(fig, "acc_vs_time")

    # time against FLOPs, with achieved GFLOP/s
    fig, ax = plt.subplots(figsize=(7.5, 5))
    if g is None or g.empty:
        empty(ax)
    else:
        for _, row in g.iterrows():
            ax.scatter(row.flops_per_iter, row.s_per_iter, color=palette[row.layers], label=row.layers, s=50)
            ax.annotate(f"{row.flops_per_iter / row.s_per_iter / 1e9:.1f} GFLOP/s",
                        (row.flops_per_iter, row.s_per_iter), fontsize=7, xytext=(4, -3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize=7, ncol=2, title="architecture", title_fontsize=8, bbox_to_anchor=(1.02, 1), loc="upper left")
    ax.set_xlabel("FLOPs per training iteration (log scale)")
    ax.set_ylabel("median time per iteration (seconds, log scale)")
    ax.set_title(PLOTS["time_vs_flops"] + " (labels: achieved GFLOP/s)")
    save(fig, "time_vs_flops")

    # learning curves: train accuracy and loss per iteration, validation accuracy at evaluations
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    curves = metrics[metrics.run_id.isin(ok.run_id)].sort_values(["run_id", "iteration"])
    smooth = 1
    if curves.empty:
        empty(ax1)
        empty(ax2)
    else:
        # Minibatch rows are noisy: show a rolling mean. Long curves are thinned
        # so the plot stays light; every evaluation point is kept.
        n_iter = int(curves.iteration.max())
        if (ok.batch_size > 0).any():
            smooth = max(1, n_iter // 50)
            for col in ("train_acc", "train_loss"):
                curves[col] = curves.groupby("run_id")[col].transform(lambda c: c.rolling(smooth, min_periods=1).mean())
        step = max(1, n_iter // 300)
        # one curve per variant (mean over seeds): colour by architecture, dashes by variant
        keys = variant_keys(ok)
        labels = {row.run_id: variant_label(row, keys) for _, row in ok.iterrows()}
        curves["variant"] = curves.run_id.map(labels)
        colours = {labels[r]: palette[layers] for r, layers in zip(ok.run_id, ok.layers)}
        order = sorted(colours, key=lambda v: (list(palette).index(v.split(",")[0]), v))
        thin = curves[curves.iteration % step == 0]
        for ax, col in ((ax1, "train_acc"), (ax2, "train_loss")):
            mean = thin.groupby(["variant", "iteration"], as_index=False)[col].mean()
            sns.lineplot(data=mean, x="iteration", y=col, hue="variant", style="variant", hue_order=order,
                         style_order=order, palette=colours, ax=ax, linewidth=1.2, legend=ax is ax1)
        vals = curves[curves.val_acc.notna()].groupby(["variant", "iteration"], as_index=False).val_acc.mean()
        sns.scatterplot(data=vals, x="iteration", y="val_acc", hue="variant", hue_order=order, palette=colours,
                        ax=ax1, s=14, marker="D", legend=False, zorder=3)
        ax2.set_yscale("log")
        lo = max(0.0, float(np.nanpercentile(thin.train_acc, 5)) - 0.05)
        ax1.set_ylim(lo, 1.0)
        ax1.legend(fontsize=7, ncol=2 if max(map(len, order)) < 40 else 1, title="architecture (diamonds: validation)",
                   title_fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.14))
    seeds = " (mean over seeds)" if ok.seed.nunique() > 1 else ""
    roll = f", rolling mean over {smooth} iterations" if smooth > 1 else ""
    ax1.set_xlabel("iteration")
    ax1.set_ylabel("accuracy (fraction)")
    ax1.set_title(f"Training accuracy{roll}{seeds}\nvalidation accuracy at evaluations", fontsize=10)
    ax2.set_xlabel("iteration")
    ax2.set_ylabel("training loss (mean cross-entropy, log scale)")
    ax2.set_title(f"Training loss{roll}{seeds}", fontsize=10)
    save(fig, "learning_curves")

    # confusion matrix of the best run
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    best = ok.sort_values("final_val_acc", ascending=False).head(1)
    cpath = folder / "runs" / best.run_id.iloc[0] / "confusion.csv" if not best.empty else None
    if cpath is not None and cpath.is_file():
        counts = pd.read_csv(cpath, index_col=0)
        counts.columns = [c.replace("pred_", "") for c in counts.columns]
        sns.heatmap(counts, annot=True, fmt="d", cmap="Blues", cbar_kws={"label": "examples"}, ax=ax,
                    annot_kws={"fontsize": 7})
        ax.set_title(f"{PLOTS['confusion']}\n{best.layers.iloc[0]} seed {best.seed.iloc[0]}: "
                     f"{_pct(best.final_val_acc.iloc[0])}")
    else:
        empty(ax, "no confusion matrix recorded")
        ax.set_title(PLOTS["confusion"])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    save(fig, "confusion")
    return written


# --- the report ---------------------------------------------------------------

def _article_section(summary):
    """Rows comparing the article's claims with our runs, or None if this
    sweep does not hold the article's two networks trained its way."""
    faithful = summary[(summary.optimizer == "gd") & (summary.init == "article") & in_comparison(summary.status)]
    if not set(ARTICLE_CLAIMS) <= set(faithful.layers):
        return None
    rows, times = [], {}
    test = (faithful.validation.astype(str) == "test").all()
    for layers, (iters, claim) in ARTICLE_CLAIMS.items():
        runs = faithful[(faithful.layers == layers) & (faithful.iterations == iters)]
        if runs.empty:
            return None
        times[layers] = runs.median_iter_seconds.median()
        rows.append({
            "network": layers, "iterations": iters, "article: train acc": f"~{100 * claim:.0f}%",
            "ours: train acc": _pct(runs.final_train_acc.mean(), runs.final_train_acc.std()),
            ("ours: test acc" if test else "ours: validation acc"): _pct(runs.final_val_acc.mean(), runs.final_val_acc.std()),
            "ours: s/iter": f"{times[layers]:.4f}",
        })
    ratio = times["784-256-128-64-10"] / times["784-10-10"]
    return pd.DataFrame(rows), ratio, test


def _budget_table(g):
    front = pareto(g).reset_index(drop=True)
    rows = []
    for i, row in front.iterrows():
        upper = front.s_per_iter.iloc[i + 1] if i + 1 < len(front) else None
        budget = f"{row.s_per_iter:.4g} s" + (f" to {upper:.4g} s" if upper is not None else " or more")
        rows.append({"time per iteration": budget, "best architecture": row.label,
                     "validation acc": _pct(row.val_acc, row.val_sd)})
    return pd.DataFrame(rows)


def _md_table(df):
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(str(v).replace("|", "\\|") for v in row.values) + " |")
    return "\n".join(lines)


def build(folder):
    """The report's content: a list of blocks ``(kind, payload)`` that both
    renderers share; kinds are h1, h2, p, table, image, code."""
    summary, metrics, folder = load(folder)
    blocks = []
    name = folder.name
    blocks.append(("h1", f"Sweep report: {name}"))
    if store.sweep_running(folder):
        written = pd.Timestamp.now().strftime("%Y-%m-%d %H:%M:%S")
        blocks.append(("p", f"**Partial:** a sweep is still running on this folder. This report, written "
                            f"{written}, holds only the runs finished by then."))
    counts = summary.status.value_counts()
    blocks.append(("p", f"{len(summary)} runs: " + ", ".join(f"{n} {s}" for s, n in counts.items())
                   + ". Accuracies are fractions of the validation data "
                   + ("(the official MNIST test split)" if (summary.validation.astype(str) == "test").all()
                      else "(rows held out of the training file)") + "."))
    on_disk = {p.name for p in (folder / "runs").iterdir() if p.is_dir()} if (folder / "runs").is_dir() else set()
    stray = len(on_disk - set(summary.run_id))
    if stray:
        blocks.append(("p", f"{stray} run folder{'' if stray == 1 else 's'} on disk "
                            f"{'is' if stray == 1 else 'are'} not in this grid and left out of this report."))
    if (summary.validation.astype(str) == "test").all():
        blocks.append(("p", "**Note:** this sweep validates on the official test split, so any choice made "
                            "from this report is a choice made on test data."))
    elif "test_acc" in summary and summary.test_acc.notna().any():
        blocks.append(("p", "Runs are ranked by validation accuracy. The official test split was held out "
                            "of that choice: each run was evaluated on it once, at the end, with the "
                            "parameters it kept."))

    article = _article_section(summary)
    if article is not None:
        table, ratio, test = article
        blocks.append(("h2", "Article vs this run"))
        blocks.append(("p", "The article trained on 33,600 images (80% of a 42,000-row CSV) and reported "
                            "training accuracy only. We report both training accuracy and "
                            + ("test accuracy on the 10,000 official MNIST test images." if test
                               else "validation accuracy.")))
        blocks.append(("table", table))
        blocks.append(("p", f"Time per iteration of 784-256-128-64-10 is **{ratio:.1f}×** that of 784-10-10 "
                            "(the article only says it \"increases considerably\")."))

    g = grouped(summary)
    blocks.append(("h2", "Runs, grouped over seeds"))
    shown = pd.DataFrame({
        "architecture": g.layers,
        **{c: g[c] for c in g.columns if c in SETTING_COLUMNS},
        "seeds": g.seeds,
        "validation acc": [_pct(m, s) for m, s in zip(g.val_acc, g.val_sd)],
        **({"test acc (held out)": [_pct(m, s) for m, s in zip(g.test_acc, g.test_sd)]} if "test_acc" in g else {}),
        "train acc": [_pct(m, s) for m, s in zip(g.train_acc, g.train_sd)],
        "params": [_si(v) for v in g.n_params],
        "FLOPs/iter": [_si(v) for v in g.flops_per_iter],
        "s/iter": [f"{v:.4g}" for v in g.s_per_iter],
        "diverged": g.diverged,
    })
    blocks.append(("table", shown))

    done = g[g.diverged < g.seeds]
    if not done.empty:
        blocks.append(("h2", "Best architecture for each time budget"))
        blocks.append(("p", "The Pareto front: each architecture below is the most accurate one that costs "
                            "at most its time per iteration."))
        blocks.append(("table", _budget_table(done)))

    bad = summary[summary.status != RunStatus.DONE]
    blocks.append(("h2", "Failed and diverged runs"))
    if bad.empty:
        blocks.append(("p", "None."))
    else:
        blocks.append(("table", pd.DataFrame({"run_id": bad.run_id, "architecture": bad.layers, "seed": bad.seed,
                                              "status": bad.status, "reason": bad.reason.fillna("")})))

    blocks.append(("h2", "Plots"))
    for key, title in PLOTS.items():
        blocks.append(("image", (title, f"plots/{key}.png")))

    blocks.append(("h2", "Environment"))
    env = _environment(folder, summary)
    blocks.append(("table", pd.DataFrame({"": list(env), "value": [str(v) for v in env.values()]})))
    blocks.append(("h2", "Settings"))
    toml = folder / "sweep.toml"
    blocks.append(("code", toml.read_text() if toml.is_file() else "(sweep.toml missing)"))
    return blocks, summary, metrics, folder


def render_md(blocks):
    out = []
    for kind, payload in blocks:
        if kind == "h1":
            out.append(f"# {payload}")
        elif kind == "h2":
            out.append(f"## {payload}")
        elif kind == "p":
            out.append(payload)
        elif kind == "table":
            out.append(_md_table(payload))
        elif kind == "image":
            title, path = payload
            out.append(f"### {title}\n\n![{title}]({path})")
        elif kind == "code":
            out.append(f"```toml\n{payload}```" if payload.endswith("\n") else f"```toml\n{payload}\n```")
    return "\n\n".join(out) + "\n"


_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}table{border-collapse:collapse;margin:1em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:left}th{background:#f3f3f3}tr:nth-child(even){background:#fafafa}
img{max-width:100%;border:1px solid #eee}pre{background:#f6f8fa;padding:1em;overflow:auto}h2{border-bottom:1px solid #eee}"""


def render_html(blocks, folder):
    body = []
    for kind, payload in blocks:
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{html.escape(payload)}</{kind}>")
        elif kind == "p":
            text = html.escape(payload)
            while "**" in text:  # the only markup the paragraphs use
                text = text.replace("**", "<strong>", 1).replace("**", "</strong>", 1)
            body.append(f"<p>{text}</p>")
        elif kind == "table":
            body.append(payload.to_html(index=False, border=0, escape=True))
        elif kind == "image":
            title, path = payload
            data = base64.b64encode((folder / path).read_bytes()).decode()
            body.append(f"<h3>{html.escape(title)}</h3><img alt=\"{html.escape(title)}\" "
                        f"src=\"data:image/png;base64,{data}\">")
        elif kind == "code":
            body.append(f"<pre>{html.escape(payload)}</pre>")
    title = html.escape(blocks[0][1])
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>"
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_report(folder):
    """Write ``plots/*.png``, ``report.md`` and ``report.html`` into a sweep
    folder. Returns the path of ``report.html``."""
    blocks, summary, metrics, folder = build(folder)
    plot_all(summary, metrics, folder, folder / "plots")
    store.atomic_write_text(folder / "report.md", render_md(blocks))
    store.atomic_write_text(folder / "report.html", render_html(blocks, folder))
    return folder / "report.html"
