"""`ssgan report`: a run's (or a bench folder's) whole story on one self-contained HTML page.

Everything is embedded (figures and images as PNG data URIs, inline CSS), so the file opens from
disk with no network, and it has no scripts, so it reads the same with them off. A run's page shows
the summary, the config that differs from the defaults, loss and accuracy curves, sample grids at a
few epochs, the confusion matrix with per-class accuracy and the most confidently wrong test images.
A bench page shows the method x labels table, every seed's numbers, all runs' curves overlaid, and
links to each run's own page (written beside it).

metrics.jsonl, summary.json and the checkpoint stay the source of truth: the page is made from them
and can be remade at any time.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import os
from pathlib import Path

import torch

from . import config as C
from .errors import OutputError
from .files import atomic_write_text

N_WRONG = 24  # confidently wrong test images shown
N_GRIDS = 4  # sample grids shown, evenly spaced over the run's epochs

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;
color:#1d2330;line-height:1.45;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #dde;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #dde;padding:.25em .6em;text-align:left;
font-size:.92em}th{background:#f3f5f9}.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#667}.grid{display:flex;flex-wrap:wrap;gap:12px}.grid figure{margin:0;text-align:center}
figcaption{font-size:.8em;color:#445}img.px{image-rendering:pixelated}code{background:#f3f5f9;padding:0 .25em}
"""


# ----------------------------------------------------------------------------------------- helpers
def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figure_uri(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return _png_uri(buf.getvalue())


def _image_uri(img: torch.Tensor, scale: int = 3) -> str:
    """A uint8 (C, H, W) image as a PNG data URI, enlarged `scale` times with square pixels."""
    from PIL import Image

    a = img.numpy()
    pil = Image.fromarray(
        a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0), mode="L" if a.shape[0] == 1 else "RGB"
    )
    pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return _png_uri(buf.getvalue())


class _Html(str):
    """A table cell that is already HTML (a link), inserted as is."""


def _e(x) -> str:
    return x if isinstance(x, _Html) else html.escape(str(x))


def _table(header: list[str] | None, rows: list[list], num_cols: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header) if header else ""
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='num'>{_e(c)}</td>" if i in num_cols else f"<td>{_e(c)}</td>" for i, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table>{f'<tr>{head}</tr>' if head else ''}{body}</table>"


def _page(title: str, body: str) -> str:
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
        f"<meta name='viewport' content='width=device-width,initial-scale=1'><style>{CSS}</style></head>"
        f"<body>{body}<p class='muted'>Made by <code>ssgan report</code> from the folder's files "
        f"(metrics.jsonl, summary.json, the checkpoint).</p>"
        f"</body></html>\n"
    )


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _records(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    )


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _minutes(s) -> str:
    return "-" if s is None else f"{s / 60:.1f} min"


# -------------------------------------------------------------------------------- test predictions
@dataclasses.dataclass
class Predictions:
    """What the page needs from the classifier: test labels, class probabilities and the images."""

    classes: list[str]
    y: torch.Tensor  # (N,) int64
    probs: torch.Tensor  # (N, K)
    images: object  # indexable: images[i] -> uint8 (C, H, W)
    which: str  # e.g. "EMA of D, epoch 10"


def predictions_from_checkpoint(run_dir: Path) -> Predictions | None:
    """Score the run's last checkpoint on its dataset's test set; None when either is missing."""
    from .evaluate import checkpoint_test_logits
    from .training import checkpoint

    path = run_dir / "checkpoints" / "last.pt"
    if not path.is_file():
        return None
    state = checkpoint.load(path)
    data, logits = checkpoint_test_logits(state)
    if logits is None:
        return None
    which = f"{'EMA of D' if state.get('ema') else 'D'}, epoch {state['epoch']}"
    return Predictions(list(state["classes"]), data.test.y, logits.float().softmax(1), data.test.x, which)


# ---------------------------------------------------------------------------------------- run page
def _config_changes(cfg: dict) -> list[list]:
    defaults = C.Config().to_dict()
    rows = []
    for section, values in cfg.items():
        for key, value in values.items():
            default = defaults.get(section, {}).get(key, "(new)")
            if value != default:
                rows.append([f"{section}.{key}", value, default])
    return rows


