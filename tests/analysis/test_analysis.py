"""Runs -> tables, plots and reports; the report is opened in a real headless browser."""
import json
import re
import subprocess

import pytest
from conftest import FakeApi, built_once, chromium, fake_runs, hang_guard, run_inproc, run_main

from analysis.load import load_runs, load_wandb
from analysis.tables import main as tables_main
from analysis.tables import summarise


@pytest.fixture(scope="module")
def store():
    """Two configurations: ae on 3 seeds, linear_ae on 1 seed (made once for the session, read only)."""
    def build(d):
        for seed in (0, 1, 2):
            assert run_inproc(["--model", "ae", "--dataset", "synthetic", "--epochs", 2, "--seed", seed,
                               "--limit-train", 300, "--runs-dir", d / "runs", "--wandb", "disabled",
                               "--group", "g1", "--sweep", "demo"]) == 0
        assert run_inproc(["--model", "linear_ae", "--dataset", "synthetic", "--epochs", 2, "--limit-train", 300,
                           "--runs-dir", d / "runs", "--wandb", "disabled", "--sweep", "demo"]) == 0

    return built_once("analysis_store", build)


def test_table_means_and_ci_come_from_recorded_runs(store, capsys):
    assert tables_main(["--runs", str(store / "runs"), "--metrics", "psnr,ssim", "--format", "json"]) == 0
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    frame = load_runs(str(store / "runs"))
    ae = frame[frame["model"] == "ae"]["test/psnr"].to_numpy()
    assert rows["ae"]["runs"] == 3 and rows["ae"]["test/psnr"] == pytest.approx(ae.mean())
    assert rows["ae"]["test/psnr_ci"] > 0
    assert rows["linear_ae"]["runs"] == 1 and rows["linear_ae"]["test/psnr_ci"] is None


def test_markdown_table_shows_ci_only_with_seeds(store, capsys):
    assert tables_main(["--runs", str(store / "runs"), "--sweep", "demo", "--metrics", "psnr"]) == 0
    out = capsys.readouterr().out
    ae_line = next(l for l in out.splitlines() if l.startswith("| ae "))
    lin_line = next(l for l in out.splitlines() if l.startswith("| linear_ae "))
    assert "±" in ae_line and "±" not in lin_line


@pytest.mark.parametrize("args,needle", [
    (["--metrics", "psnrr"], "unknown metric 'psnrr'"),
    (["--group-by", "modle"], "unknown group key 'modle'"),
    (["--sweep", "nope"], "no runs of sweep 'nope'"),
])
def test_bad_analysis_input_exits_2(store, tmp_path, args, needle):
    p = run_main(["--runs", store / "runs", *args], cwd=tmp_path, script="analysis.tables")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and needle in p.stderr, p.stderr


def test_no_runs_exits_2(tmp_path):
    p = run_main(["--runs", tmp_path / "empty"], cwd=tmp_path, script="analysis.tables")
    assert p.returncode == 2 and "no runs found" in p.stderr


class FakeRun:  # the attributes of wandb.apis.public.Run that analysis reads
    def __init__(self, i, model, seed, psnr):
        self.id, self.state, self.url = f"r{i}", "finished", f"https://wandb.ai/e/p/runs/r{i}"
        self.config = {"model": model, "dataset": "synthetic", "seed": seed, "_wandb": {}}
        self.summary = {"test/psnr": psnr, "params": 100, "_step": 3}
        self._hist = [{"epoch": 1, "val/loss": 0.2, "_step": 0}, {"epoch": 2, "val/loss": 0.1, "_step": 1}]

    def scan_history(self):
        return iter(self._hist)


def test_wandb_api_runs_become_the_same_frame():
    api = FakeApi([FakeRun(0, "ae", 0, 20.0), FakeRun(1, "ae", 1, 22.0), FakeRun(2, "vae", 0, 18.0)])
    frame = load_wandb("ent/proj", api=api)
    assert "_wandb" not in frame and len(frame) == 3
    s = summarise(frame, ["model"], ["test/psnr"])
    ae = s[s["model"] == "ae"].iloc[0]
    assert ae["test/psnr"] == 21.0 and ae["runs"] == 2 and ae["test/psnr_ci"] > 0
    assert frame.iloc[0]["history"][1]["val/loss"] == 0.1


