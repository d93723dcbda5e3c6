"""Linear (1024 -> 2048) -> LayerNorm over x (262144, 1024) fp32: 1.1 GB in, 2.1 GB out, 1.1 TFLOP (cuBLAS)."""
import torch
import torch.nn as nn

BATCH = 262144
IN_FEATURES = 1024
OUT_FEATURES = 2048


class Model(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.fc = nn.Linear(in_features, out_features)
        self.ln = nn.LayerNorm(out_features)

    def forward(self, x):
        return self.ln(self.fc(x))


def get_inputs():
    return [torch.randn(BATCH, IN_FEATURES)]


def get_init_inputs():
    return [IN_FEATURES, OUT_FEATURES]
