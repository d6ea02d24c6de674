"""Figures: PNG image grids (Pillow) and plots (matplotlib, headless)."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import numpy as np

from .atomic import atomic_write


def to_images(x: np.ndarray, image_shape: tuple[int, ...]) -> np.ndarray:
    """(N, features) in [0, 1] → uint8 (N, H, W) or (N, H, W, 3)."""
    imgs = np.clip(np.asarray(x, np.float64).reshape(len(x), *image_shape), 0.0, 1.0)
    if imgs.ndim == 4:  # (N, C, H, W)
        imgs = imgs[:, 0] if imgs.shape[1] == 1 else imgs.transpose(0, 2, 3, 1)
    return np.round(imgs * 255).astype(np.uint8)


def grid(images: np.ndarray, rows: int, cols: int, pad: int = 2, scale: int = 2,
         separator_after: int | None = None,
         row_labels: list[str] | None = None) -> "Image":  # noqa: F821
    """Tile rows × cols images (row-major) with `pad` pixels of gap; an optional wider gap and
    a light rule after column `separator_after` (the nearest-neighbour column of Figure 2);
    `row_labels` (one per row, e.g. the class of a conditional row) in a strip on the left."""
    from PIL import Image

    h, w = images.shape[1:3]
    colour = images.ndim == 4
    sep = 3 * pad if separator_after is not None else 0
    H = rows * h + (rows + 1) * pad
    W = cols * w + (cols + 1) * pad + sep
    canvas = np.zeros((H, W, 3) if colour else (H, W), np.uint8)
    for k in range(min(len(images), rows * cols)):
        r, c = divmod(k, cols)
        x0 = pad + c * (w + pad) + (sep if separator_after is not None and c >= separator_after else 0)
        y0 = pad + r * (h + pad)
        canvas[y0:y0 + h, x0:x0 + w] = images[k]
    if separator_after is not None:
        x = pad + separator_after * (w + pad) + sep // 2 - 1
        canvas[:, x] = 255
    img = Image.fromarray(canvas)
    img = img.resize((W * scale, H * scale), Image.NEAREST) if scale > 1 else img
    if row_labels is not None:
        centres = [(pad + r * (h + pad) + h / 2) * scale for r in range(rows)]
        img = label_strip(img, row_labels, centres, h * scale)
    return img


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one fixed-size bitmap font
        return ImageFont.load_default()


def label_strip(img, labels: list[str], centres: list[float], cell: int):
    """`img` with a strip on its left holding each label right-aligned and vertically centred
    at its y in `centres` (white on the grid's black); text sized to the cells, `cell` px."""
    from PIL import Image, ImageDraw

    font = _font(max(8, min(16, cell // 2)))
    margin = 4
    boxes = [font.getbbox(t) for t in labels]
    width = max((b[2] for b in boxes), default=0) + 2 * margin
    out = Image.new(img.mode, (width + img.width, img.height), 0)
    out.paste(img, (width, 0))
    draw = ImageDraw.Draw(out)
    white = 255 if img.mode == "L" else (255,) * len(img.mode)
    for text, box, y in zip(labels, boxes, centres):  # no anchors: bitmap fonts lack them
        draw.text((width - margin - box[2], y - (box[1] + box[3]) / 2), text, fill=white,
                  font=font)
    return out


def class_text(c: int, names: list[str] | None = None) -> str:
    """How a class is shown: its index (what --label takes), and its name when the data has
    names."""
    return f"{c} {names[c]}" if names and 0 <= c < len(names) else str(c)


def class_colours(classes: int) -> list:
    """A distinct colour per class, none of them grey or black (the data are drawn in grey,
    the modes in black): tab10 without its grey up to 9 classes, tab20 without its two greys
    up to 18, else viridis."""
    import matplotlib

    if classes <= 9:
        return [matplotlib.colormaps["tab10"](c) for c in range(10) if c != 7][:classes]
    if classes <= 18:
        return [matplotlib.colormaps["tab20"](c) for c in range(20) if c not in (14, 15)][:classes]
    cmap = matplotlib.colormaps["viridis"]
    return [cmap(c / (classes - 1)) for c in range(classes)]


def save_png(img, path: Path, follow: bool = False) -> Path:
    """`follow`: `path` is the user's (--out), so a link there is followed (atomic_write)."""
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write(path, buf.getvalue(), follow=follow)
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_fig(fig, path: Path, follow: bool = False) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    atomic_write(path, buf.getvalue(), follow=follow)
    return path


def _key(fig, **kw):
    """The figure's legend (its colour key) outside every axes, on the right, so it never
    covers data; `layout="constrained"` makes room for it. Scatter entries get markers big
    enough to tell their colours apart."""
    key = fig.legend(loc="outside right upper", **kw)
    for h in key.legend_handles:
        if hasattr(h, "set_sizes"):
            h.set_sizes([25])
    return key


def plot_1d(samples: np.ndarray, data: np.ndarray, path: Path, density=None, title: str = "",
            follow: bool = False) -> Path:
    """Histogram of G's samples against the data (and its true density when known)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    lo = min(samples.min(), data.min())
    hi = max(samples.max(), data.max())
    bins = np.linspace(lo, hi, 80)
    ax.hist(data.ravel(), bins=bins, density=True, alpha=0.4, color="k", label="data")
    ax.hist(samples.ravel(), bins=bins, density=True, alpha=0.5, color="g", label="G(z)")
    if density is not None:
        xs = np.linspace(lo, hi, 400)
        ax.plot(xs, density(xs), "k--", lw=1, label="p_data")
    ax.set_xlabel("x")
    ax.set_ylabel("density")
    _key(fig)
    ax.set_title(title)
    out = _save_fig(fig, path, follow)
    plt.close(fig)
    return out


def plot_2d(samples: np.ndarray, data: np.ndarray, path: Path, centres=None, title: str = "",
            labels: np.ndarray | None = None, classes: int | None = None,
            names: list[str] | None = None, follow: bool = False) -> Path:
    """Samples over the data; a conditional G's samples coloured by the label they were
    drawn for, with a key of the colours (a colour bar beyond 20 classes)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5), layout="constrained")
    ax.scatter(data[:, 0], data[:, 1], s=2, c="k", alpha=0.3, label="data")
    if labels is None:
        ax.scatter(samples[:, 0], samples[:, 1], s=2, c="g", alpha=0.5, label="G(z)")
    else:
        classes = classes or int(labels.max()) + 1
        colours = class_colours(classes)
        if classes <= 20:  # a legend entry per class
            for c in range(classes):
                on = labels == c
                ax.scatter(samples[on, 0], samples[on, 1], s=2, color=colours[c], alpha=0.6,
                           label=f"G(z|y), y = {class_text(c, names)}")
        else:
            sc = ax.scatter(samples[:, 0], samples[:, 1], s=2, c=labels, cmap="viridis",
                            vmin=0, vmax=classes - 1, alpha=0.6, label="G(z|y)")
            fig.colorbar(sc, ax=ax, label="y", location="bottom")
    if centres is not None:
        ax.scatter(centres[:, 0], centres[:, 1], marker="x", c="k", s=40, label="modes")
    ax.set_aspect("equal")
    _key(fig)
    ax.set_title(title)
    out = _save_fig(fig, path, follow)
    plt.close(fig)
    return out


def plot_by_label(samples: np.ndarray, labels: np.ndarray, data: np.ndarray,
                  data_labels: np.ndarray | None, classes: int, path: Path, centres=None,
                  title: str = "", names: list[str] | None = None, follow: bool = False) -> Path:
    """1-D or 2-D samples of a conditional G, one panel per class on shared axes: G(·|c) in
    the class's colour over the training data of class c (and the modes, when known)."""
    plt = _pyplot()
    dim = samples.shape[1]
    ncols = min(classes, 4)
    nrows = -(-classes // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3 * ncols, 3 * nrows), squeeze=False,
                             layout="constrained")
    colours = class_colours(classes)
    both = np.concatenate([samples, data])
    lo, hi = float(both.min()), float(both.max())  # the same square window on every panel
    lo, hi = lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)
    bins = np.linspace(lo, hi, 60)
    for c, ax in enumerate(axes.flat):
        if c >= classes:
            ax.remove()
            continue
        mine = samples[labels == c]
        real = data[data_labels == c] if data_labels is not None else data
        if dim == 1:
            ax.hist(real.ravel(), bins=bins, density=True, alpha=0.4, color="k",
                    label="data of the class")
            ax.hist(mine.ravel(), bins=bins, density=True, alpha=0.6, color=colours[c],
                    label="G(z|y), y = the panel's class")
        else:
            ax.scatter(real[:, 0], real[:, 1], s=2, c="k", alpha=0.3, label="data of the class")
            ax.scatter(mine[:, 0], mine[:, 1], s=2, color=colours[c], alpha=0.6,
                       label="G(z|y), y = the panel's class")
            if centres is not None:
                ax.scatter(centres[:, 0], centres[:, 1], marker="x", c="k", s=30, label="modes")
            ax.set_ylim(lo, hi)
            ax.set_aspect("equal")
        ax.set_xlim(lo, hi)
        ax.set_title(f"y = {class_text(c, names)}", color=colours[c])
    handles, texts = axes.flat[0].get_legend_handles_labels()
    _key(fig, handles=handles, labels=texts)
    fig.suptitle(title)
    out = _save_fig(fig, path, follow)
    plt.close(fig)
    return out


BASELINES = {"train": "train as samples", "kmeans": "k-means centres"}  # as eval names the rows


def _references(ax, values: dict[str, float]) -> None:
    """Reference figures (real data, baselines) as labelled horizontal lines: they belong to no
    checkpoint of G, so they are not drawn as points of its history."""
    for (name, value), style in zip(values.items(),
                                    itertools.cycle(("--", ":", "-.", (0, (5, 5))))):
        ax.axhline(value, color="grey", lw=1, ls=style, label=f"{name}: {value:.4g}")


def _parzen_setting(e: dict) -> str:
    """What makes two Parzen evaluations comparable: the split scored, the number of samples
    and the σ (fixed, or the grid it was chosen from); empty for a line that records none."""
    parts = [e["evaluated_split"]] if e.get("evaluated_split") else []
    if e.get("samples") is not None:
        parts.append(f"{e['samples']} samples")
    grid = e.get("sigma_grid")
    if e.get("sigma_fixed") and e.get("sigma") is not None:
        parts.append(f"σ {e['sigma']:.3g}")
    elif grid:
        parts.append(f"σ from {len(grid)} in [{min(grid):.3g}, {max(grid):.3g}]")
    return ", ".join(parts)


def _parzen_history(ax, evals: list[dict]) -> None:
    """G's `eval --parzen` figures by checkpoint, one series per setting (estimates with other
    samples or σ are not comparable), and the latest baseline of each setting as a line."""
    series: dict[str, list[dict]] = {}
    latest: dict[str, float] = {}
    for e in evals:
        setting = _parzen_setting(e)
        if e.get("baseline"):
            name = BASELINES.get(e["baseline"], e["baseline"])
            latest[f"{name} ({setting})" if setting else name] = e["mean_log_likelihood"]
        else:
            series.setdefault(setting, []).append(e)
    for (setting, g), fmt in zip(series.items(), itertools.cycle("so^Dv<>")):
        ax.errorbar([e["checkpoint_step"] for e in g], [e["mean_log_likelihood"] for e in g],
                    yerr=[e.get("stderr") or 0.0 for e in g], fmt=fmt, capsize=3,
                    label="G: eval --parzen (± s.e.)" + (f", {setting}" if setting else ""))
    _references(ax, latest)


def plot_metrics(rows: list[dict], path: Path, title: str = "",
                 parzen: list[dict] | None = None, evals: list[dict] | None = None,
                 follow: bool = False, scores: bool = False) -> Path:
    """Losses (and each penalty's term), mean D outputs (probabilities, or raw scores when
    `scores`: no equilibrium lines then, and the axis follows the data), (when monitored) the validation Parzen estimate by step, and the
    history of `advgraph eval` (eval/metrics.jsonl lines): G's Parzen log-likelihoods with
    their standard errors and FIDs by checkpoint, and the latest figures of the references
    (baselines, held-out data) as horizontal lines."""
    plt = _pyplot()
    steps = [r["step"] for r in rows]
    evals = evals or []
    pz_evals = [e for e in evals if e.get("metric") == "parzen"
                and e.get("mean_log_likelihood") is not None]
    fid_evals = [e for e in evals if e.get("metric") == "quality"
                 and "fid" in (e.get("rows") or {}).get("G", {})]
    panels = 2 + bool(parzen) + bool(pz_evals) + bool(fid_evals)
    fig, axes = plt.subplots(panels, 1, figsize=(10, 3 * panels), sharex=True,
                             layout="constrained")
    mark = "o-" if len(rows) == 1 else "-"  # a single point is invisible as a line
    a, b = axes[0], axes[1]
    a.plot(steps, [r["d_loss"] for r in rows], mark, label="D loss")
    a.plot(steps, [r["g_loss"] for r in rows], mark, label="G loss")
    for key in ("gradient_penalty", "r1"):
        if any(r.get(key) is not None for r in rows):
            a.plot(steps, [r.get(key, np.nan) for r in rows], mark, label=f"{key} term")
    if not scores:
        a.axhline(np.log(4), color="grey", lw=0.8, ls="--", label="log 4 (D at equilibrium)")
    a.set_ylabel("loss")
    b.plot(steps, [r["d_real"] for r in rows], mark, label="mean D(x)")
    b.plot(steps, [r["d_fake"] for r in rows], mark, label="mean D(G(z))")
    if not scores:
        b.axhline(0.5, color="grey", lw=0.8, ls="--")
        b.set_ylim(0, 1)
    b.set_ylabel("D score" if scores else "D output")
    extra = iter(axes[2:])
    if parzen:
        c = next(extra)
        c.plot([r["step"] for r in parzen], [r["parzen_valid"] for r in parzen], "o-",
               label=f"validation Parzen log-lik (σ {parzen[-1]['parzen_sigma']})")
        c.set_ylabel("nats")
    if pz_evals:
        c = next(extra)
        _parzen_history(c, pz_evals)
        c.set_ylabel("nats")
    if fid_evals:
        c = next(extra)
        c.plot([e["checkpoint_step"] for e in fid_evals],
               [e["rows"]["G"]["fid"] for e in fid_evals], "s", label="G: eval --fid")
        # the latest figure of every other row (held-out data: the floor; baselines)
        _references(c, {name: row["fid"] for e in fid_evals
                        for name, row in e["rows"].items() if name != "G" and "fid" in row})
        c.set_ylabel("FID")
    for ax in axes:  # beside its panel, off the curves (constrained layout makes the room)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    axes[-1].set_xlabel("step")
    a.set_title(title)
    out = _save_fig(fig, path, follow)
    plt.close(fig)
    return out


SWEEP_CURVES = (("d_loss", "D loss", 0), ("g_loss", "G loss", 0), ("d_real", "mean D(x)", 1),
                ("d_fake", "mean D(G(z))", 1))


def quantile_curves(members: list[list[dict]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """The steps any member logged `key` at, and per step the 25%, 50% and 75% quantiles over
    the members that logged it there (members aligned by step, not by row): (steps, (3, n))."""
    steps = np.array(sorted({r["step"] for rows in members for r in rows if key in r}))
    col = {s: i for i, s in enumerate(steps)}
    grid = np.full((len(members), len(steps)), np.nan)
    for i, rows in enumerate(members):
        for r in rows:
            if r.get(key) is not None:
                grid[i, col[r["step"]]] = r[key]
    return steps, np.nanpercentile(grid, [25, 50, 75], axis=0)


def plot_sweep_metrics(settings: dict[str, list[list[dict]]], path: Path, title: str = "",
                       follow: bool = False, scores: bool = False) -> Path:
    """A sweep's curves: per setting (label → each member's metrics rows) the losses and mean
    D outputs by step as the median over its members, with the band between the 25% and 75%
    quantiles; one colour per setting, the line style telling the curves apart."""
    plt = _pyplot()
    from matplotlib.patches import Patch

    fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True, layout="constrained")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for c, (setting, members) in enumerate(settings.items()):
        colour = colours[c % len(colours)]
        for j, (key, label, panel) in enumerate(SWEEP_CURVES):
            steps, (lo, med, hi) = quantile_curves(members, key)
            ls = "-" if j % 2 == 0 else "--"
            axes[panel].plot(steps, med, ls, color=colour, marker="o" if len(steps) == 1 else None,
                             label=f"{label}, {setting} (median of {len(members)})")
            axes[panel].fill_between(steps, lo, hi, color=colour, alpha=0.2, lw=0)
    if not scores:
        axes[0].axhline(np.log(4), color="grey", lw=0.8, ls=":", label="log 4 (D at equilibrium)")
        axes[1].axhline(0.5, color="grey", lw=0.8, ls=":")
        axes[1].set_ylim(0, 1)
    axes[0].set_ylabel("loss")
    axes[1].set_ylabel("D score" if scores else "D output")
    band = Patch(color="grey", alpha=0.2, label="band: 25–75% quantiles over members")
    for ax in axes:
        handles, _ = ax.get_legend_handles_labels()
        ax.legend(handles=handles + [band], loc="upper left", bbox_to_anchor=(1.01, 1),
                  borderaxespad=0, fontsize="small")
    axes[-1].set_xlabel("step")
    axes[0].set_title(title)
    out = _save_fig(fig, path, follow)
    plt.close(fig)
    return out