def test_wandb_sweep_selected_by_name_or_id_and_best_metric_named():
    runs = [FakeRun(0, "ae", 0, 20.0), FakeRun(1, "ae", 1, 22.0), FakeRun(2, "vae", 0, 18.0)]
    for r in runs[:2]:  # started by `wandb agent`: sweep name from the YAML's command, id from W&B
        r.config.update(sweep="dims", sweep_id="ab12cd34")
        r.summary.update({"best/val/loss": 0.1, "best/epoch": 2})
    api = FakeApi(runs)
    by_name = load_wandb("ent/proj", sweep="dims", api=api)
    by_id = load_wandb("ent/proj", sweep="ab12cd34", api=api)
    assert sorted(by_name["run_id"]) == sorted(by_id["run_id"]) == ["r0", "r1"]
    assert by_name.iloc[0]["best_metric"] == "val/loss" and by_name.iloc[0]["best_value"] == 0.1
    assert by_name.iloc[0]["best_epoch"] == 2


def test_plots_are_pngs(store, tmp_path):
    p = run_main(["--runs", store / "runs", "--out", tmp_path / "figs"], cwd=tmp_path, script="analysis.plots")
    assert p.returncode == 0, p.stderr
    pngs = list((tmp_path / "figs").glob("*.png"))
    assert (tmp_path / "figs" / "curves.png") in pngs and any("pareto" in p.name for p in pngs)
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_renders_in_headless_chromium(store, tmp_path):
    out = tmp_path / "rep"
    p = run_main(["--runs", store / "runs", "--out", out, "--max-chars", 2500], cwd=tmp_path, script="analysis.report")
    assert p.returncode == 0, p.stderr
    md = (out / "report.md").read_text()
    assert len(md) <= 2500 and "![" not in md and "| ae |" in md
    page = (out / "report.html").read_text()
    n_imgs = page.count("<img ")
    body = page.split("<body>")[1]
    assert n_imgs >= 4 and "src=\"data:image/png;base64," in page
    assert "src=\"http" not in body and "href=\"http" not in body  # self-contained: nothing fetched
    cells = re.findall(r"<td>([^<]*±[^<]*)</td>", body)
    assert cells and all("&nbsp;±&nbsp;" in c for c in cells)  # a mean ± ci never breaks across lines
    browser = chromium()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
             f"--user-data-dir={tmp_path / 'chrome'}", "--virtual-time-budget=10000"]
    url = (out / "report.html").resolve().as_uri()
    dom = subprocess.run([browser, *flags, "--window-size=1280,2400", "--dump-dom", url], capture_output=True,
                         text=True, timeout=hang_guard(120)).stdout
    body = re.search(r"<body([^>]*)>", dom).group(1)
    attrs = dict(re.findall(r'data-([a-z-]+)="(\d+)"', body))
    assert attrs["broken-words"] == "0" and attrs["overflow-px"] == "0", attrs  # at 1280 px: no "finishe|d"
    assert int(attrs["images-total"]) == n_imgs
    assert int(attrs["images-decoded"]) == n_imgs  # every image decoded: naturalWidth > 0
    assert int(attrs["table-rows"]) >= 2 + 4  # comparison rows + one per run
    shot = tmp_path / "report.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1280,2400", url],
                   capture_output=True, timeout=hang_guard(120))
    assert shot.exists() and shot.stat().st_size > 10_000


def test_runs_that_are_not_replicates_are_split_not_averaged(tmp_path, capsys):
    from analysis.tables import main as tables_main

    fake_runs(tmp_path / "runs", [({"model": "ae", "seed": 0, "epochs": 1}, {"test/mse": 0.05}),
                                   ({"model": "ae", "seed": 1, "epochs": 1}, {"test/mse": 0.07}),
                                   ({"model": "ae", "seed": 0, "epochs": 20}, {"test/mse": 0.01})])
    assert tables_main(["--runs", str(tmp_path / "runs"), "--group-by", "model", "--metrics", "mse",
                        "--format", "csv"]) == 0
    out = capsys.readouterr()
    assert "split by epochs" in out.err
    import csv
    import io
    rows = [r for r in csv.reader(io.StringIO(out.out)) if r]
    head = rows[0]
    by_epochs = {r[head.index("epochs")]: r for r in rows[1:]}
    assert set(by_epochs) == {"1", "20"}
    assert float(by_epochs["1"][head.index("test/mse")]) == pytest.approx(0.06)
    assert by_epochs["1"][head.index("seeds")] == "0,1" and by_epochs["20"][head.index("runs")] == "1"


