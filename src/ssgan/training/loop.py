"""The one training loop. Read `train` top to bottom: load the data, build the run, then per step
one D update and one G update, then at the end of each epoch evaluation, logging, samples and a
checkpoint.

Methods only supply losses (`algorithms/`), networks only modules (`nets/`), `build_run` puts the
parts together (run.py). The loop owns cadence: when to check for NaNs and signals, evaluate and
save. Several processes (torchrun) run the same loop: DDP around D's pass and G, each rank a slice
of every global batch, rank 0 alone writes (distributed.py).
"""
from __future__ import annotations

import contextlib
import copy
import signal
import time
from pathlib import Path

import torch

from ..data.sources import load_source
from ..errors import Interrupted, NonFiniteLoss
from ..evaluate import class_logits, error_counts
from ..files import atomic_write_text, remove_stale_temps
from ..nets import preferred_size
from ..samples import generate, make_grid, plot_curves, save_grid
from ..tracking import Metrics, Progress, epoch_line, log, machine, write_summary
from . import checkpoint, distributed, host
from .precision import choose_amp
from .run import DEFAULT_STEPS, FEW_STEPS, Run, build_run
from .run_folder import load_or_draw_split, locked, save_config
from .step import d_step, g_step

CHECK_EVERY = 25  # steps between NaN and signal checks and progress lines (each costs one host sync)


def train(cfg, run_dir: Path, resume: bool = False) -> dict:
    """Train (or resume) the run in `run_dir`; returns the summary written to summary.json."""
    dd, device = distributed.setup(cfg.train.device)
    try:
        return _train(cfg, Path(run_dir), resume, dd, device)
    finally:
        distributed.cleanup(dd)


def _train(cfg, run_dir: Path, resume: bool, dd: distributed.Dist, device: torch.device) -> dict:
    t = cfg.train
    say = log if dd.main else (lambda msg: None)
    if t.threads:
        torch.set_num_threads(t.threads)
    if device.type == "cpu":
        host.keep_freed_memory()  # no page faults for the buffers every step frees and takes again
    saved = checkpoint.load(run_dir, "last") if resume else None
    amp_note = ""
    if t.amp == "auto":  # a resumed run keeps the precision it started with; ranks must all agree
        cfg = copy.deepcopy(cfg)  # the caller's config stays as given
        t = cfg.train
        if saved:
            t.amp = saved["config"]["train"]["amp"]
        else:
            t.amp, amp_note = choose_amp(device)
            if distributed.any_rank(dd, t.amp == "none", device) and t.amp == "bf16":
                t.amp, amp_note = "none", amp_note + "; fp32 because another process measured otherwise"

    data = load_source(cfg.data, size_for=lambda channels: preferred_size(cfg.model.net, channels))
    split, split_note = load_or_draw_split(cfg, data, run_dir)  # deterministic: every rank draws the same
    run = build_run(cfg, data, split, device, dd)               # refuses a bad method, net or size
    if saved:  # checked before anything is written, so a refused resume leaves the run folder intact
        checkpoint.check_compatible(saved["config"], run.cfg.to_dict(), run_dir / "checkpoints" / "last.pt")
    with locked(run_dir, enabled=dd.main), stop_on_signals() as stop:  # written from here on, by rank 0 alone
        if dd.main:
            start_folder(run_dir, run, split_note)
        if saved:
            exact = run.load_state_dict(saved)
            say(f"resuming {run_dir} at epoch {run.epoch + 1}, step {run.step}" + ("" if exact else
                "; the data changed, so batches are drawn afresh and the run will differ from an uninterrupted one"))
        metrics = Metrics(run_dir, tensorboard=t.track == "tensorboard") if dd.main else None
        if metrics:
            metrics.truncate(run.epoch)
        if amp_note:
            say(amp_note)
        say(describe(run, run_dir))
        t_start, cpu_start = time.time(), time.process_time()
        epochs = run.cfg.train.epochs
        if dd.main and epochs * run.steps_per_epoch < FEW_STEPS:
            log(f"note: this run is {epochs * run.steps_per_epoch} steps ({epochs} epochs of {run.steps_per_epoch}); "
                f"the unlabeled images usually need a few thousand steps to help. Leave --epochs unset for a "
                f"{DEFAULT_STEPS}-step budget, or raise it")
        for epoch in range(run.epoch, epochs):
            run.train_mode()
            run.algo.start_epoch(epoch)
            t_epoch, first, checked = time.time(), run.step, run.step
            progress = Progress(f"epoch {epoch + 1}/{epochs}", first, run.steps_per_epoch, enabled=dd.main)
            while run.step < run.steps_per_epoch:
                x_lab, y_lab = run.lab.next()
                if run.G is not None:
                    row = d_step(run.parts, x_lab, y_lab, run.unl.next()) + g_step(run.parts, run.unl_g.next())
                else:
                    row = d_step(run.parts, x_lab, y_lab)
                run.advance(row)
                one_stops_now = not dd.enabled and stop["signal"] is not None  # several agree at checks only
                if run.step - checked >= CHECK_EVERY or run.step == run.steps_per_epoch or one_stops_now:
                    window = check_finite(run, checked, run_dir)
                    progress.update(run.step, {n: v for n, v in zip(run.term_names, window.mean(0).tolist())
                                               if "/" not in n})
                    checked = run.step
                    if distributed.any_rank(dd, stop["signal"] is not None, device):
                        save_checkpoint(run, run_dir, "last")
                        if dd.main:
                            metrics.close()
                            write_report(run, run_dir)
                        raise Interrupted(f"stopped by signal at epoch {epoch + 1}, step {run.step}; state saved. "
                                          f"Resume with: ssgan train --resume {run_dir}")
            progress.close()
            if device.type == "cpu":
                host.release_freed_memory()  # what the steps kept, before evaluation allocates (host.py)
            end_of_epoch(run, metrics, run_dir, time.time() - t_epoch, run.steps_per_epoch - first,
                         time.time() - t_start)

        if not dd.main:
            return {}
        metrics.close()
        if device.type == "cpu":
            host.release_freed_memory()
        plot_curves(metrics.records, run_dir)
        n_test = len(data.test) if data.test is not None else 0
        summary = write_summary(run_dir, metrics.records, time.time() - t_start, data.name, n_test,
                                cpu_time=time.process_time() - cpu_start, machine=machine(run.device))
        write_report(run, run_dir)
        return summary


