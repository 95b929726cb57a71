"""Dataset loaders on tiny files in the real on-disk formats, and one real-data smoke run."""
import gzip
import shutil

import numpy as np
import pytest
import torch
from formats import (  # noqa: F401
    trust_files,
    write_brain_tumor,
    write_celeba,
    write_cifar10,
    write_idx_images,
    write_idx_labels,
    write_mnist,
    write_stl10,
)

import registry
from bench.config.spec import resolve
from bench.core.errors import UsageError
from bench.data import load_data


def cfg_for(dataset, root, **kw):
    return resolve({"dataset": dataset, "data_root": str(root), **kw})


@pytest.mark.parametrize("name", sorted(registry.DATASETS))
def test_every_registered_dataset_loads_in_its_declared_shape(tmp_path, monkeypatch, name):
    """Generated from the dataset registry, with each dataset's own fixture (`fixture=` at
    registration: a few images in its real on-disk format): the files load through the real
    loading code with the registered shape, uint8 pixels, non-empty splits, and labels or
    masks in range. A dataset made in memory has no fixture and no files."""
    entry = registry.dataset_entry(name)
    extra = entry.fixture(tmp_path, monkeypatch) if entry.fixture else None
    from bench.config.tasks import TASKS

    # the registered task whose targets are this kind of data (an autoencoder's: the images)
    task = next((n for n, t in sorted(TASKS.items()) if t.targets == entry.kind),
                next(n for n, t in sorted(TASKS.items()) if t.targets is None and t.corrupted))
    data = load_data(cfg_for(name, tmp_path, **(extra or {})), task)
    assert data.shape == entry.shape and data.kind == entry.kind
    for split in (data.train, data.val, data.test):
        assert len(split) > 0 and split.x.dtype == torch.uint8 and tuple(split.x.shape[1:]) == entry.shape
    if entry.kind == "labels":
        assert len(data.classes) == entry.num_classes
        assert 0 <= int(data.test.y.min()) and int(data.train.y.max()) < entry.num_classes
    if entry.kind == "masks":
        assert tuple(data.test.y.shape[1:]) == (1,) + entry.shape[1:]
        assert set(data.test.y.unique().tolist()) <= {0, 1}


def test_a_dataset_on_files_has_a_fixture_and_its_keys_are_its_own():
    """Every dataset read from files declares its fixture; a dataset's keys are offered for it
    alone: another dataset refuses them in one line."""
    for name, entry in registry.DATASETS.items():
        assert entry.fixture is not None or name.startswith("synthetic"), name
    with pytest.raises(UsageError, match="dataset mnist does not take it"):
        resolve({"dataset": "mnist", "color_mode": "random"})
    assert resolve({"dataset": "colored_mnist", "color_mode": "random"}).dataset_keys.color_mode == "random"


