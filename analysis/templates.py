"""Report templates: the shape each course assignment asks its report to have.

A template is data: sections of blocks. `Table` and `Facts` are filled in from the
recorded runs; `Figure` (HTML only) draws or embeds figures of the runs; `Discuss` is a
clearly marked place for the author's own discussion, its prompt taken from the
assignment. `analysis.report` picks a template from the sweep (`--sweep celeba_models`
-> the CelebA assignment) or by `--template NAME`; a sweep no template knows gets the generic report.
"""
from __future__ import annotations

import pandas as pd

from analysis.blocks import (Discuss, Facts, Figure, Section, Table, Template, budget_sentence, mean_ci, per_model,
                              select)

CELEBA = ("ae", "sparse_ae", "dae", "vae")
COMMON_SIGMA = 0.3  # the test noise every denoiser of a table is compared at (one of --eval-sigmas' defaults)


def _celeba_key(frame):
    probe = per_model(frame, "celeba_models", "probe/linear_acc", ("ae", "vae"), "Smiling linear-probe accuracy")
    fd = per_model(frame, "celeba_models", "sample/ex_post_fd", CELEBA, "Ex-post Gaussian sample FD")
    prior = per_model(frame, "celeba_models", "sample/prior_fd", ("vae",), "VAE prior-sample FD")
    return " ".join(x for x in ("Recorded:", probe, prior, fd) if x != "") if (probe or fd) else ""


def _celeba_arith(frame):
    parts = []
    for m in CELEBA:
        g = select(frame, "celeba_models", (m,))
        if "arith/attribute" in g and g["arith/attribute"].notna().any():
            attr = g["arith/attribute"].dropna().iloc[0]
            parts.append(f"{m} {mean_ci(g, 'arith/direction_norm')}")
    return (f"Attribute vector v({attr}) = mean z of images with it - mean z of images without, added to a test "
            f"face at 4 values of alpha (figure attribute_direction.png of each run); norm of v: "
            + "; ".join(parts) + ".") if parts else ""


def _mean(g, col) -> float | None:
    from analysis.tables import one_per_seed
    if col not in g or not g[col].notna().any():
        return None
    return float(pd.to_numeric(one_per_seed(g[g[col].notna()])[0][col]).mean())


def _celeba_collapse(frame):
    parts = []
    for m in CELEBA:
        g = select(frame, "celeba_models", (m,))
        active, dim, kl = _mean(g, "collapse/active_units"), _mean(g, "collapse/latent_dim"), \
            _mean(g, "collapse/kl_total")
        if active is not None:
            parts.append(f"{m} {active:.1f} of {dim or 0:.0f} units active" + (f", KL {kl:.2f} nats" if kl else ""))
    return ("Posterior collapse check (a unit is active when the variance of its mean code over test images "
            "exceeds 0.01; mean over seeds): " + "; ".join(parts) + ".") if parts else ""


def _celeba_lambda(frame):
    """Which lambda the sparse AE of the model comparison used, and why."""
    g = select(frame, "celeba_models", ("sparse_ae",))
    if not len(g) or "l1_lambda" not in g:
        return ""
    lams = sorted({float(v) for v in g["l1_lambda"].dropna()})
    used = ", ".join(f"{v:g}" for v in lams)
    why = sorted({str(v) for v in g["from_best"].dropna()}) if "from_best" in g else []
    if why:
        return f"The sparse AE of the model comparison used lambda = {used}: {why[0]}."
    return (f"The sparse AE of the model comparison used lambda = {used}, not chosen by the lambda sweep; to carry "
            f"its choice, run `python -m bench.sweep sweeps/celeba_models.yaml --from-best celeba_sparse_lambda "
            f"--within 10` (the largest lambda within 10% of the best validation MSE).")


