"""Test-set evaluation of a trained model and its figures, and the evaluation tools run on a run.

After training, the runner calls `test_evaluation` (metrics by task, then figures);
`--eval` and `python -m bench.evaluate` (the entry module `bench/evaluate.py`) run the
evaluation tools of `bench.tools` on a run through `run_extra`.
"""
from __future__ import annotations

import errno
import sys
import time

import torch

from bench.core.errors import UsageError
from bench.core.tensors import to_float, to_uint8
from bench.data import batches
from bench.measure import grids, metrics


@torch.no_grad()
def output_spread(model, data, device, n=256) -> float:
    """How much the reconstructions vary across test images, as a share of how much the
    inputs vary (per pixel, averaged): near 1 for a model that follows its input, near 0 for
    one that outputs the same image whatever it is given (`bench.records.health` says why relative)."""
    model.eval()
    x = to_float(data.test.x[:n].to(device))
    if len(x) < 2:
        return 1.0
    recon = model(x)["recon"].float()
    return float(recon.std(0).mean()) / max(float(x.float().std(0).mean()), 1e-12)


@torch.no_grad()
def shown_images(n_test: int, n: int = 9) -> torch.Tensor:
    """Indices of the test images the reconstructions figure shows: n drawn at random with a
    fixed seed (the assignments show "nine random images"), the same for every run of a
    test set, so figures of different models and seeds compare like with like."""
    return torch.randperm(n_test, generator=torch.Generator().manual_seed(0))[:n].sort().values


def save_recon_arrays(path, rows) -> None:
    """The first 8 test images and what the model made of them, as uint8 arrays: the same
    images in every run on a dataset, so a report can set runs side by side (read back with
    `numpy.load(allow_pickle=False)`, never executing anything)."""
    import io

    import numpy as np

    from bench.core.files import atomic_write_bytes

    arrays = {name.split(" ")[0]: to_uint8(t).numpy() for name, t in rows}
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def test_evaluation(model, data, spec, run, device, history, snapshots=None) -> tuple[dict, dict]:
    """(test metrics, {figure name: path}) for the model's task."""
    from bench.config.tasks import task

    say_long_evaluation(len(data.test), history)
    t0 = time.perf_counter()
    results = task(model.task).evaluate(model, data, spec, device)
    results["time/test_eval_seconds"] = time.perf_counter() - t0
    figs = {}
    if len(history) > 1:  # one epoch is a dot, not a curve
        from bench.measure import figures  # matplotlib: only for what it draws
        figs["curves"] = figures.curves(history, run.figures / "curves.png", grids.run_title(spec))
    draw = task(model.task).figure
    if draw is not None:
        figs["reconstructions"] = draw(model, data, spec, device, run.figures / "reconstructions.png")
    if snapshots:
        from bench.run.train import snapshot_rows
        rows = snapshot_rows(model, data, spec.seed, snapshots)
        what = "denoised" if model.noise_level > 0 else "reconstructed"
        figs["recon_epochs"] = grids.image_rows(rows, run.figures / "recon_epochs.png",
                                                  f"the same test images {what} after selected epochs")
    return results, figs


def say_long_evaluation(n_images: int, history: list[dict], over: float = 10.0) -> float | None:
    """The test evaluation's start, with its estimate, where it would take over `over` seconds:
    its passes over the test images (the metrics, the model's own terms, a denoiser's noisy
    inputs) cost about what training on as many images did. Returns the estimate (or None)."""
    rates = [r["time/images_per_sec"] for r in history if r.get("time/images_per_sec")]
    if not rates:
        return None
    estimate = n_images / (sum(rates) / len(rates))
    if estimate > over:
        from bench.core.progress import progress
        progress(f"test evaluation: {n_images:,} images, about {estimate:.0f} s")
    return estimate


