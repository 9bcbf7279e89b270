"""Fill the recorded outputs (recorded/*.txt, from record.py) with a scenario's addresses."""

from __future__ import annotations

from pathlib import Path

RECORDED = Path(__file__).parent / "recorded"


def recorded(name: str, **values: str) -> str:
    text = (RECORDED / name).read_text()
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text
