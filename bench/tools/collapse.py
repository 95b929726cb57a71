"""Posterior-collapse signals: active units for any autoencoder, KL per dimension for a VAE."""
from __future__ import annotations

import numpy as np
import torch

from bench.data import batches
from bench.measure.figures import plt, save_figure
from bench.tools import register_tool

ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. 2015: Cov_x(E[z|x]) > 0.01


@register_tool(needs={"autoencoder"}, rank=7)
@torch.no_grad()
def collapse(model, data, spec, run, device):
    """Active units (Burda et al. 2015: Var_x E[z_u|x] > 0.01), for any autoencoder; for a
    VAE also the KL per latent dim and the posterior-collapse flag, which only a stochastic
    encoder gets (a sparse code with few active units is what a sparse AE asks for). One
    definition serves the numbers and the figure: a unit is active or collapsed, never both."""
    from bench.models.vae import kl_per_dim

    model.eval()
    codes, kls, n = [], 0.0, 0
    for x, _ in batches(data.test, 500):
        x = x.to(device)
        if model.is_variational:
            mu, logvar = model.posterior(x)
            kls = kls + kl_per_dim(mu, logvar).cpu() * x.shape[0]
        else:
            mu = model.encode(x)
        codes.append(mu.flatten(1).float().cpu())
        n += x.shape[0]
    var = torch.cat(codes).var(0).numpy()
    active_mask = var > ACTIVE_UNIT_THRESHOLD
    active, d = int(active_mask.sum()), len(var)
    colours = ["tab:blue" if a else "tab:red" for a in active_mask]
    numbers = {"collapse/active_units": active, "collapse/latent_dim": d, "collapse/collapsed_dims": d - active}
    fig, ax = plt.subplots(figsize=(7, 3.2))
    if model.is_variational:
        kl = (kls / n).numpy()
        ax.bar(np.arange(d), kl, color=colours)
        ax.set_ylabel("KL (nats)")
        numbers.update({"collapse/kl_total": float(kl.sum()), "collapse/kl_min_dim": float(kl.min()),
                        "collapse/posterior_collapse": bool(active == 0 or kl.mean() < ACTIVE_UNIT_THRESHOLD)})
        what = "KL per dimension"
    else:
        ax.bar(np.arange(d), var, color=colours)
        ax.set_ylabel("Var over test images")
        what = "variance of each latent unit"
    ax.set_xlabel("latent dimension")
    ax.set_title(f"{what}; {active}/{d} active units (Var_x E[z|x] > {ACTIVE_UNIT_THRESHOLD:g}; red: inactive)",
                 fontsize=9)
    fig.tight_layout()
    return {"numbers": numbers, "figures": {"kl_per_dim" if model.is_variational else "unit_variance":
                                            save_figure(fig, run.figures / "kl_per_dim.png")}}