CELEBA_ASSIGNMENT = Template(
    name="celeba_assignment", title="CelebA: regularised autoencoders, representations and generation",
    assignment_file="003", assignment='Assignment 9: Autoencoders & Representation Learning',
    sweeps=("celeba_models", "celeba_sparse_lambda"), max_chars=7500, only_sections=True,
    sections=(
        Section("1. Executive Summary", (
            Facts(_celeba_key),
            Discuss("One-sentence takeaway comparing deterministic AEs and the VAE on linear probing "
                    "or generation; then a paragraph on the progression from reconstruction and "
                    "regularisation to interpretability and generative modelling."),
        )),
        Section("2. Autoencoder Regularization", (
            Table("Reconstruction on the test set, and each model's final training and validation losses "
                  "(last epoch; `best val` is the epoch best.pt was kept at)",
                  ("test/mse=MSE", "test/psnr=PSNR", "test/ssim=SSIM", "train/loss=final train loss",
                   "val/loss=final val loss", "best_value=best val"), "celeba_models", ("ae", "sparse_ae", "dae"),
                  ("model",)),
            Table("Sparse AE: L1 weight lambda (penalty lambda * sum_j |z_j|)",
                  ("test/mse=MSE", "val/l1=mean sum|z|"), "celeba_sparse_lambda", (), ("l1_lambda",)),
            Facts(_celeba_lambda),
            Discuss("Visual differences between the undercomplete, sparse and denoising reconstructions "
                    "(side-by-side figure in the HTML report); how corruption stops the DAE from learning "
                    "the identity, against the bottleneck and the L1 penalty."),
            Figure("side_by_side", "the same 5 test faces, original and each model", "celeba_models"),
        )),
        Section("3. Representation Learning & Interpretability", (
            Table("Linear probe on frozen codes, Smiling (test accuracy)",
                  ("probe/linear_acc=linear probe", "probe/logistic_acc=logistic regression"),
                  "celeba_models", ("ae", "vae"), ("model",)),
            Facts(_celeba_arith),
            Discuss("Which representation is more linearly separable and why; how the KL term helps or "
                    "hurts; did adding v(glasses) add glasses without losing the identity?"),
            Figure("run:attribute_direction", "adding the Eyeglasses vector", "celeba_models"),
        )),
        Section("4. Generative Modeling & Prior Holes", (
            Table("Sample quality: Frechet distance to test faces (lower is better)",
                  ("sample/prior_fd=prior N(0,I)", "sample/ex_post_fd=ex-post Gaussian",
                   "sample/gmm_fd=ex-post GMM"), "celeba_models", CELEBA, ("model",)),
            Discuss("Prior vs ex-post samples; the prior-hole problem, and why sampling from the fitted "
                    "mean and covariance of the training codes gives more coherent faces than N(0, I)."),
            Figure("run:samples", "prior / ex-post Gaussian / GMM samples", "celeba_models"),
        )),
        Section("5. Reflection", (
            Facts(_celeba_collapse),
            Facts(budget_sentence),
            Discuss("Training the VAE: posterior collapse, balancing reconstruction and KL; why subsetting "
                    "CelebA and resizing to 64x64 mattered on this compute."),
            Figure("curves", "learning curves (VAE ELBO terms apart)", "celeba_models"),
        )),
    ))


# ----------------------------------------------------------------------------- the Fashion-MNIST VAE assignment (Fashion-MNIST VAEs)

def _dims(v) -> str:
    return ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)


TASK_C = "python -m bench.sweep sweeps/fashion_vae_best_ae.yaml --from-best fashion_vae_dims"


