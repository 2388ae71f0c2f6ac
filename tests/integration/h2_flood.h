#pragma once

// A hostile HTTP/2 client for tests: opens gRPC streams that announce a huge message (the 5-byte
// gRPC length prefix) and then sends zeros as fast as the server's flow-control windows allow,
// as `curl --http2-prior-knowledge` piping /dev/zero would. Hand-made frames over a plain TCP
// socket (no TLS), so the test controls exactly what is announced and sent.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace drgate::testing {

struct FloodResult {
  uint64_t bytes_sent = 0;  // DATA payload bytes written to the socket
  int streams_opened = 0;
  int streams_reset = 0;     // RST_STREAM received
  int streams_answered = 0;  // HEADERS with END_STREAM received (trailers)
  int goaways = 0;
  std::map<uint32_t, int> reset_codes;  // HTTP/2 error code -> count (11: ENHANCE_YOUR_CALM)
};

class H2Flood {
 public:
  // `authorization` empty: none sent.
  H2Flood(int port, std::string path, std::string authorization)
      : port_(port), path_(std::move(path)), authorization_(std::move(authorization)) {}

  // One connection with `streams` streams each announcing `announce` bytes; sends until every
  // stream is reset or answered, the connection closes, or `until`.
  void RunConnection(int streams, uint32_t announce, std::chrono::steady_clock::time_point until,
                     FloodResult& result) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) throw std::runtime_error("socket failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      close(fd_);
      fd_ = -1;
      return;  // refused: counts as nothing sent
    }
    fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
    out_ = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    Frame(0x4, 0, 0, "");  // SETTINGS, none changed
    streams_.clear();
    conn_window_ = 65535;
    initial_window_ = 65535;
    for (int i = 0; i < streams; ++i) {
      const uint32_t id = 1 + 2 * static_cast<uint32_t>(i);
      Frame(0x1, 0x4, id, HeaderBlock());  // HEADERS, END_HEADERS
      Stream s;
      s.window = initial_window_;
      s.prefix.push_back('\0');
      for (int shift = 24; shift >= 0; shift -= 8) {
        s.prefix.push_back(static_cast<char>((announce >> shift) & 0xff));
      }
      s.left = announce;
      streams_[id] = s;
      ++result.streams_opened;
    }
    std::string in;
    bool open = true;
    while (open && std::chrono::steady_clock::now() < until && Live() > 0) {
      FillData(result);
      pollfd p{fd_, static_cast<short>(POLLIN | (out_.empty() ? 0 : POLLOUT)), 0};
      if (poll(&p, 1, 50) < 0) break;
      if (p.revents & (POLLERR | POLLHUP)) open = !(p.revents & POLLERR);
      if (p.revents & POLLIN) {
        char buf[65536];
        const ssize_t n = read(fd_, buf, sizeof buf);
        if (n <= 0) {
          open = false;
        } else {
          in.append(buf, static_cast<std::size_t>(n));
          ParseFrames(in, result);
        }
      }
      if (!out_.empty() && (p.revents & POLLOUT)) {
        const ssize_t n = send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) open = false;
        if (n > 0) {
          result.bytes_sent += std::min<uint64_t>(pending_data_, static_cast<uint64_t>(n));
          pending_data_ -= std::min<uint64_t>(pending_data_, static_cast<uint64_t>(n));
          out_.erase(0, static_cast<std::size_t>(n));
        }
      }
    }
    close(fd_);
    fd_ = -1;
  }

 private:
  struct Stream {
    int64_t window = 0;
    std::string prefix;  // the gRPC length prefix, not yet sent
    uint64_t left = 0;   // message bytes not yet sent
    bool done = false;
  };

  int Live() const {
    return static_cast<int>(std::count_if(streams_.begin(), streams_.end(),
                                          [](const auto& s) { return !s.second.done; }));
  }

  void Frame(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload) {
    const uint32_t len = static_cast<uint32_t>(payload.size());
    out_.push_back(static_cast<char>((len >> 16) & 0xff));
    out_.push_back(static_cast<char>((len >> 8) & 0xff));
    out_.push_back(static_cast<char>(len & 0xff));
    out_.push_back(static_cast<char>(type));
    out_.push_back(static_cast<char>(flags));
    for (int shift = 24; shift >= 0; shift -= 8) {
      out_.push_back(static_cast<char>((stream >> shift) & 0xff));
    }
    out_ += payload;
  }

  // HPACK integer with an N-bit prefix whose high bits are `first`.
  static void Int(std::string& out, uint8_t first, int bits, uint32_t value) {
    const uint32_t max = (1u << bits) - 1;
    if (value < max) {
      out.push_back(static_cast<char>(first | value));
      return;
    }
    out.push_back(static_cast<char>(first | max));
    value -= max;
    while (value >= 128) {
      out.push_back(static_cast<char>((value & 0x7f) | 0x80));
      value >>= 7;
    }
    out.push_back(static_cast<char>(value));
  }
  static void Str(std::string& out, const std::string& s) {
    Int(out, 0x00, 7, static_cast<uint32_t>(s.size()));  // no Huffman
    out += s;
  }
  // Literal header field without indexing; `index` 0: a new name.
  static void Literal(std::string& out, uint32_t index, const std::string& name,
                      const std::string& value) {
    Int(out, 0x00, 4, index);
    if (index == 0) Str(out, name);
    Str(out, value);
  }

  std::string HeaderBlock() const {
    std::string b;
    b.push_back(static_cast<char>(0x83));                     // :method: POST (static table 3)
    b.push_back(static_cast<char>(0x86));                     // :scheme: http (static table 6)
    Literal(b, 4, "", path_);                                 // :path
    Literal(b, 1, "", "127.0.0.1:" + std::to_string(port_));  // :authority
    Literal(b, 31, "", "application/grpc");                   // content-type
    Literal(b, 0, "te", "trailers");
    if (!authorization_.empty()) Literal(b, 23, "", authorization_);  // authorization
    return b;
  }

  // Queues DATA frames as far as the windows allow, keeping the output buffer small.
  void FillData(FloodResult&) {
    constexpr std::size_t kFrame = 16384;
    for (auto& [id, s] : streams_) {
      while (!s.done && out_.size() < 4 * kFrame && conn_window_ > 0 && s.window > 0 &&
             (s.left > 0 || !s.prefix.empty())) {
        const int64_t room =
            std::min<int64_t>({static_cast<int64_t>(kFrame), conn_window_, s.window});
        std::string payload = s.prefix.substr(0, static_cast<std::size_t>(room));
        s.prefix.erase(0, payload.size());
        const uint64_t zeros =
            std::min<uint64_t>(s.left, static_cast<uint64_t>(room) - payload.size());
        payload.append(static_cast<std::size_t>(zeros), '\0');
        s.left -= zeros;
        conn_window_ -= static_cast<int64_t>(payload.size());
        s.window -= static_cast<int64_t>(payload.size());
        pending_data_ += payload.size();
        Frame(0x0, s.left == 0 && s.prefix.empty() ? 0x1 : 0x0, id, payload);
      }
    }
  }

  static uint32_t U32(const std::string& b, std::size_t at) {
    return (static_cast<uint32_t>(static_cast<unsigned char>(b[at])) << 24) |
           (static_cast<uint32_t>(static_cast<unsigned char>(b[at + 1])) << 16) |
           (static_cast<uint32_t>(static_cast<unsigned char>(b[at + 2])) << 8) |
           static_cast<uint32_t>(static_cast<unsigned char>(b[at + 3]));
  }

  void ParseFrames(std::string& in, FloodResult& result) {
    while (in.size() >= 9) {
      const uint32_t len = (static_cast<uint32_t>(static_cast<unsigned char>(in[0])) << 16) |
                           (static_cast<uint32_t>(static_cast<unsigned char>(in[1])) << 8) |
                           static_cast<uint32_t>(static_cast<unsigned char>(in[2]));
      if (in.size() < 9 + len) return;
      const uint8_t type = static_cast<uint8_t>(in[3]);
      const uint8_t flags = static_cast<uint8_t>(in[4]);
      const uint32_t stream = U32(in, 5) & 0x7fffffff;
      const std::string payload = in.substr(9, len);
      in.erase(0, 9 + len);
      switch (type) {
        case 0x4:  // SETTINGS
          if (!(flags & 0x1)) {
            for (std::size_t i = 0; i + 6 <= payload.size(); i += 6) {
              const uint16_t id =
                  static_cast<uint16_t>((static_cast<unsigned char>(payload[i]) << 8) |
                                        static_cast<unsigned char>(payload[i + 1]));
              if (id == 0x4) {  // INITIAL_WINDOW_SIZE applies to every stream's window
                const int64_t value = U32(payload, i + 2);
                for (auto& [sid, s] : streams_) s.window += value - initial_window_;
                initial_window_ = value;
              }
            }
            Frame(0x4, 0x1, 0, "");  // ACK
          }
          break;
        case 0x6:  // PING
          if (!(flags & 0x1)) Frame(0x6, 0x1, 0, payload);
          break;
        case 0x8:  // WINDOW_UPDATE
          if (payload.size() == 4) {
            const int64_t inc = U32(payload, 0) & 0x7fffffff;
            if (stream == 0) {
              conn_window_ += inc;
            } else if (auto it = streams_.find(stream); it != streams_.end()) {
              it->second.window += inc;
            }
          }
          break;
        case 0x3:  // RST_STREAM
          if (auto it = streams_.find(stream); it != streams_.end() && !it->second.done) {
            it->second.done = true;
            ++result.streams_reset;
            if (payload.size() == 4) ++result.reset_codes[U32(payload, 0)];
          }
          break;
        case 0x1:  // HEADERS: trailers end the stream
          if (flags & 0x1) {
            if (auto it = streams_.find(stream); it != streams_.end() && !it->second.done) {
              it->second.done = true;
              ++result.streams_answered;
            }
          }
          break;
        case 0x7:  // GOAWAY
          ++result.goaways;
          break;
        default: break;
      }
    }
  }

  int port_;
  std::string path_;
  std::string authorization_;
  int fd_ = -1;
  std::string out_;
  uint64_t pending_data_ = 0;  // DATA payload bytes queued in out_ (approximately)
  int64_t conn_window_ = 65535;
  int64_t initial_window_ = 65535;
  std::map<uint32_t, Stream> streams_;
};

}  // namespace drgate::testing
