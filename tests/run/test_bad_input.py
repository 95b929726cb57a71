"""Bad input across run.py, the sweep runner and analysis: exit 2, one line naming the
problem and what is valid, no traceback, and no run left marked finished."""
import json
import os

import pytest
from conftest import quick, refusal, run_cli, run_inproc

from bench.records.store import list_runs


def _bad_config(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("model: [ae\n")
    return p


def _unknown_key_config(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"modle": "ae"}))
    return p


def _stopped_run(tmp_path):
    """A run that was stopped after 1 epoch, for the resume cases."""
    assert run_inproc(quick(tmp_path, epochs=1)) == 0
    run = list_runs(str(tmp_path / "runs"))[0]
    run.update_summary(status="interrupted")
    return run.id


RUN_CASES = [
    ("unknown model", lambda t: ["--model", "resnet"], "unknown model 'resnet'"),
    ("unknown dataset", lambda t: ["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    ("negative epochs", lambda t: ["--epochs", "-1"], "--epochs"),
    ("epochs not an int", lambda t: ["--epochs", "ten"], "expected an integer"),
    ("lr not a number", lambda t: ["--lr=fast"], "expected a finite number"),
    ("zero learning rate", lambda t: ["--lr", "0"], "out of range"),
    ("sigma out of range", lambda t: ["--model", "dae", "--noise-level", "3"], "--noise-level"),
    ("a stack deeper than the image", lambda t: ["--model", "cnn_classifier", "--dataset", "synthetic_rgb",
                                                 "--channels", "8,8,8,8,8,8"], "Output size is too small"),
    ("a model larger than memory", lambda t: ["--model", "mlp_ae", "--hidden-dims", "65536,65536",
                                              "--latent-dim", "65536"], "for weights, gradients and Adam state"),
    ("a model over --max-memory", lambda t: ["--model", "mlp_ae", "--max-memory", "0.001"], "over --max-memory"),
    ("sigma out of range, older name", lambda t: ["--model", "dae", "--noise-std", "3"], "--noise-level"),
    ("negative sigma", lambda t: ["--noise_std=-0.1"], "out of range"),
    ("mask ratio 1", lambda t: ["--model", "mcae", "--mask-ratio", "1.0"], "--mask-ratio"),
    ("negative lambda", lambda t: ["--model", "sparse_ae", "--l1-lambda", "-1e-3"], "--l1-lambda"),
    ("latent size 0", lambda t: ["--latent-dim", "0"], "--latent-dim"),
    ("dropout 1", lambda t: ["--model", "dropout_ae", "--dropout", "1"], "--dropout"),
    ("unknown noise type", lambda t: ["--noise-type", "pink"], "valid: gaussian, dropout, salt_pepper"),
    ("bad boolean", lambda t: ["--batchnorm=maybe"], "true/false"),
    ("unknown flag", lambda t: ["--nois-std", "0.1"], "did you mean --noise-std"),
    ("impossible architecture", lambda t: ["--channels", "8,8,8,8,8,8"], "at most"),
    ("pool_ae too small", lambda t: ["--model", "pool_ae", "--image-size", "16"], "image_size >= 20"),
    ("over parameter budget", lambda t: ["--max-params", "1000"], "over --max-params"),
    ("empty dataset", lambda t: ["--limit-train", "0"], "--limit-train"),
    ("too few images to split", lambda t: ["--limit-train", "1"], "none for training"),
    ("unreadable config", lambda t: ["--config", t / "missing.yaml"], "cannot read"),
    ("malformed config", lambda t: ["--config", _bad_config(t)], "not valid YAML: line 2, column 1: expected"),
    ("unknown config key", lambda t: ["--config", _unknown_key_config(t)], "unknown key 'modle'"),
    ("missing data offline", lambda t: ["--dataset", "mnist", "--data-root", t / "nodata"], "place them in"),
    ("classifier on masks", lambda t: ["--model", "cnn_classifier", "--dataset", "synthetic_seg"], "needs a dataset"),
    ("wrong task", lambda t: ["--task", "segment"], "--task segment"),
    ("cuda absent", lambda t: ["--device", "cuda"], "no CUDA device"),
    ("unknown eval tool", lambda t: ["--eval", "probe,magic"], "unknown evaluation 'magic'"),
    ("eval tool misspelt", lambda t: ["--eval", "prob"], "unknown evaluation 'prob' (did you mean probe?)"),
    ("resume of nothing", lambda t: ["--resume", "no-such-run"], "no run 'no-such-run'"),
    ("resume with other config", lambda t: ["--resume", _stopped_run(t), "--lr", "0.5"], "differs"),
    ("mlp dims too short", lambda t: ["--model", "mlp_vae", "--mlp-dims", "400"], "--mlp-dims"),
    ("bad color mode", lambda t: ["--color-mode", "rainbow"], "valid: class, random"),
    ("key the model lacks", lambda t: ["--model", "pool_ae", "--latent-dim", "8"], "does not take it"),
    ("noise on a classifier", lambda t: ["--model", "cnn_classifier", "--noise-std", "0.3"], "does not take it"),
    ("channels on the MLP VAE", lambda t: ["--model", "mlp_vae", "--channels", "4"], "its keys: --activation, --beta"),
    ("select on test for an AE", lambda t: ["--select-on", "test"], "only classifiers"),
    ("empty runs dir", lambda t: ["--runs-dir", ""], "--runs-dir: empty"),
    ("empty data root", lambda t: ["--data-root", " "], "--data-root: empty"),
    ("a key for an unknown model", lambda t: ["--dea.noise-level", "0.3"], "--dea.noise-level: unknown model 'dea'"),
    ("a run key for one model", lambda t: ["--dae.lr", "0.1"], "--dae.lr: a key given for one model is one of"),
    ("a key for one model out of range", lambda t: ["--dae.noise_level=3"], "--dae.noise-level: 3.0 is out of range"),
]


def _base(tmp_path):
    return ["--model", "ae", "--dataset", "synthetic", "--epochs", 1, "--runs-dir", tmp_path / "runs",
            "--wandb", "disabled", "--limit-train", 200]


@pytest.mark.parametrize("name,make,needle", RUN_CASES, ids=[c[0] for c in RUN_CASES])
def test_run_py_refuses(tmp_path, capsys, name, make, needle):
    extra = make(tmp_path)
    capsys.readouterr()  # what making a case's run printed (a tiny run may warn that it collapsed)
    before = {r.id for r in list_runs(str(tmp_path / "runs"))}
    code = run_inproc(_base(tmp_path) + extra)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert needle in err[0], err[0]
    assert {r.id for r in list_runs(str(tmp_path / "runs"))} == before  # no run created


def test_a_real_process_exits_2_with_one_line(tmp_path):
    p = run_cli(["--model", "nope"], cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "valid: ae," in p.stderr


OTHER_CASES = [
    ("bench.sweep", ["does/not/exist.yaml", "--dry-run"], "cannot read sweep file"),
    ("bench.sweep", ["sweeps/fashion_vae_dims.yaml", "--dry-run", "--epochs", "0"], "--epochs"),
    ("bench.sweep", ["sweeps/fashion_vae_dims.yaml", "--workers", "0"], "--workers"),
    ("analysis.tables", ["--runs", "nowhere"], "no runs found"),
    ("analysis.tables", ["--format", "pdf"], "invalid choice"),
    ("analysis.report", ["--runs", "nowhere"], "no runs found"),
    ("bench.evaluate", ["no-such-run"], "no run 'no-such-run'"),
    ("bench.evaluate", ["runs/no-such-run", "--what", "probe"], "no run at runs/no-such-run"),
    ("run.py", ["--dataset", "fashion_mnist", "--data-root", "/nonexistent"], "--data-root /nonexistent: no such folder"),
    ("run.py", ["--resume", "runs/no-such-run"], "no run at runs/no-such-run"),
    ("bench.sweep", ["sweeps/fashion_vae_dims.yaml", "--runs-dir", ""], "--runs-dir: empty"),
]
MAINS = {"bench.sweep": "bench.sweep.command", "analysis.tables": "analysis.tables",
         "analysis.report": "analysis.report", "bench.evaluate": "bench.evaluate", "run.py": "bench.run.runner"}


@pytest.mark.parametrize("module,args,needle", OTHER_CASES, ids=[f"{c[0]}-{c[2]}" for c in OTHER_CASES])
def test_other_entry_points_refuse(tmp_path, monkeypatch, capsys, module, args, needle):
    """Each command's `main`, in this process: a refusal starts nothing, so needs no process of
    its own (`test_a_real_process_exits_2_with_one_line` and the case below run real ones)."""
    import importlib

    from conftest import ROOT
    monkeypatch.chdir(ROOT if module == "bench.sweep" else tmp_path)
    code, lines = refusal(importlib.import_module(MAINS[module]).main, args, capsys)
    assert code == 2 and len(lines) == 1 and needle in lines[0], lines


def test_a_librarys_notice_never_comes_before_the_refusal(tmp_path):
    """A real process: torch warns on stderr, at its first max_unpool2d, that the op has no
    deterministic kernel; the refusal is still the one line a user reads."""
    p = run_cli(["--model", "pool_ae", "--dataset", "synthetic", "--eval", "sample"], cwd=tmp_path)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "--eval sample: needs decoder" in lines[0], p.stderr


# ---------------------------------------------------------------------------------------
# The full table: flags, config files, sweep YAMLs and run folders. Every case must exit 2
# with one line naming the problem, and leave no run marked finished.

def _cfg(tmp_path, text, suffix=".json"):
    p = tmp_path / f"cfg{suffix}"
    p.write_text(text)
    return p


FLAG_CASES = [
    ("--epochs", "2.5e0", "expected an integer"), ("--epochs", "1.5", "expected an integer"),
    ("--epochs", "true", "expected an integer"), ("--epochs", "0", "out of range"),
    ("--epochs", "1e9", "out of range"), ("--epochs", "inf", "expected an integer"),
    ("--batch-size", "0", "out of range"), ("--batch-size", "1.5", "expected an integer"),
    ("--lr", "inf", "expected a finite number"), ("--lr", "nan", "expected a finite number"),
    ("--lr", "-1", "out of range"), ("--lr", "1e38", "out of range"), ("--lr", "", "expected a finite number"),
    ("--weight-decay", "-1", "out of range"), ("--weight-decay", "nan", "expected a finite number"),
    ("--seed", "-1", "out of range"), ("--seed", "4294967296", "out of range"),
    ("--seed", "1.5", "expected an integer"), ("--seed", "abc", "expected an integer"),
    ("--latent-dim", "1.5", "expected an integer"), ("--latent-dim", "70000", "out of range"),
    ("--channels", "0,8", "out of range"), ("--channels", "a,b", "list of int"),
    ("--channels", "", "at least one value"), ("--channels", "8,-1", "out of range"),
    ("--hidden-dims", "0", "out of range"), ("--hidden-dims", "1.5", "list of int"),
    ("--mlp-dims", "400,0", "out of range"), ("--noise-std", "1.5", "out of range"),
    ("--noise-std", "nan", "expected a finite number"), ("--noise-std", "inf", "expected a finite number"),
    ("--l1-lambda", "11", "out of range"), ("--l1-lambda", "inf", "expected a finite number"),
    ("--dropout", "-0.1", "out of range"), ("--dropout", "nan", "expected a finite number"),
    ("--beta", "-1", "out of range"), ("--beta", "1e9", "out of range"), ("--kl-weight", "-1", "out of range"),
    ("--kl-warmup-epochs", "-1", "out of range"), ("--kl-warmup-epochs", "1.5", "expected an integer"),
    ("--mask-ratio", "-0.1", "out of range"), ("--mask-ratio", "1.5", "out of range"),
    ("--mask-patch", "0", "out of range"), ("--mask-patch", "100", "out of range"),
    ("--masked-loss-weight", "-1", "out of range"), ("--loss", "focal", "valid: dice, bce, dice_bce"),
    ("--recon-loss", "l1", "valid: mse, bce"), ("--device", "tpu", "valid: auto, cpu, cuda"),
    ("--amp", "fp8", "valid: off, bf16, fp16"), ("--wandb", "maybe", "valid: online, offline, disabled"),
    ("--task", "generate", "valid: classify, denoise, inpaint, reconstruct, segment"), ("--image-size", "8", "out of range"),
    ("--image-size", "1000", "out of range"), ("--val-fraction", "0", "out of range"),
    ("--val-fraction", "1", "out of range"), ("--val-fraction", "1.5", "out of range"),
    ("--limit-test", "0", "out of range"), ("--max-params", "0", "out of range"),
    ("--num-threads", "0", "out of range"), ("--num-threads", "100000000000", "out of range"),
    ("--sweep", "../../escape", "not a plain name"), ("--sweep", "/tmp/elsewhere", "not a plain name"), ("--eval", "all,bogus", "unknown evaluation 'bogus'"),
    ("--eval-sigmas", "2", "out of range"), ("--eval-sigmas", "-0.1", "out of range"),
    ("--eval-sigmas", "x", "list of float"), ("--batchnorm", "2", "true/false"),
    ("--compile", "maybe", "true/false"), ("--pretrained", "perhaps", "true/false"),
    ("--resume", "", "--resume"), ("--resume", "../../etc", "no run at ../../etc"),
    ("--resume", "run*", "not a plain name"), ("--probe-from", "no-such-run", "model ae does not take it"),
    ("--model", "", "unknown model"), ("--dataset", "", "unknown dataset"),
    ("--color-mode", "", "valid: class, random"),
]


@pytest.mark.parametrize("flag,value,needle", FLAG_CASES, ids=[f"{f}={v}" for f, v, _ in FLAG_CASES])
def test_every_bad_flag_value(tmp_path, capsys, flag, value, needle):
    code = run_inproc(_base(tmp_path) + [f"{flag}={value}"])
    _assert_refused(tmp_path, capsys, code, needle)


CONFIG_CASES = [
    ('{"batch_size": true}', "expected an integer"), ('{"batch_size": 2.5}', "expected an integer"),
    ('{"lr": "inf"}', "expected a finite number"), ('{"lr": false}', "expected a finite number"),
    ('{"channels": [0]}', "out of range"), ('{"channels": {"a": 1}}', "list of int"),
    ('{"noise_type": ["gaussian"]}', "expected text"), ('{"seed": -1}', "out of range"),
    ('[1, 2]', "must hold a mapping"), ('{"epochs": 1', "not valid JSON"),
    ('{"modle": "ae"}', "unknown key 'modle'"), ('{"batch_size": null}', "a value is required"),
    ('{"noise_std": 1e400}', "expected a finite number"), ('{"eval": ["probe", "nope"]}', "unknown evaluation"),
    ('{"tags": {"a": 1}}', "list of str"), ('{"mlp_dims": [400]}', "--mlp-dims"),
]


@pytest.mark.parametrize("text,needle", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_every_bad_config_file(tmp_path, capsys, text, needle):
    code = run_inproc(_base(tmp_path) + ["--config", _cfg(tmp_path, text)])
    _assert_refused(tmp_path, capsys, code, needle)


def _fifo(tmp_path):
    os.mkfifo(tmp_path / "pipe.yaml")
    return tmp_path / "pipe.yaml"


def _write(name, data):
    def make(tmp_path):
        (tmp_path / name).write_bytes(data)
        return tmp_path / name
    return make


@pytest.mark.parametrize("make,needle", [
    (lambda t: t, "is not a regular file"),                       # a folder
    (_fifo, "is not a regular file"),                             # would block forever
    (lambda t: "/dev/zero", "is not a regular file"),             # would never end
    (_write("latin.yaml", b"epochs: 1 # caf\xe9\n"), "is not UTF-8 text"),
    (_write("deep.json", b"[" * 100000 + b"]" * 100000), "nested too deeply"),
    (_write("huge.yaml", b"# " + b"x" * (2 << 20) + b"\n"), "a config file is at most"),
], ids=["folder", "fifo", "dev-zero", "not-utf8", "deep", "huge"])
def test_config_files_that_are_not_config_files(tmp_path, capsys, make, needle):
    code = run_inproc(_base(tmp_path) + ["--config", make(tmp_path)])
    _assert_refused(tmp_path, capsys, code, needle)


HEAD = "program: run.py\nmethod: grid\nmetric: {name: val/loss, goal: minimize}\n"
SWEEP_CASES = [
    ("method: grid\nparameters:\n  - seed\n", [], "'parameters' must be a mapping"),
    (HEAD + "parameters:\n  seed: 3\n", [], "must be a mapping"),
    ("name: ../../X\n" + HEAD + "parameters:\n  seed: {values: [1]}\n", [], "not a plain name"),
    ("name: a/b\n" + HEAD + "parameters:\n  seed: {values: [1]}\n", [], "not a plain name"),
    ("method: bayes\nparameters:\n  lr: {min: 0.001, max: 0.01}\n", ["--count", "2"], "needs a metric"),
    ("method: grid\nmetric: {name: loss}\nparameters:\n  seed: {values: [1]}\n", [], "not a key run.py logs"),
    ("method: random\nparameters:\n  lr: {min: 0.1, max: 0.01}\n", ["--count", "2"], "min 0.1"),
    ("method: random\nparameters:\n  lr: {min: -1.0, max: 0.01}\n", ["--count", "2"], "out of range"),
    (HEAD + "parameters:\n  model: {values: [ae, foo]}\n", [], "unknown model 'foo'"),
    (HEAD + "parameters:\n  dataset: {value: imagenet}\n", [], "unknown dataset 'imagenet'"),
    (HEAD + "parameters:\n  epochs: {values: [true]}\n", [], "expected an integer"),
    (HEAD + "parameters:\n  seed: {values: [1.5]}\n", [], "expected an integer"),
    (HEAD + "parameters:\n  channels: {values: [[0, 8]]}\n", [], "out of range"),
    ("- 1\n- 2\n", [], "a sweep config is a mapping"),
    ("method: sideways\nparameters:\n  seed: {values: [1]}\n", [], "invalid sweep config"),
    ("method: random\nparameters:\n  lr: {distribution: weird, min: 0.1, max: 0.2}\n", ["--count", "2"],
     "invalid sweep config"),
    (HEAD + "parameters:\n  seed: {values: [1]}\n", ["--epochs", "0"], "--epochs"),
    (HEAD + "parameters:\n  seed: {values: [1]}\n", ["--nois-std", "0.1"], "unknown argument"),
    (HEAD + "parameters:\n  seed: {values: [1]}\n", ["--seed", "abc"], "expected an integer"),
    (HEAD + "parameters:\n  seed: {values: [1]}\n", ["--model", "resnet"], "unknown model"),
    (HEAD + "parameters:\n  seed: {values: [1]}\n", ["--count", "0"], "--count"),
    # every run the sweep would make must be one run.py accepts
    (HEAD + "parameters:\n  model: {value: pool_ae}\n  latent_dim: {values: [4, 8]}\n", [],
     "model pool_ae does not take it"),
    (HEAD + "parameters:\n  model: {value: cnn_classifier}\n  dataset: {value: synthetic_seg}\n", [],
     "needs a dataset with labels"),
    (HEAD + "parameters:\n  eval: {value: [probe, magic]}\n", [], "unknown evaluation"),
    (HEAD + "parameters:\n  model: {values: [ae, vae]}\n  dae.noise_level: {value: 0.3}\n", [],
     "model dae is not among this sweep's models (ae, vae)"),
    (HEAD + "parameters:\n  model: {values: [ae, dae]}\n  dae.noise_level: {values: [0.3, 2]}\n", [],
     "parameter 'dae.noise_level': --dae.noise-level: 2.0 is out of range"),
    (HEAD + "parameters:\n  model: {values: [ae, dae]}\n  dae.nose_level: {value: 0.3}\n", [],
     "unknown parameter 'dae.nose_level'"),
    ("method: random\nparameters:\n  lr: {distribution: normal, mu: -1, sigma: 1}\n", ["--count", "2"],
     "a normal distribution draws values outside its range"),
    ("method: grid\nparameters:\n  lr: {min: 0.001, max: 0.01}\n", [], "method grid needs a list of values"),
    (b"method: grid\nparameters:\n  seed: {values: [1]}  # caf\xe9\n", [], "is not UTF-8 text"),
    ("[" * 20000 + "]" * 20000, [], "nested too deeply"),
    (HEAD + "parameters:\n  seed: {values: [1]}\n", ["--workers", "-1"], "--workers"),
    # the metric is one the swept models log
    ("method: grid\nmetric: {name: val/acc_typo}\nparameters:\n  model: {value: cnn_classifier}\n"
     "  dataset: {value: synthetic}\n", [], "did you mean 'val/acc'"),
    ("method: bayes\nmetric: {name: test/bogus, goal: maximize}\nparameters:\n  lr: {min: 0.001, max: 0.01}\n",
     ["--count", "2"], "metric 'test/bogus' is never logged by model ae"),
    ("method: grid\nmetric: {name: val/kl}\nparameters:\n  model: {values: [vae, ae]}\n", [],
     "never logged by model ae"),
    ("name: x\ncommand: [${env}, ${args}]\n", [], "not valid YAML: line 2, column 12: expected ',' or ']'"),
    # a grid's size is known before it is planned: 10^12 configurations are refused at once
    (HEAD + "parameters:\n" + "".join(f"  {k}: {{values: [{', '.join(map(str, range(1, 1001)))}]}}\n"
                                      for k in ("seed", "epochs", "latent_dim", "batch_size")), [],
     "a grid of 1,000,000,000,000 configurations"),
    # early termination the local runner can honour, or one line before any run
    (HEAD + "early_terminate: {type: median}\nparameters:\n  seed: {values: [1]}\n", [],
     "early_terminate type 'median' is not implemented by the local runner; valid: hyperband"),
    ("method: grid\nearly_terminate: {type: hyperband, min_iter: 1}\nparameters:\n  seed: {values: [1]}\n", [],
     "early_terminate needs a metric"),
    ("method: grid\nmetric: {name: test/psnr, goal: maximize}\nearly_terminate: {type: hyperband, min_iter: 1}\n"
     "parameters:\n  seed: {values: [1]}\n", [], "must be logged every epoch"),
    (HEAD + "early_terminate: {type: hyperband}\nparameters:\n  seed: {values: [1]}\n", [],
     "hyperband needs min_iter"),
    (HEAD + "early_terminate: {type: hyperband, min_iter: 0}\nparameters:\n  seed: {values: [1]}\n", [],
     "early_terminate min_iter: 0 is less than the minimum of 1"),
    (HEAD + "early_terminate: {type: hyperband, max_iter: 1, s: 2, eta: 3}\nparameters:\n  seed: {values: [1]}\n",
     [], "no band is at least one epoch"),
]


@pytest.mark.parametrize("text,extra,needle", SWEEP_CASES, ids=[c[2] + str(i) for i, c in enumerate(SWEEP_CASES)])
def test_every_bad_sweep(tmp_path, capsys, text, extra, needle):
    from bench.sweep.command import main as sweep_main

    y = tmp_path / "bad.yaml"
    y.write_bytes(text) if isinstance(text, bytes) else y.write_text(text)
    with pytest.raises(SystemExit) as e:
        sweep_main([str(y), "--dry-run", "--runs-dir", str(tmp_path / "runs")] + extra)
    _assert_refused(tmp_path, capsys, e.value.code, needle)
    assert not (tmp_path / "X").exists() and not (tmp_path.parent / "X").exists()


@pytest.fixture
def a_finished_run(finished_run_template):
    return finished_run_template  # read only: tests that change it copy it first (_copy_run)


def _copy_run(src, tmp_path, mutate):
    import shutil
    dst = tmp_path / "runs" / src.name
    shutil.copytree(src, dst)
    mutate(dst)
    return dst


def _torn(name):
    return lambda d: (d / name).write_text((d / name).read_text()[:30])


def _stopped(d):
    s = json.loads((d / "summary.json").read_text())
    (d / "summary.json").write_text(json.dumps(dict(s, status="interrupted")))


def _no_ckpt(d):
    (d / "best.pt").unlink()
    (d / "last.pt").unlink()


def _crafted(d):
    import pickle
    with open(d / "best.pt", "wb") as f:
        pickle.dump({"model": print, "in_shape": [1, 28, 28], "num_classes": 10}, f)
    (d / "last.pt").unlink()


def _not_a_checkpoint(d):
    (d / "best.pt").write_bytes(b"garbage")
    (d / "last.pt").unlink()


def _config_value(key, value):
    def mutate(d):
        cfg = json.loads((d / "config.json").read_text())
        (d / "config.json").write_text(json.dumps(dict(cfg, **{key: value})))
    return mutate


def _ckpt_field(key, value, which="best"):
    def mutate(d):
        import torch
        state = torch.load(d / f"{which}.pt", weights_only=True)
        state[key] = dict(state[key], **value) if isinstance(value, dict) else value
        torch.save(state, d / f"{which}.pt")
    return mutate


def _config_not_object(d):
    (d / "config.json").write_text("[1, 2]")


def _deep(name):
    return lambda d: (d / name).write_text("[" * 100_000 + "]" * 100_000)


def _summary_value(key, value):
    def mutate(d):
        _stopped(d)
        s = json.loads((d / "summary.json").read_text())
        (d / "summary.json").write_text(json.dumps(dict(s, status="running", **{key: value})))
    return mutate


FOLDER_CASES = [
    ("evaluate", lambda d: None, ["--what", "bogus"], "unknown evaluation 'bogus'"),
    ("evaluate", _torn("config.json"), [], "config.json is unreadable"),
    ("evaluate", _config_not_object, [], "not a JSON object"),
    ("evaluate", _no_ckpt, [], "no checkpoint"),
    ("evaluate", _crafted, [], "refused"),
    ("evaluate", _not_a_checkpoint, [], "cannot read checkpoint"),
    ("resume", lambda d: None, [], "already finished"),
    ("resume", _torn("summary.json"), [], "summary.json is unreadable"),
    ("resume", lambda d: (_stopped(d), _torn("config.json")(d)), [], "config.json is unreadable"),
    ("resume", _stopped, ["--lr", "0.5"], "differs"),
    ("resume", lambda d: (_stopped(d), _not_a_checkpoint(d), (d / "last.pt").write_bytes(b"x")), [],
     "cannot read checkpoint"),
    ("probe_from", _no_ckpt, [], "no checkpoint"),
    ("probe_from", _torn("config.json"), [], "config.json is unreadable"),
    ("probe_from", _crafted, [], "refused"),
    # damaged records are named in one line, never met as a traceback deep in a model
    ("evaluate", _config_value("latent_dim", "big"), [], "config.json: --latent-dim: expected an integer"),
    ("evaluate", _ckpt_field("in_shape", [1, 28]), [], "in_shape [1, 28] is not (channels, height, width)"),
    ("resume", lambda d: (_stopped(d), _ckpt_field("state", {"epoch": "x"}, "last")(d)), [],
     "training state has values of the wrong type"),
    ("probe_from", lambda d: None, ["--dataset", "synthetic_rgb"], "cannot encode this dataset's 3x32x32 images"),
    # records are read with a depth and size bound, and their fields type-checked before use
    ("evaluate", _deep("config.json"), [], "config.json is nested too deeply"),
    ("resume", _deep("config.json"), [], "config.json is nested too deeply"),
    ("resume", _deep("summary.json"), [], "summary.json is nested too deeply"),
    ("resume", lambda d: (d / "summary.json").write_text(" " * (9 << 20) + "{}"), [], "over the 8,388,608"),
    ("resume", _summary_value("pid", "abc"), [], "summary.json has pid 'abc' (str); expected an integer"),
    ("resume", _summary_value("pid_started", "x"), [], "summary.json has pid_started 'x' (str); expected"),
]


@pytest.mark.parametrize("entry,mutate,extra,needle", FOLDER_CASES,
                         ids=[f"{c[0]}-{c[3]}" for c in FOLDER_CASES])
def test_every_bad_run_folder(tmp_path, capsys, a_finished_run, entry, mutate, extra, needle):
    from bench.evaluate import main as evaluate_main

    run = _copy_run(a_finished_run, tmp_path, mutate)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    runs = str(tmp_path / "runs")
    if entry == "evaluate":
        with pytest.raises(SystemExit) as e:
            evaluate_main([str(run), "--runs-dir", runs] + extra)
        code = e.value.code
    elif entry == "resume":
        code = run_inproc(["--resume", run.name, "--runs-dir", runs, "--wandb", "disabled"] + extra)
    else:
        code = run_inproc([a if a != "ae" else "linear_probe" for a in _base(tmp_path)]
                          + ["--probe-from", run.name] + extra)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0], err
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert after == before  # a refused run folder is left exactly as it was


def test_analysis_names_a_record_nested_too_deeply_in_one_line(tmp_path, a_finished_run):
    run = _copy_run(a_finished_run, tmp_path, _deep("config.json"))
    other = _copy_run(a_finished_run, tmp_path / "b", lambda d: None)
    import shutil
    shutil.move(str(other), str(run.parent / "other"))  # one readable run beside it
    p = run_cli(["--runs", tmp_path / "runs"], cwd=tmp_path, script="analysis.tables")
    assert p.returncode == 0, p.stderr
    unreadable = [l for l in p.stderr.splitlines() if "unreadable" in l]
    assert len(unreadable) == 1 and "config.json is nested too deeply" in unreadable[0], p.stderr
    assert "Traceback" not in p.stderr


def test_a_damaged_debian_fashion_archive_is_one_line(tmp_path):
    from bench.data.mnist import BUNDLED_FASHION_DIR

    deb = tmp_path / "deb"
    deb.mkdir()
    (tmp_path / "root").mkdir()  # the named data root exists, and lacks the files
    for f in BUNDLED_FASHION_DIR.glob("*.gz"):
        data = f.read_bytes()
        (deb / f.name).write_bytes(data[:len(data) // 3] if f.name.startswith("train-images") else data)
    p = run_cli(["--model", "ae", "--dataset", "fashion_mnist", "--epochs", 1, "--data-root", tmp_path / "root",
                 "--runs-dir", tmp_path / "runs", "--wandb", "disabled"], cwd=tmp_path,
                env={"AEBENCH_DEBIAN_FASHION_DIR": str(deb), "AEBENCH_CACHE": str(tmp_path / "cache")})
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "train-images-idx3-ubyte.gz is damaged (cut short)" in lines[0], \
        p.stderr
    assert not list_runs(str(tmp_path / "runs"))


def test_a_config_folder_named_by_the_environment_names_the_variable(tmp_path):
    (tmp_path / "folder").mkdir()
    p = run_cli(["--model", "ae", "--dataset", "synthetic"], cwd=tmp_path, env={"AEBENCH_CONFIG": "folder"})
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("run.py: error: $AEBENCH_CONFIG"), p.stderr


ANALYSIS_CASES = [
    ("tables", ["--metrics", "bogus"], "unknown metric 'bogus'"),
    ("tables", ["--group-by", "bogus"], "unknown group key 'bogus'"),
    ("tables", ["--sweep", "nope"], "no runs of sweep 'nope'"),
    ("report", ["--sweep", "nope"], "no runs of sweep 'nope'"),
    ("plots", ["--sweep", "nope"], "no runs of sweep 'nope'"),
    ("plots", ["--runs", "nowhere"], "no runs found"),
]


@pytest.mark.parametrize("module,args,needle", ANALYSIS_CASES, ids=[f"{c[0]}-{c[2]}" for c in ANALYSIS_CASES])
def test_every_bad_analysis_request(tmp_path, capsys, a_finished_run, module, args, needle):
    import importlib
    main = importlib.import_module(f"analysis.{module}").main
    runs = str(a_finished_run.parent)
    argv = (["--runs", runs] if "--runs" not in args else []) + args + \
        (["--out", str(tmp_path / "out")] if module != "tables" else [])
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and needle in err[0], err


def _assert_refused(tmp_path, capsys, code, needle):
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert needle in err[0], err[0]
    finished = [r for r in list_runs(str(tmp_path / "runs")) if r.read_summary().get("status") == "finished"]
    assert not finished


@pytest.mark.parametrize("target,needle", [("summary", "is a file; give its run folder"),
                                           ("empty", "is not a run folder: it has no config.json")])
def test_resume_names_what_is_wrong_with_the_path(tmp_path, capsys, finished_run, target, needle):
    (tmp_path / "empty").mkdir()
    path = finished_run.path / "summary.json" if target == "summary" else tmp_path / "empty"
    code = run_inproc(["--resume", path, "--runs-dir", tmp_path / "runs", "--wandb", "disabled"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0], err


def test_a_probe_whose_last_batch_holds_one_image_trains(tmp_path, capsys, a_finished_run):
    """12 training images in batches of 10 leave a last batch of one after the validation
    split: BatchNorm cannot normalise it, so a training pass leaves it out (it changes each epoch)."""
    run = _copy_run(a_finished_run, tmp_path, lambda d: None)
    code = run_inproc(["--model", "linear_probe", "--dataset", "synthetic", "--epochs", 1, "--runs-dir",
                       tmp_path / "runs", "--wandb", "disabled", "--limit-train", 12, "--batch-size", 10,
                       "--probe-from", run.name])
    assert code == 0, capsys.readouterr().err


def test_resume_finds_a_run_by_the_name_it_was_given(tmp_path, finished_run):
    """`--name` names the run in W&B and the tables; the folder keeps its id, and `--resume
    NAME` (or bench.evaluate NAME) finds the run by that name: once, or refused when two share it."""
    import shutil

    from bench.core.errors import UsageError
    from bench.records.store import find_local_run

    config = json.loads((finished_run.path / "config.json").read_text())
    (finished_run.path / "config.json").write_text(json.dumps(dict(config, name="resume-demo")))
    assert find_local_run("resume-demo", str(tmp_path / "runs")).path == finished_run.path
    shutil.copytree(finished_run.path, tmp_path / "runs" / "ae_synthetic_twin")
    with pytest.raises(UsageError, match="2 runs in .* are named 'resume-demo'.*give the run's id"):
        find_local_run("resume-demo", str(tmp_path / "runs"))


@pytest.mark.parametrize("flag,needle", [("--loss", "--loss: model ae does not take it"),
                                         ("--seg-loss", "--seg-loss: model ae does not take it")])
def test_a_refused_key_is_named_as_the_user_typed_it(tmp_path, capsys, flag, needle):
    """`--loss` is the older name of `--seg-loss`: its refusal names the flag the user wrote."""
    code = run_inproc(["--model", "ae", flag, "dice", "--runs-dir", tmp_path / "runs", "--wandb", "disabled"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"run.py: error: {needle}"), err


def test_a_bad_flag_is_refused_before_torch_is_imported(tmp_path):
    """Once a run has parsed this source tree's flags (any run, `--print-config` here), a flag
    that no key has is refused without importing torch: under load that import costs seconds."""
    import subprocess
    import sys

    from conftest import ROOT, hang_guard

    env = dict(os.environ, PYTHONPATH=str(ROOT), AEBENCH_CACHE=str(tmp_path / "cache"))
    first = run_cli(["--model", "ae", "--dataset", "synthetic", "--print-config"], cwd=tmp_path,
                    env={"AEBENCH_CACHE": str(tmp_path / "cache")})
    assert first.returncode == 0, first.stderr
    for argv, needle in ((["--latnt-dim", "4"], "unknown argument --latnt-dim; did you mean --latent-dim"),
                         (["--model", "ae", "--noise_level=0.1", "--bogus"], "unknown argument --bogus")):
        p = subprocess.run([sys.executable, "-X", "importtime", str(ROOT / "run.py"), *argv], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=hang_guard(120))
        imported = {line.split("|")[-1].strip() for line in p.stderr.splitlines() if line.startswith("import time:")}
        errors = [line for line in p.stderr.splitlines() if not line.startswith("import time:")]
        assert p.returncode == 2 and len(errors) == 1 and needle in errors[0], p.stderr[-500:]
        assert "torch" not in imported and "bench.run.runner" not in imported


@pytest.mark.parametrize("flag,value,near", [("--device", "cdua", "cuda"), ("--noise-type", "gausian", "gaussian"),
                                             ("--wandb", "ofline", "offline"), ("--sample-score", "incepton", "inception")])
def test_a_misspelt_choice_gets_a_did_you_mean(tmp_path, capsys, flag, value, near):
    code = run_inproc(["--model", "ae", "--dataset", "synthetic", flag, value, "--runs-dir", tmp_path / "runs"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and f"unknown value {value!r}; did you mean {near}?" in err[0], err