def _best_dims(frame):
    """Task b's best (h, z), and whether task c's runs converted exactly that one."""
    g = select(frame, "fashion_vae_dims")
    if not len(g) or "best_value" not in g or not g["best_value"].notna().any():
        return ""
    if "mlp_dims" not in g or not g["mlp_dims"].notna().any():
        return ("The runs of fashion_vae_dims recorded no (h, z) sizes (`mlp_dims`), so task b's best configuration "
                "cannot be named; rerun `python -m bench.sweep sweeps/fashion_vae_dims.yaml`.")
    keyed = g.assign(_d=g["mlp_dims"].map(_dims))
    means, seeds = keyed.groupby("_d")["best_value"].mean(), keyed.groupby("_d")["best_value"].count()
    most = pd.to_numeric(g.get("epochs_done", pd.Series(dtype=float)), errors="coerce").max()
    epochs = int(most) if most == most else 0  # NaN: no run recorded its epochs
    caveat = ""
    if seeds.min() < 3 or epochs < 10:  # a ranking from one short run is a hint, not a finding
        caveat = (f" A caveat: {int(seeds.min())} seed(s) per configuration and {epochs} epoch(s) each, so this "
                  f"ranking may not hold; rerun with more seeds (`--seed 0,1,2`) and the sweep's full epochs.")
    best = means.idxmin()
    c = select(frame, "fashion_vae_best_ae")
    used = sorted({_dims(v) for v in c["mlp_dims"].dropna()}) if len(c) and "mlp_dims" in c else []
    why = sorted({str(v) for v in c["from_best"].dropna()}) if len(c) and "from_best" in c else []
    if not used:
        after = f" Task c converts it: run `{TASK_C}`."
    elif used == [best] and why:
        after = f" Task c's runs use exactly it: {why[0]}."
    else:
        after = (f" Task c's runs use mlp_dims {' and '.join(used)}" + ("" if why else ", not carried from task b")
                 + (f", not today's best {best}" if used != [best] else "") + f"; to convert the best run `{TASK_C}`.")
    return (f"Best configuration of task b by optimal loss: (h, z) = ({best}), {means.min():.2f} nats per "
            f"image, mean over its seeds." + caveat + after)


FASHION_VAE_ASSIGNMENT = Template(
    name="fashion_vae_assignment", title="Fashion-MNIST VAEs: depth, (h, z) sizes and a plain autoencoder",
    assignment_file="004", assignment='Task 4: Auto-Encoders',
    sweeps=("fashion_vae_depth", "fashion_vae_dims", "fashion_vae_best_ae"),
    flags=(("fashion_vae_best_ae", "--from-best fashion_vae_dims"),),
    sections=(
        Section("Task a: three vs four layers", (
            Table("Optimal loss (best validation loss, nats per image) and test reconstruction",
                  ("best_value=optimal loss", "best_epoch=epoch", "test/recon_loss=test recon",
                   "test/mse=MSE", "test/ssim=SSIM"), "fashion_vae_depth", ("mlp_vae",), ("mlp_dims",)),
            Figure("side_by_side", "reconstructions of the same test images", "fashion_vae_depth", ("mlp_vae",)),
            Figure("run:samples", "generated images", "fashion_vae_depth", ("mlp_vae",)),
            Discuss("Which model is better by optimal loss and by eye, and why."),
        )),
        Section("Task b: six (h, z) configurations", (
            Table("Optimal loss per configuration", ("best_value=optimal loss", "best_epoch=epoch",
                                                     "test/recon_loss=test recon", "test/kl=test KL",
                                                     "test/mse=MSE"), "fashion_vae_dims", (), ("mlp_dims",)),
            Figure("side_by_side", "reconstructions of the same test images", "fashion_vae_dims"),
            Figure("run:samples", "generated images", "fashion_vae_dims"),
            Figure("curves", "learning curves", "fashion_vae_dims"),
            Discuss("Which (h, z) is best and why (capacity of h, size of z, the KL cost of each unit)."),
        )),
        Section("Task c: the best configuration as a plain autoencoder", (
            Facts(_best_dims),
            Table("Task b's best (h, z) as VAE and as plain AE (losses differ in kind: compare MSE, PSNR, SSIM)",
                  ("test/mse=MSE", "test/psnr=PSNR", "test/ssim=SSIM", "best_value=optimal loss"),
                  "fashion_vae_best_ae", (), ("model", "mlp_dims")),
            Figure("side_by_side", "VAE and AE on the same test images", "fashion_vae_best_ae"),
            Figure("run:samples", "generated images (VAE prior; ex-post Gaussian for the AE)", "fashion_vae_best_ae"),
            Table("Both depths of task a as VAE and as plain AE", ("test/mse=MSE", "test/psnr=PSNR", "test/ssim=SSIM",
                                                                 "best_value=optimal loss"),
                  "fashion_vae_depth", (), ("model", "mlp_dims")),
            Discuss("VAE or plain AE: reconstruction vs generation, and why the loss change matters."),
        )),
    ))


