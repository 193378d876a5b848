// ArenaMessageAllocator: gives each unary call a protobuf Arena that owns its request and
// response. A BatchGet of 100 keys builds ~500 submessages and strings; on the heap that
// was an eighth of the server's CPU in malloc/free (bench/: BatchGet profile). On an arena
// they cost a pointer bump each and are freed at once when gRPC releases the call.
#pragma once

#include <google/protobuf/arena.h>
#include <grpcpp/support/message_allocator.h>

namespace cachecar::rpc {

template <typename Request, typename Response>
class ArenaMessageAllocator final : public grpc::MessageAllocator<Request, Response> {
 public:
  grpc::MessageHolder<Request, Response>* AllocateMessages() override { return new Holder(); }

 private:
  class Holder final : public grpc::MessageHolder<Request, Response> {
   public:
    Holder() : arena_(Options()) {
      this->set_request(google::protobuf::Arena::CreateMessage<Request>(&arena_));
      this->set_response(google::protobuf::Arena::CreateMessage<Response>(&arena_));
    }
    void Release() override { delete this; }

   private:
    static google::protobuf::ArenaOptions Options() {
      google::protobuf::ArenaOptions o;
      o.start_block_size = 4096;   // a Get fits in the first block
      o.max_block_size = 64 << 10;  // a full BatchGet in a few blocks
      return o;
    }
    google::protobuf::Arena arena_;
  };
};

}  // namespace cachecar::rpc
