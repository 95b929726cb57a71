"""CelebA: faces resized and cropped to 64x64, one of its 40 attributes as the label."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.config.keys import DatasetConfig, key
from bench.core.errors import UsageError
from bench.data import Source, Split
from bench.data.vision import open_dataset, trust_written
from bench.records.checkpoint import save
from registry import register_dataset


@dataclass
class CelebAConfig(DatasetConfig):
    """celeba's keys"""
    label_attr: str = key("Smiling", "the attribute used as the label (one of CelebA's 40, e.g. Eyeglasses)")


CELEBA_ATTRS = ["5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
                "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
                "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones",
                "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin",
                "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair",
                "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace",
                "Wearing_Necktie", "Young"]


def write_celeba(root, n=12, seed=0):
    """img_align_celeba JPEGs and the five list files, of a face-like layout the attributes change."""
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


def _files(root, patch):
    from torchvision.datasets import CelebA

    base, _ = write_celeba(root, n=12)
    trust_written(patch, CelebA, base)
    return {"limit_train": 8, "limit_test": 3}


CELEBA_SIZE = 64
CELEBA_SUBSET = (30000, 5000)  # the CelebA assignment: exactly 30k train / 5k test images


def _celeba_split(root, split, n, size):
    from torchvision import transforms
    from torchvision.datasets import CelebA
    cache = Path(root) / "celeba" / f"aebench_{split}_{size}_{n}.pt"
    if cache.exists():
        return torch.load(cache, weights_only=True)
    tf = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size), transforms.PILToTensor()])
    ds = open_dataset("celeba", lambda dl: CelebA(root, split=split, target_type="attr", transform=tf, download=dl),
               root, "https://drive.google.com", os.path.join(root, "celeba"))
    if len(ds) < n:
        flag = "--limit-train" if split == "train" else "--limit-test"
        raise UsageError(f"celeba: the {split} split has {len(ds)} images, fewer than the {n} asked "
                         f"(the CelebA assignment's subset is {CELEBA_SUBSET[0]}/{CELEBA_SUBSET[1]}); pass {flag} {len(ds)}")
    xs, attrs = torch.empty(n, 3, size, size, dtype=torch.uint8), ds.attr[:n].long()
    for i in range(n):
        try:
            xs[i] = ds[i][0]
        except Exception as e:
            raise UsageError(f"celeba: cannot decode {ds.filename[i]} ({type(e).__name__})") from None
    out = {"x": xs, "attrs": attrs, "names": list(ds.attr_names[:40])}
    try:
        save(cache, out)
    except OSError:
        pass  # read-only data root: decode again next time
    return out


@register_dataset(shape=(3, 64, 64), num_classes=2, config=CelebAConfig, fixture=_files)
def celeba(spec, task):
    """CelebA faces resized+cropped to 64x64, 30k/5k subset, label = --label-attr (40 attrs)."""
    n_train = spec.limit_train or CELEBA_SUBSET[0]
    n_test = spec.limit_test or CELEBA_SUBSET[1]
    tr = _celeba_split(spec.data_root, "train", n_train, CELEBA_SIZE)
    te = _celeba_split(spec.data_root, "test", n_test, CELEBA_SIZE)
    names = tr["names"]
    if spec.label_attr not in names:
        raise UsageError(f"celeba: unknown --label-attr {spec.label_attr!r}; valid: {', '.join(names)}")
    k = names.index(spec.label_attr)
    return Source(Split(tr["x"], tr["attrs"][:, k], tr["attrs"]), Split(te["x"], te["attrs"][:, k], te["attrs"]),
                  [f"not {spec.label_attr}", spec.label_attr], names)
