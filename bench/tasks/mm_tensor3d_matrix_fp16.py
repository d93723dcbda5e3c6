"""3-D tensor times matrix, fp16: (B, S, K) @ (K, N), leading dims folded into one GEMM."""
import torch
import torch.nn as nn

B = 16
S = 512
K = 1024
N = 2048


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, A, W):
        return torch.matmul(A, W)


def get_inputs():
    return [torch.randn(B, S, K, dtype=torch.float16), torch.randn(K, N, dtype=torch.float16)]


def get_init_inputs():
    return []
