"""The assignment-shaped reports: sections, numbers filled in from recorded runs, figures
comparing runs like with like, and a page that prints."""
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from conftest import SEEDS, chromium, fake_runs, hang_guard, run_inproc, run_main

from analysis.blocks import TO_WRITE
from analysis.templates import TEMPLATES

CELEBA_MODELS = ("ae", "sparse_ae", "dae", "vae")


def _celeba_store(root, with_lambda=True):
    rng = np.random.default_rng(0)
    recorded = {}
    rows = []
    for model in CELEBA_MODELS:
        for seed in (0, 1, 2):
            s = {"test/mse": 0.01 + rng.random() / 100, "test/psnr": 20 + rng.random(), "test/ssim": 0.7,
                 "best_value": 0.012, "probe/linear_acc": 0.6 + rng.random() / 10,
                 "probe/logistic_acc": 0.62, "sample/ex_post_fd": 3 + rng.random(), "sample/gmm_fd": 2.5,
                 "arith/attribute": "Eyeglasses", "arith/direction_norm": 4.0,
                 "collapse/active_units": 100 + seed, "collapse/latent_dim": 128, "epochs": 15,
                 "n_train": 20000, "n_val": 2000, "n_test": 2000, "input_shape": "3x64x64",
                 "device_used": "cpu", "train_seconds": 600.0}
            if model == "vae":
                s.update({"sample/prior_fd": 6 + rng.random(), "collapse/kl_total": 30.0})
            recorded[(model, seed)] = s
            rows.append(({"model": model, "seed": seed, "sweep": "celeba_models", "group": "celeba_models",
                          "label_attr": "Smiling", "latent_dim": 128}, s))
    if with_lambda:
        for lam in (1e-5, 1e-4, 1e-3):
            for seed in (0, 1):
                rows.append(({"model": "sparse_ae", "seed": seed, "l1_lambda": lam, "sweep": "celeba_sparse_lambda",
                              "group": "celeba_sparse_lambda"}, {"test/mse": 0.01 + lam, "val/l1": 10 / (1 + 1e4 * lam)}))
    fake_runs(root, rows, dataset="celeba", epochs=15)
    return recorded


def test_celeba_assignment_report_has_exactly_its_five_sections_filled_from_the_runs(tmp_path):
    recorded = _celeba_store(tmp_path / "runs")
    out = tmp_path / "rep"
    p = run_main(["--runs", tmp_path / "runs", "--sweep", "celeba_models", "--out", out], cwd=tmp_path,
                script="analysis.report")
    assert p.returncode == 0, p.stderr
    assert "template celeba_assignment" in p.stdout and "left for your text" in p.stdout
    md = (out / "report.md").read_text()
    headers = [line for line in md.splitlines() if line.startswith("#")]
    assert headers == ["## 1. Executive Summary", "## 2. Autoencoder Regularization",
                       "## 3. Representation Learning & Interpretability",
                       "## 4. Generative Modeling & Prior Holes", "## 5. Reflection"]
    assert len(md) <= 7500 and "![" not in md and "<img" not in md  # the assignment: no images, 7,500 chars
    assert md.count(f"**{TO_WRITE}:**") == 5
    assert "Autoencoders & Representation Learning" in md and "&amp;" not in md and "&lt;" not in md  # no entities
    # the Smiling probe table: AE vs VAE, mean over the three seeds of what each run recorded
    sec3 = md.split("## 3.")[1].split("## 4.")[0]
    for model in ("ae", "vae"):
        mean = np.mean([recorded[(model, s)]["probe/linear_acc"] for s in (0, 1, 2)])
        row = next(line for line in sec3.splitlines() if line.startswith(f"| {model} |"))
        assert f"{mean:.4f} ±" in row, row
    assert "| sparse_ae |" not in sec3  # the probe table compares AE and VAE only
    sec4 = md.split("## 4.")[1].split("## 5.")[0]
    vae_prior = np.mean([recorded[("vae", s)]["sample/prior_fd"] for s in (0, 1, 2)])
    assert f"{vae_prior:.4f}" in sec4 and "| ae |" in sec4
    sec2 = md.split("## 2.")[1].split("## 3.")[0]
    assert "1e-05" in sec2 and "0.001" in sec2  # the lambda grid of the other sweep, not 0.0000
    sec5 = md.split("## 5.")[1]
    assert "vae 101.0 of 128 units active" in sec5  # active units, mean of 100, 101, 102
    assert "20000/2000/2000" in sec5 and "3x64x64" in sec5 and "device cpu" in sec5
    html = (out / "report.html").read_text()
    assert html.count(f"{TO_WRITE}:") == 5 and "@media print" in html


