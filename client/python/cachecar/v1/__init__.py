"""Generated from proto/cachecar/v1/cache.proto when the package is built."""
