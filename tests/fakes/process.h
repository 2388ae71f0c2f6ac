#pragma once

// A child process for integration tests: started with argv, its stdout read line by line on a
// thread, stopped with SIGTERM (then SIGKILL) when the object goes away. stderr is inherited so
// its logs show in the test output.

#include <fcntl.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace drgate::testing {

class Process {
 public:
  // `stderr_path`: a file that receives the child's stderr (empty: inherited).
  explicit Process(std::vector<std::string> argv, std::string stderr_path = "")
      : argv_(std::move(argv)) {
    int fds[2];
    if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      dup2(fds[1], STDOUT_FILENO);
      if (!stderr_path.empty()) {
        const int err = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (err >= 0) dup2(err, STDERR_FILENO);
      }
      close(fds[0]);
      close(fds[1]);
      std::vector<char*> args;
      for (auto& a : argv_) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    close(fds[1]);
    reader_ = std::thread([this, fd = fds[0]] { Read(fd); });
  }

  ~Process() {
    Stop(SIGTERM, std::chrono::seconds(10));
    if (reader_.joinable()) reader_.join();
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // Waits until a stdout line matches `pattern`; returns the first capture group (or the line).
  std::optional<std::string> WaitForLine(
      const std::string& pattern, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    const std::regex re(pattern);
    std::unique_lock lock(mu_);
    std::size_t seen = 0;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      for (; seen < lines_.size(); ++seen) {
        std::smatch m;
        if (std::regex_search(lines_[seen], m, re)) return m.size() > 1 ? m[1].str() : m[0].str();
      }
      if (closed_) return std::nullopt;
      if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) return std::nullopt;
    }
  }

  // Sends `sig` without waiting.
  void Signal(int sig) {
    if (pid_ > 0) kill(pid_, sig);
  }

  // Sends `sig`, waits up to `grace` for the exit, SIGKILLs after that. Returns the exit status
  // as waitpid reports it, or -1 when the process was already reaped.
  int Stop(int sig, std::chrono::milliseconds grace) {
    if (pid_ <= 0) return status_;
    kill(pid_, sig);
    const auto deadline = std::chrono::steady_clock::now() + grace;
    int status = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        status_ = status;
        return status;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    pid_ = -1;
    status_ = status;
    return status;
  }

  // Waits for the process to exit by itself; its exit code, or -1 on a signal or timeout.
  int WaitExit(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    while (pid_ > 0 && std::chrono::steady_clock::now() < deadline) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        status_ = status;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (pid_ > 0) return -1;
    return WIFEXITED(status_) ? WEXITSTATUS(status_) : -1;
  }

  // The child's pid while it runs (-1 once reaped).
  pid_t pid() const { return pid_; }

  std::string Output() {
    std::lock_guard lock(mu_);
    std::string out;
    for (const auto& l : lines_) out += l + "\n";
    return out;
  }

 private:
  void Read(int fd) {
    FILE* f = fdopen(fd, "r");
    char buf[4096];
    while (f != nullptr && fgets(buf, sizeof buf, f) != nullptr) {
      std::string line(buf);
      while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
      std::lock_guard lock(mu_);
      lines_.push_back(std::move(line));
      cv_.notify_all();
    }
    if (f != nullptr) fclose(f);
    std::lock_guard lock(mu_);
    closed_ = true;
    cv_.notify_all();
  }

  std::vector<std::string> argv_;
  pid_t pid_ = -1;
  int status_ = -1;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> lines_;  // guarded by mu_
  bool closed_ = false;             // guarded by mu_
};

}  // namespace drgate::testing
