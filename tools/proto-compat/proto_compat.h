// Breaking-change check of a protobuf API against a committed baseline: the rules `buf breaking`
// applies at its FILE level, written on protobuf's own descriptor API.
//
// Both sides are FileDescriptorSets as `protoc --descriptor_set_out --include_imports` writes
// them. Only the files of the checked package (and its sub-packages) are compared; their
// imports are needed to build the descriptors but are not drgate's API.

#pragma once

#include <google/protobuf/descriptor.pb.h>

#include <string>
#include <string_view>
#include <vector>

namespace drgate::protocompat {

// One incompatibility, e.g. "drgate.v1.Job: field 3 (state) changed type from enum
// drgate.v1.JobState to string".
struct Violation {
  std::string rule;     // e.g. FIELD_NO_DELETE, FIELD_SAME_TYPE, ENUM_VALUE_NO_DELETE
  std::string message;  // what changed, naming the element
};

struct Result {
  std::vector<Violation> violations;
  std::string error;  // non-empty: a set could not be loaded (then violations is empty)
};

// Compares `current` with `baseline`. What breaks: a message, enum, service or method that is
// gone; a field removed, renumbered, renamed, or with another type or cardinality (also a
// field's oneof membership); an enum value removed, renumbered or renamed; a method whose
// request or response type or streaming changed; a file whose package changed. Additions of
// any kind are compatible.
Result Compare(const google::protobuf::FileDescriptorSet& baseline,
               const google::protobuf::FileDescriptorSet& current, std::string_view package);

}  // namespace drgate::protocompat
