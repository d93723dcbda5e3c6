"""Linear -> bias add -> GELU -> scale -> residual add, fp16 (a transformer MLP branch)."""
import torch
import torch.nn as nn

BATCH = 16384
IN_FEATURES = 1024
OUT_FEATURES = 4096


class Model(nn.Module):
    def __init__(self, in_features, out_features, scale):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=False, dtype=torch.float16)
        self.bias = nn.Parameter(torch.randn(out_features, dtype=torch.float16) * 0.02)
        self.scale = scale

    def forward(self, x, residual):
        y = self.linear(x) + self.bias
        y = torch.nn.functional.gelu(y)
        return y * self.scale + residual


def get_inputs():
    return [torch.randn(BATCH, IN_FEATURES, dtype=torch.float16),
            torch.randn(BATCH, OUT_FEATURES, dtype=torch.float16)]


def get_init_inputs():
    return [IN_FEATURES, OUT_FEATURES, 0.5]
