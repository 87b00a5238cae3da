"""In-process progress of the store step (files and bytes), for the CLI's progress bar.

Flows run in the CLI's own process on the embedded default, so a listener set here sees
every batch; on a worker nobody listens and reporting costs nothing.
"""

from __future__ import annotations

from typing import Protocol


class Listener(Protocol):
    def total(self, files: int, size: int) -> None: ...

    def advance(self, files: int, size: int) -> None: ...


_listeners: list[Listener] = []


def listen(listener: Listener) -> None:
    _listeners.append(listener)


def forget(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def total(files: int, size: int) -> None:
    for listener in list(_listeners):
        listener.total(files, size)


def advance(files: int, size: int) -> None:
    for listener in list(_listeners):
        listener.advance(files, size)