# ----------------------------------------------------------------------------- the CIFAR-10 assignment (CIFAR-10)

CIFAR10_ASSIGNMENT = Template(
    name="cifar10_assignment", title="CIFAR-10: AE, DAE, VAE and masked convolutional AE",
    assignment_file="000", assignment='CS671: Deep Learning and Applications, Programming Assignment-2',
    sweeps=("cifar10_models", "cifar10_dae_noise", "cifar10_mcae_mask"),
    sections=(
        Section("Problem definition and methodology", (
            Facts(budget_sentence),
            Discuss("Problem definition: unsupervised feature learning on CIFAR-10 with AE, DAE, VAE and MCAE; "
                    "the data split, the losses and how each model is evaluated."),
        )),
        Section("Hyperparameter tuning and architecture choices", (
            Table("Model sizes and cost at latent 128", ("params=params", "train_seconds=train s",
                                                         "best_epoch=best epoch"), "cifar10_models", (), ("model",)),
            Table("Tuning the DAE's training noise: every run scored on the same noisy test images (sigma "
                  f"{COMMON_SIGMA:g}), beside the noisy input's own score; its validation MSE is measured at its "
                  "own training sigma, so that column does not compare rows",
                  (f"denoise/mse@{COMMON_SIGMA:g}=test MSE at sigma {COMMON_SIGMA:g}",
                   f"denoise/psnr@{COMMON_SIGMA:g}=PSNR at sigma {COMMON_SIGMA:g}",
                   f"denoise/input_psnr@{COMMON_SIGMA:g}=noisy input PSNR (doing nothing)",
                   "best_value=best val MSE at its own sigma"), "cifar10_dae_noise", (), ("noise_level",)),
            Table("Tuning the MCAE's mask ratio (validation MSE of best.pt)", ("best_value=best val MSE",),
                  "cifar10_mcae_mask", (), ("mask_ratio",)),
            Discuss("Architecture choices (encoder depth and width, latent size) and how the noise level and "
                    "mask ratio were chosen from these sweeps."),
        )),
        Section("Part I: AE and DAE", (
            Table("Reconstruction on clean test images", ("test/mse=MSE", "test/mae=MAE", "test/psnr=PSNR",
                                                           "test/ssim=SSIM", "probe/linear_acc=probe acc"),
                  "cifar10_models", ("ae", "dae")),
            Table("DAE by training noise: clean test inputs, noisy ones at one common sigma for every row, and "
                  "at each run's own training sigma (a separate column)",
                  ("test/mse=clean MSE", f"denoise/mse@{COMMON_SIGMA:g}=MSE at test sigma {COMMON_SIGMA:g}",
                   "test_noisy/mse=noisy MSE at its own sigma", "test_noisy/psnr=noisy PSNR at its own sigma",
                   "probe/linear_acc=probe acc"), "cifar10_dae_noise", (), ("noise_level",)),
            Figure("denoise", "test MSE at each test-time sigma", "cifar10_dae_noise"),
            Figure("curves", "average error vs epochs, AE and DAE", "cifar10_models", ("ae", "dae")),
            Figure("run:recon_epochs", "outputs over epochs (noisy input and denoised output for the DAE)",
                   "cifar10_dae_noise"),
            Figure("run:embed_clean_vs_noisy", "latent space of clean vs noisy inputs", "cifar10_models"),
            Discuss("Effectiveness of AEs for feature learning; when AE vs DAE is preferable."),
        )),
        Section("Part II: VAE", (
            Table("VAE vs AE reconstruction", ("test/mse=MSE", "test/mae=MAE", "test/psnr=PSNR", "test/ssim=SSIM"),
                  "cifar10_models", ("ae", "vae")),
            Figure("side_by_side", "AE, DAE, VAE and MCAE on the same test images", "cifar10_models"),
            Figure("curves", "KL and reconstruction terms over epochs", "cifar10_models", ("vae",)),
            Figure("run:interpolation", "latent interpolation", "cifar10_models", ("vae",)),
            Figure("run:arithmetic", "latent arithmetic", "cifar10_models", ("vae",)),
            Discuss("Observations on the latent space structure, interpolation and arithmetic."),
        )),
        Section("Part III: masked convolutional AE", (
            Table("MCAE by mask ratio", ("test/mse=MSE", "probe/linear_acc=probe acc",
                                         "occlusion/mean_rise=occlusion rise"), "cifar10_mcae_mask", (),
                  ("mask_ratio",)),
            Table("MCAE vs AE vs VAE", ("test/mse=MSE", "test/ssim=SSIM", "probe/linear_acc=probe acc"),
                  "cifar10_models", ("ae", "vae", "mcae")),
            Figure("run:occlusion", "occlusion heatmaps", "cifar10_mcae_mask"),
            Figure("run:decision_regions", "decision regions of a logistic regression fitted in the 2-D UMAP plane "
                   "(the full-code probe's accuracy in its title)", "cifar10_models"),
            Discuss("Does feature-map masking retain global information like a ViT's?"),
        )),
        Section("Key findings from the latent space analysis", (
            Table("Latent space: linear separability and 2-D structure",
                  ("probe/linear_acc=linear probe", "probe/logistic_acc=logistic regression",
                   "embed/logistic_acc=logistic probe (full code) on shown points",
                   "embed/regions2d_acc=logistic probe in the 2-D UMAP plane", "embed/knn2d_acc=kNN acc in 2-D UMAP"),
                  "cifar10_models", (), ("model",)),
            Figure("run:embed_2d", "PCA, t-SNE and UMAP of the test latents", "cifar10_models"),
            Discuss("Key findings: which model's codes separate the classes, how the VAE's KL term shapes "
                    "the space, what interpolation and arithmetic show."),
        )),
    ))


