#!/usr/bin/env bash
# Installs everything cachecar needs on a fresh Debian 12 machine, then builds it.
# Idempotent: a second run installs nothing and rebuilds only what changed.
#
#   scripts/setup.sh            install + configure + build (into build/)
#   scripts/setup.sh --demo     only what scripts/demo.sh runs: no test-only tools, and
#                               only cachecar, cachecarctl, example_app and the clients
#                               are built (the tests are most of the build time)
#   SKIP_BUILD=1 scripts/setup.sh   install only
set -euo pipefail
cd "$(dirname "$0")/.."
demo=""
if [ "${1:-}" = "--demo" ]; then demo=1; fi

APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config python3-venv
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev libprotoc-dev protobuf-compiler
  librdkafka-dev liblmdb-dev lmdb-utils nlohmann-json3-dev prometheus-cpp-dev libcivetweb-dev
  libyaml-cpp-dev libspdlog-dev libcli11-dev libutfcpp-dev libssl-dev libcurl4-openssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev json-schema-test-suite libvalijson-dev
  clang-tidy
  kcat maven openjdk-17-jre-headless redis-server redis-tools
)
# The container image (scripts/image.sh) and its test (podman runs it). Not for the demo.
IMAGE_PACKAGES=(mmdebstrap umoci podman runc)
if [ -z "$demo" ]; then APT_PACKAGES+=("${IMAGE_PACKAGES[@]}"); fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python: the integration tests' independent gRPC client and Kafka producer/consumer, and
# the Python client's dependencies.
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
if ! .venv/bin/python -c 'import grpc, grpc_tools, grpc_health, grpc_reflection, confluent_kafka, pytest, google.rpc, kubernetes_validate, yaml, wheel, confluent_kafka.schema_registry.json_schema, confluent_kafka.schema_registry.avro, confluent_kafka.schema_registry.protobuf' 2>/dev/null; then
  echo "setup: installing Python packages into .venv" >&2
  .venv/bin/pip install -q --disable-pip-version-check -r tests/integration/requirements.txt
fi

# The JSON Schema validator's Rust crates (crates.io), so the CMake build can run cargo
# offline. rustup installs cargo under ~/.cargo/bin.
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found: install Rust (https://rustup.rs), then run this again" >&2
  exit 1
fi
cargo fetch --locked --quiet --manifest-path sidecar/schema/jsonschema_ffi/Cargo.toml

if [ -z "$demo" ]; then
# The official JSON-Schema-Test-Suite for every draft cachecar supports. Debian's package
# stops at draft 7; python-jsonschema's source distribution on PyPI carries the whole
# suite (its json/ folder, remotes included), so the conformance test takes it from there.
SUITE_FROM=jsonschema==4.23.0
if [ "$(cat .tools/json-schema-test-suite.version 2>/dev/null)" != "$SUITE_FROM" ]; then
  echo "setup: fetching JSON-Schema-Test-Suite ($SUITE_FROM sdist, PyPI) into .tools/" >&2
  rm -rf .tools/json-schema-test-suite .tools/sdist && mkdir -p .tools/sdist
  .venv/bin/pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
    -d .tools/sdist "$SUITE_FROM"
  tar -xzf .tools/sdist/jsonschema-*.tar.gz -C .tools/sdist
  mv .tools/sdist/jsonschema-*/json .tools/json-schema-test-suite
  rm -rf .tools/sdist
  echo "$SUITE_FROM" >.tools/json-schema-test-suite.version
fi

# kubeconform (Go module proxy) validates k8s/ against the Kubernetes schemas.
KUBECONFORM_VERSION=v0.6.7
# (go install leaves no version in the binary: a marker file records it.)
if [ ! -x .tools/kubeconform ] || [ "$(cat .tools/kubeconform.version 2>/dev/null)" != "$KUBECONFORM_VERSION" ]; then
  command -v go >/dev/null || { echo "setup: go not found: install Go (https://go.dev/dl)" >&2; exit 1; }
  echo "setup: installing kubeconform $KUBECONFORM_VERSION into .tools/" >&2
  GOBIN="$PWD/.tools" GOFLAGS=-mod=mod go install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
  echo "$KUBECONFORM_VERSION" >.tools/kubeconform.version
fi


# grpcurl (Go module proxy): the integration tests use it as a client that knows nothing of
# cachecar but proto/ and server reflection.
GRPCURL_VERSION=v1.9.4
if [ ! -x .tools/grpcurl ] || [ "$(cat .tools/grpcurl.version 2>/dev/null)" != "$GRPCURL_VERSION" ]; then
  echo "setup: installing grpcurl $GRPCURL_VERSION into .tools/" >&2
  GOBIN="$PWD/.tools" GOFLAGS=-mod=mod go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION"
  echo "$GRPCURL_VERSION" >.tools/grpcurl.version
fi
fi  # test-only tools

# Apache Kafka's jars (cached under ~/.cache/cachecar after the first run).
scripts/kafka.sh fetch
# The Schema Registry the registry-topic tests and the demo run (Apicurio, built from Maven
# Central into the same cache; scripts/registry/pom.xml).
scripts/registry.sh fetch

# The TypeScript client (npm registry): its dependencies, and a build (types generated
# from proto/, then tsc) that the client tests run.
if ! command -v npm >/dev/null; then
  echo "setup: npm not found: install Node.js 18+ (for the TypeScript client)" >&2
  exit 1
fi
if [ ! -d client/typescript/node_modules ] ||
   [ client/typescript/package-lock.json -nt client/typescript/node_modules/.package-lock.json ]; then
  echo "setup: installing the TypeScript client's npm packages" >&2
  (cd client/typescript && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ -z "${SKIP_BUILD:-}" ]; then
  if [ ! -f build/build.ninja ]; then
    # -g1: line tables and function names (enough for backtraces, perf and core files'
    # stacks), without the full debug info that made up ~40% of the compile time.
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" >/dev/null
  fi
  if [ -n "$demo" ]; then
    ninja -C build cachecar cachecarctl example_app
  else
    ninja -C build
  fi
  # The Python client, built from proto/ into .venv (the client tests import it).
  .venv/bin/pip install -q --disable-pip-version-check --no-build-isolation --no-deps ./client/python
  (cd client/typescript && npm run --silent build >/dev/null)
fi
