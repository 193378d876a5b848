"""k8s/: valid for the Kubernetes API (kubeconform, strict, against the schemas of the
oldest and newest versions supported), consistent with schemas/, and a configuration
cachecar itself accepts."""
import glob
import os
import subprocess
import tempfile

import kubernetes_validate
import pytest
import yaml

SOURCE_DIR = os.environ.get("CACHECAR_SOURCE_DIR",
                            os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
CACHECAR_BIN = os.environ.get("CACHECAR_BIN", os.path.join(SOURCE_DIR, "build/cachecar"))
KUBECONFORM = os.environ.get("KUBECONFORM", os.path.join(SOURCE_DIR, ".tools/kubeconform"))
MANIFESTS = sorted(glob.glob(os.path.join(SOURCE_DIR, "k8s/*.yaml")))
# Native sidecars (restartPolicy: Always on an init container) are on by default from 1.29.
VERSIONS = ["1.29.0", "1.37.0"]
SCHEMAS = os.path.join(os.path.dirname(kubernetes_validate.__file__), "kubernetes-json-schema")
_schema_dir = None


def schema_location():
    """kubernetes-validate's schemas refer to "/api/_definitions.json", which its own
    resolver maps; kubeconform needs real locations, so a copy points them at the file."""
    global _schema_dir
    if _schema_dir is None:
        _schema_dir = tempfile.mkdtemp(prefix="k8s-schemas-")
        for version in VERSIONS:
            name = f"v{version}-local-strict"
            src, dst = os.path.join(SCHEMAS, name), os.path.join(_schema_dir, name)
            os.makedirs(dst)
            defs = "file://" + os.path.join(dst, "_definitions.json")
            for f in os.listdir(src):
                with open(os.path.join(src, f)) as i, open(os.path.join(dst, f), "w") as o:
                    o.write(i.read().replace('"/api/_definitions.json', '"' + defs))
    return (_schema_dir + "/{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}"
            "/{{ .ResourceKind }}{{ .KindSuffix }}.json")


def kubeconform(version, files):
    # PodMonitor is a CRD of the Prometheus Operator: no Kubernetes schema describes it.
    return subprocess.run([KUBECONFORM, "-strict", "-summary", "-kubernetes-version", version,
                           "-schema-location", schema_location(), "-skip", "PodMonitor",
                           *files],
                          capture_output=True, text=True, timeout=120)


def docs():
    out = {}
    for path in MANIFESTS:
        with open(path) as f:
            for d in yaml.safe_load_all(f):
                out[(d["kind"], d["metadata"]["name"])] = d
    return out


@pytest.mark.parametrize("version", VERSIONS)
def test_manifests_are_valid_kubernetes_objects(version):
    assert MANIFESTS, "no manifests in k8s/"
    r = kubeconform(version, MANIFESTS)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Invalid: 0, Errors: 0" in r.stdout, r.stdout


@pytest.mark.parametrize("field,value", [("probes", {}),              # unknown field (strict)
                                         ("ports", [{"containerPort": "ninety"}]),  # wrong type
                                         ("restartPolicy", ["Always"])])  # wrong type
def test_the_check_fails_on_a_broken_manifest(field, value):
    d = docs()[("Deployment", "web")]
    d["spec"]["template"]["spec"]["initContainers"][0][field] = value
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump(d, f)
        f.flush()
        r = kubeconform(VERSIONS[0], [f.name])
    assert r.returncode != 0, r.stdout
    assert "Invalid: 1" in r.stdout and field in r.stdout, r.stdout


def test_cachecar_is_a_native_sidecar_with_probes_and_the_pods_identity():
    spec = docs()[("Deployment", "web")]["spec"]["template"]["spec"]
    sidecar = spec["initContainers"][0]
    assert sidecar["restartPolicy"] == "Always"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert probe in sidecar, probe
    env = {e["name"]: e for e in sidecar["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert "limits" in sidecar["resources"] and "requests" in sidecar["resources"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes["store"]
    assert volumes["schemas"]["configMap"]["name"] == "cachecar-schemas"


def test_new_pods_bootstrap_from_ready_peers_through_the_headless_service():
    d = docs()
    svc = d[("Service", "web-cachecar-peers")]["spec"]
    assert svc["clusterIP"] == "None" and not svc.get("publishNotReadyAddresses", False)
    pod = d[("Deployment", "web")]["spec"]["template"]
    assert all(pod["metadata"]["labels"].get(k) == v for k, v in svc["selector"].items())
    sidecar = pod["spec"]["initContainers"][0]
    ports = {p["name"]: p["containerPort"] for p in sidecar["ports"]}
    assert svc["ports"][0]["targetPort"] == "peers" and ports["peers"] == 50052
    cfg = yaml.safe_load(d[("ConfigMap", "cachecar-config")]["data"]["cachecar.yaml"])
    assert cfg["peers"]["listen"].endswith(":50052")
    assert cfg["bootstrap"]["peers"] == [
        "web-cachecar-peers.${POD_NAMESPACE}.svc.cluster.local:50052"]
    mounts = {m["name"]: m["mountPath"] for m in sidecar["volumeMounts"]}
    assert cfg["peers"]["token_file"].startswith(mounts["peer-token"] + "/")
    assert cfg["peers"]["work_dir"] == mounts["snapshots"]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["peer-token"]["secret"]["secretName"] == "cachecar-peer-token"


def test_schema_configmap_matches_schemas_dir():
    data = docs()[("ConfigMap", "cachecar-schemas")]["data"]
    files = {os.path.basename(p): open(p).read() for p in glob.glob(os.path.join(SOURCE_DIR, "schemas/*.json"))}
    assert set(data) == set(files)
    for name, text in files.items():
        assert data[name].rstrip("\n") == text.rstrip("\n"), f"{name} differs from schemas/{name}"


def test_config_in_the_configmap_is_accepted_by_cachecar(tmp_path):
    cfg = docs()[("ConfigMap", "cachecar-config")]["data"]["cachecar.yaml"]
    # Mount what the pod would mount, under tmp_path.
    (tmp_path / "schemas").mkdir()
    for p in glob.glob(os.path.join(SOURCE_DIR, "schemas/*.json")):
        (tmp_path / "schemas" / os.path.basename(p)).write_text(open(p).read())
    (tmp_path / "token").mkdir()
    (tmp_path / "token" / "token").write_text("t0ken\n")
    (tmp_path / "peer-token").mkdir()
    (tmp_path / "peer-token" / "token").write_text("peer-t0ken\n")
    cfg = cfg.replace("/etc/cachecar/peer-token", str(tmp_path / "peer-token"))
    cfg = cfg.replace("/etc/cachecar/schemas", str(tmp_path / "schemas"))
    cfg = cfg.replace("/etc/cachecar/token", str(tmp_path / "token"))
    (tmp_path / "cachecar.yaml").write_text(cfg)
    env = dict(os.environ, KAFKA_BOOTSTRAP="kafka:9092", POD_NAME="web-1", POD_NAMESPACE="shop")
    r = subprocess.run([CACHECAR_BIN, "--config", str(tmp_path / "cachecar.yaml"),
                        "--check-config"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
