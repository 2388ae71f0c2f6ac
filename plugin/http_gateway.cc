#include "plugin/http_gateway.h"

#include <google/protobuf/util/json_util.h>
#include <grpcpp/generic/generic_stub.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <array>
#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <type_traits>

#include "core/common/file.h"
#include "drgate/v1/drgate.pb.h"
#include "plugin/http_errors.h"
#include "plugin/http_fields.h"
#include "plugin/http_listener.h"
#include "plugin/http_request_checks.h"
#include "plugin/http_routes.h"
#include "plugin/openapi.h"
#include "plugin/status_mapping.h"
#include "plugin/tls.h"

namespace drgate::plugin {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

struct Shared {
  HttpGatewayOptions options;
  // http.tls: the context new connections use (null: plain HTTP), replaced when the files change.
  // Replaced contexts are kept until the gateway ends, as connections made with them may still
  // run (a few KiB per certificate rotation).
  std::mutex tls_mu;
  std::shared_ptr<ssl::context> tls;                   // guarded by tls_mu
  std::vector<std::shared_ptr<ssl::context>> retired;  // guarded by tls_mu
  std::string tls_files;                               // guarded by tls_mu: what `tls` was made of

  std::shared_ptr<ssl::context> CurrentTls() {
    std::lock_guard lock(tls_mu);
    return tls;
  }
  std::vector<Route> routes;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<grpc::GenericStub> stub;

  // WatchJob streams open per caller credential (WatchKey), bounded by
  // options.max_watch_streams_per_caller.
  std::mutex watch_mu;
  std::map<std::string, int> watches;  // guarded by watch_mu
};

// One open watch stream of a caller, counted until destroyed.
class WatchTicket {
 public:
  // nullptr when `key` holds its bound of streams already.
  static std::unique_ptr<WatchTicket> Take(std::shared_ptr<Shared> shared, std::string key) {
    std::lock_guard lock(shared->watch_mu);
    int& open = shared->watches[key];
    if (open >= shared->options.max_watch_streams_per_caller) {
      if (open == 0) shared->watches.erase(key);
      return nullptr;
    }
    ++open;
    return std::unique_ptr<WatchTicket>(new WatchTicket(std::move(shared), std::move(key)));
  }
  ~WatchTicket() {
    std::lock_guard lock(shared_->watch_mu);
    auto it = shared_->watches.find(key_);
    if (it != shared_->watches.end() && --it->second <= 0) shared_->watches.erase(it);
  }
  WatchTicket(const WatchTicket&) = delete;
  WatchTicket& operator=(const WatchTicket&) = delete;

