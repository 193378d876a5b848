"""Every client (C++, Python, TypeScript) runs tests/vectors/client_vectors.json against a
real cachecar and must observe exactly what the vectors expect: get and miss, put and the
error details of a refused put, watch resume across a restart and a new snapshot when the
history no longer reaches back."""
import json
import os
import shutil
import subprocess
import socket

import pytest

from conftest import Cachecar, SOURCE_DIR, create_topic, produce, unique

VECTORS = os.path.join(SOURCE_DIR, "tests/vectors/client_vectors.json")
BUILD = os.path.dirname(os.environ.get("CACHECARCTL_BIN", os.path.join(SOURCE_DIR, "build/x")))
RUNNERS = {
    "cpp": [os.path.join(BUILD, "client_vector_runner")],
    "python": [os.path.join(SOURCE_DIR, ".venv/bin/python"),
               os.path.join(SOURCE_DIR, "tests/vectors/runner.py")],
    "typescript": ["node", os.path.join(SOURCE_DIR, "client/typescript/dist/test/vector_runner.js")],
}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("language", sorted(RUNNERS))
def test_client_vectors(language, admin, bootstrap):
    runner = RUNNERS[language]
    if not os.path.exists(runner[-1]):
        pytest.fail(f"{runner[-1]} is missing: scripts/setup.sh builds it")
    with open(VECTORS) as f:
        vectors = json.load(f)
    t = create_topic(admin, unique("vectors"))
    port = free_port()  # fixed, so that a restarted sidecar is found where it was
    topic = dict(vectors["topic"], name=t,
                 schema=os.path.join(SOURCE_DIR, "schemas", vectors["topic"]["schema"]))
    c = Cachecar(bootstrap, [topic], name=f"vectors-{language}", extra={
        "grpc": {"address": f"127.0.0.1:{port}"},
        "watch": {"history_events": vectors["history_events"]}})
    c.start()
    proc = subprocess.Popen(runner + ["--address", f"127.0.0.1:{port}", "--topic", t,
                                      "--vectors", VECTORS],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        steps = vectors["steps"]
        for i, step in enumerate(steps):
            line = proc.stdout.readline()
            assert line, f"{language} runner exited at step {i} ({proc.wait()})"
            out = json.loads(line)
            assert out["step"] == i, out
            if "harness" in step:
                assert out["harness"] == step["harness"]
                if step["harness"] == "restart_sidecar":
                    assert c.stop() == 0
                    c.start()
                elif step["harness"] == "stop_sidecar_and_write_past_the_history":
                    w = step["writes"]
                    assert c.stop() == 0
                    produce(bootstrap, t, [(f"{w['key_prefix']}{n}".encode(), json.dumps(
                        {"id": "00000000-0000-4000-8000-%012d" % n, "email": "x@example.com",
                         "displayName": str(n)}).encode()) for n in range(w["count"])])
                    produce(bootstrap, t, [(w["then"]["key"].encode(), w["then"]["value"].encode())])
                    c.start()
                proc.stdin.write("go\n")
                proc.stdin.flush()
                continue
            assert out["result"] == step["expect"], f"{language}, step {i} {step['op']}: {out['result']}"
    finally:
        proc.kill()
        proc.wait()
        c.stop()
