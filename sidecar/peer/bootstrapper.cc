#include "peer/bootstrapper.h"

#include <grpcpp/grpcpp.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <random>

#include "cachecar/v1/snapshot.grpc.pb.h"
#include "common/log.h"
#include "peer/snapshot_receiver.h"

namespace cachecar::peer {
namespace {

namespace fs = std::filesystem;
constexpr char kBootstrapPrefix[] = "bootstrap-";

// The result label of a failed attempt.
const char* ResultOf(const Status& st) {
  const std::string& r = st.reason();
  if (r == "PEER_INCOMPATIBLE" || r == "SNAPSHOT_INCOMPATIBLE" || r == "STORE_INCOMPATIBLE") {
    return "incompatible";
  }
  if (r == "SNAPSHOT_CORRUPT" || r == "STORE_CORRUPT") return "corrupt";
  if (r == "CACHE_NOT_READY") return "not_ready";
  if (r == "TOO_MANY_TRANSFERS") return "busy";
  if (r == "PEER_UNREACHABLE") return "unreachable";
  return "failed";
}

// A gRPC status from a peer as ours, keeping the reasons the attempt is labelled by.
Status FromPeer(const grpc::Status& st, const std::string& what) {
  std::string reason = "PEER_FAILED";
  switch (st.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      reason = st.error_message().find("caught up") != std::string::npos ? "CACHE_NOT_READY"
                                                                         : "PEER_UNREACHABLE";
      break;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      reason = "TOO_MANY_TRANSFERS";
      break;
    case grpc::StatusCode::UNAUTHENTICATED:
      reason = "PEER_UNAUTHENTICATED";
      break;
    default:
      break;
  }
  return Status(static_cast<Code>(st.error_code()), what + ": " + st.error_message(), reason);
}

// Every address `host:port` names, as gRPC targets ("ipv4:10.0.0.7:50052"), shuffled.
Result<std::vector<std::string>> Resolve(const std::string& peer) {
  size_t colon = peer.rfind(':');
  std::string host = peer.substr(0, colon), port = peer.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    return Status(Code::kUnavailable, "cannot resolve " + peer + ": " + gai_strerror(rc),
                  "PEER_UNREACHABLE");
  }
  std::vector<std::string> targets;
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    char ip[INET6_ADDRSTRLEN];
    if (a->ai_family == AF_INET) {
      auto* sin = reinterpret_cast<sockaddr_in*>(a->ai_addr);
      inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
      targets.push_back("ipv4:" + std::string(ip) + ":" + port);
    } else if (a->ai_family == AF_INET6) {
      auto* sin6 = reinterpret_cast<sockaddr_in6*>(a->ai_addr);
      inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
      targets.push_back("ipv6:[" + std::string(ip) + "]:" + port);
    }
  }
  ::freeaddrinfo(res);
  std::sort(targets.begin(), targets.end());
  targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
  std::shuffle(targets.begin(), targets.end(), std::mt19937(std::random_device()()));
  return targets;
}

Result<store::StoreFacts> FromPeerTarget(const config::Config& config,
                                         const std::vector<LocalTopic>& mine,
                                         const std::string& target,
                                         SnapshotReceiver* receiver) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(static_cast<int>(kMaxSnapshotMessageBytes));
  // A window of several chunks, so the sender never waits for this side to ask for more.
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 16 << 20);
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  auto stub = v1::SnapshotService::NewStub(channel);
  const std::string auth = "Bearer " + config.peers.token;
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", auth);
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::milliseconds(config.bootstrap.connect_timeout_ms));
    ctx.set_wait_for_ready(true);  // through the connection's start, within the deadline
    v1::DescribeSnapshotResponse described;
    grpc::Status st = stub->DescribeSnapshot(&ctx, v1::DescribeSnapshotRequest(), &described);
    if (!st.ok()) return FromPeer(st, "asking " + target);
    if (!described.ready()) {
      return Status(Code::kUnavailable, target + " has not caught up", "CACHE_NOT_READY");
    }
    // Checked again on the stream's header (SnapshotReceiver), which describes the copy.
    Status fits = CheckCompatible(mine, described.topics());
    if (!fits.ok()) return fits;
  }
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", auth);
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(config.bootstrap.transfer_timeout_ms));
  std::unique_ptr<grpc::ClientReader<v1::StreamSnapshotResponse>> reader =
      stub->StreamSnapshot(&ctx, v1::StreamSnapshotRequest());
  v1::StreamSnapshotResponse message;
  Status refused;
  while (reader->Read(&message)) {
    refused = receiver->Add(message);
    if (!refused.ok()) {
      ctx.TryCancel();
      break;
    }
  }
  grpc::Status st = reader->Finish();
  if (!refused.ok()) return refused;
  if (!st.ok()) return FromPeer(st, "receiving from " + target);
  return receiver->Finish();
}

