"""Occlusion heatmaps: what matters for reconstruction; error against mask ratio for masked models."""
from __future__ import annotations

import torch

from bench.measure import metrics
from bench.measure.figures import plt, save_figure
from bench.tools import register_tool
from bench.tools._latent import images


@register_tool(needs={"autoencoder"}, rank=6)
@torch.no_grad()
def occlusion(model, data, spec, run, device, n_images=4):
    """Rise in reconstruction error when a gray patch hides each region (what matters);
    for masked models also reconstruction error against the feature-mask ratio."""
    model.eval()
    x = images(data.test, torch.arange(n_images), device)
    _, c, h, w = x.shape
    patch = max(2, h // 7)
    base = ((model(x)["recon"] - x) ** 2).flatten(1).mean(1)
    heat = torch.zeros(n_images, (h + patch - 1) // patch, (w + patch - 1) // patch)
    for i in range(0, h, patch):
        for j in range(0, w, patch):
            occ = x.clone()
            occ[:, :, i:i + patch, j:j + patch] = 0.5
            err = ((model(occ)["recon"] - x) ** 2).flatten(1).mean(1)
            heat[:, i // patch, j // patch] = (err - base).cpu()
    fig, axes = plt.subplots(2, n_images, figsize=(2.2 * n_images, 4.4), squeeze=False)
    for k in range(n_images):
        img = x[k].cpu().permute(1, 2, 0).numpy()
        axes[0][k].imshow(img[..., 0] if c == 1 else img, cmap="gray" if c == 1 else None)
        axes[1][k].imshow(img[..., 0] if c == 1 else img, cmap="gray" if c == 1 else None)
        shown = axes[1][k].imshow(heat[k].numpy(), cmap="inferno", alpha=0.6, extent=(0, w, h, 0),
                                  interpolation="nearest", vmin=float(heat.min()), vmax=float(heat.max()))
        for ax in (axes[0][k], axes[1][k]):
            ax.axis("off")
    fig.colorbar(shown, ax=list(axes[1]), shrink=0.8, label="rise in MSE")
    fig.suptitle(f"occlusion heatmaps ({patch}x{patch} gray patch): rise in reconstruction MSE", fontsize=9)
    figs = {"occlusion": run.figures / "occlusion.png"}
    save_figure(fig, figs["occlusion"])
    numbers = {"occlusion/max_rise": float(heat.max()), "occlusion/mean_rise": float(heat.mean())}
    if model.mask_ratio > 0:
        numbers.update(_mask_ratio_curve(model, data, device, run, figs))
    return {"numbers": numbers, "figures": figs}


def _mask_ratio_curve(model, data, device, run, figs, ratios=(0.0, 0.25, 0.5, 0.75)):
    trained = model.mask_ratio
    out = {}
    for r in ratios:
        with model.masked_eval(r):
            torch.manual_seed(0)
            out[f"occlusion/mse@mask{r:g}"] = metrics.reconstruction(model, data.test, device)["mse"]
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.plot(ratios, [out[f"occlusion/mse@mask{r:g}"] for r in ratios], "-o")
    ax.set_xlabel("feature-map mask ratio at test time")
    ax.set_ylabel("test MSE")
    ax.set_title(f"reconstruction vs mask ratio (trained at {trained:g})", fontsize=9)
    figs["mask_ratio_curve"] = run.figures / "mask_ratio_curve.png"
    fig.tight_layout()
    save_figure(fig, figs["mask_ratio_curve"])
    return out
