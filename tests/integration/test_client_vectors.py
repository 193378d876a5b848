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
    "python-asyncio": [os.path.join(SOURCE_DIR, ".venv/bin/python"),
                       os.path.join(SOURCE_DIR, "tests/vectors/runner_aio.py")],
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
        "watch": {"history_events": vectors["history_events"]},
        "materializer": {"batch_max_records": vectors["history_events"]}})
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


def test_cachecarctl_validate_judges_as_the_sidecars_put(admin, bootstrap, cachecar_factory):
    """Offline validation gives the verdict and violations a real Put gets."""
    import grpc
    from conftest import CACHECARCTL_BIN, pb
    t = create_topic(admin, unique("validate"))
    topic = {"name": t, "schema": os.path.join(SOURCE_DIR, "schemas/user.json"),
             "read_only": False, "max_value_bytes": 300}
    c = cachecar_factory([topic])
    c.start()
    c.wait_ready()
    documents = [
        '{"id":"9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d","email":"a@example.com","displayName":"A"}',
        '{"id":"x","email":"no","extra":[1,2]}',
        '{"id":"9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d","email":"a@example.com","displayName":""}',
        '{"groups":[{"id":5}]}',
        'not json',
        '{"pad":"' + "x" * 400 + '"}',
        '',
    ]
    for doc in documents:
        out = subprocess.run([CACHECARCTL_BIN, "validate", "-c", c.config_path, "-o", "json", t, "-"],
                             input=doc.encode(), capture_output=True, timeout=30,
                             env=dict(os.environ, KAFKA_BOOTSTRAP=bootstrap))
        verdict = json.loads(out.stdout)
        try:
            c.stub.Put(pb.PutRequest(topic=t, key=b"k", value=doc.encode()), timeout=30)
            put = {"valid": True}
        except grpc.RpcError as e:
            from google.rpc import error_details_pb2, status_pb2
            details = dict(e.trailing_metadata())["grpc-status-details-bin"]
            status = status_pb2.Status.FromString(details)
            info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
            violations = []
            for d in status.details:
                if d.Unpack(info):
                    reason = info.reason
                elif d.Unpack(bad):
                    violations = [{"field": v.field, "reason": v.reason,
                                   "description": v.description} for v in bad.field_violations]
            put = {"valid": False, "reason": reason, "violations": violations}
        assert out.returncode == (0 if put["valid"] else 5), (doc, out)
        assert verdict["valid"] == put["valid"], doc
        if not put["valid"]:
            assert verdict["reason"] == put["reason"], doc
            assert verdict["violations"] == put["violations"], doc


EXAMPLES = {
    "cpp": [os.path.join(BUILD, "example_app")],
    "python": [os.path.join(SOURCE_DIR, ".venv/bin/python"),
               os.path.join(SOURCE_DIR, "examples/clients/app.py")],
    "typescript": ["node", os.path.join(SOURCE_DIR, "client/typescript/dist/examples/app.js")],
}


@pytest.mark.parametrize("language", sorted(EXAMPLES))
def test_readme_example_runs(language, admin, bootstrap, cachecar_factory):
    t = create_topic(admin, unique("example"))
    c = cachecar_factory([{"name": t, "read_only": False,
                           "schema": os.path.join(SOURCE_DIR, "schemas/user.json")}])
    c.start()
    out = subprocess.run(EXAMPLES[language] + [t], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, CACHECAR_ADDRESS=c.address))
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[-1] == "done", out.stdout
    assert any(l.startswith("get:") and "grace@example.com" in l for l in lines), out.stdout
    assert any(l.startswith("refused: SCHEMA_VIOLATION") and "value/id" in l for l in lines), out.stdout
    assert any(l.startswith("watch: PUT") and "grace@example.com" in l for l in lines), out.stdout
