"""Latent arithmetic: class means (dog - cat + bird) and attribute directions z + alpha v."""
from __future__ import annotations

import torch

from bench.core.errors import UsageError
from bench.data import batches
from bench.measure.figures import image_rows
from bench.tools import register_tool
from bench.tools._latent import decoder, images

ALPHAS = (-2.0, 0.0, 2.0, 4.0)


def _class_means(model, split, device):
    z, y = [], []
    model.eval()
    for xb, yb in batches(split.take(torch.arange(min(len(split), 10000))), 500):
        z.append(model.encode(xb.to(device)).flatten(1))
        y.append(yb.to(device))
    return torch.cat(z), torch.cat(y)


@register_tool(needs={"labels", "decoder"}, rank=4)
@torch.no_grad()
def arith(model, data, spec, run, device):
    """Class-mean arithmetic (dog - cat + bird) and attribute directions z + alpha v."""
    decode = decoder(model, "arith")
    if data.kind != "labels":
        raise UsageError(f"eval arith: needs labels; {data.name} has {data.kind}")
    z, y = _class_means(model, data.train, device)
    shape = model.encode(images(data.test, torch.arange(1), device)).shape[1:]
    names = [str(c).lower() for c in data.classes]
    present = [c for c in range(data.num_classes) if bool((y == c).any())]
    if {"dog", "cat", "bird"} <= set(names):
        pick = [names.index(n) for n in ("dog", "cat", "bird")]
    elif len(present) >= 3:
        pick = present[:3]
    elif len(present) == 2:  # binary labels (CelebA's Smiling): a - b + b's mean is a's mean; show a - b + x
        pick = present
    else:
        raise UsageError(f"eval arith: needs at least two classes in the training split; {data.name} has "
                         f"{len(present)}")
    labels = [data.classes[c] if data.classes else str(c) for c in pick]
    means = torch.stack([z[y == c].mean(0) for c in pick])
    if len(pick) == 3:
        result = means[0] - means[1] + means[2]
        titles = [f"mean {labels[0]}", f"- {labels[1]}", f"+ {labels[2]}", "= result"]
        caption = f"{labels[0]} - {labels[1]} + {labels[2]}"
        imgs = decode(torch.cat([means, result[None]]).view(-1, *shape))
    else:
        hits = (data.test.y == pick[1]).nonzero()
        j = int(hits[0]) if len(hits) else 0
        zx = model.encode(images(data.test, torch.tensor([j]), device)).flatten(1)[0]
        result = zx + means[0] - means[1]
        titles = [f"mean {labels[0]}", f"- mean {labels[1]}", f"+ a test image ({labels[1]})", "= result"]
        caption = f"mean {labels[0]} - mean {labels[1]} + an image of {labels[1]}"
        imgs = decode(torch.stack([means[0], means[1], zx, result]).view(-1, *shape))
    figs = {"arithmetic": image_rows([("class means", imgs)], run.figures / "arithmetic.png", caption, titles)}

    if "Eyeglasses" in data.attr_names and data.train.attrs is not None:
        k = data.attr_names.index("Eyeglasses")
        attr_train = data.train.attrs[: len(y), k].to(device)
        attr_test = data.test.attrs[:, k]
        attr_name = "Eyeglasses"
    else:  # datasets without attributes: membership of a class is the attribute
        attr_train, attr_test, attr_name = (y == pick[0]).long(), (data.test.y == pick[0]).long(), labels[0]
    if not (bool((attr_train == 1).any()) and bool((attr_train == 0).any()) and bool((attr_test == 0).any())):
        raise UsageError(f"eval arith: attribute {attr_name} needs images with and without it in train and test")
    v = z[attr_train == 1].mean(0) - z[attr_train == 0].mean(0)
    i = int((attr_test == 0).nonzero()[0])
    z0 = model.encode(images(data.test, torch.tensor([i]), device)).flatten(1)
    alphas = torch.tensor(ALPHAS, device=device).view(-1, 1)
    edits = decode((z0 + alphas * v).view(-1, *shape))
    figs["attribute_direction"] = image_rows(
        [(f"+ alpha v({attr_name})", edits)], run.figures / "attribute_direction.png",
        f"z + alpha * (mean z[{attr_name}] - mean z[not {attr_name}])", [f"alpha={a:g}" for a in ALPHAS])
    return {"numbers": {"arith/direction_norm": float(v.norm()), "arith/attribute": attr_name}, "figures": figs}
