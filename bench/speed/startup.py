"""What a run costs besides training: `python -m bench.speed --per-run`.

Each case is a whole `run.py` process (1 epoch), timed from outside; its summary holds the
wall time of every phase (`time/phase/*`, recorded by the runner) and the pure training
time. Overhead is the process's wall time minus its training time, broken down into
interpreter start and imports, config, data, model, W&B start-up, device set-up, the
epoch's validation/checkpoints/snapshots, test metrics, figures, each evaluation tool,
the end (artifacts) and process exit. Every case runs twice: cold (an empty cache folder:
decoded data, the sample-quality feature network and compiled UMAP code are made) and
warm (the same cache again), which is what every later run on the machine pays.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CASES = [
    {"name": "mlp_vae tiny", "argv": ["--model", "mlp_vae", "--dataset", "fashion_mnist", "--limit-train", "128",
                                      "--limit-test", "128"]},
    {"name": "vae --eval all", "argv": ["--model", "vae", "--dataset", "fashion_mnist", "--limit-train", "5000",
                                        "--limit-test", "2000", "--eval", "all"]},
]


def run_once(case: dict, data_root: str, device: str, wandb: str, cache: str, workdir: str) -> dict:
    runs = Path(workdir) / "runs"
    before = set(runs.iterdir()) if runs.is_dir() else set()
    argv = [sys.executable, str(ROOT / "run.py"), *case["argv"], "--epochs", "1", "--data-root", data_root,
            "--device", device, "--wandb", wandb, "--runs-dir", str(runs)]
    env = dict(os.environ, AEBENCH_CACHE=cache, WANDB_SILENT="true", PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    p = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"python -m bench.speed --per-run: {case['name']} exited {p.returncode}: "
                         f"{(p.stderr.strip().splitlines() or ['?'])[-1]}")
    (run_dir,) = set(runs.iterdir()) - before
    s = json.loads((run_dir / "summary.json").read_text())
    phases = {k.split("/", 2)[2]: v for k, v in s.items() if k.startswith("time/phase/")}
    train = s.get("train_seconds", 0.0)
    parts = {"imports": phases.pop("imports", 0.0), "config": phases.pop("config", 0.0),
             "data": phases.pop("data", 0.0), "model": phases.pop("model", 0.0),
             "W&B start": phases.pop("wandb_init", 0.0), "set-up": phases.pop("setup", 0.0) + phases.pop("start-up", 0.0),
             "epoch extras": phases.pop("training", 0.0) - train}
    test = phases.pop("test_evaluation", 0.0)
    parts["test metrics"] = s.get("time/test_eval_seconds", 0.0)
    parts["figures, tables"] = test - parts["test metrics"]
    for k in sorted(k for k in phases if k.startswith("eval:")):
        parts[f"tool {k[5:]}"] = phases.pop(k)
    parts["end"] = sum(phases.values())
    parts["exit"] = wall - train - sum(parts.values())
    return {"case": case["name"], "wall_s": wall, "train_s": train, "overhead_s": wall - train, "parts": parts}


def per_run(data_root: str, device: str, wandb: str, cases=None) -> list[dict]:
    out = []
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as workdir:
        for case in cases or CASES:
            for state in ("cold", "warm"):
                r = run_once(case, data_root, device, wandb, cache, workdir)
                r["cache"] = state
                out.append(r)
                print(f"  {case['name']:<16} {state}: {r['wall_s']:.1f} s wall, {r['train_s']:.2f} s training",
                      flush=True)
    return out


def table(results: list[dict], import_torch_s: float) -> str:
    names = list(dict.fromkeys(k for r in results for k in r["parts"]))
    head = f"{'seconds':<18}" + "".join(f"{r['case'][:14] + ' ' + r['cache']:>21}" for r in results)
    lines = [head, f"{'wall':<18}" + "".join(f"{r['wall_s']:21.2f}" for r in results),
             f"{'training':<18}" + "".join(f"{r['train_s']:21.2f}" for r in results),
             f"{'overhead':<18}" + "".join(f"{r['overhead_s']:21.2f}" for r in results)]
    lines += [f"  {n:<16}" + "".join(f"{r['parts'].get(n, 0.0):21.2f}" for r in results) for n in names]
    lines.append(f"(python -c 'import torch' takes {import_torch_s:.2f} s here; wall / that = "
                 + ", ".join(f"{r['wall_s'] / import_torch_s:.1f}x" for r in results) + ")")
    return "\n".join(lines)


def import_torch_seconds() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------- start-up against a bare script

TINY = ["--model", "mlp_vae", "--dataset", "fashion_mnist", "--hidden-dims", "400", "--latent-dim", "20",
        "--limit-train", "128", "--limit-test", "128", "--epochs", "1", "--wandb", "disabled"]


def cpu_seconds(argv: list[str], cwd: str, env: dict, importtime: bool = False) -> tuple[float, str]:
    """CPU seconds (user + system) of one whole process and its children, and its stderr."""
    import resource
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run([sys.executable] + (["-X", "importtime"] if importtime else []) + argv, cwd=cwd, env=env,
                       capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit(f"python -m bench.speed --startup: {argv[0]} exited {p.returncode}: "
                         f"{(p.stderr.strip().splitlines() or ['?'])[-1]}")
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, p.stderr


def import_seconds(stderr: str) -> dict[str, float]:
    """Seconds of import by top-level package, from `python -X importtime` (each module's own time)."""
    out: dict[str, float] = {}
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "self [us]" not in line:
            own, _, name = line[len("import time:"):].split("|")
            top = name.strip().split(".")[0]
            out[top] = out.get(top, 0.0) + int(own) / 1e6
    return out


def startup(data_root: str, pairs: int = 5) -> dict:
    """A tiny run against the bare script doing its work (bench/speed/bare/script.py), as CPU seconds of
    whole processes in `pairs` pairs (run, bare, run, bare, ...) after one warm-up of each (the
    decoded-data cache and the page cache are warm, as for every run after the first); then
    what the run imports and does beyond the script."""
    import statistics
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as workdir:
        env = dict(os.environ, AEBENCH_CACHE=cache, WANDB_SILENT="true", PYTHONPATH=str(ROOT))
        run = [str(ROOT / "run.py"), *TINY, "--data-root", data_root, "--runs-dir", str(Path(workdir) / "runs")]
        bare = [str(ROOT / "bench" / "speed" / "bare" / "script.py"), data_root, str(Path(workdir) / "bare")]
        cpu_seconds(run, workdir, env), cpu_seconds(bare, workdir, env)
        rows = []
        for i in range(pairs):
            a, b = cpu_seconds(run, workdir, env)[0], cpu_seconds(bare, workdir, env)[0]
            rows.append({"run_cpu_s": a, "bare_cpu_s": b, "ratio": a / b})
            print(f"  pair {i + 1}/{pairs}: run {a:.2f} CPU-s, bare script {b:.2f} CPU-s, {a / b:.2f}x", flush=True)
        run_imports = import_seconds(cpu_seconds(run, workdir, env, importtime=True)[1])
        bare_imports = import_seconds(cpu_seconds(bare, workdir, env, importtime=True)[1])
        (last,) = sorted((Path(workdir) / "runs").iterdir())[-1:]
        summary = json.loads((last / "summary.json").read_text())
    ratios = [r["ratio"] for r in rows]
    extra = {k: v - bare_imports.get(k, 0.0) for k, v in run_imports.items()}
    phases = {k.split("/", 2)[2]: v for k, v in summary.items() if k.startswith("time/phase/")}
    return {"pairs": rows, "median_ratio": statistics.median(ratios), "min_ratio": min(ratios),
            "max_ratio": max(ratios), "median_run_cpu_s": statistics.median(r["run_cpu_s"] for r in rows),
            "median_bare_cpu_s": statistics.median(r["bare_cpu_s"] for r in rows),
            "imports_beyond": dict(sorted(((k, round(v, 3)) for k, v in extra.items() if v > 0.01),
                                          key=lambda kv: -kv[1])),
            "run_phases_s": phases, "train_s": summary.get("train_seconds")}


def startup_table(r: dict) -> str:
    lines = [f"tiny run / bare script, CPU seconds of whole processes, median of {len(r['pairs'])} pairs: "
             f"{r['median_ratio']:.2f}x (spread {r['min_ratio']:.2f}-{r['max_ratio']:.2f}; run "
             f"{r['median_run_cpu_s']:.2f} CPU-s, bare {r['median_bare_cpu_s']:.2f} CPU-s)",
             "imports beyond the bare script (seconds, -X importtime, one process):"]
    lines += [f"  {k:<22}{v:7.3f}" for k, v in list(r["imports_beyond"].items())[:12]]
    lines.append("the run's phases (wall seconds, one thread): "
                 + ", ".join(f"{k} {v:.2f}" for k, v in r["run_phases_s"].items() if v >= 0.005))
    return "\n".join(lines)