def test_mnist_idx_files(tmp_path):
    write_mnist(tmp_path, "MNIST", n_train=60, n_test=20)
    data = load_data(cfg_for("mnist", tmp_path))
    assert data.train.x.dtype == torch.uint8 and data.train.x.shape[1:] == (1, 28, 28)
    assert len(data.train) + len(data.val) == 60 and len(data.test) == 20
    written = np.frombuffer((tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").read_bytes()[8:], np.uint8)
    assert data.test.y.tolist() == written.tolist() and sorted(written.tolist()) == sorted(i % 10 for i in range(20))


def test_split_is_seeded_and_limits_apply(tmp_path):
    """The train/validation split is drawn by --split-seed alone: runs over --seed share their
    validation images (a CI over seeds measures training randomness), another split seed
    draws another split, and a run recorded before the key existed reads with its own seed."""
    from bench.config.spec import from_record

    write_mnist(tmp_path, "FashionMNIST", n_train=100, n_test=30)
    a = load_data(cfg_for("fashion_mnist", tmp_path, seed=1, limit_train=50, limit_test=10))
    b = load_data(cfg_for("fashion_mnist", tmp_path, seed=2, limit_train=50, limit_test=10))
    c = load_data(cfg_for("fashion_mnist", tmp_path, seed=1, split_seed=2, limit_train=50, limit_test=10))
    assert len(a.train) == 45 and len(a.val) == 5 and len(a.test) == 10
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.val.x, b.val.x)
    assert not torch.equal(a.train.x, c.train.x)
    older = {"model": "ae", "dataset": "fashion_mnist", "seed": 2, "data_root": str(tmp_path), "limit_train": 50}
    assert from_record(older)["split_seed"] == 2 and from_record(dict(older, split_seed=0))["split_seed"] == 0
    assert torch.equal(load_data(resolve(from_record(older))).val.x,
                       load_data(cfg_for("fashion_mnist", tmp_path, split_seed=2, limit_train=50)).val.x)


def test_colored_mnist_is_rgb_and_deterministic(tmp_path):
    write_mnist(tmp_path, "MNIST")
    a = load_data(cfg_for("colored_mnist", tmp_path, color_mode="class"))
    assert a.train.x.shape[1:] == (3, 28, 28)
    r = load_data(cfg_for("colored_mnist", tmp_path, color_mode="random"))
    r2 = load_data(cfg_for("colored_mnist", tmp_path, color_mode="random"))
    assert torch.equal(r.train.x, r2.train.x) and not torch.equal(a.train.x, r.train.x)


def test_debian_fashion_files_are_accepted(tmp_path, monkeypatch):
    raw = write_mnist(tmp_path / "src", "FashionMNIST", n_train=40, n_test=10)
    deb = tmp_path / "debian"
    deb.mkdir()
    for f in raw.iterdir():
        with open(f, "rb") as fin, gzip.open(deb / f"{f.name}.gz", "wb") as fout:
            shutil.copyfileobj(fin, fout)
    monkeypatch.setenv("AEBENCH_DEBIAN_FASHION_DIR", str(deb))
    (tmp_path / "empty_root").mkdir()  # a named data root exists; one that does not is refused (test_bad_input)
    data = load_data(cfg_for("fashion_mnist", tmp_path / "empty_root"))
    assert len(data.test) == 10


def test_cifar10_pickles_through_torchvision(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10

    base = write_cifar10(tmp_path, n_per_batch=8)
    trust_files(monkeypatch, CIFAR10, base)
    data = load_data(cfg_for("cifar10", tmp_path))
    assert data.train.x.shape[1:] == (3, 32, 32) and len(data.train) + len(data.val) == 40
    assert data.classes[3] == "cat"


def test_cifar10_unverified_files_are_refused(tmp_path):
    write_cifar10(tmp_path, n_per_batch=4)  # md5 sums do not match the real ones
    with pytest.raises(UsageError, match="cifar10"):
        load_data(cfg_for("cifar10", tmp_path))


def test_stl10_binary_splits(tmp_path, monkeypatch):
    from torchvision.datasets import STL10

    base = write_stl10(tmp_path)
    trust_files(monkeypatch, STL10, base)
    unl = load_data(cfg_for("stl10", tmp_path), task="reconstruct")
    assert len(unl.train) + len(unl.val) == 30 and unl.shape == (3, 96, 96)
    lab = load_data(cfg_for("stl10", tmp_path), task="classify")
    assert len(lab.train) + len(lab.val) == 20 and lab.test.y.max() <= 9


def test_celeba_attributes_and_resize(tmp_path, monkeypatch):
    from torchvision.datasets import CelebA

    base, attrs = write_celeba(tmp_path, n=12)
    trust_files(monkeypatch, CelebA, base)
    with pytest.raises(UsageError, match="fewer than the 30000 asked"):  # the CelebA assignment's subset, exactly
        load_data(cfg_for("celeba", tmp_path, label_attr="Smiling"))
    data = load_data(cfg_for("celeba", tmp_path, label_attr="Smiling", limit_train=8, limit_test=3))
    assert data.shape == (3, 64, 64)
    assert "Eyeglasses" in data.attr_names and len(data.test) == 3
    assert len(data.train) + len(data.val) == 8
    k = data.attr_names.index("Smiling")
    assert data.test.y.tolist() == ((attrs[8:11, k] + 1) // 2).tolist()
    with pytest.raises(UsageError, match="label-attr"):
        load_data(cfg_for("celeba", tmp_path, label_attr="Sunglasses", limit_train=8, limit_test=4))


def test_brain_tumor_folders(tmp_path):
    write_brain_tumor(tmp_path, n=10)
    data = load_data(cfg_for("brain_tumor", tmp_path))
    assert data.shape == (1, 240, 240) and data.test.y.shape[1:] == (1, 240, 240)
    assert set(data.test.y.unique().tolist()) <= {0, 1}


def test_missing_data_offline_names_the_folder(tmp_path):
    with pytest.raises(UsageError, match=str(tmp_path / "MNIST" / "raw")):
        load_data(cfg_for("mnist", tmp_path))


def test_truncated_idx_file_is_named(tmp_path):
    raw = write_mnist(tmp_path, "MNIST")
    f = raw / "t10k-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:1000])
    with pytest.raises(UsageError, match="t10k-images-idx3-ubyte"):
        load_data(cfg_for("mnist", tmp_path))


def test_real_fashion_mnist_smoke(tmp_path, fashion_root):
    """1 epoch of ae on 5,000 real images reaches PSNR above 15 dB."""
    from conftest import only_run, run_inproc

    code = run_inproc(["--model", "ae", "--dataset", "fashion_mnist", "--data-root", fashion_root,
                       "--epochs", 1, "--limit-train", 5000, "--limit-test", 1000, "--batch-size", 32,
                       "--runs-dir", tmp_path / "runs", "--wandb", "disabled"])
    assert code == 0
    summary = only_run(tmp_path).read_summary()
    assert summary["test/psnr"] > 15.0, summary["test/psnr"]


def test_decoded_dataset_is_cached_checked_and_refreshed(tmp_path, monkeypatch):
    """The first load decodes and stores uint8 tensors; the next reads them without decoding;
    an entry whose bytes do not match its size and SHA-256, or files that changed, decode anew."""
    from bench.data import mnist as vision

    monkeypatch.setenv("AEBENCH_CACHE", str(tmp_path / "cache"))
    write_mnist(tmp_path, "MNIST", n_train=60, n_test=20)
    decodes = []
    real = vision._decode_idx
    monkeypatch.setattr(vision, "_decode_idx", lambda *a: decodes.append(a) or real(*a))
    first = load_data(cfg_for("mnist", tmp_path))
    (entry,) = (tmp_path / "cache" / "data" / "decoded").glob("mnist-*.pt")
    again = load_data(cfg_for("mnist", tmp_path))
    assert len(decodes) == 1 and torch.equal(first.train.x, again.train.x) and torch.equal(first.test.y, again.test.y)
    data = bytearray(entry.read_bytes())
    data[-100] ^= 0xFF  # same size, other bytes
    entry.write_bytes(bytes(data))
    assert torch.equal(load_data(cfg_for("mnist", tmp_path)).train.x, first.train.x) and len(decodes) == 2
    write_mnist(tmp_path, "MNIST", n_train=80, n_test=20, seed=1)  # the files change
    changed = load_data(cfg_for("mnist", tmp_path))
    assert len(decodes) == 3 and len(changed.train) + len(changed.val) == 80


def _short_labels(raw):
    write_idx_labels(raw / "train-labels-idx1-ubyte", np.arange(40) % 10)  # 60 images, 40 labels


def _label_200(raw):
    write_idx_labels(raw / "t10k-labels-idx1-ubyte", np.array([200] + [1] * 19))


def _small_test_images(raw):
    write_idx_images(raw / "t10k-images-idx3-ubyte", np.zeros((20, 32, 32), np.uint8))


@pytest.mark.parametrize("damage,needle", [(_short_labels, "60 images but 40 labels"),
                                           (_label_200, "labels from 1 to 200; mnist has 10 classes"),
                                           (_small_test_images, "images of shape (1, 32, 32)")],
                         ids=["short labels", "label 200", "32x32 test images"])
def test_damaged_files_are_refused_before_a_run_exists(tmp_path, capsys, damage, needle):
    """Counts, shapes and label ranges are checked when the data loads: one line, exit 2, no run."""
    from conftest import run_inproc

    damage(write_mnist(tmp_path, "MNIST", n_train=60, n_test=20))
    code = run_inproc(["--model", "cnn_classifier", "--dataset", "mnist", "--data-root", tmp_path, "--epochs", 1,
                       "--runs-dir", tmp_path / "runs", "--wandb", "disabled"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0], err
    assert not (tmp_path / "runs").exists()
