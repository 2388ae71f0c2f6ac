#pragma once

// Host name resolution for the CommServe transports, off the I/O threads and independent per
// host.
//
// Asio's resolver runs getaddrinfo on one private thread per io_context, one lookup after the
// other: a CommServe whose DNS never answers delays the lookup of every other CommServe behind it
// until the system resolver gives up. Here each lookup runs getaddrinfo on a thread of its own
// (getaddrinfo cannot be cancelled: the caller's resolve timeout answers the caller, the thread
// ends when the system resolver gives up); one lookup per host and port at a time, shared by every
// caller asking meanwhile, so a host whose DNS hangs holds one thread however often it is asked;
// at most `max_lookups` threads at once, beyond which a lookup fails at once (EAI_AGAIN, "try
// again"), never queues. An IP literal is answered inline, without a thread.
//
// Thread-safe. Callbacks run on the lookup's thread (or inline for a literal); the caller posts
// them to its own executor. Lookup threads hold the resolver's shared state, never the resolver:
// destroying it while lookups are under way is safe (their callbacks still run).

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>

namespace drgate::commserv {

class NameResolver {
 public:
  using Endpoints = std::vector<boost::asio::ip::tcp::endpoint>;
  using Done = std::function<void(boost::system::error_code, Endpoints)>;
  // The blocking lookup itself; getaddrinfo (SystemLookup) unless a test injects another.
  using Lookup = std::function<std::pair<boost::system::error_code, Endpoints>(
      const std::string& host, const std::string& port)>;

  explicit NameResolver(Lookup lookup = SystemLookup, int max_lookups = 64);

  // The resolver every transport uses unless its options name another.
  static std::shared_ptr<NameResolver> Shared();
  static std::pair<boost::system::error_code, Endpoints> SystemLookup(const std::string& host,
                                                                      const std::string& port);

  // Calls `done` exactly once: inline for an IP literal or when too many lookups are under way,
  // else from the lookup's thread.
  void Resolve(const std::string& host, const std::string& port, Done done);

  // Lookups under way now (threads running getaddrinfo).
  int lookups_under_way() const;

 private:
  struct State {
    Lookup lookup;
    int max_lookups = 64;
    mutable std::mutex mu;
    std::map<std::string, std::vector<Done>> waiting;  // guarded by mu: host:port -> callers
  };
  std::shared_ptr<State> state_;
};

}  // namespace drgate::commserv