 private:
  WatchTicket(std::shared_ptr<Shared> shared, std::string key)
      : shared_(std::move(shared)), key_(std::move(key)) {}
  std::shared_ptr<Shared> shared_;
  std::string key_;
};

// One gRPC call on behalf of an HTTP request.
struct Call {
  grpc::ClientContext context;
  grpc::ByteBuffer request;
  grpc::ByteBuffer response;
  const google::protobuf::MethodDescriptor* method = nullptr;
};

std::string BytesOf(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (buffer.Dump(&slices).ok()) {
    for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return bytes;
}

// The proto3 JSON of a serialized `type` message; nullopt when the bytes do not parse.
std::optional<std::string> JsonOf(const google::protobuf::Descriptor* type,
                                  const std::string& bytes) {
  std::unique_ptr<google::protobuf::Message> message(
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(type)->New());
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  if (!message->ParseFromString(bytes) ||
      !google::protobuf::util::MessageToJsonString(*message, &json, options).ok()) {
    return std::nullopt;
  }
  return json;
}

// One server-streaming gRPC call (WatchJob) on behalf of an HTTP request. Its messages reach the
// connection one at a time: the next is read only once the last one is written, so a slow HTTP
// client slows the stream instead of filling memory. The call owns itself until gRPC's OnDone;
// it holds its connection weakly (the connection's own reads and writes keep it alive).
class StreamCall final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                         public std::enable_shared_from_this<StreamCall> {
 public:
  // Handed over with each message: once destroyed, the next message is read. Destroyed without
  // Written() (the message could not be delivered), it cancels the call first.
  class Next {
   public:
    explicit Next(std::shared_ptr<StreamCall> call) : call_(std::move(call)) {}
    ~Next() {
      if (!written_) call_->context.TryCancel();
      call_->StartRead(&call_->response_);
    }
    Next(const Next&) = delete;
    Next& operator=(const Next&) = delete;
    void Written() { written_ = true; }

   private:
    std::shared_ptr<StreamCall> call_;
    bool written_ = false;
  };
  using MessageHandler = std::function<void(std::string bytes, std::shared_ptr<Next> next)>;
  using DoneHandler = std::function<void(grpc::Status status)>;

  // `on_message` and `on_done` run on the gRPC thread that got the event; they must hand the
  // work over (to the connection's strand) and return. `on_done` runs once, last.
  StreamCall(MessageHandler on_message, DoneHandler on_done)
      : on_message_(std::move(on_message)), on_done_(std::move(on_done)) {}

  void Start(grpc::GenericStub& stub, const std::string& method, const std::string& request) {
    self_ = shared_from_this();
    grpc::Slice slice(request);
    request_ = grpc::ByteBuffer(&slice, 1);
    stub.PrepareBidiStreamingCall(&context, method, grpc::StubOptions(), this);
    StartWriteLast(&request_, grpc::WriteOptions());
    AddHold();  // released when the reads end: OnDone waits for the last message's Next
    StartRead(&response_);
    StartCall();
  }

  grpc::ClientContext context;

 private:
  void OnReadDone(bool ok) override {
    if (!ok) {
      RemoveHold();
      return;
    }
    on_message_(BytesOf(response_), std::make_shared<Next>(self_));
  }
  void OnDone(const grpc::Status& status) override {
    on_done_(status);
    on_message_ = nullptr;
    on_done_ = nullptr;
    self_.reset();  // may delete this: the last thing done here
  }

  MessageHandler on_message_;
  DoneHandler on_done_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
  std::shared_ptr<StreamCall> self_;  // from Start until OnDone
};

// One connection: (TLS handshake,) read a request, answer, repeat while keep-alive. `Stream` is
// beast::tcp_stream or ssl::stream<beast::tcp_stream>.
template <typename Stream>
class Connection : public std::enable_shared_from_this<Connection<Stream>> {
 public:
  Connection(Stream stream, std::shared_ptr<Shared> shared,
             std::shared_ptr<ConnectionTable::Entry> entry)
      : stream_(std::move(stream)), shared_(std::move(shared)), entry_(std::move(entry)) {
    beast::error_code ec;
    const tcp::endpoint remote = tcp().socket().remote_endpoint(ec);
    if (!ec) {
      address_ = remote.address().to_string();
      peer_ = remote.address().is_v6() ? "ipv6:[" + remote.address().to_string() + "]:"
                                       : "ipv4:" + remote.address().to_string() + ":";
      peer_ += std::to_string(remote.port());
    }
  }

  void Start() {
    Idle();
    if constexpr (kTls) {
      tcp().expires_after(shared_->options.request_timeout);
      stream_.async_handshake(ssl::stream_base::server, [self = this->shared_from_this()](
                                                            beast::error_code ec) {
        if (ec) return self->Close();
        // Set only when the handshake verified a client certificate.
        if (X509* cert = SSL_get0_peer_certificate(self->stream_.native_handle());
            cert != nullptr && SSL_get_verify_result(self->stream_.native_handle()) == X509_V_OK) {
          self->certificate_ = CertificateIdentity(cert);
        }
        self->Read();
      });
    } else {
      Read();
    }
  }

 private:
  // Waiting for a request (or a TLS handshake): the connection may be closed to make room for a
  // new one when the port is full.
  void Idle() {
    entry_->Idle([weak = this->weak_from_this(), executor = stream_.get_executor()] {
      asio::post(executor, [weak] {
        if (auto self = weak.lock()) self->Close();
      });
    });
  }

  void Read() {
    Idle();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(shared_->options.max_header_bytes));
    parser_->body_limit(shared_->options.max_body_bytes);
    tcp().expires_after(shared_->options.request_timeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, std::size_t) { self->Read(ec); });
  }

