"""2-D and 3-D embeddings of test latents (PCA, t-SNE, UMAP), clean against noisy, decision regions."""
from __future__ import annotations

import numpy as np

from bench.core.progress import Steps
from bench.tools import register_tool
from bench.tools._latent import labels_required, latents, legend, scatter

TSNE_EXACT_MAX = 600  # exact t-SNE gradients up to this many points, Barnes-Hut above


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
    from bench.core.cache import import_umap
    return import_umap().UMAP(n_components=dims, n_neighbors=min(15, len(z) - 1), random_state=seed,
                              n_jobs=1).fit_transform(z)


METHODS = ("pca", "tsne", "umap")


def projections(z: np.ndarray, seed: int, dims=2) -> dict[str, np.ndarray]:
    return {m: project(m, z, seed, dims) for m in METHODS}


@register_tool(needs={"labels"}, rank=1)
def embed(model, data, spec, run, device):
    """PCA / t-SNE / UMAP of test latents, 3-D view, clean vs noisy, decision regions.

    Each method is fitted once per point set and view: 2-D and 3-D of the clean latents,
    and one t-SNE of clean and noisy latents together; `--embed-points` caps the points."""
    from bench.measure.figures import plt, save_figure  # matplotlib, imported by what draws
    labels_required(data, "embed")
    views = set(spec.embed_views) or {"2d"}
    z, y = latents(model, data.test, device, spec.embed_points)
    proj, proj3, figs, numbers = {}, {}, {}, {"embed/points": len(z)}
    step = Steps("embed", _costs(views))
    if "2d" in views:
        for m in METHODS:
            step(f"2d {m}", f"2-D {m} of {len(z)} points")
            proj[m] = project(m, z, spec.seed)
        fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
        for ax, (name, xy) in zip(axes, proj.items()):
            scatter(ax, xy, y, f"{name.upper()} of test latents (n={len(z)})")
        legend(fig, y, data.classes)
        figs["embed_2d"] = save_figure(fig, run.figures / "embed_2d.png")
        numbers["embed/knn2d_acc"] = _knn2d_accuracy(proj["umap"], y)
        step("probe", "logistic probes for the decision regions")
        regions, figs["decision_regions"] = _decision_regions(model, data, device, z, proj["umap"], y,
                                                              run.figures / "decision_regions.png")
        numbers.update(regions)
    if "3d" in views:
        for m in METHODS:
            step(f"3d {m}", f"3-D {m}")
            proj3[m] = project(m, z, spec.seed, dims=3)
        figs["embed_3d"] = _figure_3d(proj3, y, data, run.figures / "embed_3d.png")
    if "noisy" in views:
        step("noisy", "t-SNE of clean and noisy latents")
        figs["embed_clean_vs_noisy"] = _clean_vs_noisy(model, data, spec, device, z, y,
                                                       run.figures / "embed_clean_vs_noisy.png")
    cols = ["image", "label", "class"] + [f"{p}_{a}" for p in proj for a in ("x", "y")] \
        + [f"{p}3d_{a}" for p in proj3 for a in ("x", "y", "z")]
    names = [str(c) for c in data.classes]
    thumbs = data.test.x[:len(z)].cpu().permute(0, 2, 3, 1).numpy()  # the test images the points stand for
    thumbs = thumbs[..., 0] if thumbs.shape[-1] == 1 else thumbs
    rows = [[thumbs[i], int(y[i]), names[int(y[i])] if int(y[i]) < len(names) else str(int(y[i]))]
            + [float(proj[p][i, j]) for p in proj for j in (0, 1)]
            + [float(proj3[p][i, j]) for p in proj3 for j in (0, 1, 2)]
            for i in range(len(z))]
    return {"numbers": numbers, "figures": figs, "tables": {"embeddings": (cols, rows)}, "arrays": proj}


def _costs(views) -> dict[str, float]:
    """Rough relative cost of each step of the chosen views (for the time-left estimate)."""
    costs = {}
    if "2d" in views:
        costs.update({"2d pca": 0.02, "2d tsne": 1.0, "2d umap": 1.0, "probe": 0.3})
    if "3d" in views:
        costs.update({"3d pca": 0.02, "3d tsne": 1.5, "3d umap": 1.0})
    if "noisy" in views:
        costs["noisy"] = 2.0
    return costs