def test_a_sweep_not_yet_run_is_named_with_its_command(tmp_path):
    _celeba_store(tmp_path / "runs", with_lambda=False)
    p = run_main(["--runs", tmp_path / "runs", "--template", "celeba_assignment", "--out", tmp_path / "rep"], cwd=tmp_path,
                script="analysis.report")
    assert p.returncode == 0, p.stderr
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "no finished runs of sweep `celeba_sparse_lambda` yet (`python -m bench.sweep " \
           "sweeps/celeba_sparse_lambda.yaml`)" in md
    assert "not yet run: celeba_sparse_lambda" in md


def test_template_without_its_runs_exits_2(tmp_path):
    _celeba_store(tmp_path / "runs", with_lambda=False)
    p = run_main(["--runs", tmp_path / "runs", "--template", "seed004", "--out", tmp_path / "rep"], cwd=tmp_path,  # the older name
                script="analysis.report")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    assert "fashion_vae_depth" in p.stderr and not (tmp_path / "rep").exists()


def test_every_template_names_real_sweeps_and_metrics():
    from pathlib import Path

    from conftest import ROOT

    from analysis.blocks import Figure, Table

    shipped = {p.stem for p in Path(ROOT / "sweeps").glob("*.yaml")}
    if not SEEDS.is_dir():
        pytest.skip(f"the assignments' texts are not beside this checkout ({SEEDS})")
    for t in TEMPLATES.values():
        assert set(t.sweeps) <= shipped, t.name
        text = next(SEEDS.glob(f"{t.assignment_file}_*")).read_text()
        assert t.assignment and all(part in text for part in t.assignment.split(", ")), (t.name, t.assignment)
        for sec in t.sections:
            for b in sec.blocks:
                if isinstance(b, (Table, Figure)) and b.sweep:
                    assert b.sweep in t.sweeps, (t.name, b)
                if isinstance(b, Figure):
                    assert b.kind in ("curves", "side_by_side", "denoise") or b.kind.startswith("run:")


@pytest.fixture(scope="module")
def ae_vae_store(tmp_path_factory):
    """A real plain AE and a real VAE, 2 epochs on the same data, through run.py."""
    d = tmp_path_factory.mktemp("cmp")
    for model in ("ae", "vae"):
        assert run_inproc(["--model", model, "--dataset", "synthetic", "--epochs", 2, "--limit-train", 300,
                           "--runs-dir", d / "runs", "--wandb", "disabled", "--sweep", "cmp"]) == 0
    return d


