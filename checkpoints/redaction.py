"""Everything written to a store passes through the harness's secret redaction (a second line of
defence: verdicts are already redacted where the harness hands them over). The redaction rules
live in one place, harness/secrets.py, which imports only the standard library."""
from harness.secrets import redact, redact_tree

__all__ = ["redact", "redact_tree"]
