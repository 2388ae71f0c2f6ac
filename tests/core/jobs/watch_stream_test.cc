// WatchJob's state machine without gRPC (core/jobs/watch_stream.h): what is written, in which
// order, and when the stream ends. Runs under ThreadSanitizer (tools/sanitizers.sh tsan).

#include "core/jobs/watch_stream.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/common/executor.h"

namespace drgate::jobs {
namespace {

using namespace std::chrono_literals;

Job MakeJob(JobState state, int percent) {
  Job job;
  job.commcell = "cs1";
  job.job_id = "2141";
  job.state = state;
  job.percent_complete = percent;
  return job;
}

Job Running(int percent) {
  return MakeJob(JobState::kRunning, percent);
}

// A sink that records what the stream asks for and checks the stream's promises: one write at a
// time, nothing after Finish, Finish once and never during a write. Writes complete when the test
// says so (Complete), or at once on a transport thread when `transport` is set.
class FakeSink final : public WatchSink {
 public:
  explicit FakeSink(Executor* transport = nullptr) : transport_(transport) {}

  void Attach(std::shared_ptr<WatchStream> stream) { stream_ = std::move(stream); }

  void Write(const Job& job) override {
    {
      std::lock_guard lock(mu_);
      EXPECT_FALSE(writing_) << "a second write while one is outstanding";
      EXPECT_FALSE(finished_) << "a write after Finish";
      writing_ = true;
      writes_.push_back(job);
      cv_.notify_all();
    }
    if (transport_ != nullptr) {
      transport_->Post([this] { Complete(true); });
    }
  }
  void Finish(const Status& status) override {
    std::lock_guard lock(mu_);
    EXPECT_FALSE(writing_) << "Finish with a write outstanding";
    EXPECT_FALSE(finished_) << "Finish twice";
    finished_ = true;
    status_ = status;
    cv_.notify_all();
  }

  // Ends the outstanding write, as gRPC's OnWriteDone.
  void Complete(bool ok) {
    {
      std::lock_guard lock(mu_);
      ASSERT_TRUE(writing_) << "no write to complete";
      writing_ = false;
    }
    // A local reference, as the gRPC reactor keeps one: Finish may end the owner inline.
    auto stream = stream_;
    stream->WriteDone(ok);
  }

  bool WaitWrites(std::size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 30s, [&] { return writes_.size() >= n; });
  }
  bool WaitFinished() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 30s, [&] { return finished_; });
  }
  std::vector<Job> writes() const {
    std::lock_guard lock(mu_);
    return writes_;
  }
  std::vector<int> percents() const {
    std::vector<int> out;
    for (const Job& j : writes()) out.push_back(j.percent_complete);
    return out;
  }
  bool writing() const {
    std::lock_guard lock(mu_);
    return writing_;
  }
  bool finished() const {
    std::lock_guard lock(mu_);
    return finished_;
  }
  Status status() const {
    std::lock_guard lock(mu_);
    return status_;
  }

 private:
  Executor* const transport_;
  std::shared_ptr<WatchStream> stream_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool writing_ = false;     // guarded by mu_
  bool finished_ = false;    // guarded by mu_
  Status status_;            // guarded by mu_
  std::vector<Job> writes_;  // guarded by mu_
};

// Registry reads the test answers one by one, in order, from its own thread.
class ManualReader {
 public:
  WatchStream::Reader reader() {
    return [this](std::function<void(StatusOr<Job>)> done) {
      std::lock_guard lock(mu_);
      pending_.push_back(std::move(done));
    };
  }
  std::size_t pending() const {
    std::lock_guard lock(mu_);
    return pending_.size();
  }
  void Answer(StatusOr<Job> job) {
    std::function<void(StatusOr<Job>)> done;
    {
      std::lock_guard lock(mu_);
      ASSERT_FALSE(pending_.empty()) << "no read to answer";
      done = std::move(pending_.front());
      pending_.pop_front();
    }
    done(std::move(job));
  }

 private:
  mutable std::mutex mu_;
  std::deque<std::function<void(StatusOr<Job>)>> pending_;
};

class WatchStreamTest : public ::testing::Test {
 protected:
  // Starts a stream and answers its two reads (before and after subscribing) with these states.
  void StartWith(const Job& first, const Job& second) {
    Start();
    reads_.Answer(first);
    ASSERT_TRUE(stream_->subscribed());
    reads_.Answer(second);
  }
  void Start() {
    stream_ = WatchStream::Create(hub_, &sink_, reads_.reader());
    sink_.Attach(stream_);
    stream_->Start();
  }

  WatchHub hub_;
  ManualReader reads_;
  FakeSink sink_;
  std::shared_ptr<WatchStream> stream_;
};

