// The version of this build (CMake's project version) and the source revision it was
// built from (`git describe --always --dirty`, or CACHECAR_REVISION when the tree has no
// .git, as in an image build). Generated at build time by cmake/version.cmake.
#pragma once

namespace cachecar {

const char* Version();
const char* Revision();

}  // namespace cachecar
