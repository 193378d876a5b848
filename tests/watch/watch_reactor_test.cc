// The Watch stream's transport over a real in-process gRPC server and client: a burst of
// responses (a change watched by every watch of the stream) is coalesced into fewer
// writes, and none of them is held back once the burst is over.
#include "watch/watch_reactor.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/server_builder.h>
#include <gtest/gtest.h>

#include <optional>

#include "rpc/cache_service.h"
#include "test_util.h"

namespace cachecar::watch {
namespace {

class WatchReactorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config::TopicConfig t;
    t.name = "users";
    config_.topics.push_back(t);
    store::Options so;
    so.path = dir_.path();
    so.topics = {"users"};
    so.map_size_bytes = 64 << 20;
    store_ = std::move(store::Store::Open(so)).value();
    hub_ = std::make_unique<Hub>(store_.get(), &config_, Options{}, [] { return true; },
                                 &registry_);
    hub_->Start();
    tracker_ = std::make_unique<health::CatchUpTracker>(so.topics);
    handler_ = std::make_unique<rpc::ReadHandler>(&config_, store_.get(), tracker_.get(), nullptr);
    service_ = std::make_unique<rpc::CacheService>(handler_.get(), &registry_);
    service_->set_watch_factory([h = hub_.get()] { return WatchReactor::Start(h); });
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(service_.get());
    server_ = b.BuildAndStart();
    ASSERT_NE(port, 0);
    stub_ = v1::CacheService::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    hub_->Shutdown();
    server_->Shutdown();
  }

  void Apply(const std::string& key, const std::string& value) {
    store::WriteBatch b;
    store::Mutation m;
    m.key = key;
    m.value = value;
    m.offset = next_offset_++;
    b.mutations.push_back(std::move(m));
    ASSERT_TRUE(store_->Apply(b).ok());
    hub_->Notify();
  }

  using Stream = std::unique_ptr<grpc::ClientReaderWriter<v1::WatchRequest, v1::WatchResponse>>;

  // Opens a stream on `ctx` (with a deadline that guards the test against hanging, not a
  // measurement) and creates watch 7 on key u1, resuming after `resume` if set.
  Stream OpenWatch(grpc::ClientContext* ctx, std::optional<uint64_t> resume = std::nullopt) {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    Stream stream = stub_->Watch(ctx);
    v1::WatchRequest r;
    r.mutable_create()->set_watch_id(7);
    r.mutable_create()->set_topic("users");
    r.mutable_create()->set_key("u1");
    if (resume) {
      r.mutable_create()->set_resume_revision(*resume);
      r.mutable_create()->set_store_id(store_->store_id());
    }
    EXPECT_TRUE(stream->Write(r));
    return stream;
  }

  testing::TempDir dir_;
  config::Config config_;
  std::unique_ptr<store::Store> store_;
  prometheus::Registry registry_;
  std::unique_ptr<Hub> hub_;
  std::unique_ptr<health::CatchUpTracker> tracker_;
  std::unique_ptr<rpc::ReadHandler> handler_;
  std::unique_ptr<rpc::CacheService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::CacheService::Stub> stub_;
  int64_t next_offset_ = 0;
};

// Every response of a burst arrives although nothing follows it: the stream's last
// response of a run is never left in gRPC's buffer. (A reactor that set buffer_hint on a
// write without a next response in hand fails here: the client waits for the last one
// until the deadline.)
TEST_F(WatchReactorTest, EveryResponseOfABurstArrivesWithNothingAfterIt) {
  constexpr int kWatches = 200;
  grpc::ClientContext ctx;
  // Guards the test against hanging; not a measurement.
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto stream = stub_->Watch(&ctx);
  for (int i = 1; i <= kWatches; ++i) {
    v1::WatchRequest r;
    r.mutable_create()->set_watch_id(i);
    r.mutable_create()->set_topic("users");
    r.mutable_create()->set_key("u1");
    ASSERT_TRUE(stream->Write(r));
  }
  v1::WatchResponse resp;
  int created = 0;
  while (created < kWatches && stream->Read(&resp)) {
    if (resp.has_created()) ++created;
  }
  ASSERT_EQ(created, kWatches) << "the last created responses were held back";

  // One change that every watch of the stream wants: kWatches responses at once, small,
  // then large (a burst of 200 x 8 KiB is far past gRPC's per-stream write buffer).
  for (int round = 0; round < 4; ++round) {
    const std::string value = "v" + std::to_string(round) + std::string(round == 3 ? 8192 : 0, 'x');
    Apply("u1", value);
    std::set<int64_t> got;
    while (static_cast<int>(got.size()) < kWatches && stream->Read(&resp)) {
      ASSERT_TRUE(resp.has_events()) << resp.DebugString();
      ASSERT_EQ(resp.events().events_size(), 1);
      EXPECT_EQ(resp.events().events(0).entry().value(), value);
      got.insert(resp.watch_id());
    }
    ASSERT_EQ(static_cast<int>(got.size()), kWatches)
        << "round " << round << ": the last events of the burst were held back";
  }
  ctx.TryCancel();
}

// A single response with nothing after it (the common case of one watch and a quiet key)
// goes out on its own.
TEST_F(WatchReactorTest, ALoneEventArrivesAtOnce) {
  grpc::ClientContext ctx;
  Stream stream = OpenWatch(&ctx);
  v1::WatchResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  ASSERT_TRUE(resp.has_created());
  for (int i = 0; i < 5; ++i) {
    Apply("u1", "x" + std::to_string(i));
    ASSERT_TRUE(stream->Read(&resp)) << "change " << i << " never arrived";
    ASSERT_TRUE(resp.has_events());
    EXPECT_EQ(resp.events().events(0).entry().value(), "x" + std::to_string(i));
  }
  ctx.TryCancel();
}

// A resume whose catch-up has a change to send at once: its created response is written
// with the event in hand (hinted), and both arrive.
TEST_F(WatchReactorTest, AResumeGetsItsCreatedAndItsMissedChange) {
  Apply("u1", "a");
  Apply("u1", "b");
  grpc::ClientContext ctx;
  Stream stream = OpenWatch(&ctx, /*resume=*/1);
  v1::WatchResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  ASSERT_TRUE(resp.has_created()) << resp.DebugString();
  ASSERT_TRUE(stream->Read(&resp)) << "the missed change never arrived";
  ASSERT_TRUE(resp.has_events()) << resp.DebugString();
  EXPECT_EQ(resp.events().events(0).entry().value(), "b");
  ctx.TryCancel();
}

// Shutdown ends the stream once the client has its watch's SHUTTING_DOWN cancel (the
// server's own shutdown then waits for nothing).
TEST_F(WatchReactorTest, ShutdownEndsTheStreamAfterTheCancel) {
  grpc::ClientContext ctx;
  Stream stream = OpenWatch(&ctx);
  v1::WatchResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  ASSERT_TRUE(resp.has_created());
  Apply("u1", "x");
  ASSERT_TRUE(stream->Read(&resp));
  ASSERT_TRUE(resp.has_events());
  hub_->Shutdown();
  ASSERT_TRUE(stream->Read(&resp)) << "no cancel";
  ASSERT_TRUE(resp.has_canceled());
  EXPECT_EQ(resp.canceled().reason(), v1::WatchCanceled::SHUTTING_DOWN);
  EXPECT_FALSE(stream->Read(&resp)) << resp.DebugString();
  grpc::Status st = stream->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
}

}  // namespace
}  // namespace cachecar::watch
