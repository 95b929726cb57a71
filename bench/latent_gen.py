"""Latent tools that decode: denoising matrix, interpolation, arithmetic, sampling, occlusion.

Sample quality is a Frechet distance in the features of one classifier per dataset,
shared by every run on it (`bench.sample_quality`). Smaller means closer to the data; it
is not comparable to Inception-FID numbers from papers.
"""
from __future__ import annotations

import numpy as np
import torch

from bench import metrics
from bench.data import batches
from bench.errors import UsageError
from bench.tools import register_tool
from bench.figures import image_grids, image_rows, plt, run_title

N_SAMPLES_SHOWN = 16
N_SAMPLES_SCORED = 2000
ALPHAS = (-2.0, 0.0, 2.0, 4.0)


def _decoder(model, tool):
    if not model.can_decode:
        raise UsageError(f"eval {tool}: {type(model).__name__} has no decode(z) (max-unpool decoders need "
                         f"the encoder's indices); valid: models with a latent decoder such as ae, vae, mlp_vae")
    return model.decode


def _imgs(split, idx, device):
    return split.x[idx].to(device).float() / 255


@register_tool(needs={"autoencoder"}, rank=2)
@torch.no_grad()
def denoise(model, data, cfg, run, device):
    """PSNR/SSIM/MSE/MAE on test inputs corrupted at each sigma, vs the noisy input itself."""
    rows, numbers, fig_rows = [], {}, []
    x = _imgs(data.test, torch.arange(8), device)
    for sigma in cfg.eval_sigmas:
        m = metrics.reconstruction(model, data.test, device, sigma=sigma, seed=cfg.seed, with_input=True)
        rows.append([sigma] + [m[k] for k in ("mse", "mae", "psnr", "ssim", "input_psnr")])
        for k in ("mse", "mae", "psnr", "ssim"):
            numbers[f"denoise/{k}@{sigma:g}"] = m[k]
        numbers[f"denoise/input_psnr@{sigma:g}"] = m["input_psnr"]
        g = torch.Generator(device=device).manual_seed(cfg.seed)
        noisy = model.corrupt(x, g, sigma=sigma) if sigma > 0 else x
        model.eval()
        fig_rows += [(f"noisy s={sigma:g}", noisy), (f"recon s={sigma:g}", model(noisy)["recon"])]
    path = image_rows([("original", x)] + fig_rows, run.figures / "denoise_matrix.png",
                      f"{run_title(cfg)}: original / noisy / reconstructed at each sigma")
    cols = ["sigma", "mse", "mae", "psnr", "ssim", "noisy_input_psnr"]
    return {"numbers": numbers, "figures": {"denoise_matrix": path}, "tables": {"denoise_matrix": (cols, rows)}}


def _two_classes(split):
    y = split.y
    a = 0
    b = int((y != y[a]).nonzero()[0])
    return a, b


@register_tool(needs={"decoder"}, rank=3)
@torch.no_grad()
def interp(model, data, cfg, run, device, steps=10):
    """Decode (1-t) z_a + t z_b between two test images of different classes."""
    decode = _decoder(model, "interp")
    model.eval()
    a, b = _two_classes(data.test) if data.kind == "labels" else (0, 1)
    x = _imgs(data.test, torch.tensor([a, b]), device)
    z = model.encode(x)
    t = torch.linspace(0, 1, steps, device=device).view(-1, *([1] * (z.dim() - 1)))
    path_imgs = decode((1 - t) * z[:1] + t * z[1:2])
    recon = model(x)["recon"]
    end_err = float(((path_imgs[[0, -1]] - recon) ** 2).mean())
    fig = image_rows([("inputs", x), ("interpolation", path_imgs)], run.figures / "interpolation.png",
                     f"latent interpolation, t = 0 ... 1 in {steps} steps")
    return {"numbers": {"interp/endpoint_mse": end_err}, "figures": {"interpolation": fig},
            "arrays": {"path": path_imgs.cpu(), "recon": recon.cpu()}}


def _class_means(model, split, device):
    z, y = [], []
    model.eval()
    for xb, yb in batches(split.take(torch.arange(min(len(split), 10000))), 500):
        z.append(model.encode(xb.to(device)).flatten(1))
        y.append(yb.to(device))
    return torch.cat(z), torch.cat(y)