def test_cross_run_figures_compare_like_with_like(ae_vae_store, tmp_path):
    from analysis.load import load_runs
    from analysis.plots import _panels, side_by_side

    shutil.copytree(ae_vae_store / "runs", tmp_path / "runs")  # this test plants a file in a run
    frame = load_runs(str(tmp_path / "runs"))
    panels = {title: set(frame[which]["model"]) for _, title, which in _panels(frame)}
    assert panels["MSE per pixel"] == {"ae", "vae"}  # one per-pixel panel for every model
    assert all(models == {"vae"} for title, models in panels.items() if title.startswith("VAE"))
    assert not any(title.startswith("training objective") for title in panels)  # the AE's loss is its MSE
    arrays = np.load(frame.iloc[0]["path"] + "/recon_fixed.npz", allow_pickle=False)
    assert arrays["original"].dtype == np.uint8 and arrays["original"].shape == arrays["reconstruction"].shape
    png = side_by_side(frame, ["model"], tmp_path / "sbs.png")
    assert png and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a pickled object planted in place of the arrays is never loaded, and the figure does without it
    import pickle
    planted = frame[frame["model"] == "vae"].iloc[0]["path"] + "/recon_fixed.npz"
    with open(planted, "wb") as f:
        pickle.dump({"original": object()}, f)
    assert side_by_side(frame, ["model"], tmp_path / "sbs2.png") is None  # one configuration left


def test_generic_report_prints_to_pdf(ae_vae_store, tmp_path):
    out = tmp_path / "rep"
    p = run_main(["--runs", ae_vae_store / "runs", "--out", out], cwd=tmp_path, script="analysis.report")
    assert p.returncode == 0, p.stderr
    html = (out / "report.html").read_text()
    assert "side_by_side" in html and "@media print" in html
    browser = chromium()
    pdf = tmp_path / "report.pdf"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    f"--user-data-dir={tmp_path / 'chrome'}", "--no-pdf-header-footer", f"--print-to-pdf={pdf}",
                    (out / "report.html").resolve().as_uri()], capture_output=True, timeout=hang_guard(120))
    data = pdf.read_bytes()
    assert data[:5] == b"%PDF-" and len(re.findall(rb"/Type\s*/Page\b", data)) >= 1
    assert len(data) > 50_000  # the embedded figures are in it


def test_a_best_configuration_from_short_single_runs_says_so():
    """The Fashion-MNIST VAE template names the best (h, z); from one 2-epoch seed it adds a caveat."""
    import pandas as pd

    from analysis.templates import _best_dims

    def frame(seeds, epochs):
        return pd.DataFrame([{"sweep": "fashion_vae_dims", "model": "mlp_vae", "mlp_dims": dims, "seed": s,
                              "best_value": v + s, "epochs_done": epochs, "status": "finished"}
                             for dims, v in (((400, 20), 250.0), ((400, 50), 240.0)) for s in seeds])

    short = _best_dims(frame([0], 2))
    assert "(h, z) = (400,50)" in short and "caveat" in short and "1 seed(s)" in short
    assert "caveat" not in _best_dims(frame([0, 1, 2], 50))


def test_task_c_says_whether_its_runs_converted_task_b_best_pair():
    import pandas as pd

    from analysis.templates import _best_dims

    dims = pd.DataFrame([{"sweep": "fashion_vae_dims", "model": "mlp_vae", "mlp_dims": d, "seed": s, "best_value": v,
                          "epochs_done": 20, "status": "finished"}
                         for d, v in (((400, 20), 250.0), ((300, 5), 240.0)) for s in (0, 1, 2)])

    def task_c(d, why):
        return pd.DataFrame([{"sweep": "fashion_vae_best_ae", "model": m, "mlp_dims": d, "seed": 0, "best_value": 1.0,
                              "status": "finished", "from_best": why} for m in ("mlp_vae", "mlp_ae")])

    assert "run `python -m bench.sweep sweeps/fashion_vae_best_ae.yaml --from-best fashion_vae_dims`" in _best_dims(dims)
    why = "mlp_dims=[300, 5] from sweep fashion_vae_dims: the best mean val/loss"
    assert f"Task c's runs use exactly it: {why}" in _best_dims(pd.concat([dims, task_c((300, 5), why)]))
    stale = _best_dims(pd.concat([dims, task_c((400, 20), None)]))
    assert "use mlp_dims 400,20, not carried from task b, not today's best 300,5" in stale and "--from-best" in stale


