"""Pilot tests of the screens at the two sizes a learner uses: a laptop terminal (80x24) and full
screen (140x42)."""

from __future__ import annotations

import pytest

SIZES = [(80, 24), (140, 42)]


async def _wait_workers(app) -> None:
    """Wait for the running workers; a preview the screen replaced (exclusive workers) is cancelled,
    which is not a failure."""
    from textual.worker import WorkerCancelled, WorkerFailed

    for _ in range(100):
        workers = list(app.workers)
        for worker in workers:
            try:
                await worker.wait()
            except (WorkerCancelled, WorkerFailed):
                pass
        if not any(w.is_running for w in app.workers):
            return


async def settle(app, pilot, rounds: int = 4) -> None:
    await _wait_workers(app)
    for _ in range(rounds):
        await pilot.pause(0.05)
    await _wait_workers(app)


def footer_cut(screen) -> list[str]:
    """The footer keys whose label does not fit on the screen (cut at the right edge)."""
    from textual.widgets._footer import FooterKey

    width = screen.size.width
    cut = []
    for key in screen.query(FooterKey):
        r = key.region
        need = len(key.key_display or key.key) + 1 + len(key.description)
        if r.width < need or r.right > width:
            cut.append(key.description)
    return cut


def visible_text(widget) -> str:
    """What a widget shows (its rendered lines, cut by its width)."""
    lines = widget.render_lines(widget.region.reset_offset) if hasattr(widget, "render_lines") else []
    return "\n".join(strip.text for strip in lines)


@pytest.fixture
def incident_inputs():
    return {
        "cloud": "",
        "nodes": [{"name": "cp1", "address": "10.100.200.4", "role": "control-plane"},
                  {"name": "w1", "address": "10.100.200.21"}, {"name": "w2", "address": "10.100.200.22"}],
        "node_subnet": "10.100.200.0/24", "pod_cidr": "172.16.0.0/16", "service_cidr": "172.20.0.0/16",
        "kubernetes": "1.36", "calico": "3.32.2", "encapsulation": "IPIPCrossSubnet",
    }
