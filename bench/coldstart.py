"""Cold start of a function binary, measured locally: a minimal Lambda Runtime API on a loopback
port, the binary started as Lambda would, and the times to its first `next` request (init) and
to its first response (first invocation).

    python bench/coldstart.py target/perf/compactor --event '{}' --env INLET_TABLE_URI=file:///tmp/t ...
"""

import argparse
import http.server
import json
import os
import subprocess
import tempfile
import threading
import time


def measure(binary, event, env, runs):
    results = []
    for _ in range(runs):
        state = {"next": None, "response": None, "body": None}
        served = threading.Event()

        class Api(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if state["next"] is not None:
                    served.wait(30)  # the second `next`: hold it until we are done
                    self.send_response(410)
                    self.end_headers()
                    return
                state["next"] = time.perf_counter()
                body = json.dumps(event).encode()
                self.send_response(200)
                self.send_header("Lambda-Runtime-Aws-Request-Id", "cold-start")
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 60_000))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:000000000000:function:x")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                state["body"] = self.rfile.read(length).decode(errors="replace")
                state["response"] = time.perf_counter()
                state["path"] = self.path
                self.send_response(202)
                self.end_headers()
                served.set()

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        child_env = dict(os.environ, **env)
        child_env["AWS_LAMBDA_RUNTIME_API"] = f"127.0.0.1:{server.server_port}"
        child_env.setdefault("AWS_LAMBDA_FUNCTION_NAME", os.path.basename(binary))
        child_env.setdefault("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
        child_env.setdefault("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        started = time.perf_counter()
        process = subprocess.Popen([binary], env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        served.wait(60)
        process.kill()
        _, stderr = process.communicate()
        server.shutdown()
        if state["response"] is None:
            raise SystemExit(f"{binary} never answered: {stderr.decode(errors='replace')[-2000:]}")
        if "/error" in state["path"]:
            raise SystemExit(f"{binary} reported an error: {state['body']}")
        results.append({
            "init_ms": (state["next"] - started) * 1000,
            "first_invocation_ms": (state["response"] - state["next"]) * 1000,
        })
    results.sort(key=lambda r: r["init_ms"])
    median = results[len(results) // 2]
    return {"binary": binary, "runs": runs, "bytes": os.path.getsize(binary), **median}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--event", default="{}")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the function")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    env = dict(pair.split("=", 1) for pair in args.env)
    with tempfile.TemporaryDirectory() as table:
        os.makedirs(f"{table}/events")
        env.setdefault("INLET_TABLE_URI", f"file://{table}/events")
        print(json.dumps(measure(args.binary, json.loads(args.event), env, args.runs)))


if __name__ == "__main__":
    main()
