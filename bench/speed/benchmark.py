"""Speed benchmark: the harness against the usual notebook loop and a bare loop.

    python -m bench.speed [--data-root DIR] [--epochs 1] [--repeats 3] [--limit-train N]
                          [--device cpu|cuda] [--out reports/speed.json]
    python -m bench.speed --startup [--pairs 5]     # a tiny run against a bare script (bench.speed.startup)
    python -m bench.speed --epoch [--sittings 5]    # a marginal epoch against a bare loop (bench.speed.epoch)

For each case, in one process and one sitting:
  (a) notebook: torchvision dataset + transforms.ToTensor() + DataLoader, metrics image by image;
  (b) bare: preloaded uint8 tensors, a permutation per epoch, forward/backward/step, nothing else;
  (c) harness: bench.run.runner.execute, the code path of run.py (local store, W&B offline,
      per-epoch validation, checkpoints).
Images/s are training images per second of epoch wall time (for (c): training, validation,
checkpoints and tracking of the epoch). Each measurement is repeated and the median kept.
All three loops start from the same weights and see the same batches in the same order,
so (c) must reach (a)'s test loss (within 1%): speed never comes from doing less work.
eval/ep is the full test-set evaluation (MSE, MAE, PSNR, SSIM, SNR) over the time of one
epoch on the whole training set (extrapolated from the subset for the conv cases). Peak
RSS is the process's, which only grows across the loops run before it.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import torch

from bench.core.errors import UsageError, exit_usage

CASES = [
    {"name": "mlp_vae 784-400-20", "model": "mlp_vae", "dataset": "fashion_mnist", "batch": 128,
     "keys": {"hidden_dims": [400], "latent_dim": 20}},
    {"name": "ae 3x32x32", "model": "ae", "dataset": None, "batch": 128, "size": 32, "keys": {},
     "limit": 20000},
    {"name": "cnn_classifier 3x32x32", "model": "cnn_classifier", "dataset": None, "batch": 128, "size": 32,
     "keys": {}, "limit": 10000},
    # The likelihood presets at the IWAE paper's batch of 20 (sweeps/likelihood_*.yaml), on binarized MNIST
    {"name": "mlp_vae IWAE paper, batch 20", "model": "mlp_vae", "dataset": "binarized_mnist", "batch": 20,
     "keys": {"hidden_dims": [200, 200], "latent_dim": 50, "activation": "tanh"}, "adam_eps": 1e-4, "limit": 12000,
     "tag": "likelihood"},
    {"name": "mlp_iwae k=5, batch 20", "model": "mlp_iwae", "dataset": "binarized_mnist", "batch": 20,
     "keys": {"k_samples": 5}, "adam_eps": 1e-4, "limit": 12000, "tag": "likelihood"},
]  # conv cases train on a fixed subset so three repeats of three loops fit in minutes on a CPU


class PeakRSS:
    """Peak resident memory of this process while the block runs (sampled every 20 ms)."""

    def __enter__(self):
        self.proc, self.peak, self._stop = psutil.Process(), 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *a):
        self._stop.set()
        self.thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def resolve_case(case, args):
    """Pick the dataset: cifar10 when present for 3x32x32 cases, else coloured MNIST at 32x32."""
    from bench.config.spec import resolve
    from bench.core.errors import UsageError
    from bench.data import load_data

    if case["dataset"]:
        return case["dataset"], None
    try:
        load_data(resolve({"dataset": "cifar10", "data_root": args.data_root, "limit_train": 10}))
        return "cifar10", None
    except UsageError:
        return "colored_mnist", 32


def build(case, data, seed, device):
    from registry import create_model

    torch.manual_seed(seed)
    return create_model(case["model"], data.shape, data.num_classes, **case["keys"]).to(device)


def case_flags(case) -> list[str]:
    """The case's model keys and optimiser as run.py flags (what the bare loops build from `keys`)."""
    flags = []
    for k, v in case["keys"].items():
        flags += [f"--{k.replace('_', '-')}", ",".join(map(str, v)) if isinstance(v, list) else str(v)]
    return flags + (["--adam-eps", str(case["adam_eps"])] if "adam_eps" in case else [])