def _summary_rows(cfg: dict, summary: dict | None, split: dict | None, records: list[dict]) -> list[list]:
    s = summary or {}
    last = records[-1] if records else {}
    m = s.get("machine") or {}
    labeled, per_class = (split or {}).get("labeled"), (split or {}).get("labeled_per_class")
    n_labeled = len(labeled) if isinstance(labeled, list) else labeled if labeled is not None else "?"
    if per_class:
        n_labeled = (
            f"{n_labeled} ({per_class[0]} per class)"
            if len(set(per_class)) == 1
            else f"{n_labeled} (per class: {', '.join(map(str, per_class))})"
        )
    rows = [
        ["dataset", s.get("dataset", cfg["data"]["dataset"])],
        ["labels", n_labeled],
        ["split seed / training seed", f"{cfg['data']['split_seed']} / {cfg['train']['seed']}"],
        ["method", cfg["method"]["name"]],
        [
            "net",
            f"{cfg['model']['net']} (width {cfg['model']['width']:g})"
            if cfg["model"]["net"] != "mlp"
            else "mlp",
        ],
        ["epochs", f"{last.get('epoch', 0)} of {cfg['train']['epochs']}"],
        ["final test accuracy", f"{_pct(last.get('test_acc'))} ({last.get('test_errors', '-')} errors)"],
    ]
    if s.get("best_val"):
        b = s["best_val"]
        rows.append(
            [
                "test accuracy at the best validation epoch",
                f"{_pct(b['test_acc'])} (epoch {b['epoch']}, validation {_pct(b['val_acc'])})",
            ]
        )
    rows += [
        ["training time (wall)", _minutes(s.get("train_time_s"))],
        ["CPU time (last session)", _minutes(s.get("cpu_time_s_this_session"))],
        ["machine", ", ".join(f"{k} {v}" for k, v in m.items()) if m else "not recorded"],
    ]
    return rows


def _sample_grids(run_dir: Path) -> str:
    grids = sorted((run_dir / "samples").glob("epoch_*.png"))
    if not grids:
        return (
            "<p class='muted'>No sample grids (a method without a generator, or --train.sample_every=0).</p>"
        )
    if len(grids) > N_GRIDS:
        step = (len(grids) - 1) / (N_GRIDS - 1)
        grids = [grids[round(i * step)] for i in range(N_GRIDS)]
    figs = "".join(
        f"<figure><img src='{_png_uri(g.read_bytes())}' alt='samples at {_e(g.stem)}' width='260'>"
        f"<figcaption>{_e(g.stem.replace('_', ' '))}</figcaption></figure>"
        for g in grids
    )
    return f"<p>The generator's images from the same fixed noise, as training went on.</p><div class='grid'>{figs}</div>"


def _classifier_sections(p: Predictions | None) -> str:
    if p is None:
        return "<h2>Test set</h2><p class='muted'>No checkpoint or no labeled test set: nothing to score.</p>"
    from .evaluate import confusion_figure, scores

    pred = p.probs.argmax(1)
    sc = scores(p.y, pred, len(p.classes))
    per_class = _table(
        ["class", "accuracy", "test images"],
        [
            [c, _pct(a), n]
            for c, a, n in zip(
                p.classes, sc["per_class_accuracy"], torch.tensor(sc["confusion"]).sum(1).tolist()
            )
        ],
        {1, 2},
    )
    cm = _figure_uri(confusion_figure(sc["confusion"], p.classes))
    wrong = (pred != p.y).nonzero().flatten()
    conf = p.probs.max(1).values[wrong]
    chosen = wrong[conf.argsort(descending=True)[:N_WRONG]].tolist()
    tiles = "".join(
        f"<figure><img class='px' src='{_image_uri(p.images[i])}' alt='test image {i}'>"
        f"<figcaption>{_e(p.classes[int(pred[i])])} ({p.probs[i].max():.2f})<br>true: {_e(p.classes[int(p.y[i])])}"
        f"</figcaption></figure>"
        for i in chosen
    )
    return (
        f"<h2>Test set ({_e(p.which)}): {_pct(sc['accuracy'])}, {sc['errors']} errors of {sc['n']}</h2>"
        f"<div class='grid'><figure><img src='{cm}' alt='confusion matrix'><figcaption>rows: true class, "
        f"columns: predicted</figcaption></figure><div>{per_class}</div></div>"
        f"<h2>The most confidently wrong test images</h2><p>Predicted class (its probability), then the true "
        f"class.</p><div class='grid'>{tiles or '<p>None: every test image is right.</p>'}</div>"
    )


def run_page(run_dir: Path, predictions: Predictions | None) -> str:
    import yaml
    from .samples import curve_figures

    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise OutputError(f"{run_dir}: not a run folder (no config.yaml); give a folder made by ssgan train")
    cfg = yaml.safe_load(cfg_path.read_text())
    records, summary, split = (
        _records(run_dir),
        _read_json(run_dir / "summary.json"),
        _read_json(run_dir / "split.json"),
    )
    title = f"{cfg['method']['name']} on {cfg['data']['dataset']}: {run_dir.name}"
    body = [
        f"<h1>{_e(title)}</h1>",
        "<h2>Summary</h2>",
        _table(None, _summary_rows(cfg, summary, split, records)),
        "<h2>Config that differs from the defaults</h2>",
        _table(["key", "this run", "default"], changes)
        if (changes := _config_changes(cfg))
        else "<p>None.</p>",
    ]
    if records:
        loss, acc = curve_figures(records)
        body += [
            "<h2>Losses</h2>",
            f"<img src='{_figure_uri(loss)}' alt='loss curves of every D and G term'>",
            "<h2>Accuracy</h2>",
            f"<img src='{_figure_uri(acc)}' alt='train, validation and test accuracy'>",
            _table(
                ["epoch", "train", "validation", "test", "test errors"],
                [
                    [
                        r["epoch"],
                        _pct(r.get("train_acc")),
                        _pct(r.get("val_acc")),
                        _pct(r.get("test_acc")),
                        r.get("test_errors", "-"),
                    ]
                    for r in records
                ],
                {0, 1, 2, 3, 4},
            ),
        ]
    else:
        body.append("<p class='muted'>No finished epoch yet.</p>")
    body += ["<h2>Samples</h2>", _sample_grids(run_dir), _classifier_sections(predictions)]
    return _page(title, "\n".join(body))