  void Read(beast::error_code ec) {
    route_label_ = "none";
    if (ec == http::error::header_limit || ec == http::error::body_limit) {
      // The client may still be sending: Respond lingers, so it reads the answer.
      return Refuse(
          ec == http::error::header_limit ? 431 : 413,
          grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                       ec == http::error::header_limit
                           ? "request header too large: at most " +
                                 std::to_string(shared_->options.max_header_bytes) + " bytes"
                           : "request body too large: at most " +
                                 std::to_string(shared_->options.max_body_bytes) + " bytes"),
          /*close=*/true);
    }
    if (ec == http::error::end_of_stream || ec == http::error::partial_message) {
      return Close();  // the client closed: between requests, or in the middle of one
    }
    if (ec.category() == http::make_error_code(http::error::bad_method).category()) {
      // Malformed framing (a bad start line, header, chunk size or line ending, conflicting
      // lengths): answered, as RFC 9112 asks, instead of a silent close.
      return Refuse(400,
                    grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                 "malformed HTTP request: " + ec.message()),
                    /*close=*/true);
    }
    if (ec) return Close();  // timeout, reset, or closed to make room
    entry_->Busy();
    req_ = parser_->release();
    RequestFraming framing;
    framing.version = req_.version();
    framing.host = HeaderValues(req_, http::field::host);
    framing.transfer_encoding = HeaderValues(req_, http::field::transfer_encoding);
    framing.has_content_length = req_.find(http::field::content_length) != req_.end();
    if (auto refused = CheckFraming(framing)) {
      return Refuse(refused->http_status,
                    grpc::Status(refused->http_status == 501 ? grpc::StatusCode::UNIMPLEMENTED
                                                             : grpc::StatusCode::INVALID_ARGUMENT,
                                 refused->message),
                    /*close=*/true);
    }
    Handle();
  }

  const Clock& clock() const {
    static const SystemClock system_clock;
    return shared_->options.clock != nullptr ? *shared_->options.clock : system_clock;
  }

  void Handle() {
    // No read deadline while the call runs: the call's own deadline bounds it.
    tcp().expires_never();
    started_ = clock().Monotonic();
    route_label_ = "none";
    const std::string target(req_.target());
    const std::size_t q = target.find('?');
    const std::string path = target.substr(0, q);
    const std::string query = q == std::string::npos ? "" : target.substr(q + 1);
    if (path == kOpenApiPath && req_.method() == http::verb::get) {
      // The API's description, not its data: served without credentials, like the health checks.
      route_label_ = std::string("GET ") + kOpenApiPath;
      return Respond(200, std::string(OpenApiDocument()), std::nullopt, /*close=*/false);
    }
    std::map<std::string, std::string> variables;
    bool other_method = false;
    const Route* route = FindRoute(shared_->routes, std::string(req_.method_string()), path,
                                   variables, &other_method);
    if (route == nullptr) {
      if (other_method) {
        return Refuse(
            405, grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                              std::string(req_.method_string()) + " is not served on " + path));
      }
      return Refuse(404, grpc::Status(grpc::StatusCode::NOT_FOUND, "no route for " + path));
    }
    route_label_ = RouteLabel(*route);
    // Every header value that goes on into the gRPC call is judged here, before anything reaches
    // gRPC (which would abort on a value it cannot carry, and log it).
    ForwardedHeaderValues values;
    values.authorization = HeaderValues(req_, http::field::authorization);
    values.idempotency_key = HeaderValues(req_, "Idempotency-Key");
    values.grpc_timeout = HeaderValues(req_, "grpc-timeout");
    auto checked = CheckForwardedHeaders(values);
    if (!checked.ok()) {
      return Refuse(HttpStatusOf(ToGrpcStatus(checked.status()).error_code()),
                    ToGrpcStatus(checked.status()));
    }
    forwarded_ = std::move(*checked);
    const ForwardedHeaders& forwarded = forwarded_;
    std::unique_ptr<google::protobuf::Message> request(
        google::protobuf::MessageFactory::generated_factory()
            ->GetPrototype(route->method->input_type())
            ->New());
    if (Status s = FillRequest(*route, variables, query, req_.body(), *request); !s.ok()) {
      return Refuse(400, ToGrpcStatus(s));
    }
    if (forwarded.idempotency_key) {
      const auto* field = request->GetDescriptor()->FindFieldByName("request_id");
      if (field != nullptr) {
        const auto* reflection = request->GetReflection();
        const std::string given = reflection->GetString(*request, field);
        const std::string& header = *forwarded.idempotency_key;
        if (!given.empty() && given != header) {
          return Refuse(400, ToGrpcStatus(InvalidArgument("requestId: the body says \"" + given +
                                                          "\", the Idempotency-Key header \"" +
                                                          header + "\"")));
        }
        reflection->SetString(request.get(), field, header);
      }
    }

    // The deadline: grpc-timeout, else default_deadline; a watch has none unless given (it lasts
    // until the job ends or the client hangs up).
    std::optional<std::chrono::nanoseconds> timeout = forwarded.timeout;
    if (!timeout && !route->method->server_streaming()) timeout = shared_->options.default_deadline;
    std::string bytes;
    request->SerializeToString(&bytes);
    const std::string name =
        "/" + route->method->service()->full_name() + "/" + route->method->name();
    if (route->method->server_streaming()) {
      // Streams last as long as a job runs: one caller holds a bounded number of them.
      watch_ticket_ = WatchTicket::Take(shared_, WatchKey());
      if (!watch_ticket_) {
        return Refuse(
            429,
            ToGrpcStatus(Status(
                StatusCode::kResourceExhausted,
                "too many open watch streams for this caller: at most " +
                    std::to_string(shared_->options.max_watch_streams_per_caller) +
                    " (http.max_watch_streams_per_caller); close one, or poll GetJob instead",
                Reason::kTooManyStreams)),
            /*close=*/true);
      }
      return StartStream(*route, name, bytes, timeout);
    }
    auto call = std::make_shared<Call>();
    call->method = route->method;
    grpc::Slice slice(bytes);
    call->request = grpc::ByteBuffer(&slice, 1);
    Prepare(call->context, timeout);
    shared_->stub->UnaryCall(&call->context, name, grpc::StubOptions(), &call->request,
                             &call->response,
                             [self = this->shared_from_this(), call](grpc::Status status) {
                               // On a gRPC thread: the answer is written on the connection's.
                               asio::post(self->stream_.get_executor(),
                                          [self, call, status] { self->Answered(*call, status); });
                             });
  }

  // Whose watch streams a stream counts against: the caller's credential (its bearer token, or
  // its verified client certificate), else its address. Known before gRPC authenticates the call,
  // so a caller with a wrong token is bounded too.
  std::string WatchKey() const {
    if (forwarded_.authorization) return "authorization " + *forwarded_.authorization;
    if (!certificate_.empty()) return "certificate " + certificate_;
    return "address " + address_;
  }

  // What every call carries from the HTTP request: the caller's credentials and the deadline.
  void Prepare(grpc::ClientContext& context, std::optional<std::chrono::nanoseconds> timeout) {
    // Checked by CheckForwardedHeaders: only printable ASCII gets here.
    if (forwarded_.authorization) context.AddMetadata("authorization", *forwarded_.authorization);
    shared_->options.mark->Apply(context, ForwardedCaller{peer_, certificate_});
    if (timeout) context.set_deadline(clock().Now() + *timeout);
  }

  // A server-streaming method as chunked newline-delimited JSON: {"result": <message>} per
  // message, {"error": <google.rpc.Status>} when the stream fails after its first message (before
  // it, the error is an ordinary error answer). The connection closes after the stream; the
  // client closing it cancels the call.
  void StartStream(const Route& route, const std::string& name, const std::string& request,
                   std::optional<std::chrono::nanoseconds> timeout) {
    const google::protobuf::Descriptor* type = route.method->output_type();
    std::weak_ptr<Connection> weak = this->weak_from_this();
    auto executor = stream_.get_executor();
    stream_call_ = std::make_shared<StreamCall>(
        [weak, executor, type](std::string bytes, std::shared_ptr<StreamCall::Next> next) {
          if (auto self = weak.lock()) {
            asio::post(executor, [self, type, bytes = std::move(bytes), next = std::move(next)] {
              self->StreamMessage(type, bytes, next);
            });
          }  // else `next` goes unwritten: the call is cancelled
        },
        [weak, executor](grpc::Status status) {
          if (auto self = weak.lock()) {
            asio::post(executor, [self, status] { self->StreamDone(status); });
          }
        });
    Prepare(stream_call_->context, timeout);
    WatchForHangUp();
    stream_call_->Start(*shared_->stub, name, request);
  }

  // While a stream runs, the only thing a client sends is its hang-up (or bytes that are
  // ignored: the connection closes after the stream). A failed read, a hang-up or a write that
  // timed out, cancels the call.
  void WatchForHangUp() {
    stream_.async_read_some(asio::buffer(hang_up_probe_),
                            [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                              if (!ec) return self->WatchForHangUp();
                              if (self->stream_ended_) return;  // Close() after the end
                              self->client_gone_ = true;
                              // nginx's "client closed request"
                              self->Count(499, /*observe=*/false);
                              if (self->stream_call_) self->stream_call_->context.TryCancel();
                            });
  }

  void StreamMessage(const google::protobuf::Descriptor* type, const std::string& bytes,
                     std::shared_ptr<StreamCall::Next> next) {
    if (client_gone_) return;  // `next` unwritten: cancelled
    std::optional<std::string> json = JsonOf(type, bytes);
    if (!json) return;
    std::string frame = "{\"result\":" + *json + "}\n";
    if (!head_sent_) {
      head_sent_ = true;
      head_ = {};
      head_.version(req_.version() == 0 ? 11 : req_.version());
      head_.result(http::status::ok);
      head_.set(http::field::server, "drgate");
      head_.set(http::field::content_type, "application/x-ndjson");
      head_.keep_alive(false);
      head_.chunked(true);
      head_serializer_.emplace(head_);
      tcp().expires_after(shared_->options.request_timeout);
      http::async_write_header(stream_, *head_serializer_,
                               [self = this->shared_from_this(), frame = std::move(frame),
                                next = std::move(next)](beast::error_code ec, std::size_t) mutable {
                                 if (ec) return;  // `next` unwritten: cancelled
                                 self->WriteChunk(std::move(frame), std::move(next));
                               });
      return;
    }
    WriteChunk(std::move(frame), std::move(next));
  }

  void WriteChunk(std::string frame, std::shared_ptr<StreamCall::Next> next) {
    chunk_ = std::move(frame);
    tcp().expires_after(shared_->options.request_timeout);
    asio::async_write(stream_, http::make_chunk(asio::buffer(chunk_)),
                      [self = this->shared_from_this(), next = std::move(next)](
                          beast::error_code ec, std::size_t) {
                        if (ec) return;  // `next` unwritten: cancelled
                        // Waiting for the next message may take as long as the job runs.
                        self->tcp().expires_never();
                        next->Written();
                      });
  }

  void StreamDone(const grpc::Status& status) {
    stream_call_.reset();
    watch_ticket_.reset();
    if (client_gone_) return;  // counted when it hung up
    stream_ended_ = true;
    if (!head_sent_) return Refuse(HttpStatusOf(status.error_code()), status, /*close=*/true);
    Count(200, /*observe=*/false);
    chunk_.clear();
    if (!status.ok()) chunk_ = "{\"error\":" + ErrorBody(status) + "}\n";
    tcp().expires_after(shared_->options.request_timeout);
    auto finish = [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return;
      asio::async_write(self->stream_, http::make_chunk_last(),
                        [self](beast::error_code, std::size_t) { self->Close(); });
    };
    if (chunk_.empty()) return finish({}, 0);
    asio::async_write(stream_, http::make_chunk(asio::buffer(chunk_)), std::move(finish));
  }

  void Answered(Call& call, const grpc::Status& status) {
    if (!status.ok()) return Refuse(HttpStatusOf(status.error_code()), status);
    std::optional<std::string> json = JsonOf(call.method->output_type(), BytesOf(call.response));
    if (!json) {
      return Refuse(500, grpc::Status(grpc::StatusCode::INTERNAL, "cannot encode the answer"));
    }
    Respond(200, std::move(*json), std::nullopt, /*close=*/false);
  }

  void Refuse(int code, const grpc::Status& status, bool close = false) {
    Respond(code, ErrorBody(status), RetryAfterSeconds(status), close);
  }

  void Respond(int code, std::string body, std::optional<int64_t> retry_after, bool close) {
    Count(code, /*observe=*/route_label_ != "none");
    res_ = {};
    res_.version(req_.version() == 0 ? 11 : req_.version());
    res_.result(static_cast<unsigned>(code));
    res_.set(http::field::server, "drgate");
    res_.set(http::field::content_type, "application/json");
    if (retry_after) res_.set(http::field::retry_after, std::to_string(*retry_after));
    res_.keep_alive(!close && req_.keep_alive());
    res_.body() = std::move(body);
    if (res_.body().empty() || res_.body().back() != '\n') res_.body() += '\n';
    res_.prepare_payload();
    tcp().expires_after(shared_->options.request_timeout);
    http::async_write(stream_, res_,
                      [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                        if (ec) return self->Close();
                        if (!self->res_.keep_alive()) return self->Linger();
                        self->Read();
                      });
  }

  // A lingering close (as nginx's lingering_close): after an answer that ends the connection,
  // often a refusal before the request was read whole (413, 431, 400), stop sending and read
  // and drop what the client still sends, until it closes or kLingerTime passes. Closing at once
  // with unread bytes would make the kernel reset the connection, and the client, still busy
  // sending, would see a broken pipe instead of the answer.
  void Linger() {
    beast::error_code ec;
    tcp().socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return Close();
    tcp().expires_after(kLingerTime);
    DrainUntilClosed();
  }

  void DrainUntilClosed() {
    tcp().socket().async_read_some(
        asio::buffer(hang_up_probe_),
        [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
          if (ec) return self->Close();  // the client closed, or kLingerTime passed
          self->DrainUntilClosed();
        });
  }

  void Count(int code, bool observe) {
    if (shared_->options.metrics == nullptr) return;
    const double seconds =
        observe ? std::chrono::duration<double>(clock().Monotonic() - started_).count() : -1;
    shared_->options.metrics->CountHttpRequest(route_label_, code, seconds);
  }

  void Close() {
    beast::error_code ec;
    tcp().socket().shutdown(tcp::socket::shutdown_send, ec);
    tcp().cancel();  // a stream's hang-up read: the connection ends now, not at the client's
  }

  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;
  static constexpr std::chrono::seconds kLingerTime{5};
  beast::tcp_stream& tcp() { return beast::get_lowest_layer(stream_); }

  Stream stream_;
  std::shared_ptr<Shared> shared_;
  std::shared_ptr<ConnectionTable::Entry> entry_;
  std::string address_;      // the client's address ("127.0.0.1")
  std::string peer_;         // the client, as gRPC names peers ("ipv4:127.0.0.1:51234")
  std::string certificate_;  // the identity of its verified client certificate, if any
  std::chrono::steady_clock::time_point started_;  // of the request being answered
  std::string route_label_ = "none";               // its route, for metrics
  ForwardedHeaders forwarded_;                     // its checked headers
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::request<http::string_body> req_;
  http::response<http::string_body> res_;
  // A stream (server-streaming method) under way:
  std::shared_ptr<StreamCall> stream_call_;
  std::unique_ptr<WatchTicket> watch_ticket_;  // counts the stream against its caller's bound
  bool head_sent_ = false;
  bool client_gone_ = false;
  bool stream_ended_ = false;  // the call ended: what is left is the answer's end
  http::response<http::empty_body> head_;
  std::optional<http::response_serializer<http::empty_body>> head_serializer_;
  std::string chunk_;  // the chunk being written
  std::array<char, 512> hang_up_probe_{};
};

