// The gRPC adapter over a real in-process server on port 0, called through the C++ client.
#include "rpc/cache_service.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/server_builder.h>
#include <gtest/gtest.h>

#include "client/client.h"
#include "store/apply_notifier.h"

#include <future>
#include <thread>
#include "test_util.h"

namespace cachecar::rpc {
namespace {

class CacheServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.topics.resize(1);
    config_.topics[0].name = "users";
    store::Options so;
    so.path = dir_.path();
    so.topics = {"users"};
    so.map_size_bytes = 64 << 20;
    store_ = std::move(store::Store::Open(so)).value();
    tracker_ = std::make_unique<health::CatchUpTracker>(so.topics);
    handler_ = std::make_unique<ReadHandler>(&config_, store_.get(), tracker_.get(), nullptr);
    service_ = std::make_unique<CacheService>(handler_.get(), &registry_);
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    b.SetMaxReceiveMessageSize(64 * 1024);
    b.RegisterService(service_.get());
    server_ = b.BuildAndStart();
    ASSERT_NE(port_, 0);
    client::ClientOptions co;
    co.target = "127.0.0.1:" + std::to_string(port_);
    client_ = std::make_unique<client::Client>(co);
  }
  void TearDown() override { server_->Shutdown(); }

  void PutAndReady() {
    store::WriteBatch b;
    store::Mutation m;
    m.key = "u1";
    m.value = "{}";
    b.mutations.push_back(m);
    ASSERT_TRUE(store_->Apply(b).ok());
    MakeReady();
  }

  // The topic's single partition has caught up (nothing to apply at start).
  void MakeReady() {
    health::PartitionProgress p;
    p.applied = 0;
    tracker_->SetAssigned(0, {p});
  }

  testing::TempDir dir_;
  config::Config config_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<health::CatchUpTracker> tracker_;
  std::unique_ptr<ReadHandler> handler_;
  prometheus::Registry registry_;
  std::unique_ptr<CacheService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::unique_ptr<client::Client> client_;
};

TEST_F(CacheServiceTest, ResponsesCarryTheRevisionHeader) {
  PutAndReady();
  auto stub = v1::CacheService::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port_), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  v1::GetRequest req;
  req.set_topic("users");
  req.set_key("u1");
  v1::GetResponse resp;
  ASSERT_TRUE(stub->Get(&ctx, req, &resp).ok());
  auto md = ctx.GetServerInitialMetadata();
  auto it = md.find(kRevisionHeader);
  ASSERT_NE(it, md.end());
  EXPECT_EQ(std::string(it->second.data(), it->second.size()), "1");
}

TEST_F(CacheServiceTest, ErrorsReachTheClientWithTheirDetails) {
  auto r = client_->Get("users", "u1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_EQ(r.status().reason(), "CACHE_NOT_READY");
  PutAndReady();
  r = client_->Get("nope", "u1");
  EXPECT_EQ(r.status().reason(), "TOPIC_NOT_FOUND");
  r = client_->Get("users", "");
  ASSERT_EQ(r.status().violations().size(), 1u);
  EXPECT_EQ(r.status().violations()[0].field, "key");
  r = client_->Get("users", "u1");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->found());
}

TEST_F(CacheServiceTest, OversizedRequestIsRefusedByTheTransport) {
  PutAndReady();
  auto r = client_->Get("users", std::string(100 * 1024, 'k'));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kResourceExhausted);
  EXPECT_TRUE(client_->Get("users", "u1").ok());  // the server is fine afterwards
}

TEST_F(CacheServiceTest, LatencyIsRecordedByMethodAndCode) {
  PutAndReady();
  ASSERT_TRUE(client_->Get("users", "u1").ok());
  ASSERT_FALSE(client_->Get("nope", "u1").ok());
  bool ok_seen = false, not_found_seen = false;
  for (const auto& f : registry_.Collect()) {
    if (f.name != "cachecar_rpc_requests_total") continue;
    for (const auto& m : f.metric) {
      std::map<std::string, std::string> l;
      for (const auto& p : m.label) l[p.name] = p.value;
      if (l["method"] == "Get" && l["code"] == "OK") ok_seen = m.counter.value == 1;
      if (l["method"] == "Get" && l["code"] == "NOT_FOUND") not_found_seen = true;
    }
  }
  EXPECT_TRUE(ok_seen);
  EXPECT_TRUE(not_found_seen);
}

