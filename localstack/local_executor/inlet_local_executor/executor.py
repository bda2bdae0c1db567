"""Runs a Lambda function's bootstrap as a local process behind a Runtime API server."""

import json
import logging
import os
import queue
import stat
import subprocess
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from localstack import config
from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.runtime_executor import (
    LambdaRuntimeException,
    RuntimeExecutor,
)

LOG = logging.getLogger(__name__)

RUNTIME_PREFIX = "/2018-06-01/runtime"
# How long a new process may take to ask for its first invocation.
STARTUP_TIMEOUT_SECONDS = float(os.environ.get("INLET_EXECUTOR_STARTUP_TIMEOUT", "30"))
# Host variables the child inherits; everything else comes from the function's environment.
INHERITED_VARIABLES = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "RUST_BACKTRACE", "RUST_LOG")


class _Invocation:
    def __init__(self, payload: dict, deadline_ms: int):
        self.request_id = payload["invoke-id"]
        self.payload = payload
        self.deadline_ms = deadline_ms
        self.result: Future = Future()


class _RuntimeApi(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, executor: "LocalProcessExecutor"):
        self.executor = executor
        super().__init__(("127.0.0.1", 0), _RuntimeApiHandler)


class _RuntimeApiHandler(BaseHTTPRequestHandler):
    server: _RuntimeApi

    def log_message(self, format, *args):  # noqa: A002 - silence the default stderr access log
        LOG.debug("runtime api %s: " + format, self.server.executor.id, *args)

    def _reply(self, status: int, body: bytes = b"", headers: dict | None = None):
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self):  # noqa: N802 - http.server naming
        if self.path != f"{RUNTIME_PREFIX}/invocation/next":
            return self._reply(404)
        executor = self.server.executor
        executor.ready.set()
        invocation = executor.next_invocation()
        if invocation is None:  # shutting down: leave the runtime waiting until it is killed
            return self._reply(500, b'{"errorMessage":"executor stopped"}')
        payload = invocation.payload
        self._reply(
            200,
            payload["payload"].encode(),
            {
                "Content-Type": "application/json",
                "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": payload.get("invoked-function-arn", ""),
                "Lambda-Runtime-Trace-Id": payload.get("trace-id", ""),
            },
        )

    def do_POST(self):  # noqa: N802 - http.server naming
        executor = self.server.executor
        body = self._body()
        parts = self.path[len(RUNTIME_PREFIX) :].strip("/").split("/")
        if parts == ["init", "error"]:
            executor.init_error = body or b'{"errorMessage":"init error"}'
            executor.ready.set()
            return self._reply(202)
        if len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
            if executor.complete(parts[1], body, is_error=parts[2] == "error"):
                return self._reply(202)
            return self._reply(400, b'{"errorMessage":"unknown request id"}')
        return self._reply(404)


