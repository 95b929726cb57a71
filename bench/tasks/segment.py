"""Segment: a binary mask per pixel (the brain-tumour assignment), scored by Dice and IoU; the
figure overlays the true and the predicted masks on eight test images."""
from __future__ import annotations

from bench.config.tasks import register_task


TRIVIAL_AREA = 0.02  # a predicted area within 2% of all pixels or of none: the mask ignores the image


def evaluate(model, data, spec, device) -> dict:
    import sys

    from bench.measure import metrics

    res = {f"test/{k}": v for k, v in metrics.segmentation(model, data.test, device, amp=spec.amp,
                                                            channels_last=spec.channels_last).items()}
    res["warning/trivial_mask"] = trivial_mask(res)
    if res["warning/trivial_mask"]:
        print(f"warning: {spec.model} marks {res['test/pred_area']:.0%} of every test image as foreground (the true "
              f"masks cover {res['test/true_area']:.0%}): its Dice and IoU describe a constant mask, whatever "
              f"loss trained it; train longer or lower --lr", file=sys.stderr, flush=True)
    return res


def trivial_mask(res: dict) -> bool:
    """The predicted mask covers (nearly) every pixel while the true masks do not, or (nearly)
    none while they cover some: a tumour of 0.8% of the image, marked everywhere, is flagged."""
    pred, true = res.get("test/pred_area"), res.get("test/true_area")
    if pred is None or true is None:
        return False
    every = pred >= 1 - TRIVIAL_AREA and true < 1 - TRIVIAL_AREA
    none = true > 0 and pred <= min(TRIVIAL_AREA, true / 10)
    return every or none


def figure(model, data, spec, device, path):
    import torch

    from bench.core.tensors import to_float
    from bench.measure import grids

    model.eval()
    with torch.no_grad():
        x = to_float(data.test.x[:8].to(device))
        pred = (model(x)["recon"] > 0.5).float()
    mask = data.test.y[:8].float().to(device)
    return grids.image_rows([("image", x), ("true mask (red)", overlay(x, mask, (1.0, 0.1, 0.1))),
                             ("predicted (green)", overlay(x, pred, (0.1, 0.9, 0.1))),
                             ("white: both, grey: one", pred * 0.5 + mask * 0.5)], path, grids.run_title(spec))


def overlay(x, mask, rgb):
    """The image in grey with `mask` tinted `rgb`: a mask of all ones or all zeros stays visible
    (a white mask on the page's white is not)."""
    import torch

    grey = x.mean(1, keepdim=True).expand(-1, 3, -1, -1)
    tint = torch.tensor(rgb, device=x.device).view(1, 3, 1, 1)
    m = mask[:, :1]
    return grey * (1 - 0.55 * m) + tint * 0.55 * m


def random_mask(x, num_classes):
    import torch

    return (torch.rand(x.shape[0], 1, *x.shape[-2:]) > 0.5).to(torch.uint8)


register_task("segment", targets="masks", test_keys=frozenset({"dice", "iou"}), autoencoder=False,
              evaluate=evaluate, output=lambda x, num_classes: ("logits", (x.shape[0], 1, *x.shape[2:])),
              example_target=random_mask, figure=figure,
              description="predict a binary mask per pixel (Dice, IoU)")
