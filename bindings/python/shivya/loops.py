"""Host loops for a ShivyaNode: asyncio (``run``) and a helper thread (``Runner``).

The node never reads the clock or starts a thread; these helpers are the host's side:
they wait until the node's socket is readable or its next timer is due, then step it.
Every other call on the node (pick, request reports, writes) may be made meanwhile from
any thread or task: calls are serialised inside the node.

    async def main():
        node = shivya.ShivyaNode(cfg, shivya.monotonic_ms())
        task = asyncio.create_task(shivya.run(node))
        ...
        task.cancel()

    with shivya.Runner(node):        # sync code: a thread steps the node
        ...
"""
import asyncio
import os
import select
import threading
import time

from .shivya import ShivyaError


def monotonic_ms():
    """The host clock these helpers use by default: monotonic milliseconds."""
    return int(time.monotonic() * 1000)


def _closed(err):
    return isinstance(err, ShivyaError) and "closed" in str(err)


async def run(node, now=monotonic_ms):
    """Drives ``node`` on the running asyncio loop until cancelled (or the node is
    closed, which ends it quietly). The socket is watched with ``loop.add_reader`` and
    the next timer with ``loop.call_later``; nothing polls or spins. A failed step is
    counted by the node and retried at the next wakeup."""
    loop = asyncio.get_running_loop()
    try:
        fd = node.fd()
    except ShivyaError as e:
        if _closed(e):
            return
        raise
    wake = asyncio.Event()
    loop.add_reader(fd, wake.set)
    timer = None
    try:
        while True:
            try:
                node.step(now())
                wait_ms = node.next_timeout_ms(now())
            except ShivyaError as e:
                if _closed(e):
                    return
                # A transient failure of one step (counted by the node): go on.
                wait_ms = 50
            wake.clear()
            timer = loop.call_later(wait_ms / 1000.0, wake.set)
            await wake.wait()
            timer.cancel()
    finally:
        if timer is not None:
            timer.cancel()
        loop.remove_reader(fd)


class Runner:
    """Steps ``node`` on a helper thread until ``stop()`` (or the end of a ``with``
    block). The thread sleeps in ``select`` on the node's socket and a wakeup pipe until
    the next timer; ``stop()`` wakes it, joins it, closes the pipe, and re-raises what
    ended the thread, if anything did (a closed node ends it quietly)."""

    def __init__(self, node, now=monotonic_ms):
        self._node = node
        self._now = now
        self._stop = threading.Event()
        self._error = None
        self._rd, self._wr = os.pipe()
        self._thread = threading.Thread(target=self._loop, name="shivya-runner", daemon=True)
        self._thread.start()

    def _loop(self):
        try:
            fd = self._node.fd()
            while not self._stop.is_set():
                try:
                    self._node.step(self._now())
                    wait_ms = self._node.next_timeout_ms(self._now())
                except ShivyaError as e:
                    if _closed(e):
                        return
                    wait_ms = 50
                select.select([fd, self._rd], [], [], wait_ms / 1000.0)
        except ShivyaError as e:
            if not _closed(e):
                self._error = e
        except Exception as e:  # noqa: BLE001 - handed to stop()
            self._error = e

    def stop(self):
        """Stops the thread and frees the pipe; idempotent."""
        if self._rd is None:
            return
        self._stop.set()
        os.write(self._wr, b"x")
        self._thread.join()
        os.close(self._rd)
        os.close(self._wr)
        self._rd = self._wr = None
        if self._error is not None:
            raise self._error

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False