TEST_F(CacheServiceTest, ListAllFollowsPages) {
  store::WriteBatch b;
  for (int i = 0; i < 2500; ++i) {
    store::Mutation m;
    m.key = "k" + std::to_string(i);
    m.value = "1";
    b.mutations.push_back(m);
  }
  ASSERT_TRUE(store_->Apply(b).ok());
  MakeReady();
  auto all = client_->ListAll("users", "k");
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(all->size(), 2500u);
  auto some = client_->ListAll("users", "k", 10);
  EXPECT_EQ(some->size(), 10u);
}

// A sidecar that requires a token, and answers WaitReady through its notifier.
class AuthenticatedServiceTest : public CacheServiceTest {
 protected:
  void SetUp() override {
    CacheServiceTest::SetUp();
    server_->Shutdown();
    notifier_ = std::make_unique<store::ApplyNotifier>(0);
    service_ = std::make_unique<CacheService>(handler_.get(), &registry_, nullptr,
                                              notifier_.get(), std::chrono::seconds(30),
                                              "s3cret-token");
    service_->set_watch_factory([] {
      ADD_FAILURE() << "an unauthenticated Watch reached the watch module";
      return nullptr;
    });
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    b.RegisterService(service_.get());
    server_ = b.BuildAndStart();
    ASSERT_NE(port_, 0);
  }
  std::unique_ptr<client::Client> ClientWith(std::string token) {
    client::ClientOptions co;
    co.target = "127.0.0.1:" + std::to_string(port_);
    co.auth_token = std::move(token);
    return std::make_unique<client::Client>(co);
  }
  std::unique_ptr<store::ApplyNotifier> notifier_;
};

TEST_F(AuthenticatedServiceTest, MissingOrWrongTokenIsUnauthenticatedOnEveryMethod) {
  PutAndReady();
  for (const std::string& token : {std::string(), std::string("wrong"),
                                   std::string("s3cret-token-but-longer"),
                                   std::string("s3cret-toke")}) {
    auto c = ClientWith(token);
    auto get = c->Get("users", "u1");
    EXPECT_EQ(get.status().code(), Code::kUnauthenticated) << token;
    EXPECT_EQ(get.status().reason(), "UNAUTHENTICATED");
    EXPECT_EQ(c->Get("users", "").status().code(), Code::kUnauthenticated);  // before checks
    EXPECT_EQ(c->GetStatus().status().code(), Code::kUnauthenticated);
    EXPECT_EQ(c->Put("users", "k", "{}").status().code(), Code::kUnauthenticated);
    EXPECT_EQ(c->Delete("users", "k").status().code(), Code::kUnauthenticated);
    EXPECT_EQ(c->ListRejectedRecords("users").status().code(), Code::kUnauthenticated);
    EXPECT_EQ(c->WaitReady(std::chrono::seconds(1)).status().code(), Code::kUnauthenticated);
    auto w = c->Watch();
    v1::WatchResponse resp;
    EXPECT_FALSE(w->Read(&resp));
    EXPECT_EQ(w->Finish().code(), Code::kUnauthenticated);
  }
  auto good = ClientWith("s3cret-token")->Get("users", "u1");
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  EXPECT_TRUE(good->found());
}