def test_no_pareto_front_over_equal_sizes_and_no_single_epoch_curves(tmp_path, capsys):
    from analysis.plots import main as plots_main

    # runs recorded under the key's older name, plotted under today's
    fake_runs(tmp_path / "runs", [({"model": "dae", "noise_std": s}, {"test/mse": m, "params": 1000})
                                   for s, m in ((0.1, 0.02), (0.3, 0.03), (0.5, 0.05))])
    assert plots_main(["--runs", str(tmp_path / "runs"), "--x", "noise_std", "--metrics", "mse",
                       "--out", str(tmp_path / "figs")]) == 0
    out = capsys.readouterr().out
    assert "no Pareto plot" in out and "no learning curves" in out
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["test_mse_vs_noise_level.png"]


@pytest.mark.parametrize("dims,note", [
    (["256,128", "512,256", "1024,512"], "its 3 values are not numbers, so they have no x axis; "
                                         "the table's rows compare them"),
    (["256,128"] * 3, "mlp_dims takes one value in this selection")])
def test_a_plot_left_out_says_the_true_reason(tmp_path, capsys, dims, note):
    from analysis.plots import main as plots_main

    fake_runs(tmp_path / "runs", [({"model": "mlp_ae", "mlp_dims": d, "seed": i}, {"test/mse": 0.02 + i / 100})
                                   for i, d in enumerate(dims)])
    assert plots_main(["--runs", str(tmp_path / "runs"), "--x", "mlp_dims", "--group-by", "model,mlp_dims",
                       "--metrics", "mse", "--out", str(tmp_path / "figs")]) == 0
    assert f"note: no mlp_dims plot: {note}" in capsys.readouterr().out.splitlines()


def test_refused_selection_creates_no_output_folder(tmp_path):
    from analysis.report import main as report_main

    with pytest.raises(SystemExit) as e:
        report_main(["--runs", str(tmp_path / "nowhere"), "--out", str(tmp_path / "rep")])
    assert e.value.code == 2 and not (tmp_path / "rep").exists()


@pytest.mark.parametrize("env,needle", [
    ({"WANDB_API_KEY": ""}, "not logged in"),
    ({"WANDB_API_KEY": "x" * 40, "WANDB_BASE_URL": "http://127.0.0.1:9"}, "unreachable"),
])
def test_wandb_source_without_login_or_server_is_one_line(tmp_path, env, needle):
    from conftest import run_cli

    env = dict(env, HOME=str(tmp_path), NETRC=str(tmp_path / "netrc"))
    p = run_cli(["--wandb", "ent/proj"], cwd=tmp_path, script="analysis.tables", env=env)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and needle in lines[0], p.stderr


def test_two_seeds_show_their_values_and_a_warning(tmp_path, capsys):
    """An interval from two seeds (t = 12.71) is shown, with both values and one warning line."""
    fake_runs(tmp_path / "runs", [({"model": "vae", "seed": s}, {"test/mse": m}) for s, m in ((0, 0.02), (1, 0.04))]
              + [({"model": "ae", "seed": s}, {"test/mse": 0.03 + s / 1000}) for s in (0, 1, 2)])
    assert tables_main(["--runs", str(tmp_path / "runs"), "--metrics", "mse"]) == 0
    captured = capsys.readouterr()
    vae = next(line for line in captured.out.splitlines() if line.startswith("| vae "))
    ae = next(line for line in captured.out.splitlines() if line.startswith("| ae "))
    assert "0.0300 ± 0.1271 (0.0200, 0.0400)" in vae and "(" not in ae.split("|")[-2]
    warnings = [line for line in captured.err.splitlines() if "2 seeds" in line]
    assert len(warnings) == 1 and "1 configuration(s)" in warnings[0] and "12.71" in warnings[0]


def test_near_equal_values_share_one_colour():
    """A colour scale never stretches four equal-looking values over its whole range."""
    import numpy as np

    from analysis.plots import colour_range

    near = colour_range(np.array([[0.076970, 0.076975], [0.076972, np.nan]]))
    assert near["vmax"] - near["vmin"] == pytest.approx(0.05 * 0.076975)  # differences of 5e-6 look alike
    apart = colour_range(np.array([0.02, 0.09]))
    assert (apart["vmin"], apart["vmax"]) == pytest.approx((0.02, 0.09))


