"""run.py end to end on synthetic data: the local record, determinism, learning, W&B offline."""
import json
import time

import pytest
from conftest import only_run, quick, run_cli, run_inproc, run_main


def test_finished_run_record_is_complete(tmp_path):
    assert run_inproc(quick(tmp_path, epochs=3)) == 0
    run = only_run(tmp_path)
    cfg = json.loads((run.path / "config.json").read_text())
    assert cfg["model"] == "ae" and cfg["latent_dim"] == 64  # model defaults are resolved
    rows = run.read_metrics()
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    summary = run.read_summary()
    for key in ("test/mse", "test/mae", "test/psnr", "test/ssim", "test/snr", "epochs", "train_seconds", "params"):
        assert key in summary, key
    assert summary["status"] == "finished" and summary["epochs"] == 3
    assert (run.path / "figures" / "reconstructions.png").stat().st_size > 1000
    assert (run.path / "figures" / "curves.png").stat().st_size > 1000
    assert run.ckpt("last").exists() and run.ckpt("best").exists()


def test_a_run_records_what_a_steady_epoch_costs_and_when_each_epoch_started(tmp_path):
    assert run_inproc(quick(tmp_path, epochs=4)) == 0
    summary = only_run(tmp_path).read_summary()
    starts = summary["time/epoch_starts_monotonic"]
    assert len(starts) == 4 and starts == sorted(starts) and starts[0] < time.perf_counter()
    periods = sorted(b - a for a, b in zip(starts[1:], starts[2:]))  # the first epoch warms up
    assert summary["time/epoch_period_seconds"] == pytest.approx(sum(periods) / 2, abs=1e-3)
    work = {k.rsplit("/", 1)[1] for k in summary if k.startswith("time/epoch_work/")}
    assert {"tracking", "last_checkpoint", "snapshot", "checkpoint_wait"} <= work
    assert all(0 <= summary[f"time/epoch_work/{k}"] < summary["time/epoch_period_seconds"] for k in work)


def test_three_epochs_lower_the_validation_loss(tmp_path):
    assert run_inproc(quick(tmp_path, "--limit-train", 1500, "--batch-size", 32, epochs=3)) == 0
    rows = only_run(tmp_path).read_metrics()
    assert rows[-1]["val/loss"] < rows[0]["val/loss"] * 0.9


def test_same_seed_same_numbers(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        assert run_inproc(quick(d, "--seed", 3, model="vae")) == 0
    ra, rb = only_run(a), only_run(b)
    strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]  # noqa: E731
    assert strip(ra.read_metrics()) == strip(rb.read_metrics())
    assert ra.read_summary()["test/psnr"] == rb.read_summary()["test/psnr"]


