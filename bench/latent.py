"""Latent-space tools that work on any registered autoencoder through `encode` (and, for
VAEs, `posterior` -> mu, logvar): linear probes, embeddings and decision regions,
posterior-collapse signals. The generative tools live in `bench.latent_gen`.

Each tool is `tool(model, data, cfg, run, device) -> {"numbers", "figures", "tables"}`;
numbers land in summary.json under `tool/name` keys.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from bench.data import batches
from bench.errors import UsageError
from bench.tools import register_tool
from bench.figures import plt

PROBE_MAX_TRAIN = 20000  # probes and projections use at most this many training latents
TSNE_EXACT_MAX = 600
ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. 2015: Cov_x(E[z|x]) > 0.01


@torch.no_grad()
def latents(model, split, device, limit=None, sigma=0.0, seed=0, batch_size=500):
    """(z as float32 numpy (N, D), labels numpy or None) of up to `limit` images of a split."""
    model.eval()
    g = torch.Generator(device=device).manual_seed(seed)
    n = len(split) if limit is None else min(limit, len(split))
    sub = split.take(torch.arange(n, device=split.x.device))
    zs = []
    for x, _ in batches(sub, batch_size):
        x = x.to(device)
        if sigma > 0:
            x = model.corrupt(x, g, sigma=sigma)  # the model's own noise type
        zs.append(model.encode(x).flatten(1).float().cpu())
    y = None if sub.y is None or sub.y.dim() != 1 else sub.y.cpu().numpy()
    return torch.cat(zs).numpy(), y


def _labels_required(data, tool):
    if data.kind != "labels":
        raise UsageError(f"eval {tool}: needs a labelled dataset; {data.name} has {data.kind}")


@register_tool(needs={"labels"}, rank=0)
def probe(model, data, cfg, run, device, epochs=100):
    """Frozen encoder + nn.Linear (cross-entropy) and scikit-learn LogisticRegression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    _labels_required(data, "probe")
    before = copy.deepcopy(model.state_dict())
    ztr, ytr = latents(model, data.labelled_train, device, PROBE_MAX_TRAIN)
    zte, yte = latents(model, data.test, device)
    scaler = StandardScaler().fit(ztr)
    ztr_s, zte_s = scaler.transform(ztr).astype(np.float32), scaler.transform(zte).astype(np.float32)
    n_classes = int(max(ytr.max(), yte.max())) + 1
    g = torch.Generator().manual_seed(cfg.seed)
    head = nn.Linear(ztr.shape[1], n_classes)
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        head.reset_parameters()
    opt = torch.optim.Adam(head.parameters(), lr=1e-2, weight_decay=1e-4)
    xt, yt = torch.from_numpy(ztr_s), torch.from_numpy(ytr).long()
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), 512):
            idx = perm[i:i + 512]
            loss = nn.functional.cross_entropy(head(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        linear_acc = (head(torch.from_numpy(zte_s)).argmax(1).numpy() == yte).mean()
    logreg = LogisticRegression(max_iter=2000).fit(ztr_s, ytr)
    after = model.state_dict()
    unchanged = all(torch.equal(before[k], after[k]) for k in before)
    if not unchanged:
        raise RuntimeError("probe changed the frozen encoder")
    numbers = {"probe/linear_acc": float(linear_acc), "probe/logreg_acc": float(logreg.score(zte_s, yte)),
               "probe/train_size": int(len(ztr)), "probe/latent_dim": int(ztr.shape[1]),
               "probe/encoder_unchanged": unchanged}
    return {"numbers": numbers}


def _scatter(ax, xy, y, title, s=6):
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=y, cmap="tab10", s=s, alpha=0.8, vmin=0, vmax=9)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return sc


def project(method: str, z: np.ndarray, seed: int, dims: int = 2) -> np.ndarray:
    """One fit of one method (pca, tsne, umap) to a point set, in `dims` dimensions."""
    if method == "pca":
        from sklearn.decomposition import PCA
        return PCA(n_components=dims, random_state=seed).fit_transform(z)
    if method == "tsne":
        from sklearn.manifold import TSNE
        perplexity = float(min(30, max(2, (len(z) - 1) / 3)))
        # Exact gradients below a few hundred points: faster there than Barnes-Hut (whose 3-D
        # trees are slow) and exact; Barnes-Hut's O(N log N) wins above.
        method = "exact" if len(z) <= TSNE_EXACT_MAX else "barnes_hut"
        return TSNE(n_components=dims, perplexity=perplexity, init="pca", random_state=seed,
                    method=method).fit_transform(z)
    from bench.cache import import_umap
    return import_umap().UMAP(n_components=dims, n_neighbors=min(15, len(z) - 1), random_state=seed,
                              n_jobs=1).fit_transform(z)


METHODS = ("pca", "tsne", "umap")


def projections(z: np.ndarray, seed: int, dims=2) -> dict[str, np.ndarray]:
    return {m: project(m, z, seed, dims) for m in METHODS}


@register_tool(needs={"labels"}, rank=1)
def embed(model, data, cfg, run, device):
    """PCA / t-SNE / UMAP of test latents, 3-D view, clean vs noisy, decision regions.

    Each method is fitted once per point set and view: 2-D and 3-D of the clean latents,
    and one t-SNE of clean and noisy latents together; `--embed-points` caps the points."""
    from sklearn.neighbors import KNeighborsClassifier

    _labels_required(data, "embed")
    limit = cfg.embed_points
    z, y = latents(model, data.test, device, limit)
    proj = {}
    for m in METHODS:
        _progress(f"embed: 2-D {m} of {len(z)} points")
        proj[m] = project(m, z, cfg.seed)
    figs = {}
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    for ax, (name, xy) in zip(axes, proj.items()):
        _scatter(ax, xy, y, f"{name.upper()} of test latents (n={len(z)})")
    _legend(fig, y, data.classes)
    figs["embed_2d"] = _save(fig, run.figures / "embed_2d.png")

    proj3 = {}
    for m in METHODS:
        _progress(f"embed: 3-D {m}")
        proj3[m] = project(m, z, cfg.seed, dims=3)
    fig = plt.figure(figsize=(15, 4.8))
    for k, (name, xyz) in enumerate(proj3.items()):
        ax = fig.add_subplot(1, 3, k + 1, projection="3d")
        ax.scatter(xyz[:, 0], xyz[:, 1], xyz[:, 2], c=y, cmap="tab10", s=5, vmin=0, vmax=9)
        ax.set_title(f"3-D {name.upper()} of test latents", fontsize=9)
        ax.set_xticklabels([])
        ax.set_yticklabels([])
        ax.set_zticklabels([])
    _legend(fig, y, data.classes)
    figs["embed_3d"] = _save(fig, run.figures / "embed_3d.png")

    sigma = model.noise_std if model.noise_std > 0 else 0.3
    zn, _ = latents(model, data.test, device, limit, sigma=sigma, seed=cfg.seed)
    _progress("embed: t-SNE of clean and noisy latents")
    both = project("tsne", np.concatenate([z, zn]), cfg.seed)  # one projection fitted on both
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharex=True, sharey=True)
    _scatter(axes[0], both[: len(z)], y, "clean inputs (t-SNE fitted on both)")
    _scatter(axes[1], both[len(z):], y, f"{model.noise_type} noise, sigma={sigma:g}")
    _legend(fig, y, data.classes)
    figs["embed_clean_vs_noisy"] = _save(fig, run.figures / "embed_clean_vs_noisy.png")

    xy = proj["umap"]
    knn = KNeighborsClassifier(n_neighbors=15).fit(xy, y)
    pad = 0.05 * (xy.max(0) - xy.min(0))
    gx, gy = np.meshgrid(np.linspace(xy[:, 0].min() - pad[0], xy[:, 0].max() + pad[0], 200),
                         np.linspace(xy[:, 1].min() - pad[1], xy[:, 1].max() + pad[1], 200))
    regions = knn.predict(np.c_[gx.ravel(), gy.ravel()]).reshape(gx.shape)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.contourf(gx, gy, regions, levels=np.arange(11) - 0.5, cmap="tab10", alpha=0.25, vmin=0, vmax=9)
    _scatter(ax, xy, y, "decision regions of a 15-NN classifier on the 2-D UMAP embedding")
    _legend(fig, y, data.classes)
    figs["decision_regions"] = _save(fig, run.figures / "decision_regions.png")

    cols = ["image", "label", "class"] + [f"{p}_{a}" for p in ("pca", "tsne", "umap") for a in ("x", "y")] \
        + [f"{p}3d_{a}" for p in ("pca", "tsne", "umap") for a in ("x", "y", "z")]
    names = [str(c) for c in data.classes]
    thumbs = data.test.x[:len(z)].cpu().permute(0, 2, 3, 1).numpy()  # the test images the points stand for
    thumbs = thumbs[..., 0] if thumbs.shape[-1] == 1 else thumbs
    rows = [[thumbs[i], int(y[i]), names[int(y[i])] if int(y[i]) < len(names) else str(int(y[i]))]
            + [float(proj[p][i, j]) for p in ("pca", "tsne", "umap") for j in (0, 1)]
            + [float(proj3[p][i, j]) for p in ("pca", "tsne", "umap") for j in (0, 1, 2)]
            for i in range(len(z))]
    numbers = {"embed/points": len(z), "embed/knn2d_acc": float(knn.score(xy, y))}
    return {"numbers": numbers, "figures": figs, "tables": {"embeddings": (cols, rows)}, "arrays": proj}


