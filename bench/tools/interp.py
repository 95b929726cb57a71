"""Latent interpolation between two test images of different classes."""
from __future__ import annotations

import torch

from bench.measure.figures import image_rows
from bench.tools import register_tool
from bench.tools._latent import decoder, images


def _two_classes(split):
    y = split.y
    a = 0
    b = int((y != y[a]).nonzero()[0])
    return a, b


@register_tool(needs={"decoder"}, rank=3)
@torch.no_grad()
def interp(model, data, spec, run, device, steps=10):
    """Decode (1-t) z_a + t z_b between two test images of different classes."""
    decode = decoder(model, "interp")
    model.eval()
    a, b = _two_classes(data.test) if data.kind == "labels" else (0, 1)
    x = images(data.test, torch.tensor([a, b]), device)
    z = model.encode(x)
    t = torch.linspace(0, 1, steps, device=device).view(-1, *([1] * (z.dim() - 1)))
    path_imgs = decode((1 - t) * z[:1] + t * z[1:2])
    recon = model(x)["recon"]
    end_err = float(((path_imgs[[0, -1]] - recon) ** 2).mean())
    fig = image_rows([("inputs", x), ("interpolation", path_imgs)], run.figures / "interpolation.png",
                     f"latent interpolation, t = 0 ... 1 in {steps} steps")
    return {"numbers": {"interp/endpoint_mse": end_err}, "figures": {"interpolation": fig},
            "arrays": {"path": path_imgs.cpu(), "recon": recon.cpu()}}
