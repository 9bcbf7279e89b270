"""The stage definitions. Each stage module defines `build() -> Wizard` (cheap: no heavy imports).

Stages, in the order a lab walks them. A stage whose module is not present is simply not offered.
"""

from __future__ import annotations

import importlib
import importlib.util
from functools import lru_cache

from labtui.steps import Wizard

WIZARD_ORDER = ["plan", "provision", "nodes", "cloud", "kubernetes", "calico", "doctor"]
WIZARD_MODULES = {w: f"labtui.stages.{w}" for w in WIZARD_ORDER}


@lru_cache(maxsize=None)
def wizard_for(wizard_id: str) -> Wizard | None:
    mod = WIZARD_MODULES.get(wizard_id)
    if mod is None or importlib.util.find_spec(mod) is None:
        return None
    return importlib.import_module(mod).build()


def available_wizards() -> list[Wizard]:
    return [w for w in (wizard_for(i) for i in WIZARD_ORDER) if w is not None]


def next_wizard(wizard_id: str) -> Wizard | None:
    ids = [w.id for w in available_wizards()]
    if wizard_id in ids and ids.index(wizard_id) + 1 < len(ids):
        return wizard_for(ids[ids.index(wizard_id) + 1])
    return None
