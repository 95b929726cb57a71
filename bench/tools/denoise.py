"""The denoising matrix: test metrics at each noise level against the noisy input itself."""
from __future__ import annotations

import torch

from bench.measure import metrics
from bench.measure.figures import image_rows, run_title
from bench.tools import register_tool
from bench.tools._latent import images


@register_tool(needs={"autoencoder"}, rank=2)
@torch.no_grad()
def denoise(model, data, spec, run, device):
    """PSNR/SSIM/MSE/MAE on test inputs corrupted at each sigma, vs the noisy input itself."""
    from bench.core.progress import Steps

    rows, numbers, fig_rows = [], {}, []
    x = images(data.test, torch.arange(8), device)
    step = Steps("denoise", {f"{sigma:g}": 1.0 for sigma in spec.eval_sigmas})  # one test pass per sigma
    for sigma in spec.eval_sigmas:
        step(f"{sigma:g}", f"{len(data.test):,} test images at sigma {sigma:g}")
        m = metrics.reconstruction(model, data.test, device, sigma=sigma, seed=spec.seed, with_input=True)
        rows.append([sigma] + [m[k] for k in ("mse", "mae", "psnr", "ssim", "input_psnr")])
        for k in ("mse", "mae", "psnr", "ssim"):
            numbers[f"denoise/{k}@{sigma:g}"] = m[k]
        numbers[f"denoise/input_psnr@{sigma:g}"] = m["input_psnr"]
        g = torch.Generator(device=device).manual_seed(spec.seed)
        noisy = model.corrupt(x, g, sigma=sigma) if sigma > 0 else x
        model.eval()
        fig_rows += [(f"noisy s={sigma:g}", noisy), (f"recon s={sigma:g}", model(noisy)["recon"])]
    path = image_rows([("original", x)] + fig_rows, run.figures / "denoise_matrix.png",
                      f"{run_title(spec)}: original / noisy / reconstructed at each sigma")
    cols = ["sigma", "mse", "mae", "psnr", "ssim", "noisy_input_psnr"]
    return {"numbers": numbers, "figures": {"denoise_matrix": path}, "tables": {"denoise_matrix": (cols, rows)}}
