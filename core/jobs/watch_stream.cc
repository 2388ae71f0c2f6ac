#include "core/jobs/watch_stream.h"

#include <utility>

namespace drgate::jobs {
namespace {

bool Final(const Job& job) {
  return IsTerminal(job.state) || job.state == JobState::kUnknown;
}

// What a watcher sees of a job; update_time alone changing is not news.
bool Same(const Job& a, const Job& b) {
  return a.state == b.state && a.percent_complete == b.percent_complete &&
         a.commserv_status == b.commserv_status && a.failure_reason == b.failure_reason &&
         a.start_time == b.start_time && a.end_time == b.end_time;
}

}  // namespace

std::shared_ptr<WatchStream> WatchStream::Create(WatchHub& hub, WatchSink* sink, Reader read) {
  return std::shared_ptr<WatchStream>(new WatchStream(hub, sink, std::move(read)));
}

WatchStream::WatchStream(WatchHub& hub, WatchSink* sink, Reader read)
    : hub_(hub), read_(std::move(read)), sink_(sink) {}

WatchStream::~WatchStream() {
  // Only when the stream never finished (its owner went away first).
  if (handle_ != 0) hub_.Unsubscribe(handle_);
}

bool WatchStream::subscribed() const {
  std::lock_guard lock(mu_);
  return handle_ != 0;
}

void WatchStream::Start() {
  read_([self = shared_from_this()](StatusOr<Job> first) { self->FirstRead(std::move(first)); });
}

void WatchStream::FirstRead(StatusOr<Job> first) {
  if (!first.ok()) {
    Action action;
    {
      std::lock_guard lock(mu_);
      action = CloseLocked(first.status());
    }
    Run(std::move(action));
    return;
  }
  {
    std::lock_guard lock(mu_);
    if (finished_ || closing_) return;  // cancelled while reading
  }
  // Outside mu_: the hub's lock is never taken under the stream's. The hub holds the stream
  // weakly; the stream unsubscribes when it finishes.
  std::weak_ptr<WatchStream> weak = weak_from_this();
  const uint64_t handle = hub_.Subscribe(first->commcell, first->job_id, [weak](const Job& job) {
    if (auto self = weak.lock()) self->Offer(job, /*published=*/true);
  });
  bool keep = false;
  {
    std::lock_guard lock(mu_);
    keep = !finished_;
    if (keep) handle_ = handle;
  }
  if (!keep) {
    hub_.Unsubscribe(handle);
    return;
  }
  // Read again now that changes are heard: one made between the first read and the subscription
  // is not lost.
  read_([self = shared_from_this(), first = std::move(*first)](StatusOr<Job> current) mutable {
    self->Offer(current.ok() ? *current : first, /*published=*/false);
  });
}

void WatchStream::Offer(const Job& job, bool published) {
  Action action;
  {
    std::lock_guard lock(mu_);
    if (finished_ || closing_) return;
    if (published) {
      published_ = true;
    } else if (published_) {
      // The registry is written before each publication, so a published state is at least as
      // new as this read was when it was made.
      return;
    }
    if (last_ && (Same(*last_, job) || Final(*last_))) return;
    pending_ = job;
    if (writing_) return;  // written when the current write is done (the newest pending only)
    action = NextLocked();
  }
  Run(std::move(action));
}

void WatchStream::WriteDone(bool ok) {
  Action action;
  {
    std::lock_guard lock(mu_);
    writing_ = false;
    if (!ok && !closing_) closing_ = Status(StatusCode::kCancelled, "the watcher went away");
    action = NextLocked();
  }
  Run(std::move(action));
}

void WatchStream::Cancel() {
  Action action;
  {
    std::lock_guard lock(mu_);
    action = CloseLocked(Status(StatusCode::kCancelled, "the watch was cancelled"));
  }
  Run(std::move(action));
}

WatchStream::Action WatchStream::NextLocked() {
  if (finished_ || writing_) return {};
  if (closing_) return CloseLocked(*closing_);
  if (last_ && Final(*last_)) return CloseLocked(Status::Ok());
  if (!pending_) return {};
  last_ = std::move(*pending_);
  pending_.reset();
  writing_ = true;
  Action action;
  action.sink = sink_;
  action.write = *last_;
  return action;
}

WatchStream::Action WatchStream::CloseLocked(Status status) {
  if (finished_) return {};
  if (writing_) {
    // Finished when the write ends (WriteDone), never with one outstanding.
    if (!closing_) closing_ = std::move(status);
    return {};
  }
  finished_ = true;
  pending_.reset();
  Action action;
  action.sink = sink_;
  action.finish = std::move(status);
  action.unsubscribe = handle_;
  handle_ = 0;
  sink_ = nullptr;  // never called after Finish
  return action;
}

void WatchStream::Run(Action action) {
  if (action.unsubscribe != 0) hub_.Unsubscribe(action.unsubscribe);
  if (action.write) action.sink->Write(*action.write);
  if (action.finish) action.sink->Finish(*action.finish);
}

}  // namespace drgate::jobs