def test_damaged_run_folders_are_named_and_the_rest_analysed(tmp_path, capsys):
    """Each damaged record is listed as unreadable with its reason; the table still comes."""
    import json as _json

    rows = [({"model": "ae", "seed": s}, {"test/mse": 0.02 + s / 100}) for s in range(6)]
    fake_runs(tmp_path / "runs", rows)
    runs = sorted((tmp_path / "runs").iterdir())
    (runs[1] / "metrics.jsonl").mkdir()                                     # a folder where a file belongs
    (runs[2] / "metrics.jsonl").write_bytes(b"\xff\xfe{not utf-8}\n")        # not UTF-8
    for run, key, value, name in ((runs[3], "seed", "zero", "config.json"), (runs[4], "finished_at", "yesterday",
                                  "summary.json"), (runs[5], "pid", "x", "summary.json")):
        record = _json.loads((run / name).read_text())
        record[key] = value
        (run / name).write_text(_json.dumps(record))
    assert tables_main(["--runs", str(tmp_path / "runs"), "--metrics", "mse"]) == 0
    out, err = capsys.readouterr()
    assert "| ae " in out and "5 unreadable run(s)" in err
    for needle in ("IsADirectoryError", "UnicodeDecodeError", "seed 'zero'", "finished_at 'yesterday'", "pid 'x'"):
        assert needle in err, needle


@pytest.mark.parametrize("command", ["analysis.tables", "analysis.plots", "analysis.report"])
def test_an_unreadable_run_is_one_line_in_every_analysis_command(tmp_path, capsys, command):
    import importlib

    fake_runs(tmp_path / "runs", [({"model": "ae", "seed": s}, {"test/mse": 0.02 + s / 100}) for s in range(3)])
    config = sorted((tmp_path / "runs").iterdir())[0] / "config.json"
    config.unlink()
    config.mkdir()  # as unreadable as a file of mode 000 is to its non-owner
    main = importlib.import_module(command).main
    assert main(["--runs", str(tmp_path / "runs"), "--metrics", "mse", "--out", str(tmp_path / "out")]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "unreadable" in line]
    assert len(err) == 1 and "1 unreadable run(s)" in err[0], err


def test_collapsed_runs_are_flagged_in_the_table_and_a_warning(tmp_path, capsys):
    """A run whose output does not depend on its input, or a VAE whose posterior collapsed, is
    flagged in its configuration's row; a warning line says how many. A sparse code with no
    active unit is not posterior collapse (only stochastic encoders get that flag)."""
    fake_runs(tmp_path / "runs", [({"model": "dae", "seed": s}, {"test/mse": 0.09, "warning/output_collapsed": s < 2})
                                  for s in (0, 1, 2)]
              + [({"model": "vae", "seed": s}, {"test/mse": 0.03, "collapse/active_units": 0 if s == 0 else 5,
                                                "collapse/posterior_collapse": s == 0}) for s in (0, 1, 2)]
              + [({"model": "sparse_ae", "seed": s}, {"test/mse": 0.02, "collapse/active_units": 0,
                                                      "warning/output_collapsed": False}) for s in (0, 1, 2)]
              + [({"model": "ae", "seed": s}, {"test/mse": 0.02, "warning/output_collapsed": False}) for s in (0, 1, 2)])
    assert tables_main(["--runs", str(tmp_path / "runs"), "--metrics", "mse"]) == 0
    captured = capsys.readouterr()
    rows = {line.split("|")[1].strip(): line for line in captured.out.splitlines() if line.startswith("| ")}
    assert "collapsed" in rows["model"]
    assert "2/3 collapsed" in rows["dae"] and "1/3 collapsed" in rows["vae"] and "collapsed" not in rows["ae"]
    assert "collapsed" not in rows["sparse_ae"]
    warning = [line for line in captured.err.splitlines() if "collapsed" in line]
    assert len(warning) == 1 and "3 of the 12 runs in the tables (one per seed and configuration) collapsed" in warning[0]


