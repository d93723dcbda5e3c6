"""ModelNew for MyLayerNorm that is right only for 2-D inputs: it flattens the leading dims and
forgets to restore them (the silent-wrong-shape bug integration must catch)."""
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, normalized_size: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(normalized_size))
        self.bias = nn.Parameter(torch.zeros(normalized_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])
        out = torch.nn.functional.layer_norm(rows, rows.shape[-1:], self.weight, self.bias, self.eps)
        return out  # (rows, cols): wrong for any input with more than one leading dim
