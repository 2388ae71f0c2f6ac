// The breaking-change rules of tools/proto-compat, each on a mutation of the committed baseline.

#include "tools/proto-compat/proto_compat.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <string>

namespace drgate::protocompat {
namespace {

namespace pb = google::protobuf;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

pb::FileDescriptorSet Baseline() {
  pb::FileDescriptorSet set;
  std::ifstream in(DRGATE_PROTO_BASELINE, std::ios::binary);
  EXPECT_TRUE(in && set.ParseFromIstream(&in)) << DRGATE_PROTO_BASELINE;
  return set;
}

pb::FileDescriptorProto& Api(pb::FileDescriptorSet& set) {
  for (auto& f : *set.mutable_file()) {
    if (f.package() == "drgate.v1") return f;
  }
  ADD_FAILURE() << "no drgate.v1 file in the baseline";
  return *set.mutable_file(0);
}

pb::DescriptorProto& Message(pb::FileDescriptorSet& set, const std::string& name) {
  for (auto& m : *Api(set).mutable_message_type()) {
    if (m.name() == name) return m;
  }
  ADD_FAILURE() << "no message " << name;
  return *Api(set).mutable_message_type(0);
}

pb::FieldDescriptorProto& FieldOf(pb::FileDescriptorSet& set, const std::string& message,
                                  const std::string& field) {
  for (auto& f : *Message(set, message).mutable_field()) {
    if (f.name() == field) return f;
  }
  ADD_FAILURE() << "no field " << message << "." << field;
  return *Message(set, message).mutable_field(0);
}

pb::EnumDescriptorProto& Enum(pb::FileDescriptorSet& set, const std::string& name) {
  for (auto& e : *Api(set).mutable_enum_type()) {
    if (e.name() == name) return e;
  }
  ADD_FAILURE() << "no enum " << name;
  return *Api(set).mutable_enum_type(0);
}

pb::MethodDescriptorProto& Method(pb::FileDescriptorSet& set, const std::string& name) {
  for (auto& m : *Api(set).mutable_service(0)->mutable_method()) {
    if (m.name() == name) return m;
  }
  ADD_FAILURE() << "no method " << name;
  return *Api(set).mutable_service(0)->mutable_method(0);
}

// The violations of the baseline changed by `mutate`, against the baseline.
std::vector<Violation> Check(const std::function<void(pb::FileDescriptorSet&)>& mutate) {
  pb::FileDescriptorSet baseline = Baseline();
  pb::FileDescriptorSet current = baseline;
  mutate(current);
  Result r = Compare(baseline, current, "drgate.v1");
  EXPECT_EQ(r.error, "");
  return r.violations;
}

auto Is(const std::string& rule, const std::string& text) {
  return AllOf(Field(&Violation::rule, rule), Field(&Violation::message, HasSubstr(text)));
}

TEST(ProtoCompat, BaselineIsCompatibleWithItself) {
  EXPECT_THAT(Check([](auto&) {}), IsEmpty());
}

TEST(ProtoCompat, AdditionsAreCompatible) {
  EXPECT_THAT(Check([](pb::FileDescriptorSet& s) {
                auto* f = Message(s, "Job").add_field();
                f->set_name("added_in_a_later_version");
                f->set_number(1000);
                f->set_type(pb::FieldDescriptorProto::TYPE_STRING);
                f->set_label(pb::FieldDescriptorProto::LABEL_OPTIONAL);
                auto* v = Enum(s, "JobState").add_value();
                v->set_name("JOB_STATE_NEW");
                v->set_number(10);
                auto* m = Api(s).add_message_type();
                m->set_name("AddedInALaterVersion");
                auto* rpc = Api(s).mutable_service(0)->add_method();
                rpc->set_name("NewMethod");
                rpc->set_input_type(".drgate.v1.GetJobRequest");
                rpc->set_output_type(".drgate.v1.Job");
              }),
              IsEmpty());
}

TEST(ProtoCompat, RemovedField) {
  EXPECT_THAT(
      Check([](pb::FileDescriptorSet& s) {
        auto* fields = Message(s, "Job").mutable_field();
        for (int i = 0; i < fields->size(); ++i) {
          if (fields->Get(i).name() == "failure_reason") fields->DeleteSubrange(i, 1);
        }
      }),
      ElementsAre(Is("FIELD_NO_DELETE", "drgate.v1.Job: field 9 (failure_reason) was removed")));
}

TEST(ProtoCompat, RenumberedField) {
  EXPECT_THAT(
      Check([](pb::FileDescriptorSet& s) { FieldOf(s, "Job", "task_id").set_number(99); }),
      ElementsAre(Is("FIELD_NO_DELETE", "drgate.v1.Job: field 3 (task_id) was renumbered to 99")));
}

TEST(ProtoCompat, RenamedField) {
  EXPECT_THAT(
      Check([](pb::FileDescriptorSet& s) { FieldOf(s, "Job", "task_id").set_name("task"); }),
      ElementsAre(Is("FIELD_SAME_NAME", "drgate.v1.Job: field 3 (task_id) was renamed to task")));
}

TEST(ProtoCompat, ChangedScalarType) {
  EXPECT_THAT(
      Check([](pb::FileDescriptorSet& s) {
        FieldOf(s, "Job", "task_id").set_type(pb::FieldDescriptorProto::TYPE_INT32);
      }),
      ElementsAre(Is("FIELD_SAME_TYPE", "field 3 (task_id) changed type from int64 to int32")));
}

TEST(ProtoCompat, ChangedEnumToString) {
  EXPECT_THAT(
      Check([](pb::FileDescriptorSet& s) {
        auto& f = FieldOf(s, "Job", "state");
        f.set_type(pb::FieldDescriptorProto::TYPE_STRING);
        f.clear_type_name();
      }),
      ElementsAre(Is("FIELD_SAME_TYPE", "changed type from enum drgate.v1.JobState to string")));
}

TEST(ProtoCompat, ChangedCardinality) {
  EXPECT_THAT(
      Check([](pb::FileDescriptorSet& s) {
        FieldOf(s, "Job", "failure_reason").set_label(pb::FieldDescriptorProto::LABEL_REPEATED);
      }),
      ElementsAre(Is("FIELD_SAME_CARDINALITY", "changed from singular to repeated")));
}

TEST(ProtoCompat, RemovedEnumValue) {
  EXPECT_THAT(Check([](pb::FileDescriptorSet& s) {
                auto* values = Enum(s, "JobState").mutable_value();
                for (int i = 0; i < values->size(); ++i) {
                  if (values->Get(i).name() == "JOB_STATE_KILLED") values->DeleteSubrange(i, 1);
                }
              }),
              ElementsAre(Is("ENUM_VALUE_NO_DELETE",
                             "drgate.v1.JobState: value 8 (JOB_STATE_KILLED) was removed")));
}

TEST(ProtoCompat, RenumberedEnumValue) {
  EXPECT_THAT(Check([](pb::FileDescriptorSet& s) {
                for (auto& v : *Enum(s, "JobState").mutable_value()) {
                  if (v.name() == "JOB_STATE_KILLED") v.set_number(42);
                }
              }),
              ElementsAre(Is("ENUM_VALUE_NO_DELETE", "(JOB_STATE_KILLED) was renumbered to 42")));
}

TEST(ProtoCompat, RenamedEnumValue) {
  EXPECT_THAT(Check([](pb::FileDescriptorSet& s) {
                for (auto& v : *Enum(s, "JobState").mutable_value()) {
                  if (v.name() == "JOB_STATE_KILLED") v.set_name("JOB_STATE_CANCELLED");
                }
              }),
              ElementsAre(Is("ENUM_VALUE_SAME_NAME", "was renamed to JOB_STATE_CANCELLED")));
}

TEST(ProtoCompat, RemovedMethod) {
  EXPECT_THAT(Check([](pb::FileDescriptorSet& s) {
                auto* methods = Api(s).mutable_service(0)->mutable_method();
                for (int i = 0; i < methods->size(); ++i) {
                  if (methods->Get(i).name() == "CancelJob") methods->DeleteSubrange(i, 1);
                }
              }),
              ElementsAre(Is("RPC_NO_DELETE", "drgate.v1.DrBackupService.CancelJob was removed")));
}

TEST(ProtoCompat, ChangedMethodTypesAndStreaming) {
  EXPECT_THAT(Check([](pb::FileDescriptorSet& s) {
                auto& m = Method(s, "GetJob");
                m.set_input_type(".drgate.v1.CancelJobRequest");
                m.set_output_type(".drgate.v1.ListJobsResponse");
                Method(s, "WatchJob").set_server_streaming(false);
              }),
              ElementsAre(Is("RPC_SAME_REQUEST_TYPE",
                             "GetJob: request type changed from drgate.v1.GetJobRequest to "
                             "drgate.v1.CancelJobRequest"),
                          Is("RPC_SAME_RESPONSE_TYPE", "GetJob: response type changed"),
                          Is("RPC_SAME_SERVER_STREAMING", "WatchJob: server streaming changed")));
}

TEST(ProtoCompat, RemovedMessageAndItsUses) {
  // A message that is gone takes its uses with it; every one is reported.
  auto v = Check([](pb::FileDescriptorSet& s) {
    auto* messages = Api(s).mutable_message_type();
    for (int i = 0; i < messages->size(); ++i) {
      if (messages->Get(i).name() == "ListCommCellsRequest") messages->DeleteSubrange(i, 1);
    }
    auto& m = Method(s, "ListCommCells");
    m.set_input_type(".drgate.v1.GetJobRequest");
  });
  EXPECT_THAT(
      v, ElementsAre(Is("MESSAGE_NO_DELETE", "message drgate.v1.ListCommCellsRequest was removed"),
                     Is("RPC_SAME_REQUEST_TYPE", "ListCommCells: request type changed")));
}

TEST(ProtoCompat, RemovedEnumAndService) {
  auto v = Check([](pb::FileDescriptorSet& s) {
    auto& f = FieldOf(s, "Job", "backup_type");
    f.set_type(pb::FieldDescriptorProto::TYPE_INT32);
    f.clear_type_name();
    for (auto& m : *Api(s).mutable_message_type()) {
      for (auto& fd : *m.mutable_field()) {
        if (fd.type_name() == ".drgate.v1.BackupType") {
          fd.set_type(pb::FieldDescriptorProto::TYPE_INT32);
          fd.clear_type_name();
        }
      }
    }
    auto* enums = Api(s).mutable_enum_type();
    for (int i = 0; i < enums->size(); ++i) {
      if (enums->Get(i).name() == "BackupType") enums->DeleteSubrange(i, 1);
    }
    Api(s).clear_service();
  });
  EXPECT_THAT(v, testing::Contains(Is("ENUM_NO_DELETE", "enum drgate.v1.BackupType was removed")));
  EXPECT_THAT(v, testing::Contains(
                     Is("SERVICE_NO_DELETE", "service drgate.v1.DrBackupService was removed")));
}

TEST(ProtoCompat, ChangedPackage) {
  // The file moved to drgate.v2 with every reference: to drgate.v1's callers all of it is gone.
  auto v = Check([](pb::FileDescriptorSet& s) {
    auto& api = Api(s);
    api.set_package("drgate.v2");
    auto fix = [](std::string* name) {
      if (name->rfind(".drgate.v1.", 0) == 0) name->replace(0, 11, ".drgate.v2.");
    };
    for (auto& m : *api.mutable_message_type()) {
      for (auto& f : *m.mutable_field()) {
        if (f.has_type_name()) fix(f.mutable_type_name());
      }
    }
    for (auto& rpc : *api.mutable_service(0)->mutable_method()) {
      fix(rpc.mutable_input_type());
      fix(rpc.mutable_output_type());
    }
  });
  EXPECT_THAT(v, testing::Contains(Is("FILE_SAME_PACKAGE",
                                      "changed package from drgate.v1 to "
                                      "drgate.v2")));
  EXPECT_THAT(v, testing::Contains(Is("MESSAGE_NO_DELETE", "message drgate.v1.Job was removed")));
  EXPECT_THAT(v, testing::Contains(
                     Is("SERVICE_NO_DELETE", "service drgate.v1.DrBackupService was removed")));
}

TEST(ProtoCompat, BaselineWithoutThePackageIsAnError) {
  pb::FileDescriptorSet baseline = Baseline();
  Result r = Compare(baseline, baseline, "drgate.v9");
  EXPECT_EQ(r.error, "baseline: no file of package drgate.v9 in the set");
}

TEST(ProtoCompat, UnbuildableSetIsAnError) {
  pb::FileDescriptorSet baseline = Baseline();
  pb::FileDescriptorSet current = baseline;
  FieldOf(current, "Job", "state").set_type_name(".drgate.v1.NoSuchEnum");
  Result r = Compare(baseline, current, "drgate.v1");
  EXPECT_THAT(r.error, HasSubstr("current: cannot build descriptors of drgate/v1/drgate.proto"));
  EXPECT_THAT(r.violations, IsEmpty());
}

}  // namespace
}  // namespace drgate::protocompat
