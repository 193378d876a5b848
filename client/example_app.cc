// A tiny app using the C++ client against the demo (scripts/demo.sh):
//   build/example_app [TOPIC]
#include <iostream>
#include <thread>

#include "client/client.h"
#include "client/resuming_watch.h"

int main(int argc, char** argv) {
  std::string topic = argc > 1 ? argv[1] : "users";
  const std::string uid = "0b6c3a52-7d42-4f7e-9a51-3f4f1c2d9e10";
  cachecar::client::ClientOptions opts;  // 127.0.0.1:50051, 5 s deadline per call
  if (const char* a = std::getenv("CACHECAR_ADDRESS")) opts.target = a;
  cachecar::client::Client cache(opts);

  auto ready = cache.WaitReady(std::chrono::seconds(30));
  if (!ready.ok()) {
    std::cerr << ready.status().ToString() << "\n";
    return 1;
  }
  std::cout << "ready: " << ready->ready() << "\n";

  cachecar::client::WatchSpec spec;  // this key, from now on; resumes by itself
  spec.topic = topic;
  spec.key = uid;
  spec.from_revision = cache.GetStatus()->store_revision();
  cachecar::client::ResumingWatch watch(&cache, spec);

  auto put = cache.Put(topic, uid,
                       R"({"id":")" + uid + R"(","email":"grace@example.com","displayName":"Grace"})");
  if (!put.ok()) {
    std::cerr << put.status().ToString() << "\n";
    return 1;
  }
  std::cout << "put: partition " << put->partition() << " offset " << put->offset()
            << " applied " << put->applied() << "\n";
  std::cout << "get: " << cache.Get(topic, uid)->entry().value() << "\n";
  auto refused = cache.Put(topic, uid, R"({"id":"nope"})");
  std::cout << "refused: " << refused.status().reason();
  for (const auto& v : refused.status().violations()) std::cout << " " << v.field << ":" << v.reason;
  std::cout << "\n";
  cachecar::client::WatchItem item;
  if (watch.Next(&item)) std::cout << "watch: PUT " << item.key << " " << item.value << "\n";
  std::cout << "done\n";
  return 0;
}
