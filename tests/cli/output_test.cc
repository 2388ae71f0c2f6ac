#include "tools/drgatectl/output.h"

#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace drgate::cli {
namespace {

using std::chrono::milliseconds;
using ::testing::HasSubstr;
using ::testing::Not;

v1::Job SubmittedJob() {
  v1::Job job;
  job.set_job_id("2141");
  job.set_commcell("cs1");
  job.set_task_id(433);
  job.set_backup_type(v1::BACKUP_TYPE_FULL);
  job.set_compression(false);
  job.set_state(v1::JOB_STATE_SUBMITTED);
  job.set_request_id("req-1");
  job.mutable_create_time()->set_seconds(1714557600);  // 2024-05-01T10:00:00Z
  return job;
}

grpc::Status StatusWithErrorInfo(grpc::StatusCode code, const std::string& message,
                                 const std::string& reason) {
  google::rpc::ErrorInfo info;
  info.set_reason(reason);
  info.set_domain("drgate.v1");
  (*info.mutable_metadata())["commcell"] = "x";
  google::rpc::Status details;
  details.set_code(static_cast<int>(code));
  details.set_message(message);
  details.add_details()->PackFrom(info);
  return grpc::Status(code, message, details.SerializeAsString());
}

// Exit codes.

TEST(ExitCodeForTest, OkIsSuccess) {
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::OK), 0);
}

TEST(ExitCodeForTest, RefusedRequestsExitThree) {
  for (grpc::StatusCode code : {grpc::StatusCode::INVALID_ARGUMENT, grpc::StatusCode::NOT_FOUND,
                                grpc::StatusCode::FAILED_PRECONDITION, grpc::StatusCode::ABORTED,
                                grpc::StatusCode::PERMISSION_DENIED,
                                grpc::StatusCode::UNAUTHENTICATED, grpc::StatusCode::ALREADY_EXISTS,
                                grpc::StatusCode::OUT_OF_RANGE, grpc::StatusCode::UNIMPLEMENTED}) {
    EXPECT_EQ(ExitCodeFor(code), 3) << StatusCodeName(code);
  }
}

TEST(ExitCodeForTest, UnavailableServerExitsFour) {
  for (grpc::StatusCode code :
       {grpc::StatusCode::UNAVAILABLE, grpc::StatusCode::DEADLINE_EXCEEDED,
        grpc::StatusCode::INTERNAL, grpc::StatusCode::UNKNOWN, grpc::StatusCode::RESOURCE_EXHAUSTED,
        grpc::StatusCode::CANCELLED, grpc::StatusCode::DATA_LOSS}) {
    EXPECT_EQ(ExitCodeFor(code), 4) << StatusCodeName(code);
  }
}

TEST(ExitCodeForTest, CodeOutsideTheEnumExitsFour) {
  EXPECT_EQ(ExitCodeFor(static_cast<grpc::StatusCode>(42)), 4);
}

TEST(ExitCodeForJobStateTest, SucceededIsSuccess) {
  EXPECT_EQ(ExitCodeForJobState(v1::JOB_STATE_SUCCEEDED), 0);
}

TEST(ExitCodeForJobStateTest, FailedAndUnknownExitOne) {
  EXPECT_EQ(ExitCodeForJobState(v1::JOB_STATE_FAILED), 1);
  EXPECT_EQ(ExitCodeForJobState(v1::JOB_STATE_UNKNOWN), 1);
}

TEST(ExitCodeForJobStateTest, SucceededWithErrorsExitsSix) {
  EXPECT_EQ(ExitCodeForJobState(v1::JOB_STATE_SUCCEEDED_WITH_ERRORS), 6);
}

TEST(ExitCodeForJobStateTest, KilledExitsSeven) {
  EXPECT_EQ(ExitCodeForJobState(v1::JOB_STATE_KILLED), 7);
}