def write_report(run: Run, run_dir: Path) -> None:
    """report.html from the run's files and the in-memory classifier (no reload of the data).

    A side output: the run's results are saved before it is drawn, so a failure to draw it is
    reported in the log, not raised, and `ssgan report RUN_DIR` can make it later."""
    if not run.cfg.train.report:
        return
    from ..report import Predictions, write_run_report
    try:
        preds = None
        if run.data.test is not None:
            logits = class_logits(run.eval_model, run.algo, run.data.test.x, run.cfg.train.eval_batch_size,
                                  run.device, run.cfg.train.amp == "bf16")
            which = f"{'EMA of D' if run.ema is not None else 'D'}, epoch {run.epoch}"
            preds = Predictions(run.data.classes, run.data.test.y, logits.float().softmax(1), run.data.test.x, which)
        log(f"report: {write_run_report(run_dir, predictions=preds)}")
    except Exception as e:  # noqa: BLE001 -- see the docstring
        log(f"report.html not written ({type(e).__name__}: {e}); make it with: ssgan report {run_dir}")


def describe(run: Run, run_dir: Path) -> str:
    c, s, dd = run.cfg, run.split, run.dd
    return (f"run {run_dir}: {run.data.name}, {s.request} ({len(s.labeled)} labeled, {len(s.unlabeled_indices())} "
            f"unlabeled, {len(s.val)} val), method {c.method.name}, net {c.model.net} (lr {c.optim.lr:g}), device "
            f"{run.device}{f' x {dd.world} processes' if dd.enabled else ''}{', bf16' if c.train.amp == 'bf16' else ''}")


def start_folder(run_dir: Path, run: Run, split_note: str) -> None:
    """The run folder's own files, written once the config, data and networks are known to work
    and the folder's lock is held."""
    stale = remove_stale_temps(run_dir)
    if stale:
        log(f"removed {len(stale)} temporary files an interrupted write left in {run_dir}")
    for note in (run.data.note, split_note):
        if note:
            log(note)
    if run.data.bad_files:
        atomic_write_text(run_dir / "bad_files.txt", "\n".join(run.data.bad_files) + "\n")
    if not (run_dir / "split.json").is_file():
        run.split.save(run_dir / "split.json")
    save_config(run.cfg, run_dir)