@register_tool(needs={"labels", "decoder"}, rank=4)
@torch.no_grad()
def arith(model, data, cfg, run, device):
    """Class-mean arithmetic (dog - cat + bird) and attribute directions z + alpha v."""
    decode = _decoder(model, "arith")
    if data.kind != "labels":
        raise UsageError(f"eval arith: needs labels; {data.name} has {data.kind}")
    z, y = _class_means(model, data.train, device)
    shape = model.encode(_imgs(data.test, torch.arange(1), device)).shape[1:]
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
        zx = model.encode(_imgs(data.test, torch.tensor([j]), device)).flatten(1)[0]
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
    z0 = model.encode(_imgs(data.test, torch.tensor([i]), device)).flatten(1)
    alphas = torch.tensor(ALPHAS, device=device).view(-1, 1)
    edits = decode((z0 + alphas * v).view(-1, *shape))
    figs["attribute_direction"] = image_rows(
        [(f"+ alpha v({attr_name})", edits)], run.figures / "attribute_direction.png",
        f"z + alpha * (mean z[{attr_name}] - mean z[not {attr_name}])", [f"alpha={a:g}" for a in ALPHAS])
    return {"numbers": {"arith/direction_norm": float(v.norm()), "arith/attribute": attr_name}, "figures": figs}


@torch.no_grad()
def latent_codes(model, split, device, limit=20000) -> np.ndarray:
    """Codes of training images as float64 (N, D): the posterior mean for a VAE, z otherwise."""
    model.eval()
    out = []
    for x, _ in batches(split.take(torch.arange(min(len(split), limit))), 500):
        x = x.to(device)
        z = model.posterior(x)[0] if model.is_variational else model.encode(x)
        out.append(z.flatten(1).double().cpu())
    return torch.cat(out).numpy()


@register_tool(needs={"labels", "decoder"}, rank=5)
@torch.no_grad()
def sample(model, data, cfg, run, device):
    """Decoded samples and their Frechet distance to test images: from a Gaussian fitted to
    the training codes and from a 10-component GMM (ex-post density estimation, Ghosh et al.
    arXiv 1903.12436, for any autoencoder), and for a VAE also from its prior N(0, I)."""
    from sklearn.mixture import GaussianMixture

    from bench.sample_quality import feature_network, frechet

    decode = _decoder(model, "sample")
    shape = model.encode(_imgs(data.test, torch.arange(1), device)).shape[1:]
    mu = latent_codes(model, data.train, device)
    n, d = mu.shape
    rng = np.random.default_rng(cfg.seed)
    mean, cov = mu.mean(0), np.cov(mu, rowvar=False) + 1e-6 * np.eye(d)
    draws = {}
    if model.is_variational:
        draws["prior"] = rng.standard_normal((N_SAMPLES_SCORED, d))
    draws["ex_post"] = rng.multivariate_normal(mean, cov, N_SAMPLES_SCORED)
    gmm = GaussianMixture(n_components=min(10, n), covariance_type="full", reg_covar=1e-5,
                          random_state=cfg.seed).fit(mu)
    draws["gmm"] = gmm.sample(N_SAMPLES_SCORED)[0][rng.permutation(N_SAMPLES_SCORED)]
    features = feature_network(data, device, cfg)
    real = data.test.x[:N_SAMPLES_SCORED].to(device).float() / 255
    numbers, rows = {}, []
    for name, zs in draws.items():
        imgs = torch.cat([decode(torch.from_numpy(zs[i:i + 500]).float().to(device).view(-1, *shape))
                          for i in range(0, len(zs), 500)])
        numbers[f"sample/{name}_fd"] = frechet(features, real, imgs)
        rows.append((name, imgs[:N_SAMPLES_SHOWN]))
    numbers["sample/fd_features"] = features.identity
    scores = ", ".join(f"{k.split('/')[1][:-3]} {v:.2f}" for k, v in numbers.items() if k.endswith("_fd"))
    path = image_grids([(f"{name} (FD {numbers[f'sample/{name}_fd']:.2f})", imgs) for name, imgs in rows],
                       run.figures / "samples.png", f"samples; Frechet distance to test images, lower is better "
                       f"({scores})")
    return {"numbers": numbers, "figures": {"samples": path}}


@register_tool(needs={"autoencoder"}, rank=6)
@torch.no_grad()
def occlusion(model, data, cfg, run, device, n_images=4):
    """Rise in reconstruction error when a gray patch hides each region (what matters);
    for masked models also reconstruction error against the feature-mask ratio."""
    model.eval()
    x = _imgs(data.test, torch.arange(n_images), device)
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
    fig.savefig(figs["occlusion"], dpi=100)
    plt.close(fig)
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
    fig.savefig(figs["mask_ratio_curve"], dpi=100)
    plt.close(fig)
    return out
