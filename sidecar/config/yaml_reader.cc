#include "config/yaml_reader.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace cachecar::config {

std::optional<std::string> ReadSecretFile(const std::string& path, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot read " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string v = ss.str();
  while (!v.empty() && (v.back() == '\n' || v.back() == '\r')) v.pop_back();
  if (v.empty()) {
    *error = path + " is empty";
    return std::nullopt;
  }
  return v;
}

bool IsLoopbackHost(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "[::1]" || host == "::1" ||
         host.rfind("127.", 0) == 0;
}

void CheckListenAddress(YamlReader& r, const std::string& path, const YAML::Node& node,
                        const std::string& address, bool allow_any, const char* allow_field) {
  if (address.empty()) return;
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
    r.Problem(path, node, "must be host:port, not \"" + address + "\"");
    return;
  }
  std::string host = address.substr(0, colon);
  std::string port = address.substr(colon + 1);
  unsigned p = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (ec != std::errc() || end != port.data() + port.size() || p > 65535) {
    r.Problem(path, node, "port must be a number from 0 to 65535, not \"" + port + "\"");
    return;
  }
  if (!allow_any && !IsLoopbackHost(host)) {
    r.Problem(path, node,
              "\"" + host + "\" is not a loopback address; set " + allow_field +
                  ": true to listen beyond this pod");
  }
}

}  // namespace cachecar::config
