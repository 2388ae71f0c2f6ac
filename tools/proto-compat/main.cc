// proto-compat: fails when a protobuf API breaks compatibility with its baseline.
//
// usage: proto-compat --package drgate.v1 BASELINE.binpb CURRENT.binpb
// Both files are FileDescriptorSets (`protoc --descriptor_set_out --include_imports`).
// Exit codes: 0 compatible, 1 breaking changes (one line each on stderr), 2 usage or an
// unreadable set.

#include <fstream>
#include <iostream>
#include <string>

#include "tools/proto-compat/proto_compat.h"

namespace {

bool Read(const std::string& path, google::protobuf::FileDescriptorSet& set) {
  std::ifstream in(path, std::ios::binary);
  return in && set.ParseFromIstream(&in);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5 || std::string(argv[1]) != "--package") {
    std::cerr << "usage: proto-compat --package PACKAGE BASELINE.binpb CURRENT.binpb\n";
    return 2;
  }
  const std::string package = argv[2];
  google::protobuf::FileDescriptorSet baseline, current;
  for (auto [path, set] : {std::pair{argv[3], &baseline}, std::pair{argv[4], &current}}) {
    if (!Read(path, *set)) {
      std::cerr << "proto-compat: cannot read a FileDescriptorSet from " << path << "\n";
      return 2;
    }
  }
  auto result = drgate::protocompat::Compare(baseline, current, package);
  if (!result.error.empty()) {
    std::cerr << "proto-compat: " << result.error << "\n";
    return 2;
  }
  for (const auto& v : result.violations) {
    std::cerr << "proto-compat: " << v.rule << ": " << v.message << "\n";
  }
  if (!result.violations.empty()) {
    std::cerr << "proto-compat: " << result.violations.size() << " breaking change(s) against "
              << argv[3] << ". Keep the API compatible (add fields and values, never renumber "
              << "or remove); a deliberate break needs a new package version (drgate.v2).\n";
    return 1;
  }
  std::cout << "proto-compat: " << argv[4] << " is compatible with " << argv[3] << "\n";
  return 0;
}