// Stops the listener when destroyed.
// The contents of http.tls's files, concatenated; empty when one cannot be read.
std::string ReadTlsFiles(const GrpcTlsConfig& config) {
  std::string all;
  for (const std::string* path : {&config.cert_file, &config.key_file, &config.client_ca_file}) {
    if (path->empty()) continue;
    auto text = ReadRegularFile(*path, kMaxPemFileBytes);
    if (!text.ok()) return "";
    all += *text;
    all += '\0';
  }
  return all;
}

// Re-reads http.tls's files every reload_interval and, when they changed and make a usable
// context, gives new connections the new one (established connections keep theirs), as
// grpc.tls's files are watched. A broken file keeps the last good context, with a warning.
class TlsReloader : public std::enable_shared_from_this<TlsReloader> {
 public:
  TlsReloader(asio::io_context& io, std::shared_ptr<Shared> shared)
      : timer_(asio::make_strand(io)), shared_(std::move(shared)) {}

  void Start() { Wait(); }
  void Stop() {
    asio::post(timer_.get_executor(), [self = shared_from_this()] { self->timer_.cancel(); });
  }

 private:
  void Wait() {
    timer_.expires_after(shared_->options.tls->reload_interval);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec) return;  // stopped
      self->Check();
      self->Wait();
    });
  }

  void Check() {
    const GrpcTlsConfig& config = *shared_->options.tls;
    const std::string files = ReadTlsFiles(config);
    {
      std::lock_guard lock(shared_->tls_mu);
      if (files.empty() || files == shared_->tls_files) return;  // unchanged, or mid-rotation
    }
    auto tls = MakeServerTlsContext("http.tls", config.cert_file, config.key_file,
                                    config.client_ca_file, config.require_client_cert);
    if (!tls.ok()) {
      if (files != last_refused_) {
        spdlog::warn("http.tls: the changed files are not used, the last good ones stay: {}",
                     tls.status().message());
        last_refused_ = files;
      }
      return;
    }
    {
      std::lock_guard lock(shared_->tls_mu);
      shared_->retired.push_back(std::move(shared_->tls));
      shared_->tls = std::move(*tls);
      shared_->tls_files = files;
    }
    last_refused_.clear();
    spdlog::info("http.tls: certificate files changed; new connections use them");
  }

  asio::steady_timer timer_;
  std::shared_ptr<Shared> shared_;
  std::string last_refused_;  // the files last refused, warned about once
};

