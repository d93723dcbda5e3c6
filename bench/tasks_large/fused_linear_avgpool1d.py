"""Linear (4096 -> 1024) -> avg_pool1d(4) over the features of x (131072, 4096) fp32: 2.1 GB in, 0.5 GB product, 1.1 TFLOP (cuBLAS)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH = 131072
IN_FEATURES = 4096
OUT_FEATURES = 1024
POOL = 4


class Model(nn.Module):
    def __init__(self, in_features, out_features, pool):
        super().__init__()
        self.fc = nn.Linear(in_features, out_features)
        self.pool = pool

    def forward(self, x):
        h = self.fc(x)
        return F.avg_pool1d(h.unsqueeze(1), kernel_size=self.pool, stride=self.pool).squeeze(1)


def get_inputs():
    return [torch.randn(BATCH, IN_FEATURES)]


def get_init_inputs():
    return [IN_FEATURES, OUT_FEATURES, POOL]
