"""What every screen shares."""

from __future__ import annotations

from textual.worker import Worker, WorkerState


class ReportsWorkerErrors:
    """Mixin: a failed worker of this node is shown by the app (``SimulatorApp.show_error``).

    ``Worker.StateChanged`` does not bubble, so each node that runs workers forwards its own;
    the app decides how (a toast for our errors, a details modal for anything else).
    """

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR and event.worker.error is not None:
            self.app.show_error(event.worker.error)  # type: ignore[attr-defined]