def optimiser(case, model):
    return torch.optim.Adam(model.parameters(), 1e-3, eps=case.get("adam_eps", 1e-8))


def test_scores(model, split, device) -> dict:
    """Test loss and (for classifiers) accuracy, from one pass over the test set."""
    from bench.run.train import evaluate_loss
    terms = evaluate_loss(model, split, 1000, device)
    return {"test_loss": terms["loss"], "test_acc": terms.get("acc")}


def notebook_loop(case, data, args, device):
    """The course-notebook pattern: per-item ToTensor through a DataLoader, per-image metrics."""
    from torch.utils.data import DataLoader, Dataset, RandomSampler
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure
    from torchvision import transforms

    class ItemDataset(Dataset):  # what torchvision datasets do: one PIL image per item, then ToTensor
        def __init__(self, split):
            self.x, self.y = split.x.permute(0, 2, 3, 1).numpy(), split.y
            self.tf = transforms.Compose([transforms.ToPILImage(), transforms.ToTensor()])

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            img = self.x[i][..., 0] if self.x.shape[-1] == 1 else self.x[i]
            return self.tf(img), self.y[i]

    model = build(case, data, args.seed, device)
    opt = optimiser(case, model)
    # shuffle=True draws the same permutations as the harness (randperm on a generator
    # seeded alike); the loader's own generator is separate so that its base seed does not
    # consume either stream. All three loops then see the same batches in the same order.
    sampler = RandomSampler(range(len(data.train)), generator=torch.Generator().manual_seed(args.seed))
    loader = DataLoader(ItemDataset(data.train), batch_size=case["batch"], sampler=sampler,
                        generator=torch.Generator())
    times = []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        model.train()
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = model(x, y)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    if model.reconstructs:  # notebook-style evaluation: image by image
        model.eval()
        with torch.no_grad():
            for x, _ in DataLoader(ItemDataset(data.test), batch_size=1):
                x = x.to(device)  # the metric compares on the model's device
                r = model(x)["recon"]
                peak_signal_noise_ratio(r, x, data_range=1.0)
                structural_similarity_index_measure(r, x, data_range=1.0)
    eval_s = time.perf_counter() - t0
    return {"epoch_s": statistics.median(times), "eval_s": eval_s, **test_scores(model, data.test, device)}


def bare_loop(case, data, args, device, amp="off"):
    from bench.core.tensors import autocast
    from bench.data import batches

    model = build(case, data, args.seed, device)
    opt = optimiser(case, model)
    train = data.train.to(device)
    g = torch.Generator().manual_seed(args.seed)
    times = []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        model.train()
        for x, y in batches(train, case["batch"], shuffle=True, generator=g):
            with autocast(device, amp):
                loss = model(x, y)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return {"epoch_s": statistics.median(times), **test_scores(model, data.test.to(device), device)}


def harness(case, dataset, size, limit, args, device, workdir, amp="off"):
    from bench.records.rebuild import load_run_model
    from bench.records.store import list_runs
    from bench.run.runner import execute

    runs_dir = Path(workdir) / f"runs-{case['model']}"
    argv = ["--model", case["model"], "--dataset", dataset, "--data-root", args.data_root,
            "--epochs", str(args.epochs), "--batch-size", str(case["batch"]), "--seed", str(args.seed),
            "--runs-dir", str(runs_dir), "--wandb", "offline", "--device", device.type, *case_flags(case)]
    if size:
        argv += ["--image-size", str(size)]
    if limit:
        argv += ["--limit-train", str(limit)]
    if device.type == "cuda":
        argv += ["--amp", amp] + (["--channels-last"] if case["model"] != "mlp_vae" else [])
    t0 = time.perf_counter()
    assert execute(argv, log=lambda s: None) == 0
    total = time.perf_counter() - t0
    run = sorted(list_runs(str(runs_dir)), key=lambda r: r.path.stat().st_mtime)[-1]
    rows, summary = run.read_metrics(), run.read_summary()
    model, _ = load_run_model(str(run.path), str(runs_dir), which="last")
    return {"epoch_s": statistics.median(r["time/epoch_wall_seconds"] for r in rows),
            "eval_s": summary["time/test_eval_seconds"], "total_s": total, "model": model}