def test_tables_count_seeds_and_name_them_apart(tmp_path, capsys):
    """A configuration run with seed 0 alone reads `n seeds 1`, `seed ids 0`: never a bare "0"."""
    fake_runs(tmp_path / "runs", [({"model": "ae", "seed": 0}, {"test/mse": 0.05}),
                                  ({"model": "dae", "seed": 0}, {"test/mse": 0.06}),
                                  ({"model": "dae", "seed": 1}, {"test/mse": 0.07})])
    assert tables_main(["--runs", str(tmp_path / "runs"), "--metrics", "mse"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    head = [c.strip() for c in lines[0].split("|")[1:-1]]
    rows = {r[0]: r for r in ([c.strip() for c in line.split("|")[1:-1]] for line in lines[1:])}
    assert "seeds" not in head and rows["ae"][head.index("n seeds")] == "1"
    assert rows["ae"][head.index("seed ids")] == "0" and rows["dae"][head.index("n seeds")] == "2"


def test_a_sample_fd_of_one_seed_shows_its_own_bootstrap_interval(tmp_path, capsys):
    """One seed has no interval over seeds: the FD's own sampling interval is shown instead; with
    three seeds the seeds' interval is (it holds the sampling error too)."""
    fd = lambda v: {"sample/gmm_fd": v, "sample/gmm_fd_lo": v - 2, "sample/gmm_fd_hi": v + 3}  # noqa: E731
    fake_runs(tmp_path / "runs", [({"model": "ae", "seed": 0}, fd(30.0))]
              + [({"model": "vae", "seed": s}, fd(40.0 + s)) for s in (0, 1, 2)])
    assert tables_main(["--runs", str(tmp_path / "runs"), "--metrics", "gmm_fd"]) == 0
    rows = {line.split("|")[1].strip(): line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")}
    assert "| 30.00 [28.00, 33.00] |" in rows["ae"] and "41.00 ± 2.48 |" in rows["vae"], rows


def test_a_table_never_puts_an_aes_mse_and_a_vaes_elbo_in_one_column(tmp_path):
    """`best_value` is each family's own loss: over runs of an AE and a VAE it is left out of
    the default table (with a note), and asked for by name it becomes one column per meaning."""
    from conftest import fake_runs

    fake_runs(tmp_path / "runs", [({"model": m, "seed": s}, {"best_metric": "val/loss", "best_value": v + s,
                                                              "test/mse": 0.01 * (s + 1)})
                                  for m, v in (("ae", 0.0065), ("vae", 254.0)) for s in (0, 1)])
    p = run_main(["--runs", tmp_path / "runs", "--format", "csv"], cwd=tmp_path, script="analysis.tables")
    assert p.returncode == 0, p.stderr
    assert "best_value" not in p.stdout and "note: best_value left out" in p.stderr
    assert "val/loss (ae), val/loss (vae)" in p.stderr
    p = run_main(["--runs", tmp_path / "runs", "--metrics", "best_value", "--format", "csv"], cwd=tmp_path,
                script="analysis.tables")
    assert p.returncode == 0, p.stderr
    import io

    import pandas as pd
    table = pd.read_csv(io.StringIO(p.stdout))
    ae_col = next(c for c in table.columns if "val/loss (ae)" in c and "±" not in c and "ci" not in c.lower())
    vae_col = next(c for c in table.columns if "val/loss (vae)" in c and "±" not in c and "ci" not in c.lower())
    rows = table.set_index("model")
    assert rows.loc["ae", ae_col] == pytest.approx(0.5065) and pd.isna(rows.loc["ae", vae_col])
    assert rows.loc["vae", vae_col] == pytest.approx(254.5) and pd.isna(rows.loc["vae", ae_col])


def test_pareto_labels_never_overlap_nor_leave_the_axes(tmp_path):
    """Six configurations of nearly one size and score, the rightmost with a long label: after
    drawing, no two labels overlap and every label lies within the axes."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from analysis.plots import spread_labels

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    xs, ys = [1e5, 1.02e5, 1.04e5, 1.05e5, 1.06e5, 9e5], [0.0101, 0.0102, 0.0101, 0.0103, 0.0102, 0.0110]
    ax.plot(xs, ys, "o")
    ax.set_xscale("log")
    ax.margins(x=0.25, y=0.12)
    texts = [ax.annotate(f"model=sparse_ae l1_lambda=0.00{i} seed-pooled", (x, y), fontsize=6, xytext=(3, 3),
                         textcoords="offset points") for i, (x, y) in enumerate(zip(xs, ys))]
    fig.tight_layout()
    renderer = fig.canvas.get_renderer()
    before = [t.get_window_extent(renderer) for t in texts]
    assert any(a.overlaps(b) for i, a in enumerate(before) for b in before[i + 1:])  # the case is real
    spread_labels(fig, ax, texts)
    frame = ax.get_window_extent(renderer)
    boxes = [t.get_window_extent(renderer) for t in texts]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1 for b in boxes)
    plt.close(fig)


def test_a_column_keeps_one_number_format_and_no_negative_zero():
    import pandas as pd

    from analysis.tables import metric_cells

    summary = pd.DataFrame({"test/psnr": [11.684, 9.36012, -0.00001], "test/psnr_ci": [float("nan")] * 3,
                            "test/psnr_values": [[], [], []]})
    assert metric_cells(summary, "test/psnr") == ["11.68", "9.36", "0.00"]
    seconds = summary.rename(columns=lambda c: c.replace("test/psnr", "train_seconds"))
    assert metric_cells(seconds, "train_seconds") == ["11.7", "9.4", "0.0"]  # a time to a tenth of a second
    from analysis.plots import label
    from analysis.tables import display

    keys = pd.DataFrame({"noise_level": [0.0, 0.1, 0.316], "l1_lambda": [1e-5, 1e-4, 0.0], "runs": 1})
    assert display(keys, ["noise_level", "l1_lambda"], [])["noise_level"].tolist() == ["0", "0.1", "0.316"]
    assert label(keys.iloc[0], ["noise_level", "l1_lambda"]) == "noise_level=0, l1_lambda=1e-05"  # a key as given


def test_an_ae_and_a_dae_whose_loss_is_their_mse_share_one_meaning_of_best_value():
    import pandas as pd

    from analysis.load import best_meanings

    rows = [{"model": m, "best_metric": "val/loss", "best_value": v, "val/loss": v, "val/mse": mse}
            for m, v, mse in (("ae", 0.02, 0.02), ("dae", 0.03, 0.03), ("vae", 250.0, 0.04))]
    assert best_meanings(pd.DataFrame(rows[:2])) == ["val/loss (an MSE)"]
    assert best_meanings(pd.DataFrame(rows)) == ["val/loss (an MSE)", "val/loss (vae)"]


def test_a_random_search_keeps_every_key_it_drew():
    """Each run of a random search draws its own lr and beta, so either one 'determines' the
    other; both are what the search varied and both stay columns of its table."""
    import json

    import pandas as pd

    from analysis.load import varying_keys

    rows = [{"model": "mlp_vae", "lr": lr, "beta": b, "seed": 0, "config_keys": ("model", "lr", "beta", "seed"),
             "sweep_params": json.dumps({"lr": lr, "beta": b})} for lr, b in ((1e-3, 0.5), (3e-4, 2.0), (2e-3, 1.1))]
    assert set(varying_keys(pd.DataFrame(rows))) == {"lr", "beta"}


def test_a_w_and_b_server_that_never_answers_costs_analysis_seconds(tmp_path, monkeypatch, capsys):
    """A server that accepts the connection and never answers: `--wandb` is refused in one line
    within seconds (the 4 s reachability check), not after W&B's own minute of retries."""
    import socket
    import threading
    import time

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held = []
    threading.Thread(target=lambda: [held.append(server.accept()) for _ in range(16)], daemon=True).start()
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{server.getsockname()[1]}")
    t0 = time.monotonic()
    with pytest.raises(SystemExit) as e:
        tables_main(["--wandb", "ent/proj"])
    took = time.monotonic() - t0
    server.close()
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "did not answer within 4 s" in err[0], err
    assert took < 15, took  # a hang guard: the check's own 4 s, never W&B's retries


def test_the_denoising_heatmap_scores_the_noisy_input_itself_first():
    import numpy as np
    import pandas as pd

    from analysis.plots import denoise_rows

    summary = pd.DataFrame({"model": ["dae", "linear_ae"], "denoise/mse@0.3": [0.02, 0.2], "denoise/mse@0": [0.01, 0.1],
                            "denoise/input_psnr@0.3": [10.0, 10.0], "denoise/input_psnr@0": [100.0, 100.0]})
    names, cols, grid = denoise_rows(summary, ["model"], "mse")
    assert names[0] == "noisy input itself" and cols == ["denoise/mse@0", "denoise/mse@0.3"]
    assert grid[0] == pytest.approx(np.array([1e-10, 0.1])) and grid[2, 1] > grid[0, 1]  # linear_ae: worse than doing nothing
