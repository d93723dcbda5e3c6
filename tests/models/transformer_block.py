"""A tiny pre-norm transformer block: the layer norm is what a user asks akg-op to optimize."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

HIDDEN = 32


class MyLayerNorm(nn.Module):
    """Normalizes the last dimension, then applies a learnable scale and shift."""

    def __init__(self, normalized_size: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(normalized_size))
        self.bias = nn.Parameter(torch.zeros(normalized_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 2):
        super().__init__()
        self.up = nn.Linear(dim, dim * mult)
        self.down = nn.Linear(dim * mult, dim)

    def forward(self, x):
        return self.down(F.gelu(self.up(x)))


class Block(nn.Module):
    """Pre-norm residual block: layernorm, feed-forward, residual add."""

    def __init__(self, dim: int = HIDDEN):
        super().__init__()
        self.norm = MyLayerNorm(dim, eps=1e-6)  # a tighter eps than the default
        self.ff = FeedForward(dim)

    def forward(self, x):
        return x + self.ff(self.norm(x))


class TinyTransformer(nn.Module):
    """Two blocks and a final norm; scaled by 1/sqrt(dim) like an attention logit."""

    def __init__(self, dim: int = HIDDEN, depth: int = 2):
        super().__init__()
        self.blocks = nn.ModuleList([Block(dim) for _ in range(depth)])
        self.final_norm = MyLayerNorm(dim, eps=1e-6)
        self.scale = 1.0 / math.sqrt(dim)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.final_norm(x) * self.scale


if __name__ == "__main__":
    model = TinyTransformer()
    print(model(torch.randn(4, HIDDEN)).shape)
