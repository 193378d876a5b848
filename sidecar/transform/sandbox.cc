#include "transform/sandbox.h"

#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "transform/wire.h"
#include "transform/worker.h"

namespace cachecar::transform {

namespace {

// Longest the worker may take to compile the filters.
constexpr int kCompileWaitMs = 30000;
// How long after a result the worker may keep its next ones before sending them
// (worker.cc kFlushInterval, with room for scheduling).
constexpr int kFlushSlackMs = 20;

std::string DescribeExit(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (!WIFSIGNALED(status)) return "ended";
  const int sig = WTERMSIG(status);
  std::string d = "killed by signal " + std::to_string(sig);
  if (sig == SIGSEGV || sig == SIGBUS) d += " (its stack overflowed, or it ran out of memory)";
  if (sig == SIGABRT) d += " (it ran out of memory, or aborted)";
  return d;
}

}  // namespace

Sandbox::Sandbox(std::vector<std::string> filters, SandboxOptions options)
    : filters_(std::move(filters)), options_(std::move(options)) {
  if (options_.registry != nullptr) {
    auto& family = prometheus::BuildCounter()
                       .Name("cachecar_transform_worker_restarts_total")
                       .Help("Transform worker processes started again, by why the previous "
                             "one ended: a record ran past transforms.record_budget_ms "
                             "(budget_exceeded) or the worker died on one (crashed)")
                       .Register(*options_.registry);
    restarts_budget_ = &family.Add({{"reason", "budget_exceeded"}});
    restarts_crashed_ = &family.Add({{"reason", "crashed"}});
  }
}

Sandbox::~Sandbox() { Kill(); }

cachecar::Result<std::unique_ptr<Sandbox>> Sandbox::Start(std::vector<std::string> filters,
                                                          SandboxOptions options) {
  std::unique_ptr<Sandbox> s(new Sandbox(std::move(filters), std::move(options)));
  std::vector<std::string> errors;
  Status st = s->Spawn(&errors);
  if (st.ok()) {
    std::vector<FieldViolation> violations;
    for (size_t i = 0; i < errors.size(); ++i) {
      if (!errors[i].empty()) violations.push_back({"filters[" + std::to_string(i) + "]", errors[i]});
    }
    if (violations.empty()) return s;
    return Status(Code::kInvalidArgument, "a transform does not compile", "TRANSFORM_INVALID",
                  std::move(violations));
  }
  if (st.reason() != "WORKER_EXITED" || s->filters_.size() < 2) return st;
  // The worker died compiling: find which filter kills it, one worker each.
  std::vector<FieldViolation> violations;
  for (size_t i = 0; i < s->filters_.size(); ++i) {
    Sandbox one({s->filters_[i]}, SandboxOptions{s->options_.worker_path,
                                                 s->options_.max_memory_bytes,
                                                 s->options_.record_budget, nullptr});
    std::vector<std::string> errs;
    Status one_st = one.Spawn(&errs);
    if (!one_st.ok()) {
      violations.push_back({"filters[" + std::to_string(i) + "]", one_st.message()});
    } else if (!errs.empty() && !errs[0].empty()) {
      violations.push_back({"filters[" + std::to_string(i) + "]", errs[0]});
    }
  }
  return Status(Code::kInvalidArgument, "a transform does not compile", "TRANSFORM_INVALID",
                std::move(violations));
}

Status Sandbox::Spawn(std::vector<std::string>* errors) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return Status(Code::kUnavailable,
                  std::string("transform worker: socketpair: ") + std::strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, sv[1], STDIN_FILENO);
  posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
  const std::string memory = std::to_string(options_.max_memory_bytes);
  std::vector<char*> argv = {const_cast<char*>(options_.worker_path.c_str()),
                             const_cast<char*>(kWorkerArg), const_cast<char*>(memory.c_str()),
                             nullptr};
  char* envp[] = {nullptr};
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, options_.worker_path.c_str(), &actions, nullptr, argv.data(), envp);
  posix_spawn_file_actions_destroy(&actions);
  ::close(sv[1]);
  if (rc != 0) {
    ::close(sv[0]);
    return Status(Code::kUnavailable, "transform worker: cannot start " + options_.worker_path +
                                          ": " + std::strerror(rc));
  }
  pid_ = pid;
  fd_ = sv[0];
  wire::Writer w;
  w.U8('C');
  w.U32(static_cast<uint32_t>(filters_.size()));
  for (const auto& f : filters_) w.Str(f);
  Status st = wire::WriteAll(fd_, w.Frame());
  std::string payload;
  if (st.ok()) st = wire::ReadFrame(fd_, &payload, kCompileWaitMs);
  if (!st.ok()) {
    Kill();
    return Status(Code::kUnavailable,
                  "transform worker died compiling the filters (" + exit_description_ + ")",
                  "WORKER_EXITED");
  }
  wire::Reader in(payload);
  errors->clear();
  bool ok = in.U8() == 'c';
  for (size_t i = 0; ok && i < filters_.size(); ++i) {
    const bool compiled = in.U8() != 0;
    std::string_view msg = in.Str();
    errors->emplace_back(compiled ? "" : std::string(msg));
  }
  if (!ok || in.failed()) {
    Kill();
    return Status(Code::kInternal, "transform worker: malformed answer to compile");
  }
  return Status::Ok();
}