def test_flag_forms_and_config_file(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: ae\nlatent_dim: 7\nepochs: 1\nlr: 1.0e-3\n")
    args = ["--config", cfg, "--latent_dim=9", "--dataset=synthetic", "--runs-dir", tmp_path / "runs",
            "--wandb", "disabled", "--limit-train", "200", "--batchnorm=False"]
    assert run_inproc(args) == 0
    saved = only_run(tmp_path).read_config()
    assert saved["model"] == "ae" and saved["latent_dim"] == 9 and saved["epochs"] == 1
    assert saved["batchnorm"] is False


def test_a_key_given_for_one_model_sets_it_in_that_models_runs_alone(tmp_path):
    from bench.config.cli import parse_args
    from bench.config.spec import resolve

    cfg = tmp_path / "c.yaml"
    cfg.write_text("dae.noise_std: 0.25\n")  # an older name, scoped too
    for model, flags, level in [("dae", ["--dae.noise-level", "0.316"], 0.316),
                                ("dae", ["--noise-level=0.1", "--dae.noise_level=0.316"], 0.316),  # the scoped wins
                                ("ae", ["--dae.noise_level=0.316"], 0.0),
                                ("dae", ["--config", str(cfg)], 0.25)]:
        spec = resolve(parse_args(["--model", model, *flags])[0])
        assert (spec.family.noise_level, spec.task) == (level, "denoise" if level else "reconstruct"), (model, flags)
    assert run_inproc(quick(tmp_path, "--dae.noise-level", "0.3", model="dae")) == 0
    assert only_run(tmp_path).read_config()["noise_level"] == 0.3


def test_a_key_the_model_does_not_take_is_refused_not_recorded(tmp_path, capsys):
    base = ["--dataset=synthetic", "--runs-dir", tmp_path / "runs", "--wandb", "disabled", "--limit-train", "200",
            "--epochs", "1"]
    assert run_inproc(["--model", "linear_ae", "--batchnorm=False"] + base) == 2
    assert "model linear_ae does not take it" in capsys.readouterr().err
    assert run_inproc(["--model", "linear_ae"] + base) == 0
    saved = only_run(tmp_path).read_config()
    assert "batchnorm" not in saved and "channels" not in saved and saved["latent_dim"] == 15


def test_list_shows_models_and_datasets(tmp_path):
    p = run_main(["--list"], cwd=tmp_path, script="bench.run.runner")
    assert p.returncode == 0
    listed = {line.split()[0] for line in p.stdout.splitlines() if line.startswith("  ")}
    for name in ("ae", "linear_ae", "vae", "pool_ae", "fashion_mnist", "cifar10", "synthetic"):
        assert name in listed, name  # whole names: "ae" is not found inside "dae"


def test_wandb_offline_creates_offline_run(tmp_path):
    p = run_cli(["--model", "linear_ae", "--dataset", "synthetic", "--epochs", 1, "--limit-train", 200,
                 "--runs-dir", "runs", "--wandb", "offline"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    run = only_run(tmp_path)
    offline = list((tmp_path / "wandb").glob(f"offline-run-*-{run.id}"))
    assert len(offline) == 1
    assert list(offline[0].glob("*.wandb"))
    assert run.read_summary()["wandb_mode"] == "offline"


@pytest.mark.parametrize("model,dataset,key", [
    ("cnn_classifier", "synthetic_rgb", "test/acc"),
    ("seg_ae", "synthetic_seg", "test/dice"),
    ("dae", "synthetic", "test_noisy/psnr"),
    ("mlp_vae", "synthetic", "test/psnr"),
])
def test_each_task_trains_from_run_py(tmp_path, model, dataset, key):
    assert run_inproc(quick(tmp_path, model=model, dataset=dataset, epochs=1)) == 0
    summary = only_run(tmp_path).read_summary()
    assert summary["status"] == "finished" and key in summary


def test_amp_auto_is_fp32_on_cpu_and_phases_are_timed(tmp_path):
    t0 = time.time()
    assert run_inproc(quick(tmp_path, "--amp", "auto", "--eval", "collapse", epochs=1)) == 0
    wall = time.time() - t0
    s = only_run(tmp_path).read_summary()
    assert s["amp_chosen"] == "off"
    phases = {k.split("/", 2)[2]: v for k, v in s.items() if k.startswith("time/phase/")}
    assert {"config", "data", "model", "wandb_init", "setup", "training", "test_evaluation", "eval:collapse",
            "finish"} <= set(phases)
    assert phases["training"] >= s["train_seconds"] > 0
    assert sum(v for k, v in phases.items() if k != "imports") <= wall


def test_train_from_python_returns_the_record(tmp_path):
    """What a notebook calls: the same run as run.py, its record returned; bad input raises."""
    from bench.api import load, train
    from bench.core.errors import UsageError

    record = train(model="mlp_vae", dataset="synthetic", epochs=1, limit_train=100, limit_test=40,
                   mlp_dims=[16, 3], wandb="disabled", runs_dir=str(tmp_path / "runs"))
    assert record["status"] == "finished" and record["exit_code"] == 0
    assert record["config"]["latent_dim"] == 3 and record["summary"]["test/mse"] > 0
    model, config = load(record["run_dir"])
    assert config == record["config"] and model.cfg.latent_dim == 3
    with pytest.raises(UsageError, match="unknown model 'nope'"):
        train(model="nope", runs_dir=str(tmp_path / "runs"))


def test_a_denoisers_snapshots_show_the_noisy_input_and_its_output(tmp_path):
    """Outputs over epochs for a model trained on corrupted input: the same test images,
    corrupted the same way at every epoch, and what the model made of them."""
    import torch

    from bench.config.spec import resolve
    from bench.core.tensors import to_uint8
    from bench.data import load_data
    from bench.records import checkpoint
    from bench.records.rebuild import load_run_model
    from bench.run.train import snapshot_inputs, snapshot_rows

    assert run_inproc(quick(tmp_path, "--noise-level", 0.4, model="dae", epochs=2)) == 0
    run = only_run(tmp_path)
    model, cfg = load_run_model(str(run.path), str(tmp_path / "runs"), which="last")
    data = load_data(resolve({k: v for k, v in cfg.items() if k in ("dataset", "limit_train", "limit_test", "seed")}),
                     model.task)
    x, given = snapshot_inputs(model, data, cfg["seed"])
    again = snapshot_inputs(model, data, cfg["seed"])[1]
    assert torch.equal(given, again) and (given - x).abs().mean() > 0.05  # fixed noise, really added
    snaps = checkpoint.load(run.ckpt("last"))["state"]["snapshots"]
    assert sorted(snaps) == [1, 2]
    with torch.no_grad():
        assert torch.equal(snaps[2], to_uint8(model(given)["recon"]))  # the output of the noisy input
    names = [name for name, _ in snapshot_rows(model, data, cfg["seed"], snaps)]
    assert names == ["original", "input (gaussian noise 0.4)", "epoch 1", "epoch 2"]
    assert (run.path / "figures" / "recon_epochs.png").is_file()


def test_the_reconstructions_figure_shows_nine_images_drawn_at_random_once():
    from bench.run.evaluate import shown_images

    first = shown_images(1000)
    assert len(first) == 9 and len(set(first.tolist())) == 9 and first.max() > 9
    assert first.tolist() == sorted(first.tolist()) and shown_images(1000).tolist() == first.tolist()
    assert len(shown_images(5)) == 5


def test_the_last_line_of_a_collapsed_run_says_so():
    """Output collapse and posterior collapse are two flags with two messages; a code with no
    active unit but no posterior flag (a sparse AE) is neither."""
    from bench.run.runner import summary_line

    output = summary_line({"test/mse": 0.1, "warning/output_collapsed": True, "collapse/output_spread": 0.01})
    assert "COLLAPSED (output independent of the input: its outputs vary 1.0% as much as its inputs" in output
    posterior = summary_line({"test/mse": 0.1, "warning/output_collapsed": False, "collapse/posterior_collapse": True})
    assert "POSTERIOR COLLAPSE" in posterior and "constant image" not in posterior
    assert "COLLAPSE" not in summary_line({"test/mse": 0.1, "warning/output_collapsed": False,
                                           "collapse/active_units": 0})


def test_collapse_is_judged_relative_to_the_data(tmp_path, monkeypatch):
    """On CIFAR-10 files in their real format, an output that varies 1% as much as the inputs
    (a near-constant grey, which no absolute threshold small enough for MNIST would catch) is
    collapsed; one that follows its input at half contrast is not. The flag reaches the
    table's `collapsed` column."""
    import torch
    from conftest import fake_runs

    import registry
    from analysis.tables import main as tables_main
    from bench.config.spec import resolve
    from bench.data import load_data
    from bench.records.health import OUTPUT_SPREAD_MIN
    from bench.run.evaluate import output_spread

    registry.dataset_entry("cifar10").fixture(tmp_path, monkeypatch)
    data = load_data(resolve({"dataset": "cifar10", "data_root": str(tmp_path)}))

    class Grey(torch.nn.Module):
        def __init__(self, follow):
            super().__init__()
            self.follow = follow

        def forward(self, x, y=None):
            g = torch.Generator().manual_seed(0)
            grey = 0.5 + 0.01 * 0.25 * torch.randn(x.shape, generator=g)
            return {"recon": 0.5 * x + 0.25 if self.follow else grey}

    flat, follows = output_spread(Grey(False), data, "cpu"), output_spread(Grey(True), data, "cpu")
    assert flat < OUTPUT_SPREAD_MIN < follows and abs(follows - 0.5) < 0.01
    fake_runs(tmp_path / "runs", [({"model": "ae", "dataset": "cifar10", "seed": 0},
                                   {"test/mse": 0.06, "warning/output_collapsed": flat < OUTPUT_SPREAD_MIN,
                                    "collapse/output_spread": flat})])
    out = tmp_path / "table.md"
    assert tables_main(["--runs", str(tmp_path / "runs"), "--metrics", "mse", "--out", str(out)]) in (0, None)
    assert "1/1 collapsed" in out.read_text()


def test_next_steps_suggest_only_tools_the_run_can_serve(tmp_path):
    """A classifier has no decoder: its `next:` lines never suggest sampling, which would be refused."""
    p = run_main(["--model", "cnn_classifier", "--dataset", "synthetic", "--epochs", 1, "--limit-train", 128,
                  "--limit-test", 64, "--runs-dir", tmp_path / "runs", "--wandb", "disabled"], cwd=tmp_path,
                 script="bench.run.runner")
    assert p.returncode == 0, p.stderr
    line = next(l for l in p.stdout.splitlines() if "bench.evaluate" in l)
    suggested = line.split("--what ")[1].split()[0].split(",")
    assert "sample" not in suggested and suggested
    run = line.split("bench.evaluate ")[1].split()[0]
    # A process of its own: the tools start OpenMP's threads, after which this worker could not fork
    q = run_cli([run, "--what", ",".join(suggested)], cwd=tmp_path, script="bench.evaluate")
    assert q.returncode == 0, q.stderr


def test_progress_lines_in_a_log_hold_no_terminal_escapes():
    import io

    from bench.core.progress import Lines

    out = io.StringIO()
    Lines(out).write("\x1b[A\r epoch 1/2:  50%|#####     | 1/2 [00:01<00:01]\x1b[A")
    assert out.getvalue() == "  epoch 1/2:  50%|#####     | 1/2 [00:01<00:01]\n"


@pytest.mark.parametrize("model,shown,quiet", [("ae", [], ["mse", "l1", "near_zero"]),
                                               ("sparse_ae", ["mse", "l1", "near_zero"], [])])
def test_epoch_lines_show_each_term_the_model_uses_once(tmp_path, model, shown, quiet):
    p = run_main(quick(tmp_path, model=model, epochs=1), cwd=tmp_path, script="bench.run.runner")
    assert p.returncode == 0, p.stderr
    line = next(l for l in p.stdout.splitlines() if l.startswith("epoch 1/1"))
    names = [w for w in line.split() if "/" in w and not w[0].isdigit()]
    assert len(names) == len(set(names)) and "train/loss" in names and "val/loss" in names
    assert all(f"train/{t}" in names for t in shown) and not any(f"train/{t}" in names for t in quiet)
    recorded = only_run(tmp_path).read_metrics()[0]
    assert all(f"train/{t}" in recorded for t in shown + quiet)  # left off the line, still recorded


def test_print_config_shows_the_wandb_mode_the_run_would_use(tmp_path):
    no_login = {"WANDB_API_KEY": "", "HOME": str(tmp_path), "NETRC": str(tmp_path / "no-netrc"),
                "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config")}
    p = run_cli(["--model", "ae", "--dataset", "synthetic", "--print-config"], cwd=tmp_path, env=no_login)
    assert p.returncode == 0, p.stderr
    shown = json.loads(p.stdout)
    assert shown["wandb"] == "offline" and shown["model"] == "ae"  # no credentials here: offline, never null
    assert not (tmp_path / "runs").exists()


def test_the_suggested_report_covers_this_run_alone(tmp_path):
    """`next:` suggests a report of the run that printed it, not of every run in the store."""
    for model in ("ae", "mlp_vae"):
        p = run_main(quick(tmp_path, model=model, epochs=1), cwd=tmp_path, script="bench.run.runner")
        assert p.returncode == 0, p.stderr
    line = next(l for l in p.stdout.splitlines() if "analysis.report" in l)
    args = line.split("analysis.report ")[1].split("#")[0].split()
    q = run_main(args, cwd=tmp_path, script="analysis.report")
    assert q.returncode == 0, q.stderr
    out = tmp_path / args[args.index("--out") + 1] / "report.md"
    md = out.read_text()
    assert "mlp_vae" in md and "| ae |" not in md and "Runs: 1 finished" in md


def test_a_run_is_resolved_once_into_a_frozen_spec(tmp_path, monkeypatch):
    """One RunSpec per run: each registry entry looked up once, the model built once for real
    (the size check builds it on the meta device), and nothing downstream can change the spec."""
    import dataclasses

    import registry
    from bench.config.spec import resolve

    calls = {"model_entry": 0, "dataset_entry": 0, "built": 0}
    for name in ("model_entry", "dataset_entry"):
        real = getattr(registry, name)
        monkeypatch.setattr(registry, name, lambda n, _real=real, _name=name: calls.__setitem__(
            _name, calls[_name] + 1) or _real(n))
    real_build = registry.build_model

    def counted(entry, cfg, task=None):
        model = real_build(entry, cfg, task)
        if next(model.parameters()).device.type != "meta":
            calls["built"] += 1
        return model
    monkeypatch.setattr(registry, "build_model", counted)
    assert run_inproc(["--model", "ae", "--dataset", "synthetic", "--epochs", 1, "--limit-train", 64,
                       "--limit-test", 16, "--runs-dir", tmp_path / "runs", "--wandb", "disabled"]) == 0
    assert calls == {"model_entry": 1, "dataset_entry": 1, "built": 1}, calls
    spec = resolve({"model": "vae", "dataset": "synthetic_rgb"})
    assert spec.input_shape == (3, 32, 32) and spec.family.in_channels == 3 and spec.task == "reconstruct"
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.task = "denoise"
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.keys.lr = 1.0


def test_a_one_epoch_run_draws_no_learning_curve(finished_run):
    """One epoch is a dot, not a curve: reports that embed a run's figures get none to show."""
    assert json.loads((finished_run.path / "summary.json").read_text())["epochs"] == 1
    figs = finished_run.path / "figures"
    assert (figs / "reconstructions.png").is_file() and not (figs / "curves.png").exists()


def test_a_long_test_evaluation_says_its_start_with_an_estimate(capsys):
    """Over 10 s (at the training's own speed) the test evaluation's start is said with its
    estimate; a short one says nothing."""
    from bench.run.evaluate import say_long_evaluation

    history = [{"time/images_per_sec": 400.0}, {"time/images_per_sec": 600.0}]
    assert say_long_evaluation(10_000, history) == pytest.approx(20.0)
    assert capsys.readouterr().out == "  test evaluation: 10,000 images, about 20 s ...\n"
    assert say_long_evaluation(1_000, history) == pytest.approx(2.0) and capsys.readouterr().out == ""


def test_sample_grid_titles_lie_inside_the_figure_and_apart(tmp_path, monkeypatch):
    """Three panels with long, two-line FD titles under a long suptitle (samples.png of a VAE):
    every title is drawn whole inside the figure, and none overlaps another."""
    import torch

    from bench.measure import figures

    kept = {}

    def keep(fig, path, dpi=100):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        kept["boxes"] = [t.get_window_extent(renderer) for ax in fig.axes for t in [ax.title] if t.get_text()] \
            + ([fig._suptitle.get_window_extent(renderer)] if fig._suptitle else [])
        kept["frame"] = fig.bbox
        return path

    monkeypatch.setattr(figures, "save_figure", keep)
    label = "FD 123.45 [120.01, 130.99], networks differ by 43%"  # wrapped by the figure, not its caller
    figures.image_grids([(f"{name}\n{label}", torch.rand(16, 1, 28, 28)) for name in ("prior", "ex_post", "gmm")],
                        tmp_path / "samples.png", "samples; Frechet distance to test images, lower is better "
                        "(mean over 3 feature networks)")
    boxes, frame = kept["boxes"], kept["frame"]
    assert len(boxes) == 4
    for i, box in enumerate(boxes):
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1, i
        assert not any(box.overlaps(other) for other in boxes[i + 1:]), i


def test_a_class_legend_lies_off_the_points_however_long_the_names(tmp_path):
    """The embedding figures' class legend (Fashion-MNIST's "T-shirt/top", "Ankle boot") sits
    right of the axes, overlapping none of them."""
    import numpy as np

    from bench.measure.figures import plt
    from bench.tools._latent import legend

    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot with a longer name"]
    fig, axes = plt.subplots(1, 2, figsize=(6, 5))
    y = np.arange(10)
    for ax in axes:
        ax.scatter(np.random.rand(10), np.random.rand(10), c=y, cmap="tab10")
    legend(fig, y, classes)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.legends[0].get_window_extent(renderer)
    assert all(not box.overlaps(ax.get_window_extent(renderer)) for ax in axes)
    assert box.x1 <= fig.bbox.x1
    plt.close(fig)


def test_a_segmenter_that_marks_every_pixel_is_flagged_and_its_areas_recorded():
    """A model whose mask is every pixel scores a Dice of its own whatever trained it: the
    evaluation records the predicted and true areas and flags it; a model that follows the
    true masks is not flagged."""
    import torch

    from bench.data import Split
    from bench.measure import metrics
    from bench.tasks.segment import trivial_mask

    class Fixed(torch.nn.Module):
        def __init__(self, everywhere):
            super().__init__()
            self.everywhere = everywhere

        def forward(self, x, y=None):
            logits = torch.full_like(x[:, :1], 5.0) if self.everywhere else (y.float() - 0.5) * 10
            return {"logits": logits}

    y = torch.zeros(8, 1, 16, 16, dtype=torch.uint8)
    y[:, :, 4:10, 4:10] = 1  # 36 of 256 pixels: 14%
    split = Split(torch.randint(0, 255, (8, 1, 16, 16), dtype=torch.uint8), y)
    everything = {f"test/{k}": v for k, v in metrics.segmentation(Fixed(True), split, torch.device("cpu")).items()}
    assert everything["test/pred_area"] == pytest.approx(1.0) and everything["test/true_area"] == pytest.approx(36 / 256)
    assert trivial_mask(everything)
    following = {f"test/{k}": v for k, v in metrics.segmentation(Fixed(False), split, torch.device("cpu")).items()}
    assert following["test/dice"] == pytest.approx(1.0) and not trivial_mask(following)
    # a small tumour (the brain-tumour files' 0.8% of the image) marked everywhere, or nowhere
    assert trivial_mask({"test/pred_area": 1.0, "test/true_area": 0.0076})
    assert trivial_mask({"test/pred_area": 0.0, "test/true_area": 0.0076})
    assert not trivial_mask({"test/pred_area": 0.006, "test/true_area": 0.0076})
