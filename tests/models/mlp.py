"""A gated MLP whose activation is a plain function: `swiglu` is the target."""
import torch
from torch import nn
from torch.nn import functional as F


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """SiLU-gated linear unit: silu(gate) * up."""
    return F.silu(gate) * up


class GatedMLP(nn.Module):
    def __init__(self, dim: int = 16, hidden: int = 32):
        super().__init__()
        self.gate = nn.Linear(dim, hidden)
        self.up = nn.Linear(dim, hidden)
        self.down = nn.Linear(hidden, dim)

    def forward(self, x):
        # The activation is the hot spot: two reads and one write per element.
        return self.down(swiglu(self.gate(x), self.up(x)))
