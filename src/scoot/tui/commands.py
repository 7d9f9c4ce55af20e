"""Operator commands from the TUI: blocking store writes and queue dispatches, so screens run
them in worker threads (never on Textual's event loop) and show the message they return."""

from __future__ import annotations

from scoot.jobs import control
from scoot.jobs.store import StoreError
from scoot.tui.context import Context

CONFIRM = {
    "cancel": "Cancel study {name}? Running trials are stopped; every result is kept.",
    "pause-now": "Pause study {name} now? Running trials are stopped and abandoned.",
}
"""Commands that stop engines ask first."""


def run_command(ctx: Context, study_id: int, name: str, verb: str) -> str:
    """Pause, pause now, resume or cancel through :mod:`scoot.jobs.control`."""
    store = ctx.open_store()
    try:
        if verb == "pause":
            control.pause(store, study_id)
            return f"{name}: paused; running trials finish, nothing new starts"
        if verb == "pause-now":
            stopped = control.pause(store, study_id, now=True)
            return f"{name}: paused; {len(stopped)} running trial(s) stopping"
        if verb == "cancel":
            stopped = control.cancel(store, study_id)
            return f"{name}: cancelled ({len(stopped)} running stopping); results kept"
        from scoot.jobs.worker import Queue

        queued = control.resume(store, study_id, Queue(ctx.queue_url, ctx.data_dir))
        return f"{name}: resumed; {len(queued)} queued trial(s) handed to the workers"
    except StoreError as exc:
        return f"{name}: {exc}"
    finally:
        store.close()