def measure(case, args, device, workdir, amp="off") -> dict:
    import registry
    from bench.config.spec import resolve
    from bench.data import load_data

    task = registry.model_entry(case["model"]).task
    dataset, size = resolve_case(case, args)
    limit = args.limit_train or case.get("limit")
    spec = resolve({"dataset": dataset, "data_root": args.data_root, "seed": args.seed, "image_size": size,
                   "limit_train": limit})
    data = load_data(spec, task)
    n = len(data.train)
    n_full = len(load_data(resolve({"dataset": dataset, "data_root": args.data_root, "seed": args.seed}),
                           task).train)
    out = {"case": case["name"], "amp": amp, "dataset": dataset + (f"@{size}" if size else ""), "train_images": n,
           "train_images_full": n_full, "test_images": len(data.test)}
    for label, fn in (("a_notebook", lambda: notebook_loop(case, data, args, device)),
                      ("b_bare", lambda: bare_loop(case, data, args, device, amp)),
                      ("c_harness", lambda: harness(case, dataset, size, limit, args, device, workdir, amp))):
        reps, peaks = [], []
        for _ in range(args.repeats):
            with PeakRSS() as mem:
                reps.append(fn())
            peaks.append(mem.peak)
            print(f"  {case['name']:<24} {label:<11} {n / reps[-1]['epoch_s']:8.0f} img/s", flush=True)
        best = sorted(reps, key=lambda r: r["epoch_s"])[len(reps) // 2]
        out[label] = {"images_per_sec": n / best["epoch_s"], "epoch_s": best["epoch_s"],
                      "peak_rss_mb": max(peaks) / 2 ** 20}
        if "eval_s" in best:
            out[label]["test_eval_s"] = best["eval_s"]
        if label == "a_notebook":
            out[label].update(test_loss=best["test_loss"], test_acc=best["test_acc"])
        if label == "c_harness":
            out[label].update(test_scores(best["model"].to(device), data.test.to(device), device))
    a, b, c = out["a_notebook"], out["b_bare"], out["c_harness"]
    out["c_over_a"] = c["images_per_sec"] / a["images_per_sec"]
    out["c_over_b"] = c["images_per_sec"] / b["images_per_sec"]
    # The test set is always evaluated whole; compare it with an epoch over the whole training set.
    out["eval_fraction_of_epoch"] = c["test_eval_s"] / (c["epoch_s"] * n_full / n)
    out["test_loss_rel_diff"] = abs(c["test_loss"] - a["test_loss"]) / abs(a["test_loss"])
    # The notebook loop reads each image as stored: on dynamically binarized data it trains on grey
    # levels, so only the bare loop does the harness's work there (c/b is the comparison)
    out["same_loss_within_1pct"] = None if data.train.bernoulli else out["test_loss_rel_diff"] <= 0.01
    return out


def table(results, meta) -> str:
    lines = [f"aebench speed ({meta['device']}, {meta['threads']} threads on {meta['cores']} cores, "
             f"{meta['epochs']} epoch(s), median of {meta['repeats']})",
             f"{'case':<24} {'data':<16} {'a img/s':>8} {'b img/s':>8} {'c img/s':>8} {'c/a':>5} {'c/b':>5} "
             f"{'eval/ep':>7} {'loss a':>9} {'loss c':>9} {'RSS c MB':>8}"]
    for r in results:
        a, b, c = r["a_notebook"], r["b_bare"], r["c_harness"]
        name = r["case"] + (" bf16" if r.get("amp") == "bf16" else "")
        lines.append(f"{name:<24} {r['dataset']:<16} {a['images_per_sec']:8.0f} {b['images_per_sec']:8.0f} "
                     f"{c['images_per_sec']:8.0f} {r['c_over_a']:5.2f} {r['c_over_b']:5.2f} "
                     f"{r['eval_fraction_of_epoch']:7.1%} {a['test_loss']:9.4g} {c['test_loss']:9.4g} "
                     f"{c['peak_rss_mb']:8.0f}")
    return "\n".join(lines)


def _count(text: str) -> int:
    """A count of epochs, repeats, pairs or sittings: a whole number of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of at least 1")
    return int(text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.speed", description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default="./data")
    p.add_argument("--epochs", type=_count, default=1)
    p.add_argument("--repeats", type=_count, default=3)
    p.add_argument("--limit-train", type=_count, default=None,
                   help="cap training images (default: all for mlp_vae, 20k for ae, 10k for cnn_classifier)")
    p.add_argument("--cases", default="all", help="comma list of model names, likelihood (the MLP presets of "
                   "sweeps/likelihood_*.yaml at batch 20), or all")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="reports/speed.json", help="results (default reports/speed.json, git-ignored)")
    p.add_argument("--per-run", action="store_true",
                   help="instead: what a whole 1-epoch run.py process costs besides training, by phase, cold and "
                        "warm cache (bench.speed.startup)")
    p.add_argument("--wandb", default="offline", choices=["offline", "disabled"], help="W&B mode of the runs of --per-run and --epoch")
    p.add_argument("--startup", action="store_true",
                   help="instead: a tiny run.py process against a bare script doing the same work (bench/speed/bare/script.py), "
                        "CPU seconds in --pairs pairs, and what the run imports and does beyond it")
    p.add_argument("--pairs", type=_count, default=5, help="run/bare pairs of --startup (default 5; the median is kept)")
    p.add_argument("--epoch", action="store_true",
                   help="instead: a run's marginal epoch against a bare loop that validates (bench/speed/bare/loop.py), in "
                        "--sittings sittings, the two side by side on one thread each, and the run's per-epoch work by kind")
    p.add_argument("--sittings", type=_count, default=5, help="sittings of --epoch (default 5; the median is kept)")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("python -m bench.speed: error: --device cuda: no CUDA device is visible; valid here: cpu",
              file=sys.stderr)
        return 2
    os.environ.setdefault("WANDB_SILENT", "true")
    if args.per_run:
        return _per_run(args)
    if args.startup:
        return _startup(args)
    if args.epoch:
        return _epoch(args)
    device = torch.device(args.device)
    cases = [c for c in CASES if args.cases == "all" or c.get("tag", c["model"]) in args.cases.split(",")]
    meta = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
            "threads": torch.get_num_threads(), "cores": os.cpu_count(), "epochs": args.epochs,
            "repeats": args.repeats, "torch": torch.__version__}
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        cwd = os.getcwd()
        os.chdir(workdir)  # W&B offline files of the benchmark runs stay out of the project
        args.data_root = str(Path(cwd, args.data_root)) if not os.path.isabs(args.data_root) else args.data_root
        try:
            for case in cases:  # on CUDA in fp32 and in bf16 (--amp; the notebook loop stays fp32)
                for amp in (("off", "bf16") if device.type == "cuda" else ("off",)):
                    results.append(measure(case, args, device, workdir, amp))
        except UsageError as e:  # missing data, a bad case: one line, as run.py says it
            exit_usage("python -m bench.speed", e)
        finally:
            os.chdir(cwd)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(table(results, meta))
    print(f"wrote {args.out}")
    return 0


def _per_run(args) -> int:
    from bench.speed import startup as per_run

    root = str(Path(args.data_root).resolve())
    results = per_run.per_run(root, args.device, args.wandb)
    base = per_run.import_torch_seconds()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"import_torch_s": base, "per_run": results}, indent=2))
    print(per_run.table(results, base))
    print(f"wrote {args.out}")
    return 0


def _startup(args) -> int:
    from bench.speed import startup as run_costs

    result = run_costs.startup(str(Path(args.data_root).resolve()), args.pairs)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(run_costs.startup_table(result))
    print(f"wrote {args.out}")
    return 0


def _epoch(args) -> int:
    from bench.speed import epoch as epoch_costs

    result = epoch_costs.epoch(str(Path(args.data_root).resolve()), args.sittings, wandb=args.wandb,
                               limit=args.limit_train or 0)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(epoch_costs.epoch_table(result))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
