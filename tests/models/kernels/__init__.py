"""Hand-written accepted kernels (`ModelNew`), standing in for a generator's output in tests."""
