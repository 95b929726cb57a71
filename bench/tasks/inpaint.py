"""Inpaint: fill in the masked centre of an image from what surrounds it (Pathak et al. 2016,
"Context Encoders", arXiv 1604.07379, without the adversarial term), scored on the hole alone
(`test/hole_mse`, `test/hole_psnr`) as well as on the whole image.

This file is the whole task: the task itself, and `inpaint_ae`, the conv autoencoder that
trains it (the `ae` architecture, whose every input has a centred square of side `--hole`
times the image side set to grey, trained with the squared error over the whole image).
"""
from __future__ import annotations

from dataclasses import dataclass

from bench.config.keys import key
from bench.config.tasks import register_task
from bench.models.conv_ae import ConvAE, ConvAEConfig
from registry import register_model

HOLE_FILL = 0.5  # the masked square's grey


def hole_mask(x, hole: float):
    """(1, 1, H, W) mask, 1 on the centred square of side round(hole * side)."""
    import torch

    h, w = x.shape[-2:]
    sh, sw = max(1, round(hole * h)), max(1, round(hole * w))
    m = torch.zeros(1, 1, h, w, device=x.device, dtype=x.dtype)
    m[..., (h - sh) // 2:(h - sh) // 2 + sh, (w - sw) // 2:(w - sw) // 2 + sw] = 1
    return m


@dataclass
class InpaintConfig(ConvAEConfig):
    """conv autoencoder that inpaints the centre (inpaint_ae)"""
    hole: float = key(0.5, "side of the masked centre square as a share of the image side (inpainting)",
                      lo=0.05, hi=0.9)


class InpaintAE(ConvAE):
    def model_input(self, x):
        """The image with its centre greyed out, in training and at test alike (then corrupted,
        if the model also denoises)."""
        m = hole_mask(x, self.cfg.hole)
        return super().model_input(x * (1 - m) + HOLE_FILL * m)

    def forward(self, x, y=None):
        out = super().forward(x, y)
        m = hole_mask(x, self.cfg.hole)
        out["hole_mse"] = (((out["recon"] - x) ** 2) * m).sum().detach() / (m.sum() * x.shape[0] * x.shape[1])
        return out


@register_model(config=InpaintConfig, task="inpaint")
def inpaint_ae(cfg):
    """Conv AE that fills in a greyed-out centre square (context encoder without the GAN term)."""
    return InpaintAE(cfg)


def evaluate(model, data, spec, device) -> dict:
    import torch

    from bench.data import batches
    from bench.tasks.reconstruct import evaluate as whole_image

    res = whole_image(model, data, spec, device)  # the reconstruction numbers, the model's terms, the collapse rule
    mse = []
    with torch.no_grad():
        for xb, _ in batches(data.test, 500):
            x = xb.to(device)
            m = hole_mask(x, model.cfg.hole)
            err = ((model(x)["recon"].float() - x) ** 2 * m).sum((1, 2, 3)) / (m.sum() * x.shape[1])
            mse.append(err.cpu())
    mse = torch.cat(mse)
    res["test/hole_mse"] = float(mse.mean())
    res["test/hole_psnr"] = float((10 * torch.log10(1 / mse.clamp_min(1e-10))).mean())
    return res


def figure(model, data, spec, device, path):
    import torch

    from bench.core.tensors import to_float
    from bench.measure import grids
    from bench.run.evaluate import shown_images

    model.eval()
    with torch.no_grad():
        x = to_float(data.test.x[shown_images(len(data.test)).to(data.test.x.device)].to(device))
        m = hole_mask(x, model.cfg.hole)
        rows = [("original", x), ("masked input", x * (1 - m) + HOLE_FILL * m), ("inpainted", model(x)["recon"])]
    return grids.image_rows(rows, path, grids.run_title(spec))


register_task("inpaint", targets=None, test_keys=frozenset({"mse", "mae", "psnr", "ssim", "snr", "hole_mse",
                                                             "hole_psnr"}),
              autoencoder=True, evaluate=evaluate, output=lambda x, num_classes: ("recon", tuple(x.shape)),
              figure=figure, description="fill in the masked centre of the image (MSE, PSNR on the hole)")
