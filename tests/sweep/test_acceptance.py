"""Acceptance: every sweep YAML in sweeps/, as shipped, runs end to end and records what its
seed asks for. Scaled down (seed 0, 1 epoch, small subsets) but otherwise untouched: the
local sweep runner, `run.py` processes, and tiny learnable MNIST / Fashion-MNIST / CIFAR-10 /
STL-10 / CelebA / brain-tumour files in their exact on-disk formats.

The sweeps of one assignment run one after another in one fresh process, each through
`bench.sweep`'s own `main` with the argv a user types, as `bench.suite` runs its sweeps: a
runner imports torch, torchvision, torchmetrics, scikit-learn and the model families once
(about 7 CPU-seconds), so 24 processes cost minutes of imports where 7 cost seconds.
"""
import json
import os
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT, hang_guard, tiny_datasets

pytestmark = pytest.mark.embeds  # UMAP: see conftest.pytest_collection_modifyitems

YAMLS = sorted((ROOT / "sweeps").glob("*.yaml"))


def _group(path) -> str:
    """The assignment a shipped sweep belongs to (its report's template), else its kind."""
    from analysis.templates import for_sweep

    template = for_sweep(path.stem)
    return template.name if template else "likelihood" if path.stem.startswith("likelihood") else "other"


GROUPS = {g: [p for p in YAMLS if _group(p) == g] for g in sorted({_group(p) for p in YAMLS})}

# One process, the group's sweeps in turn: each `bench.sweep` main as `python -m bench.sweep ARGS` calls it.
DRIVER = """
import json, sys
from bench.sweep.command import main
for name, argv in json.loads(sys.argv[1]):
    print("=== sweep " + name, flush=True)
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    print("=== exit %s %s" % (name, code), flush=True)
"""

# What each evaluation tool must leave in summary.json.
TOOL_KEYS = {"probe": ["probe/linear_acc", "probe/logistic_acc"], "embed": ["embed/knn2d_acc"],
             "denoise": ["denoise/psnr@0.3", "denoise/input_psnr@0.3"], "interp": ["interp/endpoint_mse"],
             "arith": ["arith/direction_norm"], "sample": ["sample/ex_post_fd", "sample/gmm_fd", "sample/ex_post_fd_spread", "sample/fd_features",
                        "sample/gmm_fd_lo", "sample/gmm_fd_hi", "sample/gmm_kid", "sample/gmm_kid_std",
                        "sample/score_space"],
             "occlusion": ["occlusion/max_rise"], "collapse": [],
             "nll": ["test/nll", "test/nll_se", "test/nll_mc_se", "test/nll_k", "test/neg_elbo"]}
# Sweep-specific scale-downs: data sizes the tiny files hold, and what cannot run offline.
EXTRA = {"celeba_models": ["--limit-train", "40", "--limit-test", "20"],
         "celeba_sparse_lambda": ["--limit-train", "40", "--limit-test", "20"],
         "stl10_ssl": ["--limit-train", "160", "--limit-test", "60"],
         "stl10_supervised": ["--limit-train", "100", "--limit-test", "60"],
         "stl10_resnet_probe": ["--limit-train", "100", "--limit-test", "60", "--pretrained=false"],
         "brain_tumor_seg": ["--limit-train", "20", "--limit-test", "5"],
         "vae_beta_random": ["--count", "2"], "fashion_vae_search": ["--count", "2"],
         **{f"likelihood_{row}": ["--nll-k", "100"] for row in ("vae", "iwae5", "iwae50", "vamp")}}


@pytest.fixture(scope="module")
def data_root():
    return tiny_datasets()


def expected_keys(cfg: dict, params: dict) -> list[str]:
    from bench.config.keys import canonical
    from registry import MODELS

    model = params["model"]
    entry = MODELS[model]
    task = entry.task_of(entry.config(canonical(params)))  # noise level 0 is the plain-AE baseline
    from bench.config.tasks import TASKS, twin

    keys = [f"test/{k}" for k in sorted(TASKS[task].test_keys)]  # what the run's task says it records
    if twin(task, corrupted=False) != task:  # a corrupted twin (a denoiser) also scores its noisy inputs
        keys += ["test_noisy/psnr", "test_noisy/snr", "test_noisy/input_psnr"]
    for tool in params.get("eval") or []:
        # The tiny CelebA copy holds fewer images than the feature networks' recipe: the tool refuses
        keys += ["sample/skipped"] if (tool, params["dataset"]) == ("sample", "celeba") else TOOL_KEYS[tool]
        if tool == "collapse" and MODELS[model].fn.__name__ in ("vae", "mlp_vae"):
            keys.append("collapse/active_units")
        if tool == "arith" and params["dataset"] == "celeba":
            keys.append("arith/attribute")
    return keys


@pytest.fixture(scope="module")
def sweep_env(data_root):
    # The session's cache (conftest): feature networks, decoded data and compiled UMAP code made once
    return dict(os.environ, AEBENCH_TRUST_DATA_ROOT=str(data_root),
                PYTHONPATH=os.pathsep.join([str(ROOT / "tests" / "acceptance_site"), str(ROOT)]))


def _argv(path, runs, data_root) -> list[str]:
    name = yaml.safe_load(path.read_text()).get("name") or path.stem
    return [str(path), "--seed", "0", "--epochs", "1", "--workers", "2", "--data-root", str(data_root),
            "--runs-dir", str(runs), "--wandb", "disabled", "--limit-train", "300", "--limit-test", "100",
            "--embed-points", "100", "--embed-views", "2d"] + EXTRA.get(name, [])  # embed's 3-D views: test_latent


