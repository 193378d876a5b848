"""The OCI image scripts/image.sh builds, run by podman (Debian's) against the real test broker,
as k8s/deployment.yaml runs it: non-root, read-only root, the config and the store mounted,
the exec probe's cachecarctl inside.

This machine's sandbox needs a few podman flags a cluster does not (see PODMAN and RUN): runc
with cgroupfs (crun refuses the hybrid cgroup mount), limits at or below the sandbox's hard
ones, and the host's network (no bridge or slirp). The image is the same.
"""
import json
import os
import resource
import shutil
import socket
import subprocess
import tempfile
import urllib.request

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conftest import (CACHECAR_BIN, SOURCE_DIR, WORK_DIR, create_topic, deadline_wait, pb,
                      produce, unique)
from cachecar.v1 import cache_pb2_grpc

BUILD_DIR = os.path.dirname(CACHECAR_BIN)
IMAGE_NAME = "ghcr.io/cachecar/cachecar"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary_version():
    # "cachecar 0.1.0 (REVISION)"
    _, version, revision = subprocess.run([CACHECAR_BIN, "--version"], capture_output=True,
                                          text=True, check=True).stdout.split()
    return version, revision.strip("()")


@pytest.fixture(scope="module")
def podman():
    """Builds the image into the work dir, loads its archive into a podman store of its own."""
    work = os.path.join(WORK_DIR, "image")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    env = dict(os.environ, IMAGE_DIR=os.path.join(work, "out"))
    build = subprocess.run([os.path.join(SOURCE_DIR, "scripts/image.sh"), BUILD_DIR], env=env,
                           capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stderr
    version, _ = binary_version()
    archive = os.path.join(work, "out", f"cachecar-{version}.oci.tar")
    assert os.path.isfile(archive), build.stderr

    # podman refuses a runroot path over 50 characters, which a work dir under a deep
    # checkout can exceed: its state goes to a short temporary directory of its own.
    state = tempfile.mkdtemp(prefix="cachecar-podman-", dir="/tmp")
    base = ["podman", "--root", os.path.join(work, "storage"),
            "--runroot", os.path.join(state, "run"), "--runtime", "runc",
            "--cgroup-manager", "cgroupfs"]

    def run(*args, check=True, timeout=120):
        r = subprocess.run(base + list(args), capture_output=True, text=True, timeout=timeout)
        assert not check or r.returncode == 0, f"podman {' '.join(args)}: {r.stderr}"
        return r

    loaded = run("load", "-i", archive)
    assert f"{IMAGE_NAME}:{version}" in loaded.stdout + loaded.stderr, loaded
    yield run
    run("rm", "-af", check=False)
    run("rmi", "-af", check=False)
    shutil.rmtree(state, ignore_errors=True)


def run_flags():
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return ["--network", "host", "--ulimit", f"nofile={nofile}:{nofile}",
            "--ulimit", "nproc=8192:8192"]


def test_the_image_names_its_version_and_revision_and_runs_as_non_root(podman):
    version, revision = binary_version()
    image = f"{IMAGE_NAME}:{version}"
    config = json.loads(podman("inspect", image).stdout)[0]["Config"]
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["/usr/bin/cachecar"]
    assert config["Cmd"] == ["--config", "/etc/cachecar/config/cachecar.yaml"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == version
    assert labels["org.opencontainers.image.revision"] == revision
    assert labels["org.opencontainers.image.title"] == "cachecar"

    # Both binaries, nothing else to run: no shell.
    for binary in ("cachecar", "cachecarctl"):
        r = podman("run", "--rm", *run_flags(), "--entrypoint", f"/usr/bin/{binary}", image,
                   "--version")
        assert r.stdout.split()[:2] == [binary, version], r
    for shell in ("/bin/sh", "/bin/bash", "/usr/bin/sh"):
        r = podman("run", "--rm", *run_flags(), "--entrypoint", shell, image, "-c", "true",
                   check=False)
        assert r.returncode != 0, f"{shell} ran in the image"

    # The manifests deploy this very image.
    with open(os.path.join(SOURCE_DIR, "k8s/deployment.yaml")) as f:
        deployment = yaml.safe_load(f)
    sidecar = [c for c in deployment["spec"]["template"]["spec"]["initContainers"]
               if c["name"] == "cachecar"][0]
    assert sidecar["image"] == image


def test_the_image_serves_a_topic_from_the_real_broker_and_answers_its_probes(
        podman, bootstrap, admin, tmp_path):
    version, _ = binary_version()
    topic = unique("image")
    create_topic(admin, topic, partitions=2)
    produce(bootstrap, topic, [(f"k{i}".encode(), json.dumps({"n": i}).encode())
                               for i in range(50)])

    grpc_port, http_port = free_port(), free_port()
    config_dir, store_dir = tmp_path / "config", tmp_path / "store"
    config_dir.mkdir()
    store_dir.mkdir()
    os.chown(store_dir, 65532, 65532)
    (config_dir / "cachecar.yaml").write_text(json.dumps({
        "kafka": {"bootstrap_servers": "${KAFKA_BOOTSTRAP}"},
        "store": {"path": "/var/lib/cachecar/store"},
        "grpc": {"address": f"127.0.0.1:{grpc_port}"},
        "http": {"address": f"127.0.0.1:{http_port}"},
        "topics": [{"name": topic}],
    }))
    name = unique("cachecar")
    # As k8s/deployment.yaml runs it: read-only root, the store and config mounted.
    podman("run", "-d", "--name", name, *run_flags(), "--read-only",
           "-e", f"KAFKA_BOOTSTRAP={bootstrap}",
           "-v", f"{config_dir}:/etc/cachecar/config:ro",
           "-v", f"{store_dir}:/var/lib/cachecar", f"{IMAGE_NAME}:{version}")
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        health = health_pb2_grpc.HealthStub(channel)

        def serving():
            state = podman("inspect", name).stdout
            assert json.loads(state)[0]["State"]["Running"], podman("logs", name).stderr
            try:
                return health.Check(health_pb2.HealthCheckRequest(), timeout=2).status == \
                    health_pb2.HealthCheckResponse.SERVING
            except grpc.RpcError:
                return False
        deadline_wait(serving, timeout=120, what="the container's cachecar SERVING")

        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=5) as r:
            assert r.status == 200
        stub = cache_pb2_grpc.CacheServiceStub(channel)
        got = stub.Get(pb.GetRequest(topic=topic, key=b"k42"), timeout=5)
        assert got.found and json.loads(got.entry.value) == {"n": 42}

        # The exec probes of k8s/deployment.yaml, inside the container.
        probe = podman("exec", name, "cachecarctl", "-a", f"127.0.0.1:{grpc_port}", "health",
                       check=False)
        assert probe.returncode == 0, probe

        # SIGTERM (what the kubelet sends): a clean stop, the store kept on the volume.
        podman("stop", "-t", "30", name)
        assert json.loads(podman("inspect", name).stdout)[0]["State"]["ExitCode"] == 0
        assert any(store_dir.rglob("data.mdb"))
    finally:
        podman("rm", "-f", name, check=False)
