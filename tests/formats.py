"""Writers of tiny datasets in the exact on-disk formats torchvision reads.

The torchvision classes that verify md5 sums (CIFAR10, STL10, CelebA) get their
checksum tables pointed at the files written here (`trust_files`), so the real loading
code runs unchanged on them.
"""
import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np


def md5(path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def learnable_images(labels, size, channels, seed=0) -> np.ndarray:
    """(N, H, W, C) uint8 images whose content follows the label (a shape per class on a
    ramp, from the `synthetic` generator): a model can learn them, unlike noise."""
    from bench.data.synthetic import shapes

    labels = np.asarray(labels)
    x, y, _ = shapes(max(40, 4 * len(labels)), size, channels, seed)
    pools = {c: (y == c).nonzero().flatten().tolist() for c in range(10)}
    idx = [pools[int(c) % 10][i % len(pools[int(c) % 10])] for i, c in enumerate(labels)]
    return x[idx].permute(0, 2, 3, 1).numpy()


def write_idx_images(path, images: np.ndarray):
    n, h, w = images.shape
    Path(path).write_bytes(struct.pack(">IIII", 0x00000803, n, h, w) + images.astype(np.uint8).tobytes())


def write_idx_labels(path, labels: np.ndarray):
    Path(path).write_bytes(struct.pack(">II", 0x00000801, len(labels)) + labels.astype(np.uint8).tobytes())


def write_mnist(root, folder="MNIST", n_train=60, n_test=20, seed=0):
    rng = np.random.default_rng(seed)
    raw = Path(root) / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.permutation(np.arange(n) % 10)
        write_idx_images(raw / f"{split}-images-idx3-ubyte", learnable_images(labels, 28, 1, seed)[..., 0])
        write_idx_labels(raw / f"{split}-labels-idx1-ubyte", labels)
    return raw


def write_cifar10(root, n_per_batch=10, seed=0):
    rng = np.random.default_rng(seed)
    base = Path(root) / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        labels = rng.permutation(np.arange(n_per_batch) % 10)
        data = learnable_images(labels, 32, 3, seed).transpose(0, 3, 1, 2).reshape(n_per_batch, 3072)
        entry = {"data": np.ascontiguousarray(data), "labels": [int(v) for v in labels], "batch_label": name}
        with open(base / name, "wb") as f:
            pickle.dump(entry, f)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                     "horse", "ship", "truck"]}, f)
    return base


def write_stl10(root, n_train=20, n_test=10, n_unlabeled=30, seed=0):
    rng = np.random.default_rng(seed)
    base = Path(root) / "stl10_binary"
    base.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", n_train), ("test", n_test), ("unlabeled", n_unlabeled)):
        labels = rng.permutation(np.arange(n) % 10)
        # STL-10 stores each image column-major: (N, C, W, H); torchvision transposes it back.
        x = learnable_images(labels, 96, 3, seed).transpose(0, 3, 2, 1)
        (base / f"{name}_X.bin").write_bytes(np.ascontiguousarray(x).tobytes())
        if name != "unlabeled":
            (base / f"{name}_y.bin").write_bytes((labels + 1).astype(np.uint8).tobytes())
    (base / "class_names.txt").write_text("\n".join(["airplane", "bird", "car", "cat", "deer", "dog",
                                                     "horse", "monkey", "ship", "truck"]) + "\n")
    return base


CELEBA_ATTRS = ["5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
                "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
                "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones",
                "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin",
                "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair",
                "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace",
                "Wearing_Necktie", "Young"]


def write_celeba(root, n=12, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = Path(root) / "celeba"
    img_dir = base / "img_align_celeba"
    img_dir.mkdir(parents=True, exist_ok=True)
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    attrs = np.where(rng.random((n, 40)) > 0.5, 1, -1)
    smiling, glasses = CELEBA_ATTRS.index("Smiling"), CELEBA_ATTRS.index("Eyeglasses")
    for name, row in zip(names, attrs):
        # A face-like layout the attributes change: a bright mouth when smiling, a dark band of glasses.
        img = np.full((218, 178, 3), 120, np.uint8) + rng.integers(0, 20, (218, 178, 3), dtype=np.uint8)
        img[40:180, 30:150] = (200, 170, 150)
        if row[smiling] > 0:
            img[140:155, 55:125] = 250
        if row[glasses] > 0:
            img[80:95, 40:140] = 20
        Image.fromarray(img).save(img_dir / name)
    part = ["0"] * (n - n // 3) + ["2"] * (n // 3)
    (base / "list_eval_partition.txt").write_text("".join(f"{a} {p}\n" for a, p in zip(names, part)))
    (base / "identity_CelebA.txt").write_text("".join(f"{a} {i}\n" for i, a in enumerate(names)))
    (base / "list_attr_celeba.txt").write_text(
        f"{n}\n" + " ".join(CELEBA_ATTRS) + "\n"
        + "".join(a + " " + " ".join(f"{v:2d}" for v in row) + "\n" for a, row in zip(names, attrs)))
    (base / "list_bbox_celeba.txt").write_text(
        f"{n}\nimage_id x_1 y_1 width height\n" + "".join(f"{a} 1 2 3 4\n" for a in names))
    (base / "list_landmarks_align_celeba.txt").write_text(
        f"{n}\nlefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y "
        f"rightmouth_x rightmouth_y\n" + "".join(f"{a} " + " ".join(["50"] * 10) + "\n" for a in names))
    return base, attrs


def write_brain_tumor(root, n=10, size=100, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = Path(root) / "brain_tumor"
    (base / "images").mkdir(parents=True, exist_ok=True)
    (base / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        mask = np.zeros((size, size), dtype=np.uint8)
        top, left = 10 + (7 * i) % (size // 2), 15 + (11 * i) % (size // 2)
        mask[top:top + 20 + i % 10, left:left + 20] = 255
        # A bright lesion on textured tissue: the mask can be learned from the image.
        img = (rng.integers(40, 110, (size, size)) + (mask > 0) * 120).astype(np.uint8)
        Image.fromarray(img).save(base / "images" / f"case{i:03d}.png")
        Image.fromarray(mask).save(base / "masks" / f"case{i:03d}_mask.png")
    return base


class Patch:
    """`setattr` for code outside pytest (the acceptance test's sitecustomize)."""

    @staticmethod
    def setattr(obj, name, value):
        setattr(obj, name, value)


def trust_files(monkeypatch, cls, base: Path):
    """Point a torchvision class's md5 table at the files a test wrote."""
    if hasattr(cls, "file_list"):  # CelebA: (id, md5, name)
        monkeypatch.setattr(cls, "file_list", [(i, md5(base / n) if (base / n).exists() else m, n)
                                               for i, m, n in cls.file_list])
        return
    for attr in ("train_list", "test_list"):
        monkeypatch.setattr(cls, attr, [[n, md5(base / n)] for n, _ in getattr(cls, attr)])
    if isinstance(getattr(cls, "meta", None), dict):
        monkeypatch.setattr(cls, "meta", dict(cls.meta, md5=md5(base / cls.meta["filename"])))
