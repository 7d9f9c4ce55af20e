"""Write docs/screenshots/*.svg: every TUI screen on the fixed sample store of the tests.

.venv/bin/python tools/screenshots.py
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fake_store import fake_store  # noqa: E402
from scoot.tui.app import ScootApp  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
SHOTS: list[tuple[str, list[str], bool]] = [
    ("studies", [], True),
    ("study-trials", ["enter", "1"], True),
    ("study-pareto", ["enter", "2"], True),
    ("study-objective", ["enter", "2"], False),
    ("study-feasibility", ["enter", "3"], True),
    ("study-gpu-sets", ["enter", "4"], True),
    ("trial", ["enter", "1", "down", "down", "enter"], True),
    ("export", ["enter", "1", "down", "down", "enter", "e"], True),
]


async def shoot(name: str, keys: list[str], two: bool, home: Path) -> Path:
    app = ScootApp(fake_store(home, two_objectives=two), refresh_s=3600)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.5)
        for key in keys:
            await pilot.press(key)
            await pilot.pause(0.4)
        path = OUT / f"{name}.svg"
        path.write_text(app.export_screenshot(title=f"scoot tui: {name}"))
    return path


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, keys, two) in enumerate(SHOTS):
            print(asyncio.run(shoot(name, keys, two, Path(tmp) / str(i))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