TEST_F(WatchStreamTest, WritesTheCurrentStateFirstThenEveryChangeAndEndsAfterAFinalState) {
  StartWith(Running(10), Running(10));
  ASSERT_EQ(sink_.percents(), std::vector<int>{10});
  EXPECT_EQ(hub_.watcher_count(), 1u);
  sink_.Complete(true);

  hub_.Publish(Running(50));
  ASSERT_EQ(sink_.percents(), (std::vector<int>{10, 50}));
  sink_.Complete(true);
  hub_.Publish(MakeJob(JobState::kSucceeded, 100));
  ASSERT_EQ(sink_.writes().size(), 3u);
  EXPECT_EQ(sink_.writes()[2].state, JobState::kSucceeded);
  EXPECT_FALSE(sink_.finished());  // not before the final state is written
  sink_.Complete(true);

  ASSERT_TRUE(sink_.finished());
  EXPECT_TRUE(sink_.status().ok()) << sink_.status().ToString();
  EXPECT_EQ(hub_.watcher_count(), 0u);
  EXPECT_FALSE(stream_->subscribed());
}

TEST_F(WatchStreamTest, ASlowReaderSeesTheNewestStateNotABacklog) {
  StartWith(Running(10), Running(10));
  // The first write is still outstanding while three changes arrive.
  hub_.Publish(Running(20));
  hub_.Publish(Running(30));
  hub_.Publish(Running(40));
  EXPECT_EQ(sink_.percents(), std::vector<int>{10});

  sink_.Complete(true);

  EXPECT_EQ(sink_.percents(), (std::vector<int>{10, 40}));
  sink_.Complete(true);
  EXPECT_FALSE(sink_.writing());
  EXPECT_EQ(sink_.writes().size(), 2u);
}

TEST_F(WatchStreamTest, AnUnchangedStateIsNotWrittenAgain) {
  StartWith(Running(10), Running(10));
  sink_.Complete(true);
  Job same = Running(10);
  same.update_time = TimePoint(std::chrono::hours(1));  // a re-read, nothing new for the watcher

  hub_.Publish(same);

  EXPECT_EQ(sink_.writes().size(), 1u);
  EXPECT_FALSE(sink_.writing());
}

