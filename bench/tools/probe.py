"""Linear probes of the frozen encoder, each named by its method: `probe/linear_acc` (a torch
nn.Linear trained with Adam), `probe/logistic_acc` (scikit-learn's LogisticRegression), and
`probe/knn_acc` (5 nearest neighbours)."""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from bench.tools import register_tool
from bench.tools._latent import labels_required, latents

PROBE_MAX_TRAIN = 20000  # the probe trains on at most this many training latents


@register_tool(needs={"labels"}, rank=0)
def probe(model, data, spec, run, device, epochs=100):
    """Frozen encoder + nn.Linear (cross-entropy) and scikit-learn LogisticRegression, and a
    5-nearest-neighbour classifier on the same standardised codes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.preprocessing import StandardScaler

    labels_required(data, "probe")
    before = copy.deepcopy(model.state_dict())
    ztr, ytr = latents(model, data.labelled_train, device, PROBE_MAX_TRAIN)
    zte, yte = latents(model, data.test, device)
    scaler = StandardScaler().fit(ztr)
    ztr_s, zte_s = scaler.transform(ztr).astype(np.float32), scaler.transform(zte).astype(np.float32)
    n_classes = int(max(ytr.max(), yte.max())) + 1
    g = torch.Generator().manual_seed(spec.seed)
    head = nn.Linear(ztr.shape[1], n_classes)
    with torch.random.fork_rng():
        torch.manual_seed(spec.seed)
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
    knn = KNeighborsClassifier(n_neighbors=5).fit(ztr_s, ytr)  # neighbourhoods of z, no linear boundary
    after = model.state_dict()
    unchanged = all(torch.equal(before[k], after[k]) for k in before)
    if not unchanged:
        raise RuntimeError("probe changed the frozen encoder")
    numbers = {"probe/linear_acc": float(linear_acc), "probe/logistic_acc": float(logreg.score(zte_s, yte)),
               "probe/knn_acc": float(knn.score(zte_s, yte)),
               "probe/train_size": int(len(ztr)), "probe/latent_dim": int(ztr.shape[1]),
               "probe/encoder_unchanged": unchanged}
    return {"numbers": numbers}
