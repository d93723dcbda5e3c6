"""The judge's float64 second opinion where a whole float64 evaluation does not fit the device: slice
by slice of the leading dim, only where the op treats those slices independently."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from harness.float64_opinion import in_leading_slices


class CausalAttention(nn.Module):
    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)


class CentreOverBatch(nn.Module):
    def forward(self, x):
        return x - x.mean(0, keepdim=True)


def test_attention_evaluated_slice_by_slice_equals_the_whole_float64_evaluation():
    torch.manual_seed(0)
    inputs = [torch.randn(8, 2, 16, 8) for _ in range(3)]
    model = CausalAttention()
    truth = in_leading_slices(model, inputs, model(*inputs), "cpu", parts=(4,))
    whole = model(*[t.double() for t in inputs])
    assert truth.dtype == torch.float64
    torch.testing.assert_close(truth, whole, rtol=1e-12, atol=1e-12)


def test_an_op_that_mixes_the_leading_dim_is_not_sliced():
    x = torch.randn(8, 4)
    model = CentreOverBatch()
    assert in_leading_slices(model, [x], model(x), "cpu") is None