def _figure_3d(proj3: dict, y, data, path):
    from bench.measure.figures import plt, save_figure  # matplotlib, imported by what draws
    fig = plt.figure(figsize=(15, 4.8))
    for k, (name, xyz) in enumerate(proj3.items()):
        ax = fig.add_subplot(1, 3, k + 1, projection="3d")
        ax.scatter(xyz[:, 0], xyz[:, 1], xyz[:, 2], c=y, cmap="tab10", s=5, vmin=0, vmax=9)
        ax.set_title(f"3-D {name.upper()} of test latents", fontsize=9)
        ax.set_xticklabels([])
        ax.set_yticklabels([])
        ax.set_zticklabels([])
    legend(fig, y, data.classes)
    return save_figure(fig, path)


def _clean_vs_noisy(model, data, spec, device, z, y, path):
    """One t-SNE fitted on clean and corrupted latents together (the model's own noise
    level, else 0.3), shown side by side."""
    from bench.measure.figures import plt, save_figure  # matplotlib, imported by what draws
    sigma = model.noise_level if model.noise_level > 0 else 0.3
    zn, _ = latents(model, data.test, device, spec.embed_points, sigma=sigma, seed=spec.seed)
    both = project("tsne", np.concatenate([z, zn]), spec.seed)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharex=True, sharey=True)
    scatter(axes[0], both[: len(z)], y, "clean inputs (t-SNE fitted on both)")
    scatter(axes[1], both[len(z):], y, f"{model.noise_type} noise, level {sigma:g}")
    legend(fig, y, data.classes)
    return save_figure(fig, path)


def _knn2d_accuracy(xy, y) -> float:
    """How well the 2-D embedding alone separates the classes: a 15-NN classifier's accuracy on it."""
    from sklearn.neighbors import KNeighborsClassifier

    return float(KNeighborsClassifier(n_neighbors=15).fit(xy, y).score(xy, y))


REGION_PROBE_TRAIN = 5000  # training latents of the probe whose decisions the regions show


def _decision_regions(model, data, device, z, xy, y, path) -> tuple[dict, object]:
    """Real decision regions: a logistic regression fitted in the 2-D UMAP plane itself (on
    the embedded test points), whose regions are its predictions over the plane. A probe on
    the full code has no regions in that plane, so its accuracy is given beside it, not drawn:
    a logistic regression on the standardised codes of (up to 5,000) training images, scored
    on the same test points. Points keep their true class; those the 2-D probe gets wrong are ringed."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from bench.measure.figures import plt, save_figure  # matplotlib, imported by what draws

    ztr, ytr = latents(model, data.labelled_train, device, REGION_PROBE_TRAIN)
    full = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(ztr, ytr)
    plane = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(xy, y)
    pred = plane.predict(xy)
    numbers = {"embed/logistic_acc": float(full.score(z, y)), "embed/regions2d_acc": float((pred == y).mean())}
    pad = 0.05 * (xy.max(0) - xy.min(0))
    gx, gy = np.meshgrid(np.linspace(xy[:, 0].min() - pad[0], xy[:, 0].max() + pad[0], 200),
                         np.linspace(xy[:, 1].min() - pad[1], xy[:, 1].max() + pad[1], 200))
    regions = plane.predict(np.c_[gx.ravel(), gy.ravel()]).reshape(gx.shape)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.contourf(gx, gy, regions, levels=np.arange(11) - 0.5, cmap="tab10", alpha=0.25, vmin=0, vmax=9)
    scatter(ax, xy, y, f"decision regions of a logistic regression fitted in the 2-D UMAP plane\n"
                       f"(accuracy {numbers['embed/regions2d_acc']:.3f} on these {len(z)} points; the logistic "
                       f"probe on the full code: {numbers['embed/logistic_acc']:.3f})")
    wrong = pred != y
    ax.scatter(xy[wrong, 0], xy[wrong, 1], s=14, facecolors="none", edgecolors="k", linewidths=0.5)
    legend(fig, y, data.classes)
    return numbers, save_figure(fig, path)
