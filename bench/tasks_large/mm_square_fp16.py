"""Square matmul, fp16, 16384^3: 0.5 GB per tensor, 8.8 TFLOP (a multi-GB square fp16 matmul would be ~70 TFLOP a call)."""
import torch
import torch.nn as nn

N = 16384


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, A, B):
        return torch.matmul(A, B)


def get_inputs():
    return [torch.randn(N, N, dtype=torch.float16), torch.randn(N, N, dtype=torch.float16)]


def get_init_inputs():
    return []