// Runbooks branch on the code: every outcome of a wait, and every class of call failure, must
// have its own.
TEST(ExitCodeTest, EveryOutcomeHasItsOwnCode) {
  std::set<int> codes = {
      ExitCodeForJobState(v1::JOB_STATE_SUCCEEDED),
      ExitCodeForJobState(v1::JOB_STATE_FAILED),
      kExitUsage,
      ExitCodeFor(grpc::StatusCode::NOT_FOUND),
      ExitCodeFor(grpc::StatusCode::UNAVAILABLE),
      kExitWaitTimeout,
      ExitCodeForJobState(v1::JOB_STATE_SUCCEEDED_WITH_ERRORS),
      ExitCodeForJobState(v1::JOB_STATE_KILLED),
  };
  EXPECT_EQ(codes, (std::set<int>{0, 1, 2, 3, 4, 5, 6, 7}));
}

TEST(IsTerminalTest, OnlyFinishedStatesAreTerminal) {
  EXPECT_FALSE(IsTerminal(v1::JOB_STATE_UNSPECIFIED));
  EXPECT_FALSE(IsTerminal(v1::JOB_STATE_SUBMITTED));
  EXPECT_FALSE(IsTerminal(v1::JOB_STATE_QUEUED));
  EXPECT_FALSE(IsTerminal(v1::JOB_STATE_RUNNING));
  EXPECT_FALSE(IsTerminal(v1::JOB_STATE_SUSPENDED));
  EXPECT_TRUE(IsTerminal(v1::JOB_STATE_SUCCEEDED));
  EXPECT_TRUE(IsTerminal(v1::JOB_STATE_SUCCEEDED_WITH_ERRORS));
  EXPECT_TRUE(IsTerminal(v1::JOB_STATE_FAILED));
  EXPECT_TRUE(IsTerminal(v1::JOB_STATE_KILLED));
  EXPECT_TRUE(IsTerminal(v1::JOB_STATE_UNKNOWN));
}

TEST(IsRetryableWhileWaitingTest, OnlyTransientCodesAreRetried) {
  EXPECT_TRUE(IsRetryableWhileWaiting(grpc::StatusCode::UNAVAILABLE));
  EXPECT_TRUE(IsRetryableWhileWaiting(grpc::StatusCode::DEADLINE_EXCEEDED));
  EXPECT_TRUE(IsRetryableWhileWaiting(grpc::StatusCode::RESOURCE_EXHAUSTED));
  EXPECT_FALSE(IsRetryableWhileWaiting(grpc::StatusCode::NOT_FOUND));
  EXPECT_FALSE(IsRetryableWhileWaiting(grpc::StatusCode::INTERNAL));
  EXPECT_FALSE(IsRetryableWhileWaiting(grpc::StatusCode::UNAUTHENTICATED));
}

TEST(StatusCodeNameTest, NamesCanonicalCodes) {
  EXPECT_EQ(StatusCodeName(grpc::StatusCode::NOT_FOUND), "NOT_FOUND");
  EXPECT_EQ(StatusCodeName(grpc::StatusCode::DEADLINE_EXCEEDED), "DEADLINE_EXCEEDED");
  EXPECT_EQ(StatusCodeName(grpc::StatusCode::UNAUTHENTICATED), "UNAUTHENTICATED");
  EXPECT_EQ(StatusCodeName(static_cast<grpc::StatusCode>(42)), "CODE_42");
}

// Durations.

