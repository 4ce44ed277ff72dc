"""A Ctrl-C whose KeyboardInterrupt Python drops, for tests of the loops that must notice it.

A signal handler's exception is raised wherever the main thread happens to be; inside a
``__del__`` or a garbage-collector callback Python prints it ("Exception ignored") and goes
on. Tests using this filter PytestUnraisableExceptionWarning.
"""

from __future__ import annotations

import signal


class _RaisesCtrlCInDel:
    def __del__(self) -> None:
        signal.raise_signal(signal.SIGINT)  # the handler runs here, inside __del__


def drop_a_ctrl_c() -> None:
    """Send SIGINT to this process so that the handler's exception is raised and dropped."""
    _RaisesCtrlCInDel()  # made and freed at once
