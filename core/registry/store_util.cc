#include "core/registry/store_util.h"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace drgate::registry {
namespace {

// ---- Page tokens --------------------------------------------------------------------------------
// A token is base64url (no padding) of:
//   u8 version | u64 filter fingerprint | i64 create_time_ms | u16 len, commcell |
//   u16 len, job_id | u32 checksum (FNV-1a of everything before it)
// The cursor is the last row returned; the next page starts strictly after it.

constexpr uint8_t kTokenVersion = 1;

uint64_t Fnv1a64(std::string_view data, uint64_t hash = 14695981039346656037ull) {
  for (unsigned char c : data) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

void PutUint(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

bool GetUint(std::string_view& in, int bytes, uint64_t& v) {
  if (in.size() < static_cast<size_t>(bytes)) return false;
  v = 0;
  for (int i = 0; i < bytes; ++i)
    v |= static_cast<uint64_t>(static_cast<uint8_t>(in[i])) << (8 * i);
  in.remove_prefix(bytes);
  return true;
}

bool GetString(std::string_view& in, std::string& s) {
  uint64_t len = 0;
  if (!GetUint(in, 2, len) || in.size() < len) return false;
  s.assign(in.substr(0, len));
  in.remove_prefix(len);
  return true;
}

constexpr char kBase64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string Base64UrlEncode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kBase64Url[(acc >> bits) & 0x3f]);
    }
  }
  if (bits > 0) out.push_back(kBase64Url[(acc << (6 - bits)) & 0x3f]);
  return out;
}

std::optional<std::string> Base64UrlDecode(std::string_view in) {
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char ch : in) {
    int v;
    if (ch >= 'A' && ch <= 'Z') {
      v = ch - 'A';
    } else if (ch >= 'a' && ch <= 'z') {
      v = ch - 'a' + 26;
    } else if (ch >= '0' && ch <= '9') {
      v = ch - '0' + 52;
    } else if (ch == '-') {
      v = 62;
    } else if (ch == '_') {
      v = 63;
    } else {
      return std::nullopt;
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // Non-canonical trailing bits mean the text was not produced by the encoder.
  if ((acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

}  // namespace

int64_t ToMillis(TimePoint t) {
  return std::chrono::floor<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

int64_t CeilMillis(TimePoint t) {
  return std::chrono::ceil<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

TimePoint FromMillis(int64_t ms) {
  return TimePoint(std::chrono::milliseconds(ms));
}

MillisRange CreateTimeRange(const JobFilter& filter) {
  MillisRange range;
  if (filter.created_after) range.from = CeilMillis(*filter.created_after);
  if (filter.created_before) range.until = CeilMillis(*filter.created_before) - 1;
  return range;
}

// Fields are appended only when set, so a filter without the newer fields keeps the fingerprint
// (and its tokens stay valid) across an upgrade. The time range enters in stored milliseconds:
// two filters that select the same rows share tokens.
uint64_t FilterFingerprint(const JobFilter& filter) {
  std::string key = "commcell=" + filter.commcell + '\0' +
                    "state=" + (filter.state ? JobStateName(*filter.state) : "*");
  auto append = [&key](std::string_view name, const std::string& value) {
    key += '\0';
    key += name;
    key += '=';
    key += value;
  };
  const MillisRange range = CreateTimeRange(filter);
  if (filter.backup_type) append("type", BackupTypeName(*filter.backup_type));
  if (filter.created_after) append("from", std::to_string(range.from));
  if (filter.created_before) append("until", std::to_string(range.until));
  if (filter.origin) append("origin", JobOriginName(*filter.origin));
  return Fnv1a64(key);
}

std::string EncodePageToken(const Cursor& cursor) {
  std::string raw;
  PutUint(raw, kTokenVersion, 1);
  PutUint(raw, cursor.fingerprint, 8);
  PutUint(raw, static_cast<uint64_t>(cursor.create_time_ms), 8);
  PutUint(raw, cursor.commcell.size(), 2);
  raw += cursor.commcell;
  PutUint(raw, cursor.job_id.size(), 2);
  raw += cursor.job_id;
  PutUint(raw, Fnv1a64(raw) & 0xffffffffu, 4);
  return Base64UrlEncode(raw);
}

StatusOr<Cursor> DecodePageToken(const std::string& token, const JobFilter& filter) {
  Status malformed = InvalidArgument(
      "page_token is malformed; pass the next_page_token of the previous page unchanged",
      Reason::kInvalidPageToken);
  std::optional<std::string> raw = Base64UrlDecode(token);
  if (!raw || raw->size() < 4) return malformed;
  std::string_view body(raw->data(), raw->size() - 4);
  std::string_view tail(raw->data() + body.size(), 4);
  uint64_t checksum = 0;
  if (!GetUint(tail, 4, checksum) || checksum != (Fnv1a64(body) & 0xffffffffu)) return malformed;

  Cursor cursor;
  uint64_t version = 0;
  uint64_t time = 0;
  if (!GetUint(body, 1, version) || version != kTokenVersion ||
      !GetUint(body, 8, cursor.fingerprint) || !GetUint(body, 8, time) ||
      !GetString(body, cursor.commcell) || !GetString(body, cursor.job_id) || !body.empty()) {
    return malformed;
  }
  cursor.create_time_ms = static_cast<int64_t>(time);
  if (cursor.fingerprint != FilterFingerprint(filter)) {
    return InvalidArgument(
        "page_token was issued for a different filter (commcell, state, backup type or time "
        "range); repeat the filter of the first page, or start again without a token",
        Reason::kInvalidPageToken);
  }
  return cursor;
}

StatusOr<BackupType> IntentBackupType(int64_t intent_id, const std::string& backup_type) {
  std::optional<BackupType> parsed = ParseBackupType(backup_type);
  if (!parsed) {
    return Internal("registry intent " + std::to_string(intent_id) +
                        " has an unknown backup_type '" + backup_type + "'",
                    Reason::kRegistryError);
  }
  return *parsed;
}

Status RequestIdInFlight(const TriggerIntent& intent) {
  return Status(StatusCode::kAlreadyExists,
                "a trigger with request_id \"" + intent.request_id + "\" on CommCell '" +
                    intent.commcell + "' is already in flight",
                Reason::kRequestIdInFlight)
      .With("commcell", intent.commcell)
      .With("request_id", intent.request_id);
}

}  // namespace drgate::registry
