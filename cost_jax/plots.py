"""The figures of the study and of the coefficient analysis, written as PNG files.

Built on `matplotlib.figure.Figure`, not pyplot, so no backend is chosen or changed: safe
on headless hosts and inside notebooks, whose own plots keep working.
"""

import io

import numpy as np
from etils import epath

VIEW_LABELS = ("H-W (space)", "T-W (time)", "T-H (time)")
VIEW_COLOURS = ("#4c72b0", "#dd8452", "#c44e52")


def _figure(**kwargs):
  # Imported when a figure is drawn, not with the module: matplotlib took 0.7 s of every
  # `python -m cost_jax.main` start (python -X importtime, 2-vCPU AMD EPYC).
  from matplotlib.figure import Figure
  return Figure(**kwargs)


def _save(fig, path):
  buffer = io.BytesIO()  # epath paths may be remote (gs://): write the bytes ourselves
  fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
  epath.Path(path).write_bytes(buffer.getvalue())


def accuracy_vs_params(study: dict, path):
  """Video top-1 (%) against parameters, one labelled point per variant."""
  fig = _figure(figsize=(6, 4))
  ax = fig.subplots()
  # Variants of near-equal size (c2d, CoST(a)) sit on top of each other: stagger labels.
  offsets = [(6, 6), (6, -14), (6, 18), (6, -26)]
  for i, r in enumerate(study["variants"]):
    x, y = r["params"] / 1e3, 100 * r["video_top1"]
    ax.scatter(x, y, s=40)
    ax.annotate(f"{r['variant']} ({r['gflops']:.3f} GFLOPs)", (x, y),
                textcoords="offset points", xytext=offsets[i % len(offsets)], fontsize=9)
  ax.margins(x=0.25)
  chance = 100 * study["chance"]
  ax.axhline(chance, color="grey", linestyle="--", linewidth=1)
  ax.annotate("chance", (1, chance), xycoords=("axes fraction", "data"), ha="right",
              va="bottom", color="grey", fontsize=8)
  ax.set_xlabel("parameters (thousands)")
  ax.set_ylabel("video top-1 (%)")
  ax.set_ylim(0, 105)
  ax.set_title(f"{study['dataset']}: {study['steps']} steps per variant")
  ax.grid(alpha=0.3)
  _save(fig, path)


def coefficient_shares(analysis: dict, path):
  """Stacked share of each view per CoST layer, shallow to deep, with the channel spread."""
  layers = analysis["layers"]
  means = np.array([layer["mean"] for layer in layers])        # (L, 3)
  spread = np.array([layer["channel_std"] for layer in layers])
  x = np.arange(len(layers))
  fig = _figure(figsize=(max(5, 0.5 * len(layers) + 2), 4))
  ax = fig.subplots()
  bottom = np.zeros(len(layers))
  for v in range(3):
    ax.bar(x, means[:, v], bottom=bottom, color=VIEW_COLOURS[v], label=VIEW_LABELS[v],
           yerr=spread[:, v], error_kw={"elinewidth": 0.8, "capsize": 2, "alpha": 0.6})
    bottom += means[:, v]
  ax.set_xticks(x, [layer["name"] for layer in layers], rotation=45, ha="right",
                fontsize=8)
  ax.set_ylim(0, 1)
  ax.set_ylabel("share of the layer's output")
  ax.set_title(f"{analysis['variant']} on {analysis['dataset']} ({analysis['source']})",
               fontsize=10)
  ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
  _save(fig, path)


def confusion(matrix: np.ndarray, class_names, path, title: str, pairs: int = 12):
  """The confusion matrix as shares of each true class (rows), classes ordered from the
  most to the least accurate so that the confusions gather at the bottom right, tick
  labels shrinking with the class count (readable at 174 classes), and the most
  confused pairs named beside it."""
  n = len(class_names)
  totals = matrix.sum(axis=1, keepdims=True)
  shares = matrix / np.maximum(totals, 1)
  accuracy = np.where(totals[:, 0] > 0, np.diag(shares), -1.0)
  order = np.argsort(-accuracy, kind="stable")
  side = min(4 + 0.12 * n, 28)
  fig = _figure(figsize=(side + 5, side))
  ax = fig.add_axes([0.08, 0.08, side / (side + 5) * 0.84, 0.84])
  image = ax.imshow(shares[np.ix_(order, order)], cmap="Blues", vmin=0, vmax=1,
                    interpolation="nearest")
  font = max(3, min(9, 600 / max(n, 1)))
  names = [class_names[i] for i in order]
  ax.set_xticks(np.arange(n), names, rotation=90, fontsize=font)
  ax.set_yticks(np.arange(n), names, fontsize=font)
  ax.set_xlabel("predicted class")
  ax.set_ylabel("true class (most accurate first)")
  ax.set_title(title)
  fig.colorbar(image, ax=ax, fraction=0.03, label="share of the true class's videos")
  off = matrix.astype(float).copy()
  np.fill_diagonal(off, 0)
  top = [divmod(int(i), n) for i in np.argsort(-off, axis=None, kind="stable")[:pairs]
         if off.flat[i] > 0]
  text = "most confused (true -> predicted: videos)\n" + "\n".join(
      f"{class_names[t][:40]} -> {class_names[p][:40]}: {int(matrix[t, p])}" for t, p in top)
  fig.text(side / (side + 5) * 0.84 + 0.12, 0.9, text, va="top", fontsize=8,
           family="monospace")
  _save(fig, path)
