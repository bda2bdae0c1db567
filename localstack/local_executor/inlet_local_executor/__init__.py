"""LocalStack Lambda executor that runs `provided.*` functions as host processes.

LocalStack 4.13 only ships a Docker executor, and these machines have no Docker
engine. This plugin (selected with LAMBDA_RUNTIME_EXECUTOR=local) starts the
function's `bootstrap` as a child process and serves the Lambda Runtime API to
it on a loopback port, so the real event source mappings, partial batch
responses, retries and DLQ redrives of LocalStack drive the real binaries.
"""

from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin


class LocalExecutorPlugin(RuntimeExecutorPlugin):
    name = "local"

    def load(self, *args, **kwargs):
        from inlet_local_executor.executor import LocalProcessExecutor

        return LocalProcessExecutor
