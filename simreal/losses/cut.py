"""The losses of CUT / FastCUT (Park et al. 2020) and of LC-CUT, its label-consistent form.

- **PatchNCE** (``patch_nce_loss``): for every NCE layer, features of the output (queries) and of the input (keys)
  at the same random locations go through the projection head; each query must pick its own key out of the keys
  of the other sampled locations of the same image (temperature ``tau``, 0.07; the query's own entry among the
  negatives is masked to -10 as the reference does; keys are detached). The loss is the mean over layers.
- **LSGAN** (``lsgan_loss``): MSE of the patch logits against 1 (real) or 0 (fake); D's loss is half the sum.
- **Label consistency** (``simreal.losses.consistency.label_consistency_loss``): the LC-SAE report's outer loss,
  a frozen segmenter's loss on the translated frame against the source frame's labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from simreal.models.cut import PatchProjection, sample_patch_ids

NEGATIVE_SELF = -10.0  # the reference's fill for a query's own entry among its negatives


def info_nce(query: torch.Tensor, key: torch.Tensor, tau: float) -> torch.Tensor:
    """(B, P, C) unit queries and keys -> mean cross-entropy of each query picking its own key among the image's P."""
    key = key.detach()
    positive = (query * key).sum(-1, keepdim=True)  # (B, P, 1)
    negative = torch.bmm(query, key.transpose(1, 2))  # (B, P, P)
    eye = torch.eye(query.shape[1], dtype=torch.bool, device=query.device)[None]
    negative = negative.masked_fill(eye, NEGATIVE_SELF)
    logits = torch.cat([positive, negative], dim=2).flatten(0, 1) / tau
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits.float(), target)


def patch_nce_loss(
    query_feats: Sequence[torch.Tensor],
    key_feats: Sequence[torch.Tensor],
    projection: PatchProjection,
    num_patches: int,
    tau: float,
) -> torch.Tensor:
    """PatchNCE averaged over layers; ``query_feats`` from the output image, ``key_feats`` from the input."""
    ids = sample_patch_ids(key_feats, num_patches)
    queries = projection(query_feats, ids)
    keys = projection(key_feats, ids)
    losses = [info_nce(q, k, tau) for q, k in zip(queries, keys, strict=True)]
    return torch.stack(losses).mean()


def lsgan_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss: MSE of the logits against 1 for real, 0 for fake."""
    logits = logits.float()
    return F.mse_loss(logits, torch.full_like(logits, 1.0 if real else 0.0))