@register_tool(needs={"autoencoder"}, rank=7)
@torch.no_grad()
def collapse(model, data, cfg, run, device):
    """Active units (Burda et al. 2015: Var_x E[z_u|x] > 0.01), for any autoencoder; for a
    VAE also the KL per latent dim (posterior-collapse signals). One definition serves the
    numbers and the figure: a unit is active or collapsed, never both."""
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
                                            _save(fig, run.figures / "kl_per_dim.png")}}


def _progress(what: str) -> None:
    print(f"  {what} ...", flush=True)


def _legend(fig, y, classes):
    """One legend entry per class present, named, in the scatter's colours (tab10 by label)."""
    from matplotlib.lines import Line2D

    cmap = plt.get_cmap("tab10")
    names = [str(c) for c in classes]
    handles = [Line2D([], [], marker="o", linestyle="", color=cmap(c % 10),
                      label=names[c] if c < len(names) else str(c)) for c in sorted({int(v) for v in y})]
    fig.legend(handles=handles, loc="center right", fontsize=7, title="class", title_fontsize=7)
    fig.subplots_adjust(right=0.86)


def _save(fig, path):
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


import bench.latent_gen  # noqa: E402,F401  (registers the generative tools)
from bench.tools import tools  # noqa: E402

TOOLS = {name: t.fn for name, t in tools().items()}
NEEDS = {name: set(t.needs) for name, t in tools().items()}


