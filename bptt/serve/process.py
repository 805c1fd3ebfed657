"""`bptt-serve` in a child process on the loopback interface: for integration tests and load
scripts, which must call a real server over HTTP and always stop it.

    with ServerProcess(["models/iris"], log_file="requests.jsonl") as server:
        httpx.get(f"{server.url}/healthz")

The port is a free one chosen by the kernel; start-up waits (bounded) until `/healthz` answers,
and stopping sends SIGTERM, then SIGKILL if the server has not exited in `stop_timeout` s.
"""
from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel's choice)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class ServerProcess:
    """A `bptt-serve` child process serving `directories` on 127.0.0.1 (a context manager).

    `cpu` pins the server to that core (for load measurements); `options` are further
    `bptt-serve` options. A server that exits or does not answer within `start_timeout` s is
    a RuntimeError carrying its output.
    """

    def __init__(self, directories, *, log_file, options=(), cpu: int | None = None,
                 start_timeout: float = 30.0, stop_timeout: float = 10.0):
        self.directories = [str(d) for d in directories]
        self.log_file, self.options, self.cpu = Path(log_file), list(options), cpu
        self.start_timeout, self.stop_timeout = start_timeout, stop_timeout
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self._output = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def __enter__(self) -> "ServerProcess":
        self.port = free_port()
        command = [sys.executable, "-m", "bptt.serve", *self.directories, "--host", HOST,
                   "--port", str(self.port), "--log-file", str(self.log_file), *self.options]
        cpu = self.cpu
        self._output = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            command, stdout=self._output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=None if cpu is None else (lambda: os.sched_setaffinity(0, {cpu})))
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"bptt-serve exited with code {self.process.returncode}: "
                                   f"{self.output()}")
            try:
                connection = http.client.HTTPConnection(HOST, self.port, timeout=1)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                pass
            finally:
                connection.close()
            time.sleep(0.05)
        raise RuntimeError(f"bptt-serve did not answer /healthz within {self.start_timeout} s: "
                           f"{self.output()}")

    def output(self) -> str:
        """What the server printed so far (stdout and stderr)."""
        if self._output is None or isinstance(self._output, str):
            return self._output or ""
        self._output.seek(0)
        return self._output.read().decode(errors="replace")

    def stop(self) -> int | None:
        """Stop the server (SIGTERM, then SIGKILL); its exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(self.stop_timeout)
        if self._output is not None and not isinstance(self._output, str):
            printed = self.output()
            self._output.close()
            self._output = printed  # kept as text once the server has stopped
        return self.process.returncode
