"""Write docs/screenshots/*.svg (every TUI screen on the fixed sample store of the tests, at
100x30 and the main ones at 80x24) and docs/report.png (`scoot report`'s page, rendered by
headless Chromium).

.venv/bin/python tools/screenshots.py
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fake_store import fake_store  # noqa: E402
from helpers import CHROMIUM_FLAGS  # noqa: E402
from scoot.tui.app import ScootApp  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
COMPARE = ["enter", "1", "m", *["down"] * 7, "d"]
SHOTS: list[tuple[str, list[str], bool, tuple[int, int]]] = [
    ("studies", [], True, (100, 30)),
    ("study-trials", ["enter", "1"], True, (100, 30)),
    ("study-trials-80x24", ["enter", "1"], False, (80, 24)),
    ("study-pareto", ["enter", "2"], True, (100, 30)),
    ("study-pareto-80x24", ["enter", "2"], True, (80, 24)),
    ("study-objective", ["enter", "2"], False, (100, 30)),
    ("study-feasibility", ["enter", "3"], True, (100, 30)),
    ("study-gpu-sets", ["enter", "4"], True, (100, 30)),
    ("study-why", ["enter", "5"], False, (100, 30)),
    ("compare", COMPARE, False, (100, 30)),
    ("help-80x24", ["enter", "question_mark"], False, (80, 24)),
    ("trial", ["enter", "1", "down", "down", "enter"], True, (100, 30)),
    ("export", ["enter", "1", "down", "down", "enter", "e"], True, (100, 30)),
]
CHROMIUM = ["chromium", *CHROMIUM_FLAGS]


async def shoot(name: str, keys: list[str], two: bool, size: tuple[int, int], home: Path) -> Path:
    app = ScootApp(fake_store(home, two_objectives=two), refresh_s=3600)
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.5)
        for key in keys:
            await pilot.press(key)
            await pilot.pause(0.4)
        path = OUT / f"{name}.svg"
        path.write_text(app.export_screenshot(title=f"scoot tui: {name}"))
    return path


def report_png(tmp: Path) -> Path:
    """The one-objective sample study's report page, as a browser shows it."""
    from scoot.jobs.report import write_report
    from scoot.jobs.store import Store

    home = fake_store(tmp / "report-home", two_objectives=False)
    store = Store(home / "scoot.db")
    page = write_report(store, store.studies()[0], tmp / "report")
    store.close()
    out = ROOT / "docs" / "report.png"
    profile = f"--user-data-dir={tmp / 'chromium'}"
    shot = [*CHROMIUM, profile, "--window-size=1200,2400", f"--screenshot={out}"]
    subprocess.run([*shot, page.as_uri()], check=True, capture_output=True, timeout=120)
    return out


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, keys, two, size) in enumerate(SHOTS):
            print(asyncio.run(shoot(name, keys, two, size, Path(tmp) / str(i))))
        print(report_png(Path(tmp)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
