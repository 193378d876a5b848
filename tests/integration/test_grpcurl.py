"""grpcurl, a client that knows nothing of cachecar: every service the server lists can be
described and called through reflection, and a client built from proto/ alone (no
reflection) decodes cachecar's error details (google.rpc.ErrorInfo, BadRequest)."""
import json
import os
import subprocess

from conftest import SOURCE_DIR, create_topic, produce, unique

GRPCURL = os.environ.get("GRPCURL", os.path.join(SOURCE_DIR, ".tools/grpcurl"))


def grpcurl(*args):
    return subprocess.run([GRPCURL, "-plaintext", *args], capture_output=True, text=True,
                          timeout=30)


def test_every_listed_service_is_described_and_health_answers(admin, bootstrap,
                                                               cachecar_factory):
    t = create_topic(admin, unique("grpcurl"))
    c = cachecar_factory([{"name": t}]).start()
    c.wait_ready(timeout=60)
    listed = grpcurl(c.address, "list")
    assert listed.returncode == 0, listed
    services = listed.stdout.split()
    assert {"cachecar.v1.CacheService", "grpc.health.v1.Health"} <= set(services), services
    for s in services:
        described = grpcurl(c.address, "describe", s)
        assert described.returncode == 0, (s, described.stderr)
        assert f"{s} is a service" in described.stdout, described.stdout
    health = grpcurl(c.address, "grpc.health.v1.Health/Check")
    assert health.returncode == 0, health
    assert json.loads(health.stdout) == {"status": "SERVING"}
    topic = grpcurl("-d", json.dumps({"service": f"topic/{t}"}), c.address,
                    "grpc.health.v1.Health/Check")
    assert json.loads(topic.stdout) == {"status": "SERVING"}, topic


def test_a_client_built_from_proto_alone_decodes_the_error_details(admin, bootstrap,
                                                                   cachecar_factory):
    t = create_topic(admin, unique("grpcurl-err"))
    produce(bootstrap, t, [(b"k", b'{"v":1}')])
    c = cachecar_factory([{"name": t}]).start()
    c.wait_ready(timeout=60)
    from_proto = ["-import-path", os.path.join(SOURCE_DIR, "proto"),
                  "-proto", "cachecar/v1/cache.proto",
                  "-proto", "google/rpc/error_details.proto"]
    ok = grpcurl(*from_proto, "-d", json.dumps({"topic": t, "key": "aw=="}), c.address,
                 "cachecar.v1.CacheService/Get")
    assert ok.returncode == 0 and json.loads(ok.stdout)["found"], ok
    missing = grpcurl(*from_proto, "-d", json.dumps({"topic": "nope", "key": "aw=="}), c.address,
                      "cachecar.v1.CacheService/Get")
    assert missing.returncode != 0
    assert "google.rpc.ErrorInfo" in missing.stderr and '"reason": "TOPIC_NOT_FOUND"' in missing.stderr, \
        missing.stderr
    bad = grpcurl(*from_proto, "-d", json.dumps({"topic": t}), c.address,
                  "cachecar.v1.CacheService/Get")
    assert "google.rpc.BadRequest" in bad.stderr and '"field": "key"' in bad.stderr, bad.stderr