def check_finite(run: Run, first: int, run_dir: Path) -> torch.Tensor:
    """The loss rows since step `first` of this epoch; a NaN or infinity in any process stops the run."""
    window = run.losses[first:run.step]
    bad = ~torch.isfinite(window)
    if distributed.any_rank(run.dd, bool(bad.any()), run.device):
        if not bad.any():
            raise NonFiniteLoss(f"a loss became non-finite in another process (epoch {run.epoch + 1})")
        r, c = [int(v) for v in bad.nonzero()[0]]
        raise NonFiniteLoss(
            f"loss term '{run.term_names[c]}' became {window[r, c].item()} at step "
            f"{run.global_step - len(window) + r + 1} (epoch {run.epoch + 1}); the last good checkpoint is "
            f"{run_dir / 'checkpoints' / 'last.pt'}. Try a lower --optim.lr or --train.amp=none.")
    return window


def score(run: Run, images, labels, with_raw: bool = False) -> list[tuple[float, int]]:
    """(accuracy, errors) of the evaluated model, then, with `with_raw` and an EMA, of D itself.
    Each rank scores its shard (rank::world) and the error counts are summed: no image counted
    twice, no tail dropped."""
    dd = run.dd
    models = [run.eval_model] + ([run.D] if with_raw and run.ema is not None else [])
    counts = error_counts(models, run.algo, images[dd.rank::dd.world], labels[dd.rank::dd.world],
                          run.cfg.train.eval_batch_size, run.device, run.cfg.train.amp == "bf16")
    totals = [distributed.sum_int(dd, c, run.device) for c in counts]
    return [(1.0 - e / max(1, len(labels)), e) for e in totals]


def end_of_epoch(run: Run, metrics: Metrics | None, run_dir: Path, epoch_time: float, steps_run: int,
                 elapsed: float) -> None:
    """Evaluate, log the epoch's record, save a sample grid and the checkpoints."""
    t, data = run.cfg.train, run.data
    record = {"epoch": run.epoch + 1, "step": run.global_step,
              **{n: float(v) for n, v in zip(run.term_names, run.losses.mean(0).tolist())}}
    record.setdefault("g_loss", None)
    record["train_acc"] = score(run, run.lab.images, run.lab.labels)[0][0]
    # With an EMA, D itself is scored too (on the same batches): the average's lag is in every run.
    suffixes = ["", "_raw"] if run.ema is not None else [""]
    none = [(None, None)] * len(suffixes)
    val = score(run, *run.val, with_raw=True) if run.val is not None else none
    test = score(run, data.test.x, data.test.y, with_raw=True) if data.test is not None else none
    for suffix, (val_acc, _), (test_acc, test_errors) in zip(suffixes, val, test):
        record["val_acc" + suffix] = val_acc
        record["test_acc" + suffix], record["test_errors" + suffix] = test_acc, test_errors
    record.update(lr=run.lr, epoch_time=epoch_time, elapsed=elapsed,
                  images_per_s=steps_run * t.batch_size * run.dd.world / max(epoch_time, 1e-9))
    run.finish_epoch()
    improved = record["val_acc"] is not None and record["val_acc"] > run.best_val
    if improved:
        run.best_val = record["val_acc"]
    if metrics is not None:
        metrics.add(record)
        log(epoch_line(record))
        if run.G is not None and t.sample_every and run.epoch % t.sample_every == 0:
            images = generate(run.G, run.fixed_z.to(run.device))
            save_grid(images, run_dir / "samples" / f"epoch_{run.epoch:03d}.png")
            metrics.add_images("samples", make_grid(images, nrow=8), run.epoch)
    save_checkpoint(run, run_dir, "last")
    if improved:
        save_checkpoint(run, run_dir, "best")
    distributed.barrier(run.dd)


def save_checkpoint(run: Run, run_dir: Path, name: str) -> None:
    if run.dd.main:
        checkpoint.save(run.state_dict(), run_dir / "checkpoints" / f"{name}.pt")


@contextlib.contextmanager
def stop_on_signals():
    """Turn SIGINT/SIGTERM into a flag the loop checks after each step."""
    flag = {"signal": None}

    def handler(signum, frame):
        flag["signal"] = signum

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)