@pytest.mark.parametrize("group", GROUPS, ids=str)
def test_every_shipped_sweep_finishes_and_records_its_metrics(tmp_path, data_root, sweep_env, group):
    paths = GROUPS[group]
    plan = [(p.stem, _argv(p, tmp_path / p.stem / "runs", data_root)) for p in paths]
    p = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(plan)], cwd=tmp_path, env=sweep_env,
                       capture_output=True, text=True, timeout=hang_guard(300 * len(paths)))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for path in paths:
        out = p.stdout.split(f"=== sweep {path.stem}\n")[1].split(f"=== exit {path.stem} ")
        _check_sweep(path, tmp_path / path.stem, out[0], out[1].split("\n")[0], p.stderr)


def _check_sweep(path, tmp_path, stdout: str, code: str, stderr: str):
    cfg = yaml.safe_load(path.read_text())
    name = cfg.get("name") or path.stem
    runs = tmp_path / "runs"
    logs = "\n".join(f.read_text()[-1500:] for f in sorted((runs / name / "logs").glob("*.log"))) \
        if (runs / name / "logs").is_dir() else ""
    assert code in ("0", "None"), (name, code, stdout[-3000:] + stderr[-2000:] + logs)
    from bench.records.store import list_runs

    recorded = list_runs(str(runs / name))
    planned = [line for line in stdout.splitlines() if line.startswith("[")]
    assert recorded and len(recorded) == len(planned), stdout
    for run in recorded:
        s, c = run.read_summary(), run.read_config()
        params = dict(json.loads(s["sweep_params"]), dataset=c["dataset"], eval=c.get("eval"))
        assert s["status"] == "finished", (run.id, s.get("reason"))
        missing = [k for k in expected_keys(cfg, params) if k not in s]
        assert not missing, (run.id, params, missing)
        failed = {k: v for k, v in s.items() if k.endswith("/failed") and v}
        assert not failed, (run.id, failed)
        if "test/psnr" in s:  # every autoencoder says whether it collapsed (1 epoch on 40 images may)
            assert isinstance(s["warning/output_collapsed"], bool), run.id
        if name == "stl10_ssl":  # pretrained on unlabeled images, probed on the labelled split
            assert c["train_split"] == "unlabeled" and s["probe/train_size"] == 100
        if name == "cifar10_models":  # the dae alone trains at the assignment's noise (variance 0.1)
            assert c.get("noise_level", 0) == (0.316 if c["model"] == "dae" else 0), (c["model"], c.get("noise_level"))
        if name == "celeba_models" and "arith" in (c.get("eval") or []):
            assert s["arith/attribute"] == "Eyeglasses"
        if c["dataset"] == "celeba" and "sample" in (c.get("eval") or []):  # says how many images the recipe
            assert s.get("sample/skipped"), run.id                          # needs, and the way out
        if s.get("sample/skipped"):
            assert "20,000" in s["sample/skipped"] and "--sample-score inception" in s["sample/skipped"]
            assert (run.path / "figures" / "samples.png").exists(), run.id  # drawn, though not scored
            assert not any(k.endswith("_fd") for k in s), run.id
        if s.get("best_metric", "").startswith("test/") or c.get("select_on") == "test":
            rows = run.read_metrics()
            assert all("test/acc" in r for r in rows)  # the CNN and autoencoder assignment's accuracy history
    # ... and the sweep's report: the assignment's sections when the sweep belongs to one
    from analysis.report import main as report_main  # in-process: the report reads files only
    from analysis.templates import for_sweep

    assert report_main(["--runs", str(runs), "--sweep", name, "--out", str(tmp_path / "report")]) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    template = for_sweep(name)
    if template:
        assert [line[3:] for line in md.splitlines() if line.startswith("## ")] == \
            [sec.title for sec in template.sections]
        assert "TO WRITE" in md and "nan" not in md
        assert template.max_chars is None or len(md) <= template.max_chars
        _assert_every_figure_or_its_command(tmp_path / "report" / "report.html", template, name)
    for run in recorded:
        _assert_snapshots_show_the_task(run)


def _assert_every_figure_or_its_command(page, template, name):
    """Each figure the template asks for of this sweep is drawn, or a one-line `missing:`
    names the command that makes it; the results say which runs collapsed."""
    import html as html_lib

    from analysis.blocks import Figure

    page = html_lib.unescape(page.read_text())
    asked = [b for sec in template.sections for b in sec.blocks if isinstance(b, Figure) and b.sweep == name]
    for block in asked:
        drawn = f"<figcaption>{block.caption}" in page
        missing = f"missing: {block.caption}" in page
        assert drawn or missing, (name, block.caption)
    assert all("python -m bench." in line.split("</p>")[0] for line in page.split("<p class='missing'>missing:")[1:])


def _assert_snapshots_show_the_task(run):
    """A reconstructing run keeps outputs over epochs; a denoiser's show its noisy input too."""
    from bench.records import checkpoint

    cfg = run.read_config()
    if cfg.get("model") in ("cnn_classifier", "resnet18_probe", "linear_probe", "seg_ae"):
        return
    figures = {p.stem for p in (run.path / "figures").glob("*.png")}
    assert "recon_epochs" in figures, (run.id, figures)
    snaps = checkpoint.load(run.ckpt("last"))["state"]["snapshots"]
    assert snaps and all(s.dtype.is_floating_point is False for s in snaps.values())