def write_run_report(
    run_dir: str | Path, out: str | Path | None = None, predictions: Predictions | None | str = "checkpoint"
) -> Path:
    """RUN_DIR/report.html (or `out`); `predictions="checkpoint"` scores the last checkpoint."""
    run_dir = Path(run_dir)
    if predictions == "checkpoint":
        predictions = predictions_from_checkpoint(run_dir) if (run_dir / "config.yaml").is_file() else None
    path = Path(out) if out else run_dir / "report.html"
    atomic_write_text(path, run_page(run_dir, predictions))
    return path


# -------------------------------------------------------------------------------------- bench page
def bench_page(bench_dir: Path, results: dict, run_links: dict[str, str]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    meta, runs = results.get("meta", {}), results["runs"]
    md = (bench_dir / "results.md").read_text() if (bench_dir / "results.md").is_file() else ""
    summary_rows = [
        [a["method"], a["labels"], f"{a['errors_mean']:.1f} +- {a['errors_std']:.1f}", f"{a['error_pct_mean']:.2f}%",
         a["n"], a["epochs"], _minutes(a["wall_s_mean"])]
        for a in results["summary"]
    ]
    run_rows = []
    for r in runs:
        name = Path(r["run"]).name
        link = run_links.get(name)
        run_rows.append([_Html(f"<a href='{_e(link)}'>{_e(name)}</a>") if link else name, r["method"], r["labels"],
                         r["seed"], r["test_errors"], _pct(r["test_acc"]), r["epochs"], _minutes(r["wall_s"]),
                         _minutes(r.get("cpu_s"))])
    fig, ax = plt.subplots(figsize=(8, 4.5))
    colours: dict[str, str] = {}
    for r in runs:
        records = _records(bench_dir / "runs" / Path(r["run"]).name)
        if not records:
            continue
        key = f"{r['method']}, {r['labels']} labels"
        first = key not in colours  # one legend entry per method and label count
        colour = colours.setdefault(key, f"C{len(colours) % 10}")
        ax.plot([x["epoch"] for x in records], [x["test_acc"] for x in records], color=colour, alpha=0.8,
                label=key if first else None)
    ax.set_xlabel("epoch"), ax.set_ylabel("test accuracy"), ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    if colours:
        ax.legend(fontsize=8)
    fig.tight_layout()
    title = f"ssgan bench: {meta.get('dataset', '')} ({bench_dir.name})"
    body = [
        f"<h1>{_e(title)}</h1>",
        f"<p>{_e(meta.get('budget', ''))}. Test errors of the last epoch; the test set chose nothing.</p>",
        "<h2>Method x labels (mean +- std over seeds)</h2>",
        _table(["method", "labels", "test errors", "error", "seeds", "epochs", "wall per run"], summary_rows,
               {1, 2, 3, 4, 5, 6}),
        "<h2>Every run</h2>",
        _table(["run", "method", "labels", "seed", "test errors", "test accuracy", "epochs", "wall", "CPU"],
               run_rows, {2, 3, 4, 5, 6, 7, 8}),
        "<h2>Test accuracy per epoch, every run</h2>",
        f"<img src='{_figure_uri(fig)}' alt='test accuracy per epoch of every run'>",
    ]
    if md:
        body += ["<h2>results.md</h2>", f"<pre>{_e(md)}</pre>"]
    return _page(title, "\n".join(body))


def write_bench_report(bench_dir: str | Path, out: str | Path | None = None, runs: bool = True) -> Path:
    """BENCH_DIR/report.html, and (with `runs`) each run's own report.html, linked from it."""
    bench_dir = Path(bench_dir)
    path = Path(out) if out else bench_dir / "report.html"
    results = json.loads((bench_dir / "results.json").read_text())
    links = {}
    for r in results["runs"]:
        run_dir = bench_dir / "runs" / Path(r["run"]).name  # the recorded path is relative to bench's cwd
        if runs and (run_dir / "config.yaml").is_file():
            report = write_run_report(run_dir)
            links[run_dir.name] = Path(os.path.relpath(report.resolve(), path.parent.resolve())).as_posix()
    atomic_write_text(path, bench_page(bench_dir, results, links))
    return path


def write_report(path: str | Path, out: str | Path | None = None) -> Path:
    """`ssgan report PATH`: a bench folder (results.json) or a run folder (config.yaml)."""
    path = Path(path)
    if (path / "results.json").is_file():
        return write_bench_report(path, out)
    if (path / "config.yaml").is_file():
        return write_run_report(path, out)
    raise OutputError(f"{path}: neither a run folder (config.yaml) nor a bench folder (results.json)")
