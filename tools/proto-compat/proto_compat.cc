#include "tools/proto-compat/proto_compat.h"

#include <google/protobuf/descriptor.h>

#include <memory>
#include <string>

namespace drgate::protocompat {
namespace {

namespace pb = google::protobuf;

struct Pool {
  pb::DescriptorPool pool;
  std::vector<const pb::FileDescriptor*> files;  // the checked package's files
};

bool InPackage(const std::string& name, std::string_view package) {
  return name == package ||
         (name.size() > package.size() && name.compare(0, package.size(), package) == 0 &&
          name[package.size()] == '.');
}

// Builds every file of the set (protoc writes imports before the files that use them).
// Keeps the first problem of a file that does not build (instead of protobuf's log lines).
class FirstError : public pb::DescriptorPool::ErrorCollector {
 public:
  void AddError(const std::string& filename, const std::string& element_name, const pb::Message*,
                ErrorLocation, const std::string& message) override {
    if (first.empty()) first = element_name + ": " + message;
  }
  std::string first;
};

// An empty package in the baseline is an error; in the current set every element is then gone.
std::string Load(const pb::FileDescriptorSet& set, std::string_view package, bool require,
                 Pool& out) {
  for (const auto& file : set.file()) {
    FirstError errors;
    const pb::FileDescriptor* fd = out.pool.BuildFileCollectingErrors(file, &errors);
    if (fd == nullptr) return "cannot build descriptors of " + file.name() + ": " + errors.first;
    if (InPackage(fd->package(), package)) out.files.push_back(fd);
  }
  if (require && out.files.empty())
    return "no file of package " + std::string(package) + " in the set";
  return "";
}

std::string TypeName(const pb::FieldDescriptor* f) {
  switch (f->type()) {
    case pb::FieldDescriptor::TYPE_MESSAGE: return "message " + f->message_type()->full_name();
    case pb::FieldDescriptor::TYPE_GROUP: return "group " + f->message_type()->full_name();
    case pb::FieldDescriptor::TYPE_ENUM: return "enum " + f->enum_type()->full_name();
    default: return f->type_name();
  }
}

std::string Cardinality(const pb::FieldDescriptor* f) {
  if (f->is_map()) return "map";
  if (f->is_repeated()) return "repeated";
  return f->has_presence() && !f->containing_oneof() ? "optional" : "singular";
}

std::string OneofName(const pb::FieldDescriptor* f) {
  const pb::OneofDescriptor* o = f->real_containing_oneof();
  return o == nullptr ? "" : o->name();
}

class Checker {
 public:
  explicit Checker(std::vector<Violation>& out) : out_(out) {}

  void Add(std::string rule, std::string message) {
    out_.push_back({std::move(rule), std::move(message)});
  }

  void Message(const pb::Descriptor* old_m, const pb::DescriptorPool& current) {
    const pb::Descriptor* new_m = current.FindMessageTypeByName(old_m->full_name());
    if (new_m == nullptr) {
      Add("MESSAGE_NO_DELETE", "message " + old_m->full_name() + " was removed");
      return;
    }
    for (int i = 0; i < old_m->field_count(); ++i) Field(old_m->field(i), new_m);
    for (int i = 0; i < old_m->nested_type_count(); ++i) {
      if (old_m->nested_type(i)->options().map_entry()) continue;  // checked as the map field
      Message(old_m->nested_type(i), current);
    }
    for (int i = 0; i < old_m->enum_type_count(); ++i) Enum(old_m->enum_type(i), current);
  }

  void Field(const pb::FieldDescriptor* old_f, const pb::Descriptor* new_m) {
    const std::string where = new_m->full_name() + ": field " + std::to_string(old_f->number()) +
                              " (" + old_f->name() + ")";
    const pb::FieldDescriptor* new_f = new_m->FindFieldByNumber(old_f->number());
    const pb::FieldDescriptor* same_name = new_m->FindFieldByName(old_f->name());
    if (new_f == nullptr) {
      if (same_name != nullptr) {
        Add("FIELD_NO_DELETE", where + " was renumbered to " + std::to_string(same_name->number()));
      } else {
        Add("FIELD_NO_DELETE", where + " was removed");
      }
      return;
    }
    if (new_f->name() != old_f->name()) {
      Add("FIELD_SAME_NAME",
          where + " was renamed to " + new_f->name() +
              (same_name != nullptr ? " (and the name " + old_f->name() + " now has number " +
                                          std::to_string(same_name->number()) + ")"
                                    : ""));
    }
    if (TypeName(new_f) != TypeName(old_f)) {
      Add("FIELD_SAME_TYPE",
          where + " changed type from " + TypeName(old_f) + " to " + TypeName(new_f));
    }
    if (Cardinality(new_f) != Cardinality(old_f)) {
      Add("FIELD_SAME_CARDINALITY",
          where + " changed from " + Cardinality(old_f) + " to " + Cardinality(new_f));
    }
    if (OneofName(new_f) != OneofName(old_f)) {
      Add("FIELD_SAME_ONEOF",
          where + " moved from oneof '" + OneofName(old_f) + "' to '" + OneofName(new_f) + "'");
    }
  }