# ----------------------------------------------------------------------------- the coloured-MNIST assignment (coloured MNIST)

COLORED_MNIST_ASSIGNMENT = Template(
    name="colored_mnist_assignment", title="Denoising coloured MNIST: AE, AE with dropout, VAE",
    assignment_file="001", assignment='DEEP LEARNING CSL 4020, Assignment 6',
    sweeps=("colored_mnist_denoise",),
    sections=(
        Section("1. Introduction", (Discuss("What autoencoders are for and the goal: denoising."),)),
        Section("2. Methodology and training setup", (
            Facts(budget_sentence),
            Discuss("Colouring and noise, the 4-layer encoder/decoder, dropout, the VAE."),
        )),
        Section("3. Results", (
            Table("Denoising the noisy test images (MSE and SNR against the clean image)",
                  ("test_noisy/mse=MSE", "test_noisy/snr=SNR dB", "test_noisy/psnr=PSNR",
                   "test_noisy/ssim=SSIM"), group_by=("model", "batchnorm")),
            Figure("denoise", "MSE at each test-time sigma", "colored_mnist_denoise"),
            Figure("side_by_side", "noisy input and each model's output", "colored_mnist_denoise"),
            Figure("curves", "training curves", "colored_mnist_denoise"),
            Figure("run:recon_epochs", "the same noisy test images denoised after selected epochs",
                   "colored_mnist_denoise"),
            Discuss("Which model denoises best and why (dropout, BatchNorm, the VAE's KL)."),
        )),
        Section("4. Latent space (t-SNE)", (
            Table("2-D embedding quality (kNN accuracy in 2-D)", ("embed/knn2d_acc=kNN acc",),
                  group_by=("model", "batchnorm")),
            Figure("run:embed_2d", "2-D latent space", "colored_mnist_denoise"),
            Figure("run:embed_3d", "3-D latent space", "colored_mnist_denoise"),
            Figure("run:interpolation", "latent interpolation", "colored_mnist_denoise"),
            Discuss("Cluster structure of each model's latent space."),
        )),
        Section("5. Conclusion", (Discuss("What the comparison shows."),)),
    ))


