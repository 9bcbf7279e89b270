"""The confirmation that shows the exact changes keeps its buttons on screen, however long the list
(found on a walk: at 80x24 the Provision stage's port and server list pushed Apply/Cancel below the
screen; only `y`/`n` worked)."""

from __future__ import annotations

import pytest
from textual.app import App

from screens.modals import ConfirmModal

CHANGES = [f"$ openstack port create --network labtui-lab-net --fixed-ip ip-address=10.0.0.{i} port{i}\n"
           f"  revert: openstack port delete port{i}" for i in range(14)]


class _Host(App):
    def __init__(self, result: list) -> None:
        super().__init__()
        self.result = result

    def on_mount(self) -> None:
        self.push_screen(ConfirmModal("Apply these changes?", CHANGES, note="Each change is recorded."),
                         self.result.append)


@pytest.mark.parametrize("size", [(80, 24), (60, 16), (140, 42)])
async def test_buttons_stay_on_screen_and_the_list_scrolls(size):
    result: list = []
    app = _Host(result)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        for button in ("#confirm", "#cancel"):
            region = app.screen.query_one(button).region
            assert region.bottom <= size[1] and region.right <= size[0], (button, region, size)
        await pilot.click("#confirm")
        await pilot.pause()
    assert result == [True]
