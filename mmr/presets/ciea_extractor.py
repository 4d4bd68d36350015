"""CIEA's complementary information extractor: one transformer layer over an image's projected patches whose
attention favours the patches the caption does not already describe.

Its attribute names (``attention.{q,k,v,out}_linear``, ``feed_forward.{0,2}``, ``layer_norm``) are the ones
sysu18364004/CIEA's ``CustomTransformerLayer`` saves, so its weights load from a CIEA ``model.best.pt`` as they
are. Dropout is left out: only inference runs here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# CIEA's code: 8 heads; a key whose weight falls under this floor is masked out, not merely scaled down
HEADS = 8
WEIGHT_FLOOR = 1e-5
# CIEA adds this (not 1) to the cosine before halving, so a perfectly matched patch keeps a weight just under 0
COSINE_SHIFT = 1.00001


class WeightedSelfAttention(nn.Module):
    """Multi-head self-attention whose energies are scaled by each key's weight squared."""

    def __init__(self, width: int, heads: int = HEADS) -> None:
        super().__init__()
        self.heads, self.head_width = heads, width // heads
        self.q_linear, self.k_linear = nn.Linear(width, width), nn.Linear(width, width)
        self.v_linear, self.out_linear = nn.Linear(width, width), nn.Linear(width, width)

    def forward(self, x: torch.Tensor, key_weights: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape

        def split(linear: nn.Linear) -> torch.Tensor:  # (batch, heads, length, head width)
            return linear(x).view(batch, length, self.heads, self.head_width).transpose(1, 2)

        q, k, v = split(self.q_linear), split(self.k_linear), split(self.v_linear)
        energy = q @ k.transpose(-1, -2) * self.head_width**-0.5
        weights = key_weights[:, None, None, :]
        energy = (energy * weights**2).masked_fill(weights < WEIGHT_FLOOR, float("-inf"))
        mixed = torch.softmax(energy, dim=-1) @ v
        return self.out_linear(mixed.transpose(1, 2).reshape(batch, length, width))


class InformationExtractor(nn.Module):
    """Attention, residual, LayerNorm, then a LeakyReLU feed-forward with its own residual (no second norm)."""

    def __init__(self, width: int, feed_forward: int) -> None:
        super().__init__()
        self.attention = WeightedSelfAttention(width)
        self.feed_forward = nn.Sequential(
            nn.Linear(width, feed_forward), nn.LeakyReLU(), nn.Linear(feed_forward, width)
        )
        self.layer_norm = nn.LayerNorm(width)

    def forward(self, patches: torch.Tensor, patch_weights: torch.Tensor) -> torch.Tensor:
        x = self.layer_norm(patches + self.attention(patches, patch_weights))
        return x + self.feed_forward(x)


def patch_weights(patches: torch.Tensor, caption_embeds: torch.Tensor, caption_mask: torch.Tensor) -> torch.Tensor:
    """1 - how well the best caption token matches each patch ((cosine + shift) / 2, padding counted as 0):
    (batch, patches). The caption tokens are every token after the patches, the end marker included."""
    cosine = F.cosine_similarity(caption_embeds.unsqueeze(2), patches.unsqueeze(1), dim=-1)  # (batch, tokens, patches)
    match = (cosine + COSINE_SHIFT) / 2 * caption_mask.unsqueeze(-1).to(cosine.dtype)
    return 1 - match.max(dim=1).values
