"""Start the UI: the one place the engine names `screens` (by name, lazily: the engine never imports the UI)."""

from __future__ import annotations

import importlib

from labtui.store import Store


def launch_ui(resume: str | None = None) -> int:
    store = Store()  # a clear LabError (unwritable directory, newer schema) before any UI starts
    # lazy, by name: the engine never imports the UI; this is the one place that starts it
    app = importlib.import_module("screens.app").LabApp(store=store, resume=resume)
    app.run()
    return app.return_code or 0