// Moves the received store into the store directory: one link (which, unlike rename,
// never replaces a store that appeared meanwhile), then a sync of the directory. The data
// was written without fsync: the store directory is first marked as written in this boot
// (store::MarkWrittenThisBoot), so a machine restart before it reaches the disk makes the
// next start rebuild it, never serve it; where the boot cannot be told, it is fsynced.
Status Install(const std::string& tmp_dir, const std::string& store_dir,
               const std::string& boot_id_path) {
  const std::string from = tmp_dir + "/data.mdb", to = store_dir + "/data.mdb";
  Result<bool> marked = store::MarkWrittenThisBoot(store_dir, boot_id_path);
  if (!marked.ok()) return marked.status();
  if (!*marked) {
    int fd = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
    bool synced = fd >= 0 && ::fsync(fd) == 0;
    if (fd >= 0) ::close(fd);
    if (!synced) {
      return Status(Code::kInternal, "cannot sync the snapshot: " + std::string(std::strerror(errno)),
                    "SNAPSHOT_IO");
    }
  }
  if (::link(from.c_str(), to.c_str()) != 0) {
    return Status(Code::kInternal,
                  "cannot move the snapshot into " + store_dir + ": " + std::strerror(errno),
                  "SNAPSHOT_IO");
  }
  int dfd = ::open(store_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return Status::Ok();
}

}  // namespace

void RemoveStaleBootstrapDirs(const std::string& store_dir) {
  std::error_code ec;
  for (fs::directory_iterator it(store_dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().filename().string().rfind(kBootstrapPrefix, 0) != 0) continue;
    std::error_code rec;
    fs::remove_all(it->path(), rec);
  }
}

BootstrapResult Bootstrap(const config::Config& config, const std::vector<LocalTopic>& mine,
                          const PeerStats* stats) {
  const std::string& store_dir = config.store.path;
  std::error_code ec;
  fs::create_directories(store_dir, ec);
  RemoveStaleBootstrapDirs(store_dir);
  BootstrapResult result;
  if (fs::exists(fs::path(store_dir) / "data.mdb", ec)) {
    result.source = "existing";
    if (!config.bootstrap.from_file.empty()) {
      log::Warn("a store is there already: the bootstrap file is not used (delete the "
                "store to fill it from the file)",
                {{"path", store_dir}, {"file", config.bootstrap.from_file}});
    }
    return result;
  }
  if (config.bootstrap.from_file.empty() && config.bootstrap.peers.empty()) {
    result.source = "kafka";
    return result;
  }

  // One attempt: a private directory, a receiver, the source's stream into it; the store
  // is installed only if everything held.
  auto attempt = [&](const char* source, const std::string& from,
                     const std::function<Result<store::StoreFacts>(SnapshotReceiver*)>& run) {
    std::string dir = store_dir + "/" + kBootstrapPrefix + "XXXXXX";
    Status st;
    if (::mkdtemp(dir.data()) == nullptr) {
      st = Status(Code::kInternal,
                  "cannot create a directory in " + store_dir + ": " + std::strerror(errno),
                  "SNAPSHOT_IO");
    } else {
      SnapshotReceiver receiver(dir, mine);
      Result<store::StoreFacts> facts = run(&receiver);
      st = facts.ok() ? Install(dir, store_dir, store::kBootIdPath) : facts.status();
      if (st.ok()) {
        result.source = source;
        result.from = from;
        result.bytes = receiver.bytes();
        result.revision = facts->revision;
      }
      std::error_code rec;
      fs::remove_all(dir, rec);
    }
    stats->bootstrap_attempts->Add({{"source", source}, {"result", st.ok() ? "installed" : ResultOf(st)}})
        .Increment();
    if (!st.ok()) {
      log::Warn("bootstrap attempt failed; trying the next source",
                {{"source", source}, {"from", from}, {"result", ResultOf(st)},
                 {"reason", st.reason()}, {"error", st.message()}});
    }
    return st.ok();
  };

  if (!config.bootstrap.from_file.empty() &&
      attempt("file", config.bootstrap.from_file, [&](SnapshotReceiver* r) {
        return ReceiveSnapshotFile(config.bootstrap.from_file, r);
      })) {
    return result;
  }
  for (const std::string& peer : config.bootstrap.peers) {
    Result<std::vector<std::string>> targets = Resolve(peer);
    if (!targets.ok()) {
      stats->bootstrap_attempts->Add({{"source", "peer"}, {"result", "unreachable"}}).Increment();
      log::Warn("bootstrap attempt failed; trying the next source",
                {{"source", "peer"}, {"from", peer}, {"result", "unreachable"},
                 {"error", targets.status().message()}});
      continue;
    }
    for (const std::string& target : *targets) {
      if (attempt("peer", target, [&](SnapshotReceiver* r) {
            return FromPeerTarget(config, mine, target, r);
          })) {
        return result;
      }
    }
  }
  result.source = "kafka";
  return result;
}

}  // namespace cachecar::peer
