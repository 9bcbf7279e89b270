"""First frame of `labtui` vs a bare Textual hello-world, both measured in the same run.

Each app is started in a pseudo-terminal; the clock runs from spawn until the terminal output
contains text that only the first screen draws. Target: labtui <= 1.2 x hello-world.

    .venv/bin/python bench/bench_startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import statistics
import subprocess
import sys
import tempfile
import time

HELLO = """
from textual.app import App
from textual.widgets import Footer, Header, Static

class Hello(App):
    def compose(self):
        yield Header()
        yield Static("Hello, first frame")
        yield Footer()

Hello().run()
"""


def first_frame(argv: list[str], marker: bytes, env: dict[str, str], timeout: float = 20.0) -> float:
    master, slave = pty.openpty()
    os.set_blocking(master, False)
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    seen = b""
    try:
        while time.perf_counter() - start < timeout:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    break
                if marker in seen:
                    return time.perf_counter() - start
        raise RuntimeError(f"no first frame from {argv} within {timeout}s")
    finally:
        proc.kill()
        proc.wait()
        os.close(master)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    home = tempfile.mkdtemp(prefix="labtui-bench-")
    env = {**os.environ, "LABTUI_HOME": home, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(HELLO)
        hello_path = f.name
    script = os.path.join(os.path.dirname(sys.executable), "labtui")  # the console script users run
    labtui = [script] if os.path.exists(script) else [sys.executable, "-m", "labtui"]
    hello = [sys.executable, hello_path]
    # warm the file cache once, then alternate the two so both see the same machine state
    first_frame(hello, b"first frame", env)
    first_frame(labtui, b"No labs yet", env)
    h, lab = [], []
    for _ in range(args.runs):
        h.append(first_frame(hello, b"first frame", env))
        lab.append(first_frame(labtui, b"No labs yet", env))
    hm, lm = statistics.median(h), statistics.median(lab)
    print(f"hello-world first frame: median {hm * 1000:.0f} ms  (runs: {', '.join(f'{x * 1000:.0f}' for x in h)})")
    print(f"labtui      first frame: median {lm * 1000:.0f} ms  (runs: {', '.join(f'{x * 1000:.0f}' for x in lab)})")
    print(f"ratio labtui / hello-world: {lm / hm:.2f}  (target <= 1.20)")


if __name__ == "__main__":
    main()
