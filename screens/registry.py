"""Session screens, opened from the wizard screen and the command palette when present."""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class ScreenEntry:
    id: str
    module: str
    cls: str
    title: str
    key: str
    help: str

    @property
    def available(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def create(self, session_name: str):
        return getattr(importlib.import_module(self.module), self.cls)(session_name)


SESSION_SCREENS = [
    ScreenEntry("nodes", "screens.nodes", "NodesScreen", "Nodes", "N", "reach the nodes over SSH, facts, a shell"),
    ScreenEntry("security", "screens.security", "SecurityScreen", "Security groups", "S", "security-group rules and node ports"),
    ScreenEntry("calico", "screens.calico", "CalicoScreen", "Calico", "C", "IP pools and their encapsulation"),
    ScreenEntry("doctor", "screens.doctor", "DoctorScreen", "Doctor", "D", "why pods cannot talk across nodes, and the fix"),
]


def entry(screen_id: str) -> ScreenEntry | None:
    return next((e for e in SESSION_SCREENS if e.id == screen_id), None)
