#pragma once

// A throwaway PostgreSQL server for tests: Debian's `postgresql` binaries, a fresh cluster in a
// temporary folder, listening on 127.0.0.1 on a port chosen at run time (and on a unix socket in
// that folder), stopped and removed when the object goes away.
//
// PostgreSQL refuses to run as root: as root (CI), initdb and postgres run as the `postgres`
// system user (setpriv), in a folder owned by it. Durability is off (fsync=off): tests do not
// crash the machine. The superuser `drgate` logs in over TCP with a password (SCRAM), as a
// deployment would; the password is in password_file().

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/fakes/process.h"

namespace drgate::testing {

class PostgresServer {
 public:
  static constexpr char kBinDir[] = "/usr/lib/postgresql/15/bin";

  // Creates the cluster and starts the server; throws std::runtime_error when it cannot.
  PostgresServer() {
    // As root the folder must be reachable by the postgres user: /tmp, whatever TMPDIR says.
    const std::string base =
        geteuid() == 0 ? std::string("/tmp") : std::filesystem::temp_directory_path().string();
    std::string pattern = base + "/drgate-pg-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp " + pattern);
    dir_ = pattern;
    data_ = dir_ + "/data";
    const std::string pwfile = dir_ + "/superuser-password";
    std::ofstream(pwfile) << password_ << "\n";
    password_file_ = dir_ + "/password";
    std::ofstream(password_file_) << password_ << "\n";
    if (geteuid() == 0) {
      const passwd* pw = getpwnam("postgres");
      if (pw == nullptr) throw std::runtime_error("running as root, but no `postgres` user");
      uid_ = pw->pw_uid;
      gid_ = pw->pw_gid;
      for (const std::string& p : {dir_, pwfile}) {
        if (chown(p.c_str(), uid_, gid_) != 0) throw std::runtime_error("chown " + p);
      }
    }
    Process initdb(Command({std::string(kBinDir) + "/initdb", "-D", data_, "-U", "drgate",
                            "--pwfile=" + pwfile, "--auth-host=scram-sha-256", "--auth-local=trust",
                            "--no-locale", "-E", "UTF8", "--no-sync"}),
                   dir_ + "/initdb.log");
    if (initdb.WaitExit(std::chrono::seconds(60)) != 0) {
      throw std::runtime_error("initdb failed: " + ReadFile(dir_ + "/initdb.log"));
    }
    Start();
  }

  ~PostgresServer() {
    Stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  int port() const { return port_; }
  const std::string& password() const { return password_; }
  // A file holding password() (readable by the test's user).
  const std::string& password_file() const { return password_file_; }

  // libpq connection string of database `dbname`, without the password.
  std::string Dsn(const std::string& dbname) const {
    return "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=" + dbname +
           " user=drgate connect_timeout=5";
  }

  // Runs `sql` on `dbname` as the superuser; throws on error.
  void Exec(const std::string& sql, const std::string& dbname = "postgres") const {
    const std::string conninfo = Dsn(dbname) + " password=" + password_;
    PGconn* conn = PQconnectdb(conninfo.c_str());
    std::string error;
    if (PQstatus(conn) != CONNECTION_OK) {
      error = PQerrorMessage(conn);
    } else {
      PGresult* r = PQexec(conn, sql.c_str());
      const auto st = PQresultStatus(r);
      if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) error = PQresultErrorMessage(r);
      PQclear(r);
    }
    PQfinish(conn);
    if (!error.empty()) throw std::runtime_error("postgres: " + sql + ": " + error);
  }

  // Starts the server (again, on the same port after Stop).
  void Start() {
    if (process_ != nullptr) return;
    for (int attempt = 0; attempt < 5; ++attempt) {
      if (port_ == 0 || attempt > 0) port_ = FreePort();
      process_ = std::make_unique<Process>(Command({std::string(kBinDir) + "/postgres",
                                                    "-D",
                                                    data_,
                                                    "-p",
                                                    std::to_string(port_),
                                                    "-k",
                                                    dir_,
                                                    "-c",
                                                    "listen_addresses=127.0.0.1",
                                                    "-c",
                                                    "fsync=off",
                                                    "-c",
                                                    "synchronous_commit=off",
                                                    "-c",
                                                    "full_page_writes=off",
                                                    "-c",
                                                    "max_connections=300",
                                                    "-c",
                                                    "shared_buffers=32MB",
                                                    "-c",
                                                    "log_min_messages=fatal"}),
                                           dir_ + "/postgres.log");
      if (WaitReady(std::chrono::seconds(30))) return;
      process_->Stop(SIGKILL, std::chrono::seconds(5));
      process_.reset();
    }
    throw std::runtime_error("postgres did not start: " + ReadFile(dir_ + "/postgres.log"));
  }

  // Fast shutdown: clients are disconnected, the port closes.
  void Stop() {
    if (process_ == nullptr) return;
    process_->Stop(SIGINT, std::chrono::seconds(30));
    process_.reset();
  }

 private:
  // argv, run as the postgres user when we are root.
  std::vector<std::string> Command(std::vector<std::string> argv) const {
    if (geteuid() != 0) return argv;
    std::vector<std::string> out = {"/usr/bin/setpriv", "--reuid=" + std::to_string(uid_),
                                    "--regid=" + std::to_string(gid_), "--init-groups", "--"};
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
  }

  bool WaitReady(std::chrono::milliseconds timeout) const {
    const std::string conninfo =
        "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=postgres connect_timeout=1";
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (PQping(conninfo.c_str()) == PQPING_OK) return true;
      if (process_->WaitExit(std::chrono::milliseconds(50)) != -1) return false;  // it exited
    }
    return false;
  }

  static int FreePort() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      close(fd);
      throw std::runtime_error("cannot pick a free port");
    }
    close(fd);
    return ntohs(addr.sin_port);
  }

  static std::string ReadFile(const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  std::string dir_;
  std::string data_;
  std::string password_ = "pg-test-secret-" + std::to_string(getpid());
  std::string password_file_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  int port_ = 0;
  std::unique_ptr<Process> process_;
};

}  // namespace drgate::testing
