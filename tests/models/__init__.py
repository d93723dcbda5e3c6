"""Sample user models for the integration tests: ordinary PyTorch files a user might point akg-op
at, plus hand-written accepted kernels (`kernels/`) standing in for a generator's output."""