TEST_F(WatchStreamTest, AnUnknownJobEndsTheStreamWithTheReadsErrorAndSubscribesNothing) {
  Start();
  reads_.Answer(
      NotFound("job '404' was not started by drgate on CommCell 'cs1'", Reason::kJobNotFound));

  ASSERT_TRUE(sink_.finished());
  EXPECT_EQ(sink_.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(sink_.status().reason(), "JOB_NOT_FOUND");
  EXPECT_TRUE(sink_.writes().empty());
  EXPECT_EQ(hub_.watcher_count(), 0u);
  EXPECT_EQ(reads_.pending(), 0u);  // no second read
}

TEST_F(WatchStreamTest, AChangeBetweenTheFirstReadAndTheSubscriptionIsNotLost) {
  // The job moved to 30% after the first read and before the hub heard from the stream: the read
  // made after subscribing has it.
  StartWith(Running(10), Running(30));
  EXPECT_EQ(sink_.percents(), std::vector<int>{30});
}

TEST_F(WatchStreamTest, APublishedStateIsNotOverwrittenByAnOlderRead) {
  Start();
  reads_.Answer(Running(10));
  hub_.Publish(Running(30));  // heard before the second read answers
  ASSERT_EQ(sink_.percents(), std::vector<int>{30});
  sink_.Complete(true);

  reads_.Answer(Running(10));  // read before the change was written: stale

  EXPECT_EQ(sink_.percents(), std::vector<int>{30});
  EXPECT_FALSE(sink_.writing());
}

TEST_F(WatchStreamTest, NothingIsWrittenAfterAFinalState) {
  StartWith(Running(10), Running(10));
  hub_.Publish(MakeJob(JobState::kFailed, 10));
  sink_.Complete(true);  // the first write; the final state goes next
  ASSERT_EQ(sink_.writes().size(), 2u);
  hub_.Publish(Running(90));  // a late publication of an older state
  sink_.Complete(true);

  ASSERT_TRUE(sink_.finished());
  EXPECT_TRUE(sink_.status().ok());
  EXPECT_EQ(sink_.writes().back().state, JobState::kFailed);
  EXPECT_EQ(sink_.writes().size(), 2u);
}

TEST_F(WatchStreamTest, AnUnknownStateIsFinalToo) {
  StartWith(MakeJob(JobState::kUnknown, 0), MakeJob(JobState::kUnknown, 0));
  sink_.Complete(true);
  ASSERT_TRUE(sink_.finished());
  EXPECT_TRUE(sink_.status().ok());
}

TEST_F(WatchStreamTest, CancelWhileIdleFinishesCancelledAndUnsubscribes) {
  StartWith(Running(10), Running(10));
  sink_.Complete(true);

  stream_->Cancel();

  ASSERT_TRUE(sink_.finished());
  EXPECT_EQ(sink_.status().code(), StatusCode::kCancelled);
  EXPECT_EQ(hub_.watcher_count(), 0u);
  hub_.Publish(Running(20));  // heard no more
  EXPECT_EQ(sink_.writes().size(), 1u);
}

TEST_F(WatchStreamTest, CancelDuringAWriteFinishesOnlyWhenTheWriteEnds) {
  StartWith(Running(10), Running(10));

  stream_->Cancel();
  EXPECT_FALSE(sink_.finished());
  hub_.Publish(Running(20));
  sink_.Complete(false);  // gRPC fails the outstanding write of a cancelled call

  ASSERT_TRUE(sink_.finished());
  EXPECT_EQ(sink_.status().code(), StatusCode::kCancelled);
  EXPECT_EQ(sink_.status().message(), "the watch was cancelled");
  EXPECT_EQ(sink_.writes().size(), 1u);
  EXPECT_EQ(hub_.watcher_count(), 0u);
}

TEST_F(WatchStreamTest, AFailedWriteEndsTheStream) {
  StartWith(Running(10), Running(10));
  hub_.Publish(Running(20));

  sink_.Complete(false);

  ASSERT_TRUE(sink_.finished());
  EXPECT_EQ(sink_.status().code(), StatusCode::kCancelled);
  EXPECT_EQ(sink_.status().message(), "the watcher went away");
  EXPECT_EQ(sink_.writes().size(), 1u);
  EXPECT_EQ(hub_.watcher_count(), 0u);
}

TEST_F(WatchStreamTest, CancelBeforeTheFirstReadAnswersLeavesNoSubscription) {
  Start();
  stream_->Cancel();
  ASSERT_TRUE(sink_.finished());

  reads_.Answer(Running(10));  // the read that was under way

  EXPECT_EQ(hub_.watcher_count(), 0u);
  EXPECT_FALSE(stream_->subscribed());
  EXPECT_TRUE(sink_.writes().empty());
  EXPECT_EQ(reads_.pending(), 0u);
}

TEST_F(WatchStreamTest, TheStreamOutlivesItsOwnerSafely) {
  // The reactor (owner) goes away after Finish while a read is still under way: the read holds
  // the stream, which calls the sink no more.
  Start();
  stream_->Cancel();
  std::weak_ptr<WatchStream> weak = stream_;
  stream_.reset();
  sink_.Attach(nullptr);
  EXPECT_FALSE(weak.expired());  // held by the read under way
  reads_.Answer(Running(10));
  EXPECT_TRUE(weak.expired());
  EXPECT_EQ(hub_.watcher_count(), 0u);
}

// Many streams on one job, publications from several threads, reads on a pool and writes
// completed on a transport thread, as in drgate: every stream writes one state at a time, ends
// with the final state, and leaves no subscription. Meant for ThreadSanitizer.
TEST(WatchStreamConcurrencyTest, ConcurrentPublicationsWritesAndCancels) {
  constexpr int kStreams = 20;
  constexpr int kPublishers = 4;
  constexpr int kChangesEach = 200;
  WatchHub hub;
  auto transport = std::make_unique<ThreadPool>(2);
  auto reads = std::make_unique<ThreadPool>(2);
  std::mutex registry_mu;
  Job registry = Running(0);
  auto reader = [&](std::function<void(StatusOr<Job>)> done) {
    reads->Post([&, done = std::move(done)] {
      Job job;
      {
        std::lock_guard lock(registry_mu);
        job = registry;
      }
      done(job);
    });
  };
  std::vector<std::unique_ptr<FakeSink>> sinks;
  std::vector<std::shared_ptr<WatchStream>> streams;
  for (int i = 0; i < kStreams; ++i) {
    sinks.push_back(std::make_unique<FakeSink>(transport.get()));
    streams.push_back(WatchStream::Create(hub, sinks.back().get(), reader));
    sinks.back()->Attach(streams.back());
    streams.back()->Start();
  }
  for (auto& sink : sinks) ASSERT_TRUE(sink->WaitWrites(1));

  std::vector<std::thread> publishers;
  for (int p = 0; p < kPublishers; ++p) {
    publishers.emplace_back([&, p] {
      for (int i = 1; i <= kChangesEach; ++i) {
        Job job = Running(p * kChangesEach + i);
        {
          std::lock_guard lock(registry_mu);
          registry = job;
        }
        hub.Publish(job);
      }
    });
  }
  // Half the watchers leave while changes arrive.
  for (int i = 0; i < kStreams; i += 2) streams[i]->Cancel();
  for (auto& t : publishers) t.join();
  Job done = MakeJob(JobState::kSucceeded, 100);
  {
    std::lock_guard lock(registry_mu);
    registry = done;
  }
  hub.Publish(done);

  for (int i = 0; i < kStreams; ++i) {
    ASSERT_TRUE(sinks[i]->WaitFinished()) << "stream " << i;
    if (i % 2 == 0) {
      EXPECT_EQ(sinks[i]->status().code(), StatusCode::kCancelled) << "stream " << i;
    } else {
      EXPECT_TRUE(sinks[i]->status().ok())
          << "stream " << i << ": " << sinks[i]->status().ToString();
      EXPECT_EQ(sinks[i]->writes().back().state, JobState::kSucceeded) << "stream " << i;
    }
  }
  EXPECT_EQ(hub.watcher_count(), 0u);
  // Tasks still returning from a stream's last call finish before the sinks go.
  transport.reset();
  reads.reset();
}

}  // namespace
}  // namespace drgate::jobs
