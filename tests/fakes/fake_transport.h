#pragma once

// An HttpTransport that answers from a script, records every request, and calls back on its own
// thread (never inline), as the real transport does.

#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "core/common/executor.h"
#include "core/commserv/transport.h"

namespace drgate::testing {

class FakeTransport final : public commserv::HttpTransport {
 public:
  using Handler = std::function<StatusOr<commserv::HttpResponse>(const commserv::HttpRequest&)>;

  // `handler` answers every request; the default answers 404. Answers run on `executor`, which
  // must outlive every Send (it is not owned: the last reference to a client may be dropped on
  // one of its threads, which must then not join itself).
  FakeTransport(Executor& executor, Handler handler = nullptr)
      : executor_(executor), handler_(std::move(handler)) {}

  void Send(commserv::HttpRequest request, Callback done) override {
    {
      std::lock_guard lock(mu_);
      requests_.push_back(request);
    }
    executor_.Post([this, request = std::move(request), done = std::move(done)] {
      if (!handler_) {
        commserv::HttpResponse r;
        r.status = 404;
        done(r);
        return;
      }
      done(handler_(request));
    });
  }

  std::vector<commserv::HttpRequest> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  Executor& executor_;
  Handler handler_;
  mutable std::mutex mu_;
  std::vector<commserv::HttpRequest> requests_;
};

inline commserv::HttpResponse JsonResponse(int status, std::string body) {
  commserv::HttpResponse r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(body);
  return r;
}

inline bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace drgate::testing
