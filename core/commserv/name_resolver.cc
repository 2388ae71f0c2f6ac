#include "core/commserv/name_resolver.h"

#include <netdb.h>

#include <charconv>
#include <cstring>

#include <boost/asio/error.hpp>
#include <boost/asio/ip/address.hpp>
#include <thread>

namespace drgate::commserv {

namespace net = boost::asio;
using tcp = net::ip::tcp;

NameResolver::NameResolver(Lookup lookup, int max_lookups) : state_(std::make_shared<State>()) {
  state_->lookup = std::move(lookup);
  state_->max_lookups = max_lookups;
}

std::shared_ptr<NameResolver> NameResolver::Shared() {
  static const auto shared = std::make_shared<NameResolver>();
  return shared;
}

std::pair<boost::system::error_code, NameResolver::Endpoints> NameResolver::SystemLookup(
    const std::string& host, const std::string& port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  // No AI_ADDRCONFIG: on a host with only loopback addresses it would hide "localhost".
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found);
  if (rc != 0) {
    // The codes Asio's resolver reports for the same failures.
    boost::system::error_code ec = net::error::host_not_found;
    if (rc == EAI_AGAIN) ec = net::error::host_not_found_try_again;
    if (rc == EAI_MEMORY) ec = net::error::no_memory;
    if (rc == EAI_FAIL) ec = net::error::no_recovery;
    return {ec, {}};
  }
  Endpoints endpoints;
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    tcp::endpoint e;
    if (a->ai_addrlen <= e.capacity()) {
      std::memcpy(e.data(), a->ai_addr, a->ai_addrlen);
      e.resize(a->ai_addrlen);
      endpoints.push_back(e);
    }
  }
  freeaddrinfo(found);
  if (endpoints.empty()) return {net::error::host_not_found, {}};
  return {{}, std::move(endpoints)};
}

void NameResolver::Resolve(const std::string& host, const std::string& port, Done done) {
  boost::system::error_code literal_ec;
  const auto address = net::ip::make_address(host, literal_ec);
  unsigned number = 0;
  const auto [end, parse_ec] = std::from_chars(port.data(), port.data() + port.size(), number);
  if (!literal_ec && parse_ec == std::errc() && end == port.data() + port.size() &&
      number <= 65535) {
    done({}, Endpoints{tcp::endpoint(address, static_cast<uint16_t>(number))});
    return;
  }
  const std::string key = host + ":" + port;
  {
    std::lock_guard lock(state_->mu);
    auto it = state_->waiting.find(key);
    if (it != state_->waiting.end()) {
      it->second.push_back(std::move(done));  // the lookup under way answers this caller too
      return;
    }
    if (static_cast<int>(state_->waiting.size()) < state_->max_lookups) {
      state_->waiting[key].push_back(std::move(done));
      done = nullptr;
    }
  }
  if (done) {
    // Every lookup thread is taken (by hosts whose DNS hangs): fail now rather than queue.
    done(net::error::host_not_found_try_again, {});
    return;
  }
  std::thread([state = state_, key, host, port] {
    auto [ec, endpoints] = state->lookup(host, port);
    std::vector<Done> callers;
    {
      std::lock_guard lock(state->mu);
      auto it = state->waiting.find(key);
      callers = std::move(it->second);
      state->waiting.erase(it);
    }
    for (Done& d : callers) d(ec, endpoints);
  }).detach();
}

int NameResolver::lookups_under_way() const {
  std::lock_guard lock(state_->mu);
  return static_cast<int>(state_->waiting.size());
}

}  // namespace drgate::commserv
