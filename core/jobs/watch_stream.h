#pragma once

// One WatchJob stream, without gRPC: the current state of a job first, then every change the
// WatchHub publishes, until a state that will not change any more (a terminal state, or UNKNOWN).
//
// - Subscribes before reading the state it sends first, so no change falls between the two.
// - One write at a time: the next one starts only after the sink reported the last one done.
// - Keeps only the newest pending state: a slow reader sees the latest state, never a backlog.
//   A state equal to the last one written (same state, progress, status, reason and times) is
//   not sent again.
// - Ends with OK after a final state has been written, with CANCELLED when the watcher goes away
//   (a failed write, or Cancel), or with the error of the first read (NOT_FOUND...).
//
// Threads: Start's reads answer on another thread (the read pool); hub publications arrive on the
// publisher's thread; WriteDone and Cancel on the transport's. The class is thread-safe; it calls
// the sink outside its own lock, so a sink may call WriteDone from inside Write. It never calls
// the sink after Finish.

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "core/common/job.h"
#include "core/common/status.h"
#include "core/jobs/watch_hub.h"

namespace drgate::jobs {

// Where a WatchStream writes (implemented by the gRPC reactor).
class WatchSink {
 public:
  virtual ~WatchSink() = default;
  // Starts writing `job`; the stream calls WriteDone when it is done (or failed). At most one
  // write is outstanding at a time.
  virtual void Write(const Job& job) = 0;
  // Ends the stream; called once, never with a write outstanding. The sink may go away after it.
  virtual void Finish(const Status& status) = 0;
};

class WatchStream : public std::enable_shared_from_this<WatchStream> {
 public:
  // Reads the watched job from the registry and answers on another thread (never inline).
  using Reader = std::function<void(std::function<void(StatusOr<Job>)>)>;

  // `hub` must outlive the stream; `sink` must stay valid until the stream calls its Finish.
  static std::shared_ptr<WatchStream> Create(WatchHub& hub, WatchSink* sink, Reader read);
  ~WatchStream();
  WatchStream(const WatchStream&) = delete;
  WatchStream& operator=(const WatchStream&) = delete;

  // Reads the job, subscribes to its changes, reads it again and writes the newer answer.
  void Start();
  // The write started by sink->Write ended; `ok` false: the watcher is gone.
  void WriteDone(bool ok);
  // The watcher cancelled (or its deadline passed).
  void Cancel();

  // Whether the stream still follows its job in the hub (for tests).
  bool subscribed() const;

 private:
  WatchStream(WatchHub& hub, WatchSink* sink, Reader read);
  // Sink calls decided under mu_, made after it is released.
  struct Action {
    WatchSink* sink = nullptr;
    std::optional<Job> write;
    std::optional<Status> finish;
    uint64_t unsubscribe = 0;
  };
  void FirstRead(StatusOr<Job> first);
  void SecondRead(StatusOr<Job> current, Job first);
  void Offer(const Job& job, bool published);
  // Requires mu_: the next write, or the end, that the state calls for.
  Action NextLocked();
  // Requires mu_.
  Action CloseLocked(Status status);
  void Run(Action action);

  WatchHub& hub_;
  const Reader read_;

  mutable std::mutex mu_;
  WatchSink* sink_;                // guarded by mu_ (its calls are made outside it)
  uint64_t handle_ = 0;            // guarded by mu_: 0 when not subscribed
  bool writing_ = false;           // guarded by mu_
  bool finished_ = false;          // guarded by mu_: Finish decided
  bool published_ = false;         // guarded by mu_: the hub offered a state already
  std::optional<Status> closing_;  // guarded by mu_: to finish once the write ends
  std::optional<Job> pending_;     // guarded by mu_: the newest state not yet written
  std::optional<Job> last_;        // guarded by mu_: the last state written
};

}  // namespace drgate::jobs
