#include "plugin/config_watcher.h"

#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>

#include <filesystem>

namespace drgate::plugin {

ConfigWatcher::ConfigWatcher(ConfigWatcherOptions options, ServerConfig current, Loader load,
                             Applier apply, prometheus::Registry* registry)
    : options_(std::move(options)),
      load_(std::move(load)),
      apply_(std::move(apply)),
      current_(std::move(current)) {
  if (registry != nullptr) {
    auto& family = prometheus::BuildCounter()
                       .Name("drgate_config_reloads_total")
                       .Help(
                           "Configuration reloads (SIGHUP or a watched file changed) by result: "
                           "success, or failure (the previous configuration stayed in force)")
                       .Register(*registry);
    success_counter_ = &family.Add({{"result", "success"}});
    failure_counter_ = &family.Add({{"result", "failure"}});
  }
  seen_ = WatchedFiles(current_);
  thread_ = std::thread([this] { Run(); });
}

ConfigWatcher::~ConfigWatcher() {
  Stop();
}

void ConfigWatcher::RequestReload(const std::string& why) {
  {
    std::lock_guard lock(mu_);
    pending_ = why;
  }
  cv_.notify_all();
}

void ConfigWatcher::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::uint64_t ConfigWatcher::successes() const {
  std::lock_guard lock(mu_);
  return successes_;
}

std::uint64_t ConfigWatcher::failures() const {
  std::lock_guard lock(mu_);
  return failures_;
}

bool ConfigWatcher::WaitForAttempts(std::uint64_t attempts,
                                    std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return successes_ + failures_ >= attempts; });
}

// The configuration file and every file it names, with their modification times (-1: missing).
ConfigWatcher::Stamps ConfigWatcher::WatchedFiles(const ServerConfig& c) const {
  std::vector<std::string> files = {options_.config_path, c.auth.tokens_file,
                                    c.metrics.password_file, c.metrics.cert_file,
                                    c.metrics.key_file};
  if (c.core.registry_postgres) files.push_back(c.core.registry_postgres->password_file);
  for (const auto& cell : c.core.commcells) {
    for (const std::string* f : {&cell.password_file, &cell.token_file, &cell.ca_file,
                                 &cell.client_cert_file, &cell.client_key_file}) {
      files.push_back(*f);
    }
  }
  Stamps stamps;
  for (const auto& f : files) {
    if (f.empty()) continue;
    std::error_code ec;
    const auto t = std::filesystem::last_write_time(f, ec);
    stamps[f] = ec ? -1 : static_cast<std::int64_t>(t.time_since_epoch().count());
  }
  return stamps;
}

void ConfigWatcher::Run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait_for(lock, options_.poll_interval, [this] { return stop_ || !pending_.empty(); });
    if (stop_) return;
    std::string why = std::move(pending_);
    pending_.clear();
    lock.unlock();
    if (why.empty() && WatchedFiles(current_) != seen_) why = "a watched file changed";
    if (!why.empty()) Reload(why);
    lock.lock();
  }
}

void ConfigWatcher::Reload(const std::string& why) {
  Status result;
  auto next = load_();
  if (!next.ok()) {
    result = next.status();
  } else {
    result = apply_(*next);
    if (result.ok()) current_ = std::move(*next);
  }
  // Seen as of now, whatever the outcome: a broken file is reported once, not every poll.
  seen_ = WatchedFiles(current_);
  if (result.ok()) {
    spdlog::info("reload ({}): configuration from {} applied", why, options_.config_path);
  } else {
    spdlog::error("reload ({}): {} rejected, the previous configuration stays in force: {}", why,
                  options_.config_path, result.message());
  }
  {
    std::lock_guard lock(mu_);
    (result.ok() ? successes_ : failures_)++;
  }
  if (result.ok() && success_counter_ != nullptr) success_counter_->Increment();
  if (!result.ok() && failure_counter_ != nullptr) failure_counter_->Increment();
  cv_.notify_all();
}

}  // namespace drgate::plugin
