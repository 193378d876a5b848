"""Generates cachecar/v1/*_pb2*.py from proto/ at build time (never checked in)."""
import os

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.environ.get("CACHECAR_PROTO_DIR", os.path.join(HERE, "..", "..", "proto"))


def generate():
    from grpc_tools import protoc
    import grpc_tools
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    sources = [os.path.join(PROTO_DIR, "cachecar", "v1", n)
               for n in ("cache.proto", "snapshot.proto")]
    for source in sources:
        if not os.path.exists(source):
            raise SystemExit(f"cachecar: {source} not found (set CACHECAR_PROTO_DIR)")
    os.makedirs(os.path.join(HERE, "cachecar", "v1"), exist_ok=True)
    open(os.path.join(HERE, "cachecar", "v1", "__init__.py"), "a").close()
    rc = protoc.main(["protoc", f"-I{PROTO_DIR}", f"-I{well_known}", f"--python_out={HERE}",
                      f"--pyi_out={HERE}", f"--grpc_python_out={HERE}", *sources])
    if rc != 0:
        raise SystemExit("cachecar: protoc failed")


class BuildPy(build_py):
    def run(self):
        generate()
        super().run()


setup(cmdclass={"build_py": BuildPy})
