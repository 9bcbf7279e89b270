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


def not_applicable(step, ctx) -> str | None:
    """Why a step does not apply to this lab, known from its saved plan alone (no I/O), or None."""
    fn = getattr(step, "not_applicable", None)
    return fn(ctx) if callable(fn) else None


def mark_not_applicable(ctx) -> list[str]:
    """Record the steps that do not apply to this lab (a lab without a cloud: Provision, Cloud) as skipped
    with their reason, so every list shows them as such from the start; a step recorded so that applies
    again (the plan gained a cloud) is pending again. Returns the steps whose state changed."""
    changed = []
    for wizard in available_wizards():
        runs = ctx.store.step_states(ctx.session.id, wizard.id)
        for step in wizard.steps:
            if not callable(getattr(step, "not_applicable", None)):
                continue
            reason = not_applicable(step, ctx)
            run = runs.get(step.id)
            state = run.state if run else "pending"
            if reason and state == "pending":
                ctx.store.record_step(ctx.session.id, wizard.id, step.id, "skipped", reason)
            elif not reason and state == "skipped":
                ctx.store.record_step(ctx.session.id, wizard.id, step.id, "pending",
                                      "the plan changed: this step applies to the lab now")
            else:
                continue
            changed.append(f"{wizard.id}/{step.id}")
    return changed
