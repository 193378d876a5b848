#include "client/client.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>

#include <future>
#include <grpcpp/security/credentials.h>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace cachecar::client {

Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return Status::Ok();
  std::string reason;
  std::vector<FieldViolation> violations;
  std::map<std::string, std::string> metadata;
  // The server appends the violations to grpc-message for clients that read nothing else;
  // the details' own message is the sentence without them, so each violation shows once.
  std::string message = status.error_message();
  google::rpc::Status details;
  if (!status.error_details().empty() && details.ParseFromString(status.error_details())) {
    if (!details.message().empty()) message = details.message();
    for (const auto& any : details.details()) {
      google::rpc::ErrorInfo info;
      google::rpc::BadRequest bad;
      if (any.UnpackTo(&info)) {
        reason = info.reason();
        for (const auto& [k, v] : info.metadata()) metadata[k] = v;
      } else if (any.UnpackTo(&bad)) {
        for (const auto& fv : bad.field_violations()) {
          violations.push_back({fv.field(), fv.description(), fv.reason()});
        }
      }
    }
  }
  Status out(static_cast<Code>(status.error_code()), message, reason, std::move(violations));
  for (auto& [k, v] : metadata) out.SetMetadata(k, v);
  return out;
}

Client::Client(ClientOptions options) : options_(std::move(options)) {
  channel_ = grpc::CreateChannel(options_.target, grpc::InsecureChannelCredentials());
  stub_ = v1::CacheService::NewStub(channel_);
}

Status WatchStream::Finish() { return FromGrpcStatus(stream_->Finish()); }

std::unique_ptr<WatchStream> Client::Watch() {
  std::unique_ptr<WatchStream> w(new WatchStream());
  if (!options_.auth_token.empty()) {
    w->context_.AddMetadata("authorization", "Bearer " + options_.auth_token);
  }
  w->stream_ = stub_->Watch(&w->context_);
  return w;
}

std::unique_ptr<grpc::ClientContext> Client::NewContext() const {
  return NewContext(options_.timeout);
}

std::unique_ptr<grpc::ClientContext> Client::NewContext(std::chrono::milliseconds timeout) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + timeout);
  if (!options_.auth_token.empty()) {
    ctx->AddMetadata("authorization", "Bearer " + options_.auth_token);
  }
  return ctx;
}

Result<bool> Client::CheckHealth(const std::string& service) {
  // HealthCheckRequest{string service = 1} and HealthCheckResponse{enum status = 1},
  // encoded by hand: two fields do not justify generating the health protos.
  if (service.size() > 127) return InvalidArgument("health service name too long");
  std::string request;
  if (!service.empty()) {
    request.push_back(0x0a);
    request.push_back(static_cast<char>(service.size()));
    request += service;
  }
  grpc::Slice slice(request);
  grpc::ByteBuffer req(&slice, 1), resp;
  grpc::GenericStub stub(channel_);
  auto ctx = NewContext();
  std::promise<grpc::Status> done;
  stub.UnaryCall(ctx.get(), "/grpc.health.v1.Health/Check", grpc::StubOptions(), &req, &resp,
                 [&done](grpc::Status st) { done.set_value(std::move(st)); });
  grpc::Status st = done.get_future().get();
  if (!st.ok()) return FromGrpcStatus(st);
  std::vector<grpc::Slice> slices;
  resp.Dump(&slices);
  std::string body;
  for (const auto& s : slices) body.append(reinterpret_cast<const char*>(s.begin()), s.size());
  // SERVING = 1; an absent field is UNKNOWN (0).
  return body.size() == 2 && body[0] == 0x08 && body[1] == 0x01;
}

Result<v1::WaitReadyResponse> Client::WaitReady(std::chrono::milliseconds timeout) {
  auto ctx = NewContext(timeout);
  v1::WaitReadyResponse resp;
  grpc::Status st = stub_->WaitReady(ctx.get(), v1::WaitReadyRequest(), &resp);
  if (!st.ok()) return FromGrpcStatus(st);
  return resp;
}