TEST(ParseDurationTest, ReadsEveryUnit) {
  EXPECT_EQ(ParseDuration("500ms"), milliseconds(500));
  EXPECT_EQ(ParseDuration("30s"), milliseconds(30'000));
  EXPECT_EQ(ParseDuration("5m"), milliseconds(300'000));
  EXPECT_EQ(ParseDuration("4h"), milliseconds(14'400'000));
  EXPECT_EQ(ParseDuration("2d"), milliseconds(172'800'000));
  EXPECT_EQ(ParseDuration("0s"), milliseconds(0));
}

TEST(ParseDurationTest, SumsCompoundValues) {
  EXPECT_EQ(ParseDuration("1h30m"), milliseconds(5'400'000));
  EXPECT_EQ(ParseDuration("1m500ms"), milliseconds(60'500));
}

TEST(ParseDurationTest, RejectsMalformedValues) {
  for (const char* text :
       {"", "30", "s", "-5s", "1.5h", "30sec", "5 m", " 5m", "5m ", "5M", "h1", "1h30"}) {
    EXPECT_EQ(ParseDuration(text), std::nullopt) << '"' << text << '"';
  }
}

TEST(ParseDurationTest, RejectsOverflow) {
  EXPECT_EQ(ParseDuration("99999999999999999999s"), std::nullopt);
  EXPECT_EQ(ParseDuration("9223372036854775807d"), std::nullopt);
  EXPECT_EQ(ParseDuration("9223372036854775807ms1ms"), std::nullopt);
}

TEST(FormatDurationTest, PrintsWhatParseDurationReads) {
  EXPECT_EQ(FormatDuration(milliseconds(0)), "0s");
  EXPECT_EQ(FormatDuration(milliseconds(500)), "500ms");
  EXPECT_EQ(FormatDuration(milliseconds(30'000)), "30s");
  EXPECT_EQ(FormatDuration(milliseconds(5'400'000)), "1h30m");
  EXPECT_EQ(FormatDuration(milliseconds(86'400'000 + 1)), "1d1ms");
  for (const char* text : {"500ms", "4h", "1h30m", "2d3h4m5s6ms"}) {
    EXPECT_EQ(FormatDuration(*ParseDuration(text)), text);
  }
}

// Enums.

TEST(ParseJobStateTest, ReadsLowerCaseNames) {
  EXPECT_EQ(ParseJobState("running"), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(ParseJobState("succeeded"), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(ParseJobState("succeeded_with_errors"), v1::JOB_STATE_SUCCEEDED_WITH_ERRORS);
  EXPECT_EQ(ParseJobState("succeeded-with-errors"), v1::JOB_STATE_SUCCEEDED_WITH_ERRORS);
  EXPECT_EQ(ParseJobState("FAILED"), v1::JOB_STATE_FAILED);
  EXPECT_EQ(ParseJobState("unknown"), v1::JOB_STATE_UNKNOWN);
}

TEST(ParseJobStateTest, RejectsUnspecifiedAndUnknownWords) {
  EXPECT_EQ(ParseJobState(""), std::nullopt);
  EXPECT_EQ(ParseJobState("unspecified"), std::nullopt);
  EXPECT_EQ(ParseJobState("done"), std::nullopt);
  EXPECT_EQ(ParseJobState("JOB_STATE_RUNNING"), std::nullopt);
}

TEST(ParseBackupTypeTest, ReadsFullAndDifferential) {
  EXPECT_EQ(ParseBackupType("full"), v1::BACKUP_TYPE_FULL);
  EXPECT_EQ(ParseBackupType("differential"), v1::BACKUP_TYPE_DIFFERENTIAL);
  EXPECT_EQ(ParseBackupType("incremental"), std::nullopt);
}

TEST(EnumNameTest, StripsPrefixes) {
  EXPECT_EQ(JobStateName(v1::JOB_STATE_SUCCEEDED_WITH_ERRORS), "SUCCEEDED_WITH_ERRORS");
  EXPECT_EQ(JobStateName(static_cast<v1::JobState>(77)), "STATE_77");
  EXPECT_EQ(BackupTypeName(v1::BACKUP_TYPE_DIFFERENTIAL), "differential");
  EXPECT_EQ(BackupTypeName(v1::BACKUP_TYPE_UNSPECIFIED), "unspecified");
}

// Timestamps and ids.

TEST(FormatTimestampTest, PrintsUtcSeconds) {
  google::protobuf::Timestamp ts;
  ts.set_seconds(1714560005);
  ts.set_nanos(999'000'000);
  EXPECT_EQ(FormatTimestamp(ts), "2024-05-01T10:40:05Z");
}

TEST(FormatTimestampTest, UnsetIsDash) {
  EXPECT_EQ(FormatTimestamp(google::protobuf::Timestamp()), "-");
}

TEST(FormatUuidV4Test, SetsVersionAndVariantBits) {
  std::array<std::uint8_t, 16> zeros{};
  EXPECT_EQ(FormatUuidV4(zeros), "00000000-0000-4000-8000-000000000000");
  std::array<std::uint8_t, 16> ones;
  ones.fill(0xff);
  EXPECT_EQ(FormatUuidV4(ones), "ffffffff-ffff-4fff-bfff-ffffffffffff");
}

// Errors.

TEST(ParseRpcErrorTest, ReadsErrorInfoFromDetails) {
  RpcError error = ParseRpcError(StatusWithErrorInfo(
      grpc::StatusCode::NOT_FOUND, "commcell \"x\" is not configured", "COMMCELL_NOT_FOUND"));
  EXPECT_EQ(error.code, grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(error.message, "commcell \"x\" is not configured");
  EXPECT_EQ(error.reason, "COMMCELL_NOT_FOUND");
  EXPECT_EQ(error.domain, "drgate.v1");
  EXPECT_EQ(error.metadata, (std::map<std::string, std::string>{{"commcell", "x"}}));
}

TEST(ParseRpcErrorTest, SkipsOtherDetailTypes) {
  google::rpc::Status details;
  google::rpc::RetryInfo retry;
  retry.mutable_retry_delay()->set_seconds(5);
  details.add_details()->PackFrom(retry);
  google::rpc::ErrorInfo info;
  info.set_reason("UPSTREAM_UNAVAILABLE");
  details.add_details()->PackFrom(info);
  RpcError error = ParseRpcError(
      grpc::Status(grpc::StatusCode::UNAVAILABLE, "down", details.SerializeAsString()));
  EXPECT_EQ(error.reason, "UPSTREAM_UNAVAILABLE");
}

TEST(ParseRpcErrorTest, NoDetailsLeavesReasonEmpty) {
  RpcError error = ParseRpcError(grpc::Status(grpc::StatusCode::UNAVAILABLE, "connect failed"));
  EXPECT_EQ(error.code, grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(error.message, "connect failed");
  EXPECT_EQ(error.reason, "");
  EXPECT_TRUE(error.metadata.empty());
}

TEST(ParseRpcErrorTest, GarbageDetailsAreIgnored) {
  RpcError error =
      ParseRpcError(grpc::Status(grpc::StatusCode::INTERNAL, "boom", std::string("\xff\xff\x01")));
  EXPECT_EQ(error.code, grpc::StatusCode::INTERNAL);
  EXPECT_EQ(error.message, "boom");
  EXPECT_EQ(error.reason, "");
}

TEST(RenderErrorHumanTest, NamesMethodCodeMessageAndReason) {
  RpcError error = ParseRpcError(StatusWithErrorInfo(
      grpc::StatusCode::NOT_FOUND, "commcell \"x\" is not configured", "COMMCELL_NOT_FOUND"));
  EXPECT_EQ(RenderErrorHuman("TriggerBackup", error),
            "drgatectl: TriggerBackup failed: NOT_FOUND: commcell \"x\" is not configured "
            "(reason COMMCELL_NOT_FOUND)");
}

TEST(RenderErrorHumanTest, OmitsMissingReason) {
  RpcError error = ParseRpcError(grpc::Status(grpc::StatusCode::UNAVAILABLE, "connect failed"));
  EXPECT_EQ(RenderErrorHuman("GetJob", error),
            "drgatectl: GetJob failed: UNAVAILABLE: connect failed");
}

TEST(ErrorToJsonTest, HasCodeMessageReasonMetadata) {
  RpcError error = ParseRpcError(StatusWithErrorInfo(
      grpc::StatusCode::NOT_FOUND, "commcell \"x\" is not configured", "COMMCELL_NOT_FOUND"));
  EXPECT_EQ(ErrorToJson(error).dump(),
            R"({"code":"NOT_FOUND","message":"commcell \"x\" is not configured",)"
            R"("reason":"COMMCELL_NOT_FOUND","metadata":{"commcell":"x"}})");
}

TEST(ErrorToJsonTest, KeysPresentWithoutErrorInfo) {
  RpcError error = ParseRpcError(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down"));
  EXPECT_EQ(ErrorToJson(error).dump(),
            R"({"code":"UNAVAILABLE","message":"down","reason":"","metadata":{}})");
}

// JSON mapping.

TEST(MessageToJsonTest, UsesProtoFieldNamesEnumNamesAndRfc3339) {
  nlohmann::ordered_json json = MessageToJson(SubmittedJob());
  EXPECT_EQ(json["job_id"], "2141");
  EXPECT_EQ(json["commcell"], "cs1");
  EXPECT_EQ(json["task_id"], "433");  // int64 is a string in protobuf's JSON mapping.
  EXPECT_EQ(json["backup_type"], "BACKUP_TYPE_FULL");
  EXPECT_EQ(json["state"], "JOB_STATE_SUBMITTED");
  EXPECT_EQ(json["create_time"], "2024-05-01T10:00:00Z");
  EXPECT_FALSE(json.contains("jobId"));
}

TEST(MessageToJsonTest, PrintsDefaultScalarsButNotUnsetTimestamps) {
  nlohmann::ordered_json json = MessageToJson(SubmittedJob());
  EXPECT_EQ(json["compression"], false);
  EXPECT_EQ(json["percent_complete"], 0);
  EXPECT_EQ(json["failure_reason"], "");
  EXPECT_FALSE(json.contains("end_time"));
}

TEST(MessageToJsonTest, TriggerResponseHasJobAndDeduplicated) {
  v1::TriggerBackupResponse response;
  *response.mutable_job() = SubmittedJob();
  nlohmann::ordered_json json = MessageToJson(response);
  EXPECT_EQ(json["deduplicated"], false);
  EXPECT_EQ(json["job"]["job_id"], "2141");
  EXPECT_EQ(json.begin().key(), "job");
}

TEST(MessageToJsonTest, EmptyListHasJobsAndToken) {
  EXPECT_EQ(MessageToJson(v1::ListJobsResponse()).dump(), R"({"jobs":[],"next_page_token":""})");
}

// Human rendering.

TEST(RenderJobSummaryTest, MatchesDocumentedLine) {
  EXPECT_EQ(RenderJobSummary(SubmittedJob()),
            "job 2141 on cs1: SUBMITTED (full, compression off) task 433");
}

TEST(RenderJobSummaryTest, RunningShowsPercent) {
  v1::Job job = SubmittedJob();
  job.set_state(v1::JOB_STATE_RUNNING);
  job.set_percent_complete(42);
  job.set_compression(true);
  EXPECT_EQ(RenderJobSummary(job), "job 2141 on cs1: RUNNING 42% (full, compression on) task 433");
}

TEST(RenderJobSummaryTest, FailedShowsReason) {
  v1::Job job = SubmittedJob();
  job.set_state(v1::JOB_STATE_FAILED);
  job.set_percent_complete(80);
  job.set_failure_reason("media agent offline");
  EXPECT_EQ(RenderJobSummary(job),
            "job 2141 on cs1: FAILED (full, compression off) task 433: media agent offline");
}

TEST(RenderTriggerResponseTest, SaysWhenDeduplicated) {
  v1::TriggerBackupResponse response;
  *response.mutable_job() = SubmittedJob();
  EXPECT_THAT(RenderTriggerResponse(response), Not(HasSubstr("deduplicated")));
  response.set_deduplicated(true);
  EXPECT_EQ(RenderTriggerResponse(response),
            "job 2141 on cs1: SUBMITTED (full, compression off) task 433\n"
            "deduplicated: answered with an earlier job\n");
}

TEST(RenderJobDetailTest, ListsFieldsWithAlignedValues) {
  std::string detail = RenderJobDetail(SubmittedJob());
  EXPECT_THAT(detail, HasSubstr("job:              2141\n"));
  EXPECT_THAT(detail, HasSubstr("state:            SUBMITTED\n"));
  EXPECT_THAT(detail, HasSubstr("created:          2024-05-01T10:00:00Z\n"));
  EXPECT_THAT(detail, HasSubstr("ended:            -\n"));
  EXPECT_THAT(detail, Not(HasSubstr("failure reason")));
}

TEST(RenderJobTableTest, PrintsHeaderRowsAndNextPage) {
  v1::ListJobsResponse response;
  *response.add_jobs() = SubmittedJob();
  response.set_next_page_token("abc");
  v1::Job scheduled = SubmittedJob();
  scheduled.set_job_id("2100");
  scheduled.set_origin(v1::JOB_ORIGIN_COMMSERV);
  *response.add_jobs() = scheduled;
  response.mutable_jobs(0)->set_origin(v1::JOB_ORIGIN_DRGATE);
  EXPECT_EQ(RenderJobTable(response),
            "JOB   COMMCELL  TYPE  ORIGIN    STATE      PCT  CREATED               ENDED  FAILURE\n"
            "2141  cs1       full  drgate    SUBMITTED  0%   2024-05-01T10:00:00Z  -\n"
            "2100  cs1       full  commserv  SUBMITTED  0%   2024-05-01T10:00:00Z  -\n"
            "more jobs: --page-token abc (or --all)\n");
}

TEST(ParseJobOriginTest, ReadsBothOriginsOnly) {
  EXPECT_EQ(ParseJobOrigin("drgate"), v1::JOB_ORIGIN_DRGATE);
  EXPECT_EQ(ParseJobOrigin("CommServ"), v1::JOB_ORIGIN_COMMSERV);
  EXPECT_EQ(ParseJobOrigin("any"), std::nullopt);
  EXPECT_EQ(ParseJobOrigin(""), std::nullopt);
  EXPECT_EQ(JobOriginName(v1::JOB_ORIGIN_UNSPECIFIED), "-");
}

namespace {

v1::Job FinishedJob(const std::string& id, v1::BackupType type, v1::JobState state,
                    v1::JobOrigin origin, int64_t end) {
  v1::Job job = SubmittedJob();
  job.set_job_id(id);
  job.set_backup_type(type);
  job.set_state(state);
  job.set_origin(origin);
  job.mutable_end_time()->set_seconds(end);
  job.mutable_update_time()->set_seconds(end);
  return job;
}

}  // namespace

TEST(StatusTest, OneLinePerCommCellWithLastSuccessesRunningFailureAndOptions) {
  constexpr int64_t kNow = 1714557600;
  v1::ListCommCellsResponse cells;
  v1::CommCell* cs1 = cells.add_commcells();
  cs1->set_name("cs1");
  cs1->set_reachable(true);
  cs1->mutable_dr_backup_options()->set_retained_fulls(5);
  cs1->mutable_dr_backup_options()->set_destination("C:\\DR");
  v1::CommCell* cs2 = cells.add_commcells();
  cs2->set_name("cs2");

  v1::ListJobsResponse jobs1;
  *jobs1.add_jobs() = FinishedJob("10", v1::BACKUP_TYPE_FULL, v1::JOB_STATE_SUCCEEDED,
                                  v1::JOB_ORIGIN_DRGATE, kNow - 3 * 86400);
  *jobs1.add_jobs() = FinishedJob("11", v1::BACKUP_TYPE_FULL, v1::JOB_STATE_SUCCEEDED_WITH_ERRORS,
                                  v1::JOB_ORIGIN_COMMSERV, kNow - 3 * 3600);
  *jobs1.add_jobs() = FinishedJob("12", v1::BACKUP_TYPE_DIFFERENTIAL, v1::JOB_STATE_FAILED,
                                  v1::JOB_ORIGIN_COMMSERV, kNow - 2 * 86400);
  jobs1.mutable_jobs(2)->set_failure_reason("disk full");
  v1::Job running = SubmittedJob();
  running.set_job_id("13");
  running.set_state(v1::JOB_STATE_RUNNING);
  running.set_origin(v1::JOB_ORIGIN_DRGATE);
  *jobs1.add_jobs() = running;

  std::vector<CommCellStatus> rows = {BuildCommCellStatus(*cs1, jobs1.jobs()),
                                      BuildCommCellStatus(*cs2, v1::ListJobsResponse().jobs())};
  ASSERT_NE(rows[0].last_full, nullptr);
  EXPECT_EQ(rows[0].last_full->job_id(), "11");
  EXPECT_EQ(rows[0].offsite, false);
  EXPECT_EQ(rows[1].offsite, std::nullopt);
  google::protobuf::Timestamp now;
  now.set_seconds(kNow);
  EXPECT_EQ(RenderStatus(rows, now),
            "COMMCELL  REACHABLE  LAST FULL          LAST DIFFERENTIAL  RUNNING           "
            "LAST FAILURE                  RETAINED FULLS  OFFSITE\n"
            "cs1       yes        3h ago (commserv)  none               13 full (drgate)  "
            "2d ago (commserv: disk full)  5               no\n"
            "cs2       no         none               none               -                 "
            "none                          unknown         unknown\n");

  const nlohmann::ordered_json json = StatusToJson(rows, now);
  EXPECT_EQ(json[0]["last_full"]["job_id"], "11");
  EXPECT_EQ(json[0]["last_full"]["origin"], "commserv");
  EXPECT_EQ(json[0]["last_full"]["age_seconds"], 3 * 3600);
  EXPECT_EQ(json[0]["last_differential"], nullptr);
  EXPECT_EQ(json[0]["running"][0]["job_id"], "13");
  EXPECT_EQ(json[0]["last_failure"]["failure_reason"], "disk full");
  EXPECT_EQ(json[0]["retained_fulls"], 5);
  EXPECT_EQ(json[0]["offsite"], false);
  EXPECT_EQ(json[1]["retained_fulls"], nullptr);
  EXPECT_EQ(json[1]["offsite"], nullptr);
}

TEST(RenderJobTableTest, EmptyListSaysSo) {
  EXPECT_EQ(RenderJobTable(v1::ListJobsResponse()), "no jobs\n");
}

TEST(RenderCommCellTableTest, ShowsReachability) {
  v1::ListCommCellsResponse response;
  v1::CommCell* cs1 = response.add_commcells();
  cs1->set_name("cs1");
  cs1->set_url("https://cs1/webconsole/api");
  cs1->set_reachable(true);
  cs1->mutable_last_contact_time()->set_seconds(1714557600);
  v1::CommCell* cs2 = response.add_commcells();
  cs2->set_name("cs2");
  cs2->set_url("https://cs2/webconsole/api");
  cs2->set_last_error("connect: connection refused");
  EXPECT_EQ(RenderCommCellTable(response),
            "NAME  REACHABLE  LAST CONTACT          URL                         LAST ERROR\n"
            "cs1   yes        2024-05-01T10:00:00Z  https://cs1/webconsole/api\n"
            "cs2   no         -                     https://cs2/webconsole/api  connect: "
            "connection refused\n");
  EXPECT_EQ(RenderCommCellTable(v1::ListCommCellsResponse()), "no commcells configured\n");
}

TEST(RenderProgressTest, FirstStateIsPrinted) {
  EXPECT_EQ(RenderProgress(nullptr, SubmittedJob()),
            "job 2141 on cs1: SUBMITTED (full, compression off) task 433");
}

TEST(RenderProgressTest, UnchangedJobPrintsNothing) {
  v1::Job previous = SubmittedJob();
  v1::Job current = previous;
  current.mutable_update_time()->set_seconds(1714557700);
  EXPECT_EQ(RenderProgress(&previous, current), std::nullopt);
}

TEST(RenderProgressTest, PercentChangeIsPrinted) {
  v1::Job previous = SubmittedJob();
  previous.set_state(v1::JOB_STATE_RUNNING);
  previous.set_percent_complete(10);
  v1::Job current = previous;
  current.set_percent_complete(20);
  current.set_commserv_status("Running");
  EXPECT_EQ(RenderProgress(&previous, current),
            "job 2141 on cs1: RUNNING 20% (full, compression off) task 433 [Running]");
}

TEST(RenderProgressBarTest, MatchesDocumentedLine) {
  v1::Job job = SubmittedJob();
  job.set_state(v1::JOB_STATE_RUNNING);
  job.set_percent_complete(45);
  EXPECT_EQ(RenderProgressBar(job, 20, milliseconds(72'000)),
            "[#########-----------]  45%  RUNNING  job 2141 on cs1  (1m12s)");
}

TEST(RenderProgressBarTest, EmptyAtStart) {
  EXPECT_EQ(RenderProgressBar(SubmittedJob(), 10, milliseconds(0)),
            "[----------]   0%  SUBMITTED  job 2141 on cs1  (0s)");
}

TEST(RenderProgressBarTest, SucceededIsFullWhateverThePercent) {
  v1::Job job = SubmittedJob();
  job.set_state(v1::JOB_STATE_SUCCEEDED_WITH_ERRORS);
  job.set_percent_complete(97);
  EXPECT_EQ(RenderProgressBar(job, 10, milliseconds(5'000)),
            "[##########] 100%  SUCCEEDED_WITH_ERRORS  job 2141 on cs1  (5s)");
}

TEST(RenderProgressBarTest, FailedKeepsItsProgress) {
  v1::Job job = SubmittedJob();
  job.set_state(v1::JOB_STATE_FAILED);
  job.set_percent_complete(50);
  job.set_failure_reason("media agent offline");
  EXPECT_EQ(RenderProgressBar(job, 4, milliseconds(1'000)),
            "[##--]  50%  FAILED  job 2141 on cs1  (1s)");
}

TEST(RenderProgressBarTest, ClampsPercentAndWidth) {
  v1::Job job = SubmittedJob();
  job.set_state(v1::JOB_STATE_RUNNING);
  job.set_percent_complete(250);
  EXPECT_THAT(RenderProgressBar(job, 4, milliseconds(0)), ::testing::StartsWith("[####] 100%"));
  job.set_percent_complete(-3);
  EXPECT_THAT(RenderProgressBar(job, 4, milliseconds(0)), ::testing::StartsWith("[----]   0%"));
  EXPECT_THAT(RenderProgressBar(job, -1, milliseconds(0)), ::testing::StartsWith("[]   0%"));
}

TEST(RenderProgressBarTest, OmitsMissingCommCell) {
  v1::Job job = SubmittedJob();
  job.clear_commcell();
  EXPECT_EQ(RenderProgressBar(job, 2, milliseconds(0)), "[--]   0%  SUBMITTED  job 2141  (0s)");
}

TEST(RenderProgressBarTest, ElapsedKeepsItsWidthPerUnit) {
  v1::Job job = SubmittedJob();
  EXPECT_THAT(RenderProgressBar(job, 0, milliseconds(59'999)), ::testing::EndsWith("(59s)"));
  EXPECT_THAT(RenderProgressBar(job, 0, milliseconds(65'000)), ::testing::EndsWith("(1m05s)"));
  EXPECT_THAT(RenderProgressBar(job, 0, milliseconds(3'600'000 + 2 * 60'000 + 3'000)),
              ::testing::EndsWith("(1h02m03s)"));
  EXPECT_THAT(RenderProgressBar(job, 0, milliseconds(-5'000)), ::testing::EndsWith("(0s)"));
}

}  // namespace
}  // namespace drgate::cli