void Sandbox::Kill() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    exit_description_ = DescribeExit(status);
  }
  pid_ = -1;
}

void Sandbox::CountRestart(const char* reason) {
  ++restarts_;
  prometheus::Counter* c =
      std::strcmp(reason, "budget_exceeded") == 0 ? restarts_budget_ : restarts_crashed_;
  if (c != nullptr) c->Increment();
}

cachecar::Result<std::vector<Result>> Sandbox::Run(const std::vector<Input>& inputs,
                                                   size_t max_output) {
  Submit(&inputs, max_output);
  return Collect();
}

void Sandbox::Submit(const std::vector<Input>* inputs, size_t max_output) {
  pending_ = inputs;
  max_output_ = max_output;
  results_.assign(inputs->size(), Result{});
  next_ = 0;
  one_by_one_ = false;
  sent_ = false;
  if (inputs->empty() || pid_ < 0) return;  // Collect starts a worker
  // A worker that died since is found by Collect (its results never come).
  sent_ = true;
  if (!Send().ok()) Kill();
}

cachecar::Result<std::vector<Result>> Sandbox::Collect() {
  while (pending_ != nullptr && next_ < pending_->size()) {
    if (pid_ < 0) {
      std::vector<std::string> errors;
      Status st = Spawn(&errors);
      if (!st.ok()) return st;
      sent_ = false;
    }
    Status st = sent_ ? Status::Ok() : Send();
    sent_ = true;
    if (st.ok()) st = Receive();
    if (st.ok()) continue;
    const bool over_budget = st.code() == Code::kDeadlineExceeded;
    Kill();  // stuck or gone: end it, whichever
    sent_ = false;
    if (!one_by_one_) {
      // Which record? Results may have been held back up to a flush; ask again one answer
      // at a time from the first unanswered one.
      one_by_one_ = true;
      continue;
    }
    const Input& culprit = (*pending_)[next_];
    if (over_budget) {
      results_[next_] = {Outcome::kBudgetExceeded,
                         "the transform ran longer than " +
                             std::to_string(options_.record_budget.count()) +
                             " ms and was stopped"};
      CountRestart("budget_exceeded");
    } else {
      results_[next_] = {Outcome::kCrashed, "the transform worker died running this record (" +
                                                exit_description_ + ")"};
      CountRestart("crashed");
    }
    log::Warn("transform stopped on a record; its worker is started again",
              {{"partition", std::to_string(culprit.partition)},
               {"offset", std::to_string(culprit.offset)},
               {"reason", OutcomeName(results_[next_].outcome)},
               {"worker", exit_description_}});
    ++next_;
    one_by_one_ = false;
  }
  pending_ = nullptr;
  return std::move(results_);
}

Status Sandbox::Send() {
  const std::vector<Input>& inputs = *pending_;
  wire::Writer w;
  w.U8('B');
  w.U32(static_cast<uint32_t>(max_output_));
  w.U8(one_by_one_ ? 1 : 0);
  w.U32(static_cast<uint32_t>(inputs.size() - next_));
  for (size_t i = next_; i < inputs.size(); ++i) {
    const Input& r = inputs[i];
    w.U32(r.filter);
    w.Str(r.key);
    w.Str(r.value);
    w.I32(r.partition);
    w.I64(r.offset);
    w.I64(r.timestamp_ms);
    w.Str(r.headers_json.empty() ? std::string_view("{}") : r.headers_json);
  }
  return wire::WriteAll(fd_, w.Frame());
}

Status Sandbox::Receive() {
  const std::vector<Input>& inputs = *pending_;
  const int wait_ms = static_cast<int>(options_.record_budget.count()) +
                      (one_by_one_ ? 0 : kFlushSlackMs);
  std::string payload;
  while (next_ < inputs.size()) {
    Status st = wire::ReadFrame(fd_, &payload, wait_ms);
    if (!st.ok()) return st;
    wire::Reader in(payload);
    if (in.U8() != 'r') return Status(Code::kInternal, "transform worker: malformed answer");
    const uint32_t k = in.U32();
    for (uint32_t j = 0; j < k && !in.failed(); ++j) {
      if (next_ >= inputs.size()) return Status(Code::kInternal, "transform worker: too many answers");
      const uint8_t outcome = in.U8();
      std::string_view text = in.Str();
      if (outcome > static_cast<uint8_t>(Outcome::kManyValues)) {
        return Status(Code::kInternal, "transform worker: unknown outcome");
      }
      results_[next_] = {static_cast<Outcome>(outcome), std::string(text)};
      ++next_;
    }
    if (in.failed() || !in.done()) return Status(Code::kInternal, "transform worker: malformed answer");
  }
  return Status::Ok();
}

}  // namespace cachecar::transform