# ----------------------------------------------------------------------------- the CNN and autoencoder assignment (CNNs, STL-10, segmentation)

CNN_AE_ASSIGNMENT = Template(
    name="cnn_ae_assignment", title="Convolutional networks and autoencoders: CIFAR-10, MNIST, STL-10, brain tumours",
    assignment_file="002", assignment='Programming Assignment 3, Autoencoders and Their Applications',
    sweeps=("cifar10_cnn", "mnist_linear_vs_conv", "stl10_supervised", "stl10_resnet_probe",
                             "stl10_ssl", "brain_tumor_seg"),
    sections=(
        Section("Part 1, Task 1: CIFAR-10 classification (<= 500k parameters)", (
            Table("Test accuracy (best test epoch, as the assignment asks)",
                  ("test/acc=test acc", "best_epoch=epoch", "params=params"), "cifar10_cnn"),
            Figure("curves", "loss and accuracy per epoch", "cifar10_cnn"),
            Discuss("Architecture choices under the parameter budget."),
        )),
        Section("Part 1, Task 2: MNIST reconstruction and denoising, linear vs convolutional", (
            Table("Test reconstruction", ("test/mse=MSE", "test_noisy/mse=noisy MSE", "params=params"),
                  "mnist_linear_vs_conv", (), ("model", "noise_level")),
            Figure("side_by_side", "the same digits, each model", "mnist_linear_vs_conv"),
            Discuss("Parameter counts, and why convolutions do better on images with far fewer."),
        )),
        Section("Part 2, Task 1: STL-10 supervised", (
            Table("CNN from scratch", ("test/acc=test acc", "params=params"), "stl10_supervised"),
            Figure("curves", "CNN from scratch: train, validation and test accuracy per epoch", "stl10_supervised"),
            Table("Frozen ResNet-18 backbone, trained head (`pretrained`: whether its ImageNet weights were loaded; "
                  "offline runs have none)", ("test/acc=test acc", "trainable_params=trainable params", "params=params"),
                  "stl10_resnet_probe", (), ("pretrained",)),
            Figure("curves", "ResNet-18 head: accuracy history", "stl10_resnet_probe"),
            Discuss("Scratch CNN vs pretrained embeddings."),
        )),
        Section("Part 2, Task 2: STL-10 self-supervised autoencoder", (
            Table("Pretrained on unlabeled, probed on the labelled train split",
                  ("test/mse=recon MSE", "probe/linear_acc=probe test acc"), "stl10_ssl"),
            Figure("run:reconstructions", "reconstructions", "stl10_ssl"),
            Discuss("How good are the self-supervised features against supervised training?"),
        )),
        Section("Part 2, Task 3: brain tumour segmentation", (
            Table("Test Dice and IoU, beside the share of each image the model marks as tumour and the true "
                  "share (a model that marks every pixel, or none, scores the same whatever its loss)",
                  ("test/dice=Dice", "test/iou=IoU", "test/pred_area=predicted area", "test/true_area=true area"),
                  "brain_tumor_seg", (), ("loss",)),
            Figure("run:reconstructions", "image, mask, prediction", "brain_tumor_seg"),
            Discuss("Dice vs MSE/BCE for segmentation."),
        )),
    ))

# Names the templates had before they were named after their assignments, still accepted.
OLDER_NAMES = {f"seed00{i}": name for i, name in enumerate(
    ("cifar10_assignment", "colored_mnist_assignment", "cnn_ae_assignment", "celeba_assignment",
     "fashion_vae_assignment"))}
TEMPLATES = {t.name: t for t in (CIFAR10_ASSIGNMENT, COLORED_MNIST_ASSIGNMENT, CNN_AE_ASSIGNMENT, CELEBA_ASSIGNMENT, FASHION_VAE_ASSIGNMENT)}


def for_sweep(sweep: str | None) -> Template | None:
    """The template whose experiment a sweep belongs to, or None."""
    return next((t for t in TEMPLATES.values() if sweep in t.sweeps), None) if sweep else None