def test_a_report_of_collapsed_runs_says_so_first_and_names_each_missing_figure(tmp_path):
    rows = [({"model": m, "seed": s, "sweep": "colored_mnist_denoise", "group": "colored_mnist_denoise",
              "noise_level": 0.3, "batchnorm": False},
             {"test_noisy/mse": 0.08, "test_noisy/snr": 1.0, "warning/output_collapsed": True})
            for m in ("ae", "vae") for s in (0, 1, 2)]
    fake_runs(tmp_path / "runs", rows, dataset="colored_mnist", epochs=3)
    out = tmp_path / "rep"
    p = run_main(["--runs", tmp_path / "runs", "--template", "colored_mnist_assignment", "--out", out], cwd=tmp_path,
                script="analysis.report")
    assert p.returncode == 0, p.stderr
    html = (out / "report.html").read_text()
    lead = html.split("<p>", 1)[1]
    assert lead.startswith("Warning: every run in the tables collapsed")
    assert "6/6 collapsed" not in html and "3/3 collapsed" in html  # per configuration, in the results table
    missing = [re.sub(r"</?code>", "", m) for m in re.findall(r"<p class='missing'>(missing: .*?)</p>", html)]
    assert any("noisy test images denoised" in m and "python -m bench.sweep sweeps/colored_mnist_denoise.yaml" in m
               for m in missing), missing
    assert any("3-D latent space" in m and "--what embed" in m for m in missing), missing
    assert any("latent interpolation" in m and "--what interp" in m for m in missing), missing


@pytest.mark.parametrize("carried", [True, False])
def test_the_celeba_report_says_which_lambda_the_comparison_used_and_why(tmp_path, carried):
    from analysis.load import load_local
    from analysis.templates import _celeba_lambda

    why = "l1_lambda=0.001 from sweep celeba_sparse_lambda: the largest l1_lambda whose mean val/mse is within 10%"
    fake_runs(tmp_path / "runs", [({"model": "sparse_ae", "seed": s, "sweep": "celeba_models", "group": "celeba_models",
                                    "l1_lambda": 1e-3 if carried else 1e-4},
                                   {"test/mse": 0.01, **({"from_best": why} if carried else {})}) for s in (0, 1)])
    text = _celeba_lambda(load_local(str(tmp_path / "runs")))
    if carried:
        assert text == f"The sparse AE of the model comparison used lambda = 0.001: {why}."
    else:
        assert "lambda = 0.0001, not chosen by the lambda sweep" in text and "--from-best celeba_sparse_lambda" in text


def test_the_fashion_report_over_runs_without_sizes_says_so(tmp_path):
    """Runs of the (h, z) sweep that recorded no mlp_dims (made by hand, or older) still give
    a report: task b's best configuration is said to be unnameable, not a pandas traceback."""
    for seed in (0, 1):
        assert run_inproc(["--model", "mlp_vae", "--dataset", "synthetic", "--epochs", 1, "--limit-train", 128,
                           "--limit-test", 64, "--wandb", "disabled", "--sweep", "fashion_vae_dims", "--runs-dir",
                           tmp_path / "runs" / "fashion_vae_dims", "--seed", seed]) == 0
    for cfg in (tmp_path / "runs").rglob("config.json"):
        record = json.loads(cfg.read_text())
        record.pop("mlp_dims", None)
        cfg.write_text(json.dumps(record))
    p = run_main(["--runs", tmp_path / "runs", "--out", tmp_path / "rep", "--template", "fashion_vae_assignment"],
                cwd=tmp_path, script="analysis.report")
    assert p.returncode == 0, p.stderr
    assert "recorded no (h, z) sizes" in (tmp_path / "rep" / "report.md").read_text()


def test_labels_follow_the_record_a_resnet_without_weights_is_never_called_pretrained():
    """The ResNet-18 probe table says what each run was: its `pretrained` value is a column, and
    the caption does not call every run pretrained (offline runs load no ImageNet weights)."""
    from analysis.blocks import Table

    tables = [b for t in TEMPLATES.values() for sec in t.sections for b in sec.blocks
              if isinstance(b, Table) and b.sweep == "stl10_resnet_probe"]
    assert tables and all("pretrained" in t.group_by and "Frozen pretrained" not in t.caption for t in tables)