class LocalProcessExecutor(RuntimeExecutor):
    """One execution environment: one bootstrap process, one Runtime API server."""

    def __init__(self, id: str, function_version: FunctionVersion) -> None:
        super().__init__(id, function_version)
        self.process: subprocess.Popen | None = None
        self.server: _RuntimeApi | None = None
        self.pending: queue.Queue = queue.Queue()
        self.current: _Invocation | None = None
        self.ready = threading.Event()
        self.init_error: bytes | None = None
        self.stopped = False
        self._command: tuple[list[str], Path, dict[str, str]] | None = None
        self._log_lock = threading.Lock()
        self._logs: list[str] = []

    # Lifecycle
    def start(self, env_vars: dict[str, str]) -> None:
        code_dir = Path(self.function_version.config.code.get_unzipped_code_location())
        bootstrap = code_dir / "bootstrap"
        if not bootstrap.exists():
            raise LambdaRuntimeException(f"no bootstrap in {code_dir}")
        mode = bootstrap.stat().st_mode
        if not mode & stat.S_IXUSR:
            bootstrap.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

        self.server = _RuntimeApi(self)
        threading.Thread(target=self.server.serve_forever, daemon=True, name=f"rapi-{self.id}").start()

        env = {name: os.environ[name] for name in INHERITED_VARIABLES if name in os.environ}
        env.update({key: str(value) for key, value in env_vars.items()})
        env["AWS_LAMBDA_RUNTIME_API"] = f"127.0.0.1:{self.server.server_port}"
        env["LAMBDA_TASK_ROOT"] = str(code_dir)
        self._command = ([str(bootstrap)], code_dir, env)
        self._spawn()

    def _spawn(self) -> None:
        """Starts the bootstrap and waits until it asks for its first invocation."""
        command, code_dir, env = self._command
        # A runtime killed while it waited for work left a request thread blocked on the old
        # queue: wake it with the stop signal, so no invocation is handed to a dead process.
        stale, self.pending = self.pending, queue.Queue()
        stale.put(None)
        self.ready.clear()
        self.init_error = None
        self.current = None
        self.process = subprocess.Popen(
            command,
            cwd=code_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        threading.Thread(target=self._pump_output, args=(self.process,), daemon=True, name=f"out-{self.id}").start()

        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not self.ready.wait(0.05):
            if self.process.poll() is not None:
                raise LambdaRuntimeException(
                    f"bootstrap exited with {self.process.returncode} during init: {self.get_logs()[-2000:]}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise LambdaRuntimeException("bootstrap did not ask for an invocation in time")
        if self.init_error is not None:
            self.stop()
            raise LambdaRuntimeException(f"init error: {self.init_error.decode(errors='replace')}")

    def stop(self) -> None:
        self.stopped = True
        self.pending.put(None)
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    # Invocations
    def next_invocation(self) -> _Invocation | None:
        invocation = self.pending.get()
        if invocation is not None:
            self.current = invocation
        return invocation

    def complete(self, request_id: str, body: bytes, is_error: bool) -> bool:
        invocation = self.current
        if invocation is None or invocation.request_id != request_id:
            return False
        if not invocation.result.done():
            invocation.result.set_result(
                InvocationResult(request_id, body, is_error=is_error, logs=self.get_logs())
            )
        return True

    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        timeout = float(self.function_version.config.timeout)
        with self._log_lock:
            self._logs = []
        if self.process.poll() is not None:
            # Like Lambda: after the runtime died (crash, kill, timeout), the next invocation
            # gets a fresh process, with its init, instead of the corpse of the last one.
            LOG.info("executor %s: runtime exited with %s; starting a new one", self.id, self.process.returncode)
            self._spawn()
        invocation = _Invocation(payload, int((time.time() + timeout) * 1000))
        self.pending.put(invocation)
        deadline = time.monotonic() + timeout
        while True:
            try:
                return invocation.result.result(timeout=0.1)
            except FutureTimeout:
                pass
            if self.process.poll() is not None:
                # The runtime died mid-invocation (crash, abort, OOM): report it like Lambda does.
                error = {
                    "errorType": "Runtime.ExitError",
                    "errorMessage": f"RequestId: {invocation.request_id} Error: Runtime exited with code {self.process.returncode}",
                }
                return self._failed(invocation, error)
            if time.monotonic() > deadline:
                self.process.kill()
                error = {
                    "errorType": "Sandbox.Timedout",
                    "errorMessage": f"RequestId: {invocation.request_id} Error: Task timed out after {timeout:.2f} seconds",
                }
                return self._failed(invocation, error)

    def _failed(self, invocation: _Invocation, error: dict) -> InvocationResult:
        result = InvocationResult(
            invocation.request_id, json.dumps(error).encode(), is_error=True, logs=self.get_logs()
        )
        if not invocation.result.done():
            invocation.result.set_result(result)
        return invocation.result.result()

    # Output
    def _pump_output(self, process: subprocess.Popen) -> None:
        log_file = None
        log_dir = os.environ.get("INLET_LAMBDA_LOG_DIR")
        if log_dir:
            Path(log_dir).mkdir(parents=True, exist_ok=True)
            name = self.function_version.id.function_name
            log_file = open(Path(log_dir) / f"{name}.log", "a", encoding="utf-8")  # noqa: SIM115
        for raw in iter(process.stdout.readline, b""):
            line = raw.decode(errors="replace")
            with self._log_lock:
                self._logs.append(line)
            if log_file:
                log_file.write(line)
                log_file.flush()
        if log_file:
            log_file.close()

    def get_logs(self) -> str:
        with self._log_lock:
            return "".join(self._logs)

    # Addresses: everything runs on the host's loopback.
    def get_address(self) -> str:
        return "127.0.0.1"

    def get_endpoint_from_executor(self) -> str:
        return "127.0.0.1"

    def get_runtime_endpoint(self) -> str:
        port = config.GATEWAY_LISTEN[0].port
        return f"http://127.0.0.1:{port}/_localstack_lambda/{self.id}"

    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        if function_version.config.code:
            function_version.config.code.prepare_for_execution()

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        # Code directories may be shared between versions ($LATEST and published ones), and
        # hot-reload directories belong to the user: leave both on disk.
        return None

    @classmethod
    def validate_environment(cls) -> bool:
        return True