Result<v1::GetResponse> Client::Get(const std::string& topic, const std::string& key,
                                    ReadOptions ro) {
  v1::GetRequest req;
  req.set_topic(topic);
  req.set_key(key);
  req.set_allow_cold_cache(ro.allow_cold_cache);
  req.set_min_revision(ro.min_revision);
  req.set_original_value(ro.original_value);
  v1::GetResponse resp;
  auto ctx = NewContext();
  grpc::Status st = stub_->Get(ctx.get(), req, &resp);
  if (!st.ok()) return FromGrpcStatus(st);
  return resp;
}

Result<v1::BatchGetResponse> Client::BatchGet(const std::string& topic,
                                              const std::vector<std::string>& keys,
                                              ReadOptions ro) {
  v1::BatchGetRequest req;
  req.set_topic(topic);
  for (const auto& k : keys) req.add_keys(k);
  req.set_allow_cold_cache(ro.allow_cold_cache);
  req.set_min_revision(ro.min_revision);
  req.set_original_value(ro.original_value);
  v1::BatchGetResponse resp;
  auto ctx = NewContext();
  grpc::Status st = stub_->BatchGet(ctx.get(), req, &resp);
  if (!st.ok()) return FromGrpcStatus(st);
  return resp;
}

Result<v1::ListResponse> Client::List(const std::string& topic, const std::string& prefix,
                                      int32_t page_size, const std::string& page_token,
                                      ReadOptions ro) {
  v1::ListRequest req;
  req.set_topic(topic);
  req.set_prefix(prefix);
  req.set_page_size(page_size);
  req.set_page_token(page_token);
  req.set_allow_cold_cache(ro.allow_cold_cache);
  req.set_min_revision(ro.min_revision);
  req.set_original_value(ro.original_value);
  v1::ListResponse resp;
  auto ctx = NewContext();
  grpc::Status st = stub_->List(ctx.get(), req, &resp);
  if (!st.ok()) return FromGrpcStatus(st);
  return resp;
}

Result<std::vector<v1::Entry>> Client::ListAll(const std::string& topic,
                                               const std::string& prefix, size_t limit,
                                               ReadOptions ro) {
  std::vector<v1::Entry> out;
  std::string token;
  do {
    Result<v1::ListResponse> page = List(topic, prefix, 1000, token, ro);
    if (!page.ok()) return page.status();
    for (auto& e : *page->mutable_entries()) {
      if (limit != 0 && out.size() >= limit) return out;
      out.push_back(std::move(e));
    }
    token = page->next_page_token();
  } while (!token.empty());
  return out;
}

Result<v1::GetStatusResponse> Client::GetStatus() {
  v1::GetStatusResponse resp;
  auto ctx = NewContext();
  grpc::Status st = stub_->GetStatus(ctx.get(), v1::GetStatusRequest(), &resp);
  if (!st.ok()) return FromGrpcStatus(st);
  return resp;
}

Result<v1::PutResponse> Client::Put(const std::string& topic, const std::string& key,
                                    const std::string& value, bool ack_only) {
  v1::PutRequest req;
  req.set_topic(topic);
  req.set_key(key);
  req.set_value(value);
  req.set_ack_only(ack_only);
  v1::PutResponse resp;
  auto ctx = NewContext();
  grpc::Status st = stub_->Put(ctx.get(), req, &resp);
  if (!st.ok()) return FromGrpcStatus(st);
  return resp;
}

Result<v1::DeleteResponse> Client::Delete(const std::string& topic, const std::string& key,
                                          bool ack_only) {
  v1::DeleteRequest req;
  req.set_topic(topic);
  req.set_key(key);
  req.set_ack_only(ack_only);
  v1::DeleteResponse resp;
  auto ctx = NewContext();
  grpc::Status st = stub_->Delete(ctx.get(), req, &resp);
  if (!st.ok()) return FromGrpcStatus(st);
  return resp;
}

Result<v1::ListRejectedRecordsResponse> Client::ListRejectedRecords(const std::string& topic) {
  v1::ListRejectedRecordsRequest req;
  req.set_topic(topic);
  v1::ListRejectedRecordsResponse resp;
  auto ctx = NewContext();
  grpc::Status st = stub_->ListRejectedRecords(ctx.get(), req, &resp);
  if (!st.ok()) return FromGrpcStatus(st);
  return resp;
}

}  // namespace cachecar::client
