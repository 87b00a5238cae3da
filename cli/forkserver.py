"""Hand a process's work to a warm process that forks one child per request (Linux).

Two servers use it: `bifrost server`'s runner (cli/runner.py: the CLI's flow commands) and a
GPU worker's warm engine (cli/warm_engine.py: the worker's flow runs). Both have imported
what their work needs once; a child forked from them starts with it in memory.

- Messages: a 4-byte length and JSON; a request carries the client's stdin/stdout/stderr
  descriptors (SCM_RIGHTS) so that the child writes where the client would have.
- The client (`hand_over`): sends its request, forwards SIGINT and SIGTERM to the child while
  it waits, and gets the child's exit code, or the signal that ended it (the client then ends
  by the same signal), or a refusal (it then does the work itself).
- The server (`ForkServer`): one thread, a selector over its listening socket (mode 0600, a
  peer of another uid refused by SO_PEERCRED), each client's connection and each child's
  pidfd; at most MAX_CHILDREN children, more are refused. A client that disappears takes its
  child with it (`orphan_signal`); a child dies with its server (PR_SET_PDEATHSIG), so no
  work outlives the process that answers for it.
"""

from __future__ import annotations

import abc
import contextlib
import gc
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

# Children at once; more requests are refused (their clients do the work themselves): a bound
# on what a burst, or a bug that made children hand their work over again, can fork.
MAX_CHILDREN = 16
_HEADER = struct.Struct("!I")
_PR_SET_PDEATHSIG = 1


# --------------------------------------------------------------------------- messages


def send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode()
    packet = _HEADER.pack(len(data)) + data
    if fds:
        sent = socket.send_fds(sock, [packet], fds)
        if sent < len(packet):  # (an empty send to a peer that already answered fails)
            sock.sendall(packet[sent:])
    else:
        sock.sendall(packet)


def receive(sock: socket.socket, *, with_fds: bool = False) -> tuple[dict[str, Any] | None, list[int]]:
    """One message (None at end of stream) and the descriptors that came with it."""
    fds: list[int] = []
    if with_fds:
        data, fds, _, _ = socket.recv_fds(sock, 65536, 3)
    else:
        data = sock.recv(65536)
    if not data:
        return None, fds
    while len(data) < _HEADER.size:
        more = sock.recv(65536)
        if not more:
            return None, fds
        data += more
    (size,) = _HEADER.unpack_from(data)
    while len(data) < _HEADER.size + size:
        more = sock.recv(max(65536, _HEADER.size + size - len(data)))
        if not more:
            return None, fds
        data += more
    return json.loads(data[_HEADER.size : _HEADER.size + size]), fds


# --------------------------------------------------------------------------- client


def connect(path: Path) -> socket.socket | None:
    if not path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        return None
    return sock


def ping(path: Path, timeout: float = 2) -> dict[str, Any] | None:
    """The server's answer to a ping (its pid and start time), or None."""
    connection = connect(path)
    if connection is None:
        return None
    with connection:
        connection.settimeout(timeout)
        try:
            send(connection, {"ping": True})
            reply, _ = receive(connection)
        except OSError:
            return None
    return reply