@torch.no_grad()
def image_table(model, data, spec, device, n: int = 32) -> tuple[list[str], list[list]]:
    """The whole test set ranked by per-image MSE, keeping the n/2 worst and the n/2 best
    reconstructions: each with its index, input, corrupted input (denoisers), reconstruction
    and MSE / PSNR / SSIM (a W&B table; `test_images.csv` locally)."""
    model.eval()
    mse = torch.cat([m["mse"].cpu() for _, _, _, m in _test_passes(model, data, spec, device)])
    order = torch.argsort(mse, descending=True)
    half = min(n // 2, len(order) // 2 or 1)
    chosen = {int(i): f"worst {k + 1}" for k, i in enumerate(order[:half])}
    chosen.update({int(i): f"best {k + 1}" for k, i in enumerate(order.flip(0)[:half]) if int(i) not in chosen})

    def image(t):
        a = to_uint8(t).permute(1, 2, 0).numpy()
        return a[..., 0] if a.shape[2] == 1 else a
    corrupted = model.noise_level > 0
    cols = ["rank", "index", "input"] + (["corrupted"] if corrupted else []) + ["reconstruction", "mse", "psnr", "ssim"]
    rows, start = {}, 0
    for x, noisy, recon, m in _test_passes(model, data, spec, device):  # the same noise as the ranking pass
        for j in range(len(x)):
            if start + j in chosen:
                ssim = float(m["ssim"][j]) if "ssim" in m else float("nan")  # SSIM needs 11x11 images or more
                rows[start + j] = [chosen[start + j], start + j, image(x[j])] \
                    + ([image(noisy[j])] if corrupted else []) \
                    + [image(recon[j]), float(m["mse"][j]), float(m["psnr"][j]), ssim]
        start += len(x)
    ranked = sorted(rows.values(), key=lambda r: (r[0].split()[0] != "worst", int(r[0].split()[1])))
    return cols, ranked


def _test_passes(model, data, spec, device, batch_size: int = 500):
    """(clean, model input, reconstruction, per-image metrics) per test batch; a denoiser's
    input is corrupted with noise fixed by the seed, the same on every pass."""
    g = torch.Generator(device=device).manual_seed(spec.seed)
    for xb, _ in batches(data.test, batch_size):
        x = xb.to(device)
        noisy = model.corrupt(x, g) if model.noise_level > 0 else x
        recon = model(noisy)["recon"]
        yield x, noisy, recon, metrics.image_metrics(recon, x)  # the same definitions as the test metrics


def record_results(run, tracking, results: dict, figs: dict) -> None:
    """Test metrics and figures into the local store and W&B, before any optional tool runs."""
    tracking.log_summary(results)
    tracking.log_images(figs)


STORAGE_ERRORS = {errno.ENOSPC, errno.EFBIG, errno.EROFS, errno.EDQUOT}


def _tool_failed(name, e, run) -> dict:
    reason = f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"
    print(f"eval {name} failed: {reason}; re-run it with "
          f"`python -m bench.evaluate {run.path} --what {name}`", file=sys.stderr, flush=True)
    return {f"{name}/failed": reason}


def run_extra(names: list[str], model, data, spec, run, device, tracking, before_each=None, suffix=None) -> dict:
    """Latent-space tools by name, each guarded; returns the numbers they add to the summary
    (each key as `KEY@suffix` when a suffix names other weights than the run's best).

    Each tool's numbers are recorded as soon as it ends. A tool that does not apply
    records `<tool>/skipped`; one that crashes records `<tool>/failed` (one line) and the
    others still run, so an optional figure never costs a run its results. Re-run one
    tool later with `python -m bench.evaluate RUN --what TOOL`."""
    from bench import tools

    registered = tools.tools()
    names = tools.expand(names)
    summary = {}
    for name in names:
        if before_each:
            before_each(name)
        t0 = time.perf_counter()
        print(f"eval {name} ...", flush=True)
        try:
            out = registered[name].fn(model, data, spec, run, device)
        except UsageError as e:  # not applicable to this model or data: say so, go on
            print(f"eval {name} skipped: {e}", flush=True)
            numbers = {f"{name}/skipped": " ".join(str(e).split())}
        except OSError as e:
            if e.errno in STORAGE_ERRORS:  # the disk, not the tool: the caller says so once
                raise
            numbers = _tool_failed(name, e, run)
        except Exception as e:
            numbers = _tool_failed(name, e, run)
        else:
            # a tool that did part of its work (drew its figure, could not score it) says so in `skipped`
            numbers = dict({f"{name}/failed": None, f"{name}/skipped": None}, **out.get("numbers", {}))
            if out.get("figures"):
                tracking.log_images(out["figures"])
            for tname, (cols, rows) in out.get("tables", {}).items():
                tracking.log_table(tname, cols, rows)
            print(f"eval {name} done in {time.perf_counter() - t0:.1f}s "
                  + " ".join(f"{k}={v:.4g}" for k, v in out.get("numbers", {}).items()
                             if isinstance(v, (int, float))), flush=True)
        if suffix:
            numbers = {f"{k}@{suffix}": v for k, v in numbers.items()}
        tracking.log_summary(numbers)
        summary.update(numbers)
    failed = [k.split("/")[0] for k, v in summary.items() if k.endswith("/failed") and v]
    if failed:
        print(f"eval: {len(failed)} tool(s) failed ({', '.join(failed)}); test metrics and the other "
              f"tools' results are recorded", file=sys.stderr, flush=True)
    return summary
