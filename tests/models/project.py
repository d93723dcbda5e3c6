"""Test helper: a user's project in a temporary folder, built from the sample models here."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

MODELS = Path(__file__).parent
KERNELS = MODELS / "kernels"


@dataclass
class UserProject:
    source: Path  # the user's model file (a copy of tests/models/<name>.py)
    workdir: Path  # the session's work directory

    def accept_kernel(self, op_name: str, kernel: str | None = None) -> Path:
        """Put a hand-written ModelNew where the session keeps the accepted kernel."""
        accepted = self.workdir / f"{op_name}_generated.py"
        shutil.copyfile(KERNELS / f"{kernel or op_name}_generated.py", accepted)
        return accepted

    def tree(self) -> dict[str, bytes]:
        """Every file of the user's folder with its bytes, to prove what did or did not change."""
        return {p.name: p.read_bytes() for p in sorted(self.source.parent.iterdir()) if p.is_file()}


def user_project(tmp_path: Path, model: str) -> UserProject:
    src, work = tmp_path / "project", tmp_path / "session"
    src.mkdir()
    work.mkdir()
    source = src / f"{model}.py"
    shutil.copyfile(MODELS / f"{model}.py", source)
    return UserProject(source=source, workdir=work)