def hand_over(connection: socket.socket, request: dict[str, Any]) -> dict[str, Any] | None:
    """Send the request with this process's descriptors 0, 1 and 2 and wait for the child's
    end, forwarding SIGINT and SIGTERM to it meanwhile. The reply (`exit`, with `signal` when
    a signal ended the child; or `declined`), or None when the server went away."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    send(connection, request, [0, 1, 2])
    previous = signal.getsignal(signal.SIGINT)

    def forward(signum: int, frame: object) -> None:
        with contextlib.suppress(OSError):
            send(connection, {"signal": signum})

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    try:
        reply, _ = receive(connection)
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return reply


def end_as(reply: dict[str, Any]) -> int:
    """The exit code to end with; a child that a signal ended ends this process by it."""
    if "signal" in reply:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        signal.signal(reply["signal"], signal.SIG_DFL)
        os.kill(os.getpid(), reply["signal"])
    return int(reply["exit"])


def die_with_parent(signum: int) -> None:
    """This process gets `signum` when its parent dies (PR_SET_PDEATHSIG, Linux)."""
    import ctypes  # (not at the top: clients stay light)

    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signum)


# --------------------------------------------------------------------------- server


class Stop(Exception):
    """Raised by SIGTERM or SIGINT in the server: it stops serving."""


def stop_on_signal(signum: int, frame: object) -> None:
    raise Stop


class ForkServer(abc.ABC):
    """The serving loop. A subclass says what it refuses (`declines`) and what a child does
    (`run_child`, in the forked child, its exit status)."""

    # What a child gets when its client disappears (killed, crashed).
    orphan_signal = signal.SIGTERM

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self.selector = selectors.DefaultSelector()
        self.children: dict[int, tuple[socket.socket, int]] = {}  # pid -> (connection, pidfd)
        self.listener: socket.socket | None = None
        self.started_at = time.time()

    def log(self, message: str) -> None:
        print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}", flush=True)

    def declines(self, request: dict[str, Any]) -> str | None:
        return None

    @abc.abstractmethod
    def run_child(self, request: dict[str, Any]) -> int: ...

    def label(self, request: dict[str, Any]) -> str:
        """What the log says a child runs."""
        return "request"

    def reply_for(self, code: int) -> dict[str, Any]:
        if code < 0:  # ended by a signal: the client ends by the same one
            return {"exit": 128 - code, "signal": -code}
        return {"exit": code}

    def on_event(self, kind: str) -> bool:
        """Something a subclass registered in the selector is ready; True stops serving."""
        return False

    def listen(self) -> None:
        self.socket_path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        previous = os.umask(0o177)  # the socket is created 0600: only its owner may connect
        try:
            listener.bind(str(self.socket_path))
        finally:
            os.umask(previous)
        listener.listen(64)
        self.listener = listener
        self.selector.register(listener, selectors.EVENT_READ, ("listener", None))

    def serve(self) -> None:
        while True:
            for key, _ in self.selector.select():
                kind, pid = key.data
                if kind == "listener":
                    self._accept()
                elif kind == "client":
                    self._from_client(key.fileobj, pid)  # type: ignore[arg-type]
                elif kind == "child":
                    self._child_done(pid)
                elif self.on_event(kind):
                    return

    def stop_children(self) -> None:
        """SIGTERM every child and reap them (the server is stopping)."""
        # A second signal (the worker's SIGTERM after its process group's) must not stop the reaping.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for pid, (connection, _) in list(self.children.items()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            connection.close()
        for pid in list(self.children):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.socket_path.unlink(missing_ok=True)

    def _accept(self) -> None:
        assert self.listener is not None
        connection, _ = self.listener.accept()
        credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _, uid, _ = struct.unpack("3i", credentials)
        if uid != os.getuid():
            connection.close()
            return
        connection.settimeout(5)  # a request arrives whole at once; a stuck peer is dropped
        fds: list[int] = []
        try:
            request, fds = receive(connection, with_fds=True)
            if request is None:
                connection.close()
                return
            if request.get("ping"):
                send(connection, {"pid": os.getpid(), "started_at": self.started_at})
                connection.close()
                return
            reason = self._refuses(request)
            if reason is not None or len(fds) != 3:
                send(connection, {"declined": reason or "no terminal descriptors"})
                connection.close()
                return
            self._fork(connection, request, fds)
        except OSError:
            connection.close()
        finally:
            for fd in fds:
                os.close(fd)

    def _refuses(self, request: dict[str, Any]) -> str | None:
        if len(self.children) >= MAX_CHILDREN:
            return f"{MAX_CHILDREN} commands already run"
        return self.declines(request)

    def _fork(self, connection: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        server = os.getpid()
        gc.freeze()  # the child's first collection then does not touch (and copy) every page
        # Held over the fork: a signal for the child before it has its own handlers would
        # otherwise run the server's (Stop) in it, and it would not end by that signal.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        pid = os.fork()
        if pid == 0:
            self._child(connection, request, fds, server, mask)  # never returns
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        gc.unfreeze()
        connection.setblocking(True)
        pidfd = os.pidfd_open(pid)
        self.children[pid] = (connection, pidfd)
        self.log(f"pid {pid}: {self.label(request)}")
        self.selector.register(connection, selectors.EVENT_READ, ("client", pid))
        self.selector.register(pidfd, selectors.EVENT_READ, ("child", pid))

    def _from_client(self, connection: socket.socket, pid: int) -> None:
        try:
            message, _ = receive(connection)
        except OSError:
            message = None
        with contextlib.suppress(ProcessLookupError):
            if message is None:  # the client is gone: so is its work
                self.selector.unregister(connection)
                os.kill(pid, self.orphan_signal)
            elif message.get("signal") in (signal.SIGINT, signal.SIGTERM):
                os.kill(pid, message["signal"])

    def _child_done(self, pid: int) -> None:
        connection, pidfd = self.children.pop(pid)
        _, status, usage = os.wait4(pid, 0)
        self.selector.unregister(pidfd)
        os.close(pidfd)
        with contextlib.suppress(KeyError):
            self.selector.unregister(connection)
        code = os.waitstatus_to_exitcode(status)
        self.log(f"pid {pid}: exit {code}, cpu {usage.ru_utime + usage.ru_stime:.2f} s")
        with contextlib.suppress(OSError):
            send(connection, self.reply_for(code))
        connection.close()

    def _child(
        self, connection: socket.socket, request: dict[str, Any], fds: list[int], server: int, mask: set
    ) -> None:
        code = 1
        try:
            die_with_parent(signal.SIGKILL)
            if os.getppid() != server:  # the server died before the line above
                os._exit(1)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            # Only the server answers clients and watches processes: the child keeps none of it.
            for key in list(self.selector.get_map().values()):
                if isinstance(key.fileobj, int):
                    os.close(key.fileobj)
                else:
                    key.fileobj.close()  # type: ignore[union-attr]
            self.selector.close()
            connection.close()
            for other, _ in self.children.values():
                other.close()  # (those whose client is gone are no longer in the selector)
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
                os.close(fd)
            code = self.run_child(request)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except KeyboardInterrupt:
            # Uncaught, it ends a process by SIGINT: so it ends this one.
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