def test_a_report_sets_code_as_code_puts_long_ids_in_notes_and_fits_a4(tmp_path):
    """No markup leaks: `code` spans are <code> in the HTML; a feature network's long identity
    is a closing note, not in the first paragraph; at the width of A4 print (182 mm of text,
    688 px), no table or figure reaches past the right edge (the page measures itself; in its
    PDF Chromium shrinks a page that is too wide instead of clipping it, so the PDF cannot show it)."""
    ident = "fashion_mnist-1x28x28-n20000-classes10-cnn16-32-64-adam2e-3-e3-v2-" + "f" * 12 + "-s0.1.2"
    fake_runs(tmp_path / "runs", [({"model": "mlp_vae", "seed": s, "sweep": "fashion_vae_dims", "group": "fashion_vae_dims",
                                    "mlp_dims": dims, "dataset": "fashion_mnist"},
                                   {"best_value": 240.0 + s, "best_metric": "val/loss", "test/mse": 0.02,
                                    "test/recon_loss": 230.0, "test/kl": 10.0, "sample/fd_features": ident,
                                    "sample/gmm_fd": 50.0 + s})
                                  for dims in ([400, 20], [300, 5]) for s in (0, 1)], epochs=2)
    out = tmp_path / "rep"
    p = run_main(["--runs", tmp_path / "runs", "--template", "fashion_vae_assignment", "--out", out], cwd=tmp_path,
                script="analysis.report")
    assert p.returncode == 0, p.stderr
    page = (out / "report.html").read_text()
    lead = page.split("<p>", 1)[1].split("</p>", 1)[0]
    assert ident not in lead and "notes at the end" in lead
    texts = re.findall(r"<p[^>]*>(.*?)</p>", page, re.S) + re.findall(r"<li>(.*?)</li>", page, re.S)
    assert not [t for t in texts if "`" in t], [t for t in texts if "`" in t][:2]
    assert "<code>python -m bench.sweep sweeps/fashion_vae_best_ae.yaml --from-best fashion_vae_dims</code>" in page
    notes = page.split("<section class='notes'>", 1)[1]
    assert ident in notes
    md = (out / "report.md").read_text()
    assert "\nNotes: (1) Sample-score feature networks: " in md and f"`{ident}`" in md.split("\nNotes: ", 1)[1]
    assert ident not in md.split("\n\n")[1]  # not in the lead
    browser = chromium()
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          f"--user-data-dir={tmp_path / 'chrome'}", "--window-size=688,1000", "--virtual-time-budget=10000",
                          "--dump-dom", (out / "report.html").resolve().as_uri()], capture_output=True, text=True,
                         timeout=hang_guard(120)).stdout
    body = re.search(r"<body([^>]*)>", dom).group(1)
    assert re.search(r'data-overflow-px="0"', body), body