TEST_F(AuthenticatedServiceTest, WaitReadyAnswersWhenReadyOrWithTheReasonBeforeTheDeadline) {
  auto c = ClientWith("s3cret-token");
  notifier_->SetReady(false, "catching up");
  auto r = c->WaitReady(std::chrono::milliseconds(300));
  ASSERT_TRUE(r.ok()) << r.status().ToString();  // not DEADLINE_EXCEEDED: the reason
  EXPECT_FALSE(r->ready());
  EXPECT_EQ(r->not_ready_reason(), "catching up");
  std::thread later([&] {
    // Once the call is waiting, the sidecar becomes ready.
    EXPECT_TRUE(testing::WaitUntil([&] { return notifier_->pending() == 1; }));
    notifier_->SetReady(true, "");
  });
  r = c->WaitReady(std::chrono::seconds(20));
  later.join();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->ready());
  EXPECT_TRUE(r->not_ready_reason().empty());
}

// A call whose client cancels stops waiting at once (not at its deadline): a min_revision
// read and a WaitReady.
TEST_F(AuthenticatedServiceTest, CancelledCallsStopWaitingAtOnce) {
  MakeReady();
  notifier_->SetReady(false, "catching up");
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                     grpc::InsecureChannelCredentials());
  auto stub = v1::CacheService::NewStub(channel);
  for (int which = 0; which < 2; ++which) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer s3cret-token");
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
    grpc::Status st;
    std::thread call([&] {
      if (which == 0) {
        v1::GetRequest req;
        req.set_topic("users");
        req.set_key("u1");
        req.set_min_revision(1000);
        v1::GetResponse resp;
        st = stub->Get(&ctx, req, &resp);
      } else {
        v1::WaitReadyResponse resp;
        st = stub->WaitReady(&ctx, v1::WaitReadyRequest(), &resp);
      }
    });
    ASSERT_TRUE(testing::WaitUntil([&] { return notifier_->pending() == 1; })) << which;
    ctx.TryCancel();
    call.join();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::CANCELLED);
    EXPECT_TRUE(testing::WaitUntil([&] { return notifier_->pending() == 0; }))
        << which << ": the server still waits for a caller that is gone";
  }
}

// A read deferred until a revision (min_revision) runs on the read pool, never on the
// notifier's one thread, where a large BatchGet or List would hold up every other waiter
// (Puts' answers among them).
TEST_F(AuthenticatedServiceTest, DeferredReadsRunOnTheReadPoolNotOnTheNotifiersThread) {
  PutAndReady();
  notifier_->SetReady(true, "");
  TaskPool* pool = service_->read_pool();
  // Occupy every thread of the pool.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<size_t> occupied{0};
  for (size_t i = 0; i < pool->threads(); ++i) {
    pool->Post([&occupied, released] {
      ++occupied;
      released.wait();
    });
  }
  ASSERT_TRUE(testing::WaitUntil([&] { return occupied == pool->threads(); }));
  const uint64_t before = pool->executed();

  auto c = ClientWith("s3cret-token");
  Result<v1::GetResponse> got = Status(Code::kUnknown, "not answered");
  std::thread call([&] {
    client::ReadOptions ro;
    ro.min_revision = store_->revision() + 1;
    got = c->Get("users", "u1", ro);
  });
  ASSERT_TRUE(testing::WaitUntil([&] { return notifier_->pending() == 1; }));
  store::WriteBatch b;
  store::Mutation m;
  m.key = "u2";
  m.value = "{}";
  b.mutations.push_back(m);
  auto applied = store_->Apply(b);
  ASSERT_TRUE(applied.ok());
  notifier_->Published(applied->revision, {});
  // The notifier answered the wait at once; the read itself waits for the pool.
  ASSERT_TRUE(testing::WaitUntil([&] { return notifier_->pending() == 0; }));
  // The notifier's thread is free: another waiting call is answered meanwhile.
  auto ready = c->WaitReady(std::chrono::seconds(10));
  ASSERT_TRUE(ready.ok()) << ready.status().ToString();
  EXPECT_TRUE(ready->ready());
  EXPECT_EQ(pool->executed(), before);  // the deferred read has not run anywhere yet
  release.set_value();
  call.join();
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_TRUE(got->found());
  // The read's task counts once it has returned, just after it answered.
  EXPECT_TRUE(testing::WaitUntil(
      [&] { return pool->executed() == before + pool->threads() + 1; }))
      << pool->executed();
}

}  // namespace
}  // namespace cachecar::rpc
