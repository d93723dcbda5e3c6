"""Fusion mode from the request's words, and the answers to the pick_fusion gate."""
from __future__ import annotations

import re

from nodes.errors import UserError

# "fusion", "fusable", "fuse ... ops": not "fused" alone ("optimize the fused layernorm" is one op).
FUSION_WORDS = re.compile(r"\bfusion\b|\bfusable\b|\bfuse\b.*\b(ops|operators|kernels|model)\b", re.IGNORECASE)
ANALYSE_MODEL = re.compile(r"\banaly[sz]e\b.*\bmodel\b", re.IGNORECASE)
DEFAULT_PICK = "top 3"


def is_fusion_request(request: str | None) -> bool:
    """'Analyze Qwen2 model for operator fusion opportunities and realize' → True."""
    text = request or ""
    return bool(FUSION_WORDS.search(text) or ANALYSE_MODEL.search(text))


def parse_pick(answer: str, count: int) -> list[int]:
    """'1,3' / 'all' / 'top 2' / 'none' → 1-based ranks, in the order given."""
    text = answer.strip().lower()
    if text in ("none", "no", "0"):
        return []
    if text == "all":
        return list(range(1, count + 1))
    top = re.fullmatch(r"top\s*(\d+)", text)
    if top:
        return list(range(1, min(int(top.group(1)), count) + 1))
    parts = [p for p in re.split(r"[,\s]+", text) if p]
    if parts and all(p.isdigit() for p in parts):
        ranks = list(dict.fromkeys(int(p) for p in parts))
        bad = [r for r in ranks if not 1 <= r <= count]
        if bad:
            raise UserError(f"no opportunity {', '.join(map(str, bad))}: there are {count} (answer e.g. 1,3)")
        return ranks
    raise UserError(f"'{answer}' is not an answer to pick_fusion: answer e.g. 1,3 or all or top 2 or none")
