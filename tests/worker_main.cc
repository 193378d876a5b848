// main() of the unit test binaries whose code starts the transform worker: the worker is
// the test binary itself, started again (transform/worker.h), as in the sidecar.
#include <gtest/gtest.h>

#include "transform/worker.h"

int main(int argc, char** argv) {
  if (auto code = cachecar::transform::MaybeRunWorker(argc, argv)) return *code;
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
