// The one list of reasons: wire names, and the predicates the code branches on.
#include "core/common/reason.h"

#include <gtest/gtest.h>

#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

#include "core/common/status.h"

namespace drgate {
namespace {

TEST(ReasonTest, EveryReasonHasAnUpperSnakeNameAndOnlyTheTlsPairShareOne) {
  std::set<std::string> names;
  for (int i = 1; i <= static_cast<int>(kLastReason); ++i) {
    const Reason r = static_cast<Reason>(i);
    const std::string& name = ReasonName(r);
    ASSERT_FALSE(name.empty()) << i;
    for (char c : name) {
      EXPECT_TRUE(std::isupper(static_cast<unsigned char>(c)) || std::isdigit(c) || c == '_')
          << name;
    }
    // Braces: EXPECT_TRUE expands to an if/else of its own.
    if (r != Reason::kUpstreamCertificateRejected) {
      EXPECT_TRUE(names.insert(name).second) << name;
    }
  }
  EXPECT_EQ(ReasonName(Reason::kNone), "");
  EXPECT_EQ(ReasonName(Reason::kLeaseLost), "LEASE_LOST");
  EXPECT_EQ(ReasonName(Reason::kUpstreamTimeout), "UPSTREAM_TIMEOUT");
  // On the wire a refused certificate is a TLS error like any other.
  EXPECT_EQ(ReasonName(Reason::kUpstreamCertificateRejected), "UPSTREAM_TLS_ERROR");
}

// A reason added to the list is documented in the same change: docs/api.md, or docs/security.md
// for the refusals of the gRPC edge, names each one (as `NAME`).
TEST(ReasonTest, EveryReasonIsDocumentedInApiOrSecurity) {
  std::string docs;
  for (const char* page : {"/docs/api.md", "/docs/security.md"}) {
    std::ifstream in(std::string(DRGATE_SOURCE_DIR) + page);
    ASSERT_TRUE(in) << page;
    std::ostringstream text;
    text << in.rdbuf();
    docs += text.str();
  }
  for (int i = 1; i <= static_cast<int>(kLastReason); ++i) {
    const std::string& name = ReasonName(static_cast<Reason>(i));
    EXPECT_NE(docs.find("`" + name + "`"), std::string::npos) << name << " is not documented";
  }
}

TEST(ReasonTest, PredicatesAreWhatTheSessionAndOrchestratorBranchOn) {
  EXPECT_TRUE(IsUpstreamFailure(Reason::kUpstreamUnreachable));
  EXPECT_TRUE(IsUpstreamFailure(Reason::kUpstreamTimeout));
  EXPECT_TRUE(IsUpstreamFailure(Reason::kUpstreamTlsError));
  EXPECT_TRUE(IsUpstreamFailure(Reason::kUpstreamCertificateRejected));
  EXPECT_FALSE(IsUpstreamFailure(Reason::kUpstreamHttp5xx));  // an answer, counted by status

  EXPECT_TRUE(IsLocalFastFailure(Reason::kCircuitOpen));
  EXPECT_TRUE(IsLocalFastFailure(Reason::kUpstreamQueueFull));
  EXPECT_TRUE(IsLocalFastFailure(Reason::kDeadlineExceeded));
  EXPECT_FALSE(IsLocalFastFailure(Reason::kUpstreamTimeout));

  EXPECT_TRUE(IsAuthFailure(Reason::kUpstreamAuthFailed));
  EXPECT_TRUE(IsAuthFailure(Reason::kUpstreamLoginFailed));
  EXPECT_FALSE(IsAuthFailure(Reason::kUpstreamRenewFailed));

  EXPECT_TRUE(IsNeverRetried(Reason::kUpstreamResponseTooLarge));
  EXPECT_TRUE(IsNeverRetried(Reason::kUpstreamCertificateRejected));
  EXPECT_FALSE(IsNeverRetried(Reason::kUpstreamTlsError));

  EXPECT_TRUE(IsRefusedByCommServe(Reason::kUpstreamRejected));
  EXPECT_TRUE(IsRefusedByCommServe(Reason::kDrJobAlreadyRunning));
  EXPECT_FALSE(IsRefusedByCommServe(Reason::kUpstreamHttp4xx));
}

TEST(ReasonTest, TriggerFailureLabelsGroupReasonsAsTheMetricDocuments) {
  EXPECT_STREQ(TriggerFailureLabel(Reason::kCircuitOpen), "unreachable");
  EXPECT_STREQ(TriggerFailureLabel(Reason::kUpstreamCertificateRejected), "tls");
  EXPECT_STREQ(TriggerFailureLabel(Reason::kUpstreamRenewFailed), "authentication");
  EXPECT_STREQ(TriggerFailureLabel(Reason::kUpstreamHttp4xx), "upstream_error");
  EXPECT_STREQ(TriggerFailureLabel(Reason::kRegistrySchemaTooNew), "registry");
  EXPECT_STREQ(TriggerFailureLabel(Reason::kUpstreamQueueFull), "overloaded");
  EXPECT_STREQ(TriggerFailureLabel(Reason::kCommCellNotFound), "other");
}

TEST(ReasonTest, AStatusCarriesItsReasonAndPrintsItsName) {
  const Status s = Unavailable("connect: refused", Reason::kUpstreamUnreachable);
  EXPECT_EQ(s.reason(), Reason::kUpstreamUnreachable);
  EXPECT_EQ(s.reason(), "UPSTREAM_UNREACHABLE");  // compared with the wire name
  EXPECT_EQ(s.ToString(), "UNAVAILABLE [UPSTREAM_UNREACHABLE]: connect: refused");
  std::ostringstream out;
  out << Status().reason();
  EXPECT_EQ(out.str(), "(no reason)");
}

}  // namespace
}  // namespace drgate
