"""`ssgan report` and the report a run writes: one self-contained page, TensorBoard's mirror, a real browser."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import signal
import subprocess

import pytest
import torch
from PIL import Image

import ssgan.training.loop as T
from ssgan import cli

from helpers_train import TINY, cli_args, make_cfg, read_metrics, ssgan_command, subprocess_env, torch_threads

REPORTED = {**TINY, "train.report": True, "train.sample_every": 1}


def embedded_pngs(page: str) -> list[Image.Image]:
    out = []
    for b64 in re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page):
        img = Image.open(io.BytesIO(base64.b64decode(b64)))
        img.load()
        out.append(img)
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("report") / "run"
    with torch_threads(1):
        # a barely trained classifier (tiny rate) so the synthetic test set has errors to show
        T.train(make_cfg(REPORTED, method__name="kplus1", optim__lr=1e-7, data__labels=8), run_dir)
    return run_dir


def test_a_run_ends_with_a_self_contained_report(trained):
    page = (trained / "report.html").read_text()
    for section in (
        "Summary",
        "Config that differs from the defaults",
        "Losses",
        "Accuracy",
        "Samples",
        "Test set",
        "The most confidently wrong test images",
    ):
        assert f"<h2>{section}" in page, section
    assert "<script" not in page and "http://" not in page and "https://" not in page  # no network, no JS
    images = embedded_pngs(page)
    # loss, accuracy, two sample grids, the confusion matrix and the wrong test images (16x16, enlarged 3x)
    assert len(images) >= 6 and all(min(im.size) > 0 for im in images)
    assert sum(im.size == (48, 48) for im in images) >= 1
    last = read_metrics(trained)[-1]
    assert f"{100 * last['test_acc']:.2f}%" in page  # the page's figures are the run's
    assert "kplus1" in page and "method.name" in page


def test_ssgan_report_remakes_the_page_from_the_run_folder(trained, tmp_path, capsys):
    out = tmp_path / "again.html"
    with torch_threads(1):
        assert cli.main(["report", str(trained), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "bytes in" in printed
    page = out.read_text()
    assert "Test set (EMA of D, epoch 2)" in page and len(embedded_pngs(page)) >= 6


def test_report_of_a_folder_that_is_neither_run_nor_bench_names_it(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path)]) != 0
    assert str(tmp_path) in capsys.readouterr().err


def test_no_report_and_a_failing_report_never_cost_the_run(tmp_path, monkeypatch, capsys):
    with torch_threads(1):
        T.train(
            make_cfg(REPORTED, train__epochs=1, train__max_steps=2, train__report=False), tmp_path / "off"
        )
    assert not (tmp_path / "off" / "report.html").exists()

    def broken(*args, **kwargs):
        raise ValueError("no figure today")

    monkeypatch.setattr("ssgan.report.write_run_report", broken)
    with torch_threads(1):
        summary = T.train(make_cfg(REPORTED, train__epochs=1, train__max_steps=2), tmp_path / "broken")
    assert summary["epochs"] == 1 and (tmp_path / "broken" / "summary.json").is_file()
    assert (
        "report.html not written (ValueError: no figure today); make it with: ssgan report"
        in capsys.readouterr().out
    )


def test_the_no_report_flag(tmp_path):
    assert (
        cli.main(
            [
                "train",
                "--run-dir",
                str(tmp_path / "r"),
                "--no-report",
                *cli_args({**REPORTED, "train.epochs": 1, "train.max_steps": 2}),
            ]
        )
        == 0
    )
    assert not (tmp_path / "r" / "report.html").exists() and (tmp_path / "r" / "summary.json").is_file()


def test_a_run_stopped_by_sigterm_writes_its_report(tmp_path):
    run = {**REPORTED, "train.epochs": 3, "train.max_steps": 15, "train.threads": 1}
    run_dir = tmp_path / "stopped"
    proc = subprocess.Popen(
        ssgan_command() + ["train", "--run-dir", str(run_dir), *cli_args(run)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    try:
        import time

        deadline = time.time() + 120
        while not (run_dir / "checkpoints" / "last.pt").is_file():
            assert proc.poll() is None and time.time() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "<h2>Losses" in (run_dir / "report.html").read_text()


def test_a_bench_report_links_every_run_s_own_page(tmp_path, capsys):
    out = tmp_path / "bench"
    args = [
        "bench",
        "--dataset",
        "synthetic",
        "--image-size",
        "16",
        "--net",
        "mlp",
        "--epochs",
        "1",
        "--max-steps",
        "2",
        "--batch-size",
        "20",
        "--methods",
        "fm,supervised",
        "--labels",
        "8",
        "--seeds",
        "0-1",
        "--train.threads=1",
        "--train.report=false",
        "--out",
        str(out),
    ]
    with torch_threads(1):
        assert cli.main(args) == 0
        assert cli.main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert "Method x labels" in page and "fm-L8-s1" in page and "supervised-L8-s0" in page
    links = re.findall(r"href='([^']+)'", page)
    assert len(links) == 4 and all((out / link).is_file() for link in links)
    assert all("<h2>Summary" in (out / link).read_text() for link in links)
    results = json.loads((out / "results.json").read_text())
    assert all(str(r["test_errors"]) in page for r in results["runs"])


# ------------------------------------------------------------------------------------ TensorBoard
def test_tensorboard_mirror_holds_what_metrics_jsonl_holds(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with torch_threads(1):
        T.train(
            make_cfg(TINY, method__name="kplus1", train__track="tensorboard", train__sample_every=1),
            tmp_path / "run",
        )
    acc = EventAccumulator(str(tmp_path / "run" / "tb"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    records = read_metrics(tmp_path / "run")
    for key in ("d_loss", "g_loss", "d/unl_real", "test_acc", "train_acc", "lr"):
        events = acc.Scalars(key)
        assert [e.step for e in events] == [r["epoch"] for r in records], key
        assert [e.value for e in events] == pytest.approx([r[key] for r in records], rel=1e-6), key
    assert [e.step for e in acc.Images("samples")] == [1, 2]


def test_tensorboard_missing_is_a_clear_error(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tb(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("no tensorboard")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tb)
    with pytest.raises(Exception) as e:
        T.train(
            make_cfg(TINY, train__track="tensorboard", train__epochs=1, train__max_steps=1), tmp_path / "run"
        )
    assert "pip install 'ssgan[tensorboard]'" in str(e.value)


# ---------------------------------------------------------------------------------- a real browser
def chromium() -> str | None:
    return next(
        (shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None
    )


CHECK = """<script>window.addEventListener('load', () => {
  const imgs = [...document.images];
  document.title = 'CHECK ' + imgs.length + ' ' + imgs.filter(i => i.complete && i.naturalWidth > 0).length;
});</script>"""


@pytest.mark.skipif(chromium() is None, reason="no Chromium installed (Debian: apt-get install chromium)")
def test_the_report_renders_in_headless_chromium(trained, tmp_path):
    browser = chromium()
    base = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--user-data-dir=" + str(tmp_path / "profile"),
        "--enable-logging=stderr",
        "--v=0",
    ]
    page = trained / "report.html"
    shot = tmp_path / "shot.png"
    r = subprocess.run(
        base + ["--window-size=1200,2400", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.is_file(), r.stderr[-2000:]
    assert not re.search(r"CONSOLE.*(Uncaught|Error)|:ERROR:CONSOLE", r.stderr), r.stderr[-2000:]
    pixels = torch.tensor(list(Image.open(shot).convert("L").getdata()), dtype=torch.float32)
    assert pixels.std() > 20  # not a blank page
    # Every image decoded: a copy of the page with a checking script (the report itself has none).
    checked = tmp_path / "checked.html"
    checked.write_text(page.read_text().replace("</body>", CHECK + "</body>"))
    dom = subprocess.run(
        base + ["--dump-dom", "--virtual-time-budget=5000", checked.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    m = re.search(r"<title>CHECK (\d+) (\d+)</title>", dom)
    assert m, dom[:500]
    assert int(m.group(1)) >= 6 and m.group(1) == m.group(2)
