"""The independent timing script calls an output wrong exactly when the judge would: the judge's
per-dtype tolerances, and a float64 second opinion where the reference itself rounds."""
from __future__ import annotations

import torch
import torch.nn as nn

from bench.output_check import output_problem


class RoundingReference(nn.Module):
    """fp32 rounds x + 1e6 to a multiple of 1/16: the reference is off by up to 1/32 from x."""

    def forward(self, x):
        return (x + 1e6) - 1e6


class CarriedCumsum(nn.Module):
    """A cumsum as torch's CUDA kernel rounds it: 64-element tiles, the running total in fp32."""

    def forward(self, x):
        rows, n = x.shape
        tiles = x.reshape(rows, n // 64, 64)
        out, carry = torch.empty_like(tiles), torch.zeros(rows, 1, dtype=x.dtype)
        for t in range(tiles.shape[1]):
            out[:, t] = torch.cumsum(tiles[:, t], dim=1) + carry  # rounded to the dtype per tile
            carry = out[:, t, -1:].clone()
        return out.reshape(rows, n)


def test_a_kernel_more_exact_than_the_reference_is_not_wrong():
    x = torch.randn(64, 256)
    reference = RoundingReference()
    expected = reference(x)
    assert (expected - x).abs().max() > 1e-3  # far outside fp32's 1e-4 tolerance
    assert output_problem(x.clone(), expected, reference, [x]) is None


def test_a_wrong_kernel_is_still_wrong():
    x = torch.randn(64, 256)
    reference = RoundingReference()
    expected = reference(x)
    problem = output_problem(x + 0.5, expected, reference, [x])
    assert problem and "outside tolerance" in problem
    assert output_problem(x[:, :128], expected, reference, [x]).startswith("output 0: shape")


def test_a_long_cumsum_accumulated_in_float64_matches_an_fp32_carried_reference():
    torch.manual_seed(0)
    x = torch.randn(16, 65536)
    reference = CarriedCumsum()
    expected = reference(x)
    exact = torch.cumsum(x.double(), dim=1).float()  # what a float64-accumulating kernel writes
    assert not torch.allclose(exact, expected, atol=1e-4, rtol=1e-4)  # the judge's tolerance alone fails it
    assert output_problem(exact, expected, reference, [x]) is None
    off_by_one_column = torch.cat([exact[:, :1], exact[:, :-1]], dim=1)
    assert output_problem(off_by_one_column, expected, reference, [x]) is not None


def test_the_judges_tolerance_not_a_looser_one():
    """fp32: 1e-4 as the judge's, not 1e-3 (an error of 5e-4 on values ~1 is wrong)."""
    x = torch.randn(32, 32)
    reference = nn.Identity()
    assert output_problem(x + 5e-4, reference(x), reference, [x]) is not None
    assert output_problem(x + 1e-5, reference(x), reference, [x]) is None
