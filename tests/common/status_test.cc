// Tests for src/common/status.h: the value-type status and code mappings.
#include "src/common/status.h"

#include <errno.h>
#include <string.h>

#include <string>

#include <gtest/gtest.h>

namespace {

TEST(StatusTest, SetFormatsMessageAndReturnsCode) {
  trb_status_t st;
  trb_status_clear(&st);
  EXPECT_EQ(GRPC_STATUS_NOT_FOUND,
            trb_status_set(&st, GRPC_STATUS_NOT_FOUND, "topic %s/%d", "t", 7));
  EXPECT_EQ(GRPC_STATUS_NOT_FOUND, st.code);
  EXPECT_STREQ("topic t/7", st.msg);
}

TEST(StatusTest, NullStatusIsANoOp) {
  EXPECT_EQ(GRPC_STATUS_UNAVAILABLE, trb_status_set(nullptr, GRPC_STATUS_UNAVAILABLE, "x"));
  trb_status_clear(nullptr);
  trb_status_prefix(nullptr, "ctx");
}

TEST(StatusTest, ClearResetsToOk) {
  trb_status_t st;
  trb_status_set(&st, GRPC_STATUS_INTERNAL, "boom");
  trb_status_clear(&st);
  EXPECT_EQ(GRPC_STATUS_OK, st.code);
  EXPECT_STREQ("", st.msg);
}

TEST(StatusTest, LongMessageIsTruncatedAndTerminated) {
  trb_status_t st;
  std::string big(1000, 'x');
  trb_status_set(&st, GRPC_STATUS_INTERNAL, "%s", big.c_str());
  EXPECT_EQ(size_t{TRB_STATUS_MSG_MAX - 1}, strlen(st.msg));
}

TEST(StatusTest, PrefixKeepsCodeAndAddsContext) {
  trb_status_t st;
  trb_status_set(&st, GRPC_STATUS_UNAVAILABLE, "connection reset");
  trb_status_prefix(&st, "publish %s", "projects/p/topics/t");
  EXPECT_EQ(GRPC_STATUS_UNAVAILABLE, st.code);
  EXPECT_STREQ("publish projects/p/topics/t: connection reset", st.msg);
}

TEST(StatusTest, CodeNamesRoundTrip) {
  for (int c = 0; c <= 16; c++) {
    const char *name = trb_status_code_name(static_cast<grpc_status_code>(c));
    grpc_status_code parsed;
    ASSERT_TRUE(trb_status_code_parse(name, &parsed)) << name;
    EXPECT_EQ(c, static_cast<int>(parsed));
  }
  EXPECT_STREQ("UNAVAILABLE", trb_status_code_name(GRPC_STATUS_UNAVAILABLE));
  EXPECT_STREQ("UNKNOWN_CODE", trb_status_code_name(static_cast<grpc_status_code>(17)));
  EXPECT_STREQ("UNKNOWN_CODE", trb_status_code_name(static_cast<grpc_status_code>(-1)));
}

TEST(StatusTest, CodeParseIsCaseInsensitiveAndRejectsUnknown) {
  grpc_status_code c = GRPC_STATUS_OK;
  EXPECT_TRUE(trb_status_code_parse("not_found", &c));
  EXPECT_EQ(GRPC_STATUS_NOT_FOUND, c);
  EXPECT_FALSE(trb_status_code_parse("NOPE", &c));
  EXPECT_EQ(GRPC_STATUS_NOT_FOUND, c);  // untouched
}

TEST(StatusTest, FromErrnoAcceptsBothSigns) {
  EXPECT_EQ(GRPC_STATUS_OK, trb_status_from_errno(0));
  EXPECT_EQ(GRPC_STATUS_UNAVAILABLE, trb_status_from_errno(-ECONNRESET));
  EXPECT_EQ(GRPC_STATUS_UNAVAILABLE, trb_status_from_errno(EPIPE));
  EXPECT_EQ(GRPC_STATUS_DEADLINE_EXCEEDED, trb_status_from_errno(-ETIMEDOUT));
  EXPECT_EQ(GRPC_STATUS_RESOURCE_EXHAUSTED, trb_status_from_errno(ENOMEM));
  EXPECT_EQ(GRPC_STATUS_NOT_FOUND, trb_status_from_errno(ENOENT));
  EXPECT_EQ(GRPC_STATUS_ALREADY_EXISTS, trb_status_from_errno(EEXIST));
  EXPECT_EQ(GRPC_STATUS_PERMISSION_DENIED, trb_status_from_errno(EACCES));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_status_from_errno(-EINVAL));
  EXPECT_EQ(GRPC_STATUS_CANCELLED, trb_status_from_errno(ECANCELED));
  EXPECT_EQ(GRPC_STATUS_INTERNAL, trb_status_from_errno(EXDEV));
}

TEST(StatusTest, HttpCodesFollowCodeProto) {
  EXPECT_EQ(200, trb_status_http_code(GRPC_STATUS_OK));
  EXPECT_EQ(400, trb_status_http_code(GRPC_STATUS_INVALID_ARGUMENT));
  EXPECT_EQ(401, trb_status_http_code(GRPC_STATUS_UNAUTHENTICATED));
  EXPECT_EQ(403, trb_status_http_code(GRPC_STATUS_PERMISSION_DENIED));
  EXPECT_EQ(404, trb_status_http_code(GRPC_STATUS_NOT_FOUND));
  EXPECT_EQ(409, trb_status_http_code(GRPC_STATUS_ABORTED));
  EXPECT_EQ(429, trb_status_http_code(GRPC_STATUS_RESOURCE_EXHAUSTED));
  EXPECT_EQ(499, trb_status_http_code(GRPC_STATUS_CANCELLED));
  EXPECT_EQ(500, trb_status_http_code(GRPC_STATUS_DATA_LOSS));
  EXPECT_EQ(501, trb_status_http_code(GRPC_STATUS_UNIMPLEMENTED));
  EXPECT_EQ(503, trb_status_http_code(GRPC_STATUS_UNAVAILABLE));
  EXPECT_EQ(504, trb_status_http_code(GRPC_STATUS_DEADLINE_EXCEEDED));
  EXPECT_EQ(500, trb_status_http_code(static_cast<grpc_status_code>(99)));
}

}  // namespace