class GatewayHandle final : public HttpGateway {
 public:
  GatewayHandle(std::shared_ptr<HttpListener> listener, std::shared_ptr<TlsReloader> reloader)
      : listener_(std::move(listener)), reloader_(std::move(reloader)) {}
  ~GatewayHandle() override { Stop(); }
  int port() const override { return listener_->port(); }
  void Stop() override {
    listener_->Stop();
    if (reloader_) reloader_->Stop();
  }

 private:
  std::shared_ptr<HttpListener> listener_;
  std::shared_ptr<TlsReloader> reloader_;  // null without http.tls
};

}  // namespace

StatusOr<std::unique_ptr<HttpGateway>> HttpGateway::Start(boost::asio::io_context& io,
                                                          const HttpGatewayOptions& options,
                                                          std::shared_ptr<grpc::Channel> channel) {
  auto shared = std::make_shared<Shared>();
  shared->options = options;
  if (options.mark == nullptr) {
    return Status(StatusCode::kInternal, "the HTTP gateway needs a GatewayMark");
  }
  auto routes = ServiceRoutes();
  if (!routes.ok()) return routes.status();
  shared->routes = std::move(*routes);
  shared->channel = std::move(channel);
  shared->stub = std::make_unique<grpc::GenericStub>(shared->channel);
  if (options.tls) {
    auto tls = MakeServerTlsContext("http.tls", options.tls->cert_file, options.tls->key_file,
                                    options.tls->client_ca_file, options.tls->require_client_cert);
    if (!tls.ok()) return tls.status();
    shared->tls = std::move(*tls);
    shared->tls_files = ReadTlsFiles(*options.tls);
  } else if (!IsLoopbackListen(options.listen)) {
    spdlog::warn(
        "http.tls is not configured: the HTTP port {} is plaintext; calls and bearer tokens travel "
        "unencrypted. Configure http.tls or bind http.listen to loopback",
        options.listen);
  }
  auto listener = HttpListener::Bind(io, "http.listen", options.listen);
  if (!listener.ok()) return listener.status();
  (*listener)->Accept(std::make_shared<ConnectionTable>(options.max_connections,
                                                        options.max_connections_per_client),
                      [shared](tcp::socket socket, std::shared_ptr<ConnectionTable::Entry> entry) {
                        const std::shared_ptr<ssl::context> tls = shared->CurrentTls();
                        StartConnection<Connection>(std::move(socket), tls.get(), shared,
                                                    std::move(entry));
                      });
  std::shared_ptr<TlsReloader> reloader;
  if (options.tls) {
    reloader = std::make_shared<TlsReloader>(io, shared);
    reloader->Start();
  }
  return std::unique_ptr<HttpGateway>(
      std::make_unique<GatewayHandle>(std::move(*listener), std::move(reloader)));
}

}  // namespace drgate::plugin