def missing_needs(name: str, model, data_kind: str) -> list[str]:
    is_ae = model.task in ("reconstruct", "denoise")
    has = {"labels"} if data_kind == "labels" else set()
    if is_ae:
        has |= {"autoencoder"} | ({"decoder"} if model.can_decode else set())
    return sorted(NEEDS[name] - has)


def applicable(names, model, data_kind: str) -> list[str]:
    """The tools to run. A tool named explicitly that cannot work on this model or data is bad
    input, refused before training; `all` means every tool that applies."""
    chosen = expand(names)
    if "all" in [n.strip() for n in names]:
        return [n for n in chosen if not missing_needs(n, model, data_kind)]
    for n in chosen:
        lack = missing_needs(n, model, data_kind)
        if lack:
            ok = [t for t in TOOLS if not missing_needs(t, model, data_kind)]
            raise UsageError(f"--eval {n}: needs {' and '.join(lack)}, which {type(model).__name__} on "
                             f"{data_kind} data lacks; valid here: {', '.join(ok) or 'none'}")
    return chosen


def expand(names) -> list[str]:
    names = [n.strip() for n in names if n and n.strip()]
    for n in names:
        if n not in TOOLS and n != "all":
            raise UsageError(f"unknown evaluation {n!r}; valid: {', '.join(TOOLS)}, all")
    if "all" in names:
        return list(TOOLS)
    return list(dict.fromkeys(names))
