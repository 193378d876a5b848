// Build step: the package carries the API's .proto (loaded at run time by proto-loader;
// proto-loader-gen-types makes the TypeScript types from the same file).
const fs = require("fs");
const path = require("path");
const src = process.env.CACHECAR_PROTO_DIR || path.join(__dirname, "..", "..", "..", "proto");
const from = path.join(src, "cachecar", "v1", "cache.proto");
const to = path.join(__dirname, "..", "dist", "proto", "cachecar", "v1");
fs.mkdirSync(to, { recursive: true });
fs.copyFileSync(from, path.join(to, "cache.proto"));
