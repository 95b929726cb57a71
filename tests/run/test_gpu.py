"""Every CUDA path, run on a GPU: `python -m pytest -q -m gpu` (skipped where no CUDA device
is visible; the CPU suite covers the same paths on the CPU)."""
import json
import math

import pytest
import torch
from conftest import only_run, quick, run_cli, run_inproc

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible")]


def cuda(tmp_path, *extra, **kw):
    return quick(tmp_path, "--device", "cuda", *extra, **kw)


@pytest.mark.parametrize("amp", ["off", "bf16", "fp16", "auto"])
def test_training_in_every_precision(tmp_path, amp):
    assert run_inproc(cuda(tmp_path, "--amp", amp, model="vae", epochs=2)) == 0
    run = only_run(tmp_path)
    s = run.read_summary()
    assert s["status"] == "finished" and s["device_used"].startswith("cuda")
    rows = run.read_metrics()
    assert len(rows) == 2 and all(math.isfinite(r["train/loss"]) for r in rows)  # every epoch recorded, finite
    if amp == "auto":
        assert s["amp_chosen"] in ("off", "bf16")
    from bench.records.rebuild import load_run_model
    model, _ = load_run_model(str(run.path))  # a GPU checkpoint loads on the CPU
    assert next(model.parameters()).device.type == "cpu"


@pytest.mark.parametrize("model", ["vae", "mcae", "mlp_ae"])
def test_every_tool_on_cuda(tmp_path, model):
    assert run_inproc(cuda(tmp_path, "--eval", "all", "--embed-points", 100, model=model, epochs=1)) == 0
    s = only_run(tmp_path).read_summary()
    assert not [k for k, v in s.items() if k.endswith("/failed") and v], s
    assert "probe/linear_acc" in s and "denoise/psnr@0.3" in s


def test_probe_from_and_evaluate_on_cuda(tmp_path):
    assert run_inproc(cuda(tmp_path, model="ae", epochs=1)) == 0
    ae = only_run(tmp_path)
    assert run_inproc(cuda(tmp_path, "--probe-from", ae.id, model="linear_probe", epochs=1)) == 0
    from bench.evaluate import main
    assert main([str(ae.path), "--what", "sample,collapse,occlusion", "--device", "cuda"]) == 0
    assert "sample/gmm_fd" in ae.read_summary()


def test_speed_benchmark_on_cuda_reports_both_precisions(tmp_path, fashion_root):
    out = tmp_path / "speed.json"
    p = run_cli(["--data-root", fashion_root, "--cases", "mlp_vae", "--limit-train", 2000, "--repeats", 1,
                 "--device", "cuda", "--out", out], cwd=tmp_path, script="bench.speed")
    assert p.returncode == 0, p.stderr
    res = json.loads(out.read_text())["results"]
    assert {r.get("amp", "off") for r in res} >= {"off", "bf16"}
    assert all(r["same_loss_within_1pct"] for r in res if r.get("amp", "off") == "off")


def test_sweep_packs_several_runs_on_one_device(tmp_path):
    y = tmp_path / "g.yaml"
    y.write_text("name: g\nprogram: run.py\nmethod: grid\nmetric: {name: val/loss, goal: minimize}\n"
                 "parameters:\n  model: {value: mlp_vae}\n  dataset: {value: synthetic}\n"
                 "  latent_dim: {values: [4, 8, 16, 32]}\n  epochs: {value: 1}\n"
                 "command: [\"${env}\", \"${interpreter}\", \"${program}\", \"${args}\"]\n")
    p = run_cli([y, "--workers", "auto", "--device", "cuda", "--runs-dir", "runs", "--wandb", "disabled",
                 "--limit-train", 600], cwd=tmp_path, script="bench.sweep")
    assert p.returncode == 0, p.stdout + p.stderr
    first = p.stdout.splitlines()[0]
    assert int(first.split(" worker(s)")[0].split()[-1]) > 1  # several runs at once on the one GPU
    assert p.stdout.count("finished") >= 4