def test_a_report_says_why_a_tool_did_not_score_and_how_to_have_it(tmp_path):
    """A run whose sample score was skipped (no feature space here) is named in the report with
    the recorded reason, once per reason, beside the drawn grid's run."""
    from analysis.report import main as report_main
    from conftest import fake_runs

    why = "the feature networks need 20,000 images; give the whole dataset, or --sample-score inception"
    fake_runs(tmp_path / "runs", [({"model": "ae", "seed": s}, {"test/mse": 0.02, "sample/skipped": why})
                                  for s in (0, 1)])
    assert report_main(["--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert md.count(why) == 1 and "sample: not done in 2 run(s)" in md, md


def test_a_segmenter_that_marks_every_pixel_is_named_in_the_assignments_report(tmp_path):
    """002's Dice table cannot show by itself that dice and dice_bce agree because both models
    mark the whole image: the lead names them, from the recorded areas (runs recorded before
    the flag too), and leaves a segmenter that follows the masks alone."""
    from analysis.report import main as report_main
    from conftest import fake_runs

    fake_runs(tmp_path / "runs", [({"model": "seg_ae", "seg_loss": loss, "sweep": "brain_tumor_seg",
                                    "group": "brain_tumor_seg"},
                                   {"test/dice": dice, "test/iou": dice / 2, "test/pred_area": pred,
                                    "test/true_area": 0.0076}) for loss, pred, dice in
                                  (("dice", 1.0, 0.0152), ("dice_bce", 1.0, 0.0152), ("bce", 0.007, 0.61))],
              dataset="brain_tumor")
    assert report_main(["--runs", str(tmp_path / "runs"), "--template", "cnn_ae_assignment",
                        "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "Warning: 2 of 3 segmentation runs mark every pixel or none as foreground (seg_ae (dice), " \
           "seg_ae (dice_bce);" in md, md[:2000]


def test_denoisers_are_compared_at_one_test_noise_beside_doing_nothing(tmp_path):
    """000's noise tables score every DAE on the same noisy test images (sigma 0.3) beside the
    noisy input's own score, mark one that makes its input worse, and keep each run's own
    training sigma in separate, labelled columns."""
    import math

    from analysis.report import main as report_main

    input_psnr = 10.5  # the noisy input at sigma 0.3: MSE 10^-1.05 = 0.0891
    rows = [({"model": "dae", "seed": s, "sweep": "cifar10_dae_noise", "group": "cifar10_dae_noise",
              "noise_level": level},
             {"test/mse": 0.01, "best_value": best, "denoise/mse@0.3": mse, "denoise/psnr@0.3": -10 * math.log10(mse),
              "denoise/input_psnr@0.3": input_psnr, "test_noisy/mse": best, "test_noisy/input_mse": 0.01})
            for level, best, mse in ((0.1, 0.004, 0.12), (0.5, 0.03, 0.02)) for s in (0, 1, 2)]
    fake_runs(tmp_path / "runs", rows, dataset="cifar10", epochs=20)
    out = tmp_path / "rep"
    assert report_main(["--runs", str(tmp_path / "runs"), "--template", "cifar10_assignment", "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    tuning = md.split("Tuning the DAE's training noise")[1].split("\n\n")[1].splitlines()
    head = [c.strip() for c in tuning[0].split("|")]
    assert "test MSE at sigma 0.3" in head and "best val MSE at its own sigma" in head
    assert "noisy input PSNR (doing nothing)" in head and "at sigma 0.3 vs its noisy input" in head
    by_level = {float(r.split("|")[1]): r for r in tuning[2:]}
    assert "WORSE than its input (x1.35 its MSE)" in by_level[0.1]  # 0.12 / 0.0891
    assert "x0.22 its input's MSE" in by_level[0.5]
    table = md.split("DAE by training noise")[1].split("\n\n")[1].splitlines()[0]
    assert "MSE at test sigma 0.3" in table and "noisy MSE at its own sigma" in table


def test_per_run_figures_follow_the_tables_numeric_order():
    from analysis.load import in_order

    dims = [(300, 35), (300, 40), (300, 5), (1000, 5)]
    assert sorted(dims, key=in_order) == [(300, 5), (300, 35), (300, 40), (1000, 5)]
    assert sorted([0.5, 0.1, "none", 0.3], key=in_order) == [0.1, 0.3, 0.5, "none"]
    import pandas as pd

    from analysis.plots import configurations  # the curves' legend and the side-by-side rows

    frame = pd.DataFrame({"mlp_dims": dims, "seed": 0})  # as load_runs holds lists: tuples
    assert [key for key, _ in configurations(frame, ["mlp_dims"])] == \
        ["mlp_dims=300,5", "mlp_dims=300,35", "mlp_dims=300,40", "mlp_dims=1000,5"]