  void Enum(const pb::EnumDescriptor* old_e, const pb::DescriptorPool& current) {
    const pb::EnumDescriptor* new_e = current.FindEnumTypeByName(old_e->full_name());
    if (new_e == nullptr) {
      Add("ENUM_NO_DELETE", "enum " + old_e->full_name() + " was removed");
      return;
    }
    for (int i = 0; i < old_e->value_count(); ++i) {
      const pb::EnumValueDescriptor* old_v = old_e->value(i);
      const std::string where = old_e->full_name() + ": value " + std::to_string(old_v->number()) +
                                " (" + old_v->name() + ")";
      const pb::EnumValueDescriptor* new_v = new_e->FindValueByNumber(old_v->number());
      const pb::EnumValueDescriptor* same_name = new_e->FindValueByName(old_v->name());
      if (new_v == nullptr) {
        Add("ENUM_VALUE_NO_DELETE", same_name != nullptr ? where + " was renumbered to " +
                                                               std::to_string(same_name->number())
                                                         : where + " was removed");
      } else if (new_v->name() != old_v->name() && same_name == nullptr) {
        // Aliases (allow_alias) keep the old name at the same number: only a lost name breaks.
        Add("ENUM_VALUE_SAME_NAME", where + " was renamed to " + new_v->name());
      } else if (same_name != nullptr && same_name->number() != old_v->number()) {
        Add("ENUM_VALUE_SAME_NAME", where + ": the name " + old_v->name() + " now has number " +
                                        std::to_string(same_name->number()));
      }
    }
  }

  void Service(const pb::ServiceDescriptor* old_s, const pb::DescriptorPool& current) {
    const pb::ServiceDescriptor* new_s = current.FindServiceByName(old_s->full_name());
    if (new_s == nullptr) {
      Add("SERVICE_NO_DELETE", "service " + old_s->full_name() + " was removed");
      return;
    }
    for (int i = 0; i < old_s->method_count(); ++i) {
      const pb::MethodDescriptor* old_r = old_s->method(i);
      const std::string where = old_s->full_name() + "." + old_r->name();
      const pb::MethodDescriptor* new_r = new_s->FindMethodByName(old_r->name());
      if (new_r == nullptr) {
        Add("RPC_NO_DELETE", "method " + where + " was removed");
        continue;
      }
      if (new_r->input_type()->full_name() != old_r->input_type()->full_name()) {
        Add("RPC_SAME_REQUEST_TYPE", where + ": request type changed from " +
                                         old_r->input_type()->full_name() + " to " +
                                         new_r->input_type()->full_name());
      }
      if (new_r->output_type()->full_name() != old_r->output_type()->full_name()) {
        Add("RPC_SAME_RESPONSE_TYPE", where + ": response type changed from " +
                                          old_r->output_type()->full_name() + " to " +
                                          new_r->output_type()->full_name());
      }
      if (new_r->client_streaming() != old_r->client_streaming()) {
        Add("RPC_SAME_CLIENT_STREAMING", where + ": client streaming changed");
      }
      if (new_r->server_streaming() != old_r->server_streaming()) {
        Add("RPC_SAME_SERVER_STREAMING", where + ": server streaming changed");
      }
    }
  }

 private:
  std::vector<Violation>& out_;
};

}  // namespace

Result Compare(const pb::FileDescriptorSet& baseline, const pb::FileDescriptorSet& current,
               std::string_view package) {
  Result result;
  Pool old_pool, new_pool;
  if (std::string e = Load(baseline, package, /*require=*/true, old_pool); !e.empty()) {
    result.error = "baseline: " + e;
    return result;
  }
  if (std::string e = Load(current, package, /*require=*/false, new_pool); !e.empty()) {
    result.error = "current: " + e;
    return result;
  }
  Checker check(result.violations);
  for (const pb::FileDescriptor* old_f : old_pool.files) {
    const pb::FileDescriptor* new_f = new_pool.pool.FindFileByName(old_f->name());
    if (new_f == nullptr) {
      // A file may be split or renamed as long as its elements stay: they are checked below.
    } else if (new_f->package() != old_f->package()) {
      check.Add("FILE_SAME_PACKAGE", "file " + old_f->name() + " changed package from " +
                                         old_f->package() + " to " + new_f->package());
    }
    for (int i = 0; i < old_f->message_type_count(); ++i) {
      check.Message(old_f->message_type(i), new_pool.pool);
    }
    for (int i = 0; i < old_f->enum_type_count(); ++i) {
      check.Enum(old_f->enum_type(i), new_pool.pool);
    }
    for (int i = 0; i < old_f->service_count(); ++i) {
      check.Service(old_f->service(i), new_pool.pool);
    }
  }
  return result;
}

}  // namespace drgate::protocompat
