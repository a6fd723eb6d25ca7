// default_expr_test.cc — column default value expressions: accepted
// literals per column type, canonical text, rejections, function eval.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "src/bigquery/default_expr.h"
#include "src/bigquery/values.h"

namespace {

trb_bq_field_t Col(trb_bq_type_t t, trb_bq_mode_t m = TRB_BQ_MODE_NULLABLE,
                   int64_t max_length = 0) {
  trb_bq_field_t f{};
  f.name = (char*)"c";
  f.type = t;
  f.mode = m;
  f.max_length = max_length;
  return f;
}

TEST(DefaultExprTest, AcceptsLiteralsThatSuitTheColumn) {
  struct Case {
    const char* expr;
    trb_bq_field_t f;
    trb_bq_default_kind_t kind;
    const char* text;  // canonical text for TEXT
    int64_t i;
  } cases[] = {
      {"NULL", Col(TRB_BQ_TYPE_STRING), TRB_BQ_DEFAULT_NULL, nullptr, 0},
      {" null ", Col(TRB_BQ_TYPE_INT64), TRB_BQ_DEFAULT_NULL, nullptr, 0},
      {"TRUE", Col(TRB_BQ_TYPE_BOOL), TRB_BQ_DEFAULT_INT, nullptr, 1},
      {"false", Col(TRB_BQ_TYPE_BOOL), TRB_BQ_DEFAULT_INT, nullptr, 0},
      {"-42", Col(TRB_BQ_TYPE_INT64), TRB_BQ_DEFAULT_INT, nullptr, -42},
      {"9223372036854775807", Col(TRB_BQ_TYPE_INT64), TRB_BQ_DEFAULT_INT, nullptr,
       INT64_MAX},
      {"1.50", Col(TRB_BQ_TYPE_NUMERIC), TRB_BQ_DEFAULT_TEXT, "1.5", 0},
      {"2e3", Col(TRB_BQ_TYPE_BIGNUMERIC), TRB_BQ_DEFAULT_TEXT, "2000", 0},
      {"'it\\'s'", Col(TRB_BQ_TYPE_STRING), TRB_BQ_DEFAULT_TEXT, "it's", 0},
      {"\"abc\"", Col(TRB_BQ_TYPE_STRING, TRB_BQ_MODE_REQUIRED, 3), TRB_BQ_DEFAULT_TEXT,
       "abc", 0},
      {"''", Col(TRB_BQ_TYPE_STRING), TRB_BQ_DEFAULT_TEXT, "", 0},
      {"'2024-02-29'", Col(TRB_BQ_TYPE_DATE), TRB_BQ_DEFAULT_TEXT, "2024-02-29", 0},
      {"'2024-01-02 03:04:05'", Col(TRB_BQ_TYPE_DATETIME), TRB_BQ_DEFAULT_TEXT,
       "2024-01-02T03:04:05", 0},
      {"'12:30:00.5'", Col(TRB_BQ_TYPE_TIME), TRB_BQ_DEFAULT_TEXT, "12:30:00.500000", 0},
      {"'2024-01-02T03:04:05+01:00'", Col(TRB_BQ_TYPE_TIMESTAMP), TRB_BQ_DEFAULT_TEXT,
       "2024-01-02T02:04:05.000000Z", 0},
      {"current_timestamp()", Col(TRB_BQ_TYPE_TIMESTAMP), TRB_BQ_DEFAULT_CURRENT_TIMESTAMP,
       nullptr, 0},
      {"CURRENT_DATE( )", Col(TRB_BQ_TYPE_DATE), TRB_BQ_DEFAULT_CURRENT_DATE, nullptr, 0},
      {"CURRENT_DATETIME()", Col(TRB_BQ_TYPE_DATETIME), TRB_BQ_DEFAULT_CURRENT_DATETIME,
       nullptr, 0},
      {"CURRENT_TIME()", Col(TRB_BQ_TYPE_TIME), TRB_BQ_DEFAULT_CURRENT_TIME, nullptr, 0},
      {"GENERATE_UUID()", Col(TRB_BQ_TYPE_STRING, TRB_BQ_MODE_REQUIRED),
       TRB_BQ_DEFAULT_GENERATE_UUID, nullptr, 0},
  };
  for (const Case& c : cases) {
    trb_bq_default_t d;
    trb_status_t st{};
    ASSERT_EQ(GRPC_STATUS_OK, trb_bq_default_parse(c.expr, &c.f, &d, &st)) << c.expr << ": "
                                                                          << st.msg;
    EXPECT_EQ(c.kind, d.kind) << c.expr;
    if (c.text) {
      EXPECT_STREQ(c.text, d.text) << c.expr;
    } else if (c.kind == TRB_BQ_DEFAULT_INT) {
      EXPECT_EQ(c.i, d.i) << c.expr;
    }
    trb_bq_default_deinit(&d);
  }
  trb_bq_field_t f = Col(TRB_BQ_TYPE_DOUBLE);
  trb_bq_default_t d;
  trb_status_t st{};
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_default_parse("-0.25", &f, &d, &st));
  EXPECT_EQ(TRB_BQ_DEFAULT_REAL, d.kind);
  EXPECT_DOUBLE_EQ(-0.25, d.d);
}

TEST(DefaultExprTest, RejectsWhatTheEmulatorCannotEvaluateOrThatDoesNotSuit) {
  struct Case {
    const char* expr;
    trb_bq_field_t f;
    const char* want;
  } cases[] = {
      {"1 + 1", Col(TRB_BQ_TYPE_INT64), "literal defaults only"},
      {"SESSION_USER()", Col(TRB_BQ_TYPE_STRING), "literal defaults only"},
      {"", Col(TRB_BQ_TYPE_STRING), "empty expression"},
      {"1.5", Col(TRB_BQ_TYPE_INT64), "must be an integer"},
      {"9223372036854775808", Col(TRB_BQ_TYPE_INT64), "INT64 range"},
      {"1", Col(TRB_BQ_TYPE_STRING), "a number suits"},
      {"'x'", Col(TRB_BQ_TYPE_INT64), "a string literal suits"},
      {"'x'", Col(TRB_BQ_TYPE_BYTES), "a string literal suits"},
      {"'2024-02-30'", Col(TRB_BQ_TYPE_DATE), "2024-02-30"},
      {"'abcd'", Col(TRB_BQ_TYPE_STRING, TRB_BQ_MODE_NULLABLE, 3), "maxLength"},
      {"'a'b'", Col(TRB_BQ_TYPE_STRING), "quoted string"},
      {"'a\\q'", Col(TRB_BQ_TYPE_STRING), "quoted string"},
      {"TRUE", Col(TRB_BQ_TYPE_INT64), "BOOL columns only"},
      {"NULL", Col(TRB_BQ_TYPE_STRING, TRB_BQ_MODE_REQUIRED), "REQUIRED column"},
      {"CURRENT_DATE()", Col(TRB_BQ_TYPE_TIMESTAMP), "CURRENT_DATE() returns DATE"},
      {"GENERATE_UUID()", Col(TRB_BQ_TYPE_BYTES), "returns STRING"},
      {"'x'", Col(TRB_BQ_TYPE_STRING, TRB_BQ_MODE_REPEATED), "non-REPEATED"},
      {"1e999", Col(TRB_BQ_TYPE_DOUBLE), "FLOAT64 range"},
  };
  for (const Case& c : cases) {
    trb_bq_default_t d;
    trb_status_t st{};
    EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_bq_default_parse(c.expr, &c.f, &d, &st))
        << c.expr;
    EXPECT_NE(nullptr, strstr(st.msg, c.want)) << c.expr << " -> " << st.msg;
    EXPECT_NE(nullptr, strstr(st.msg, "column c")) << st.msg;
    trb_bq_default_deinit(&d);
  }
}

TEST(DefaultExprTest, EvaluatesFunctionsFromTimeAndRandomBytes) {
  char out[TRB_BQ_DEFAULT_FN_BUF];
  const int64_t now = 1704164645123456LL;  // 2024-01-02T03:04:05.123456Z
  EXPECT_EQ(27u, trb_bq_default_eval_fn(TRB_BQ_DEFAULT_CURRENT_TIMESTAMP, now, nullptr, out));
  EXPECT_STREQ("2024-01-02T03:04:05.123456Z", out);
  trb_bq_default_eval_fn(TRB_BQ_DEFAULT_CURRENT_DATE, now, nullptr, out);
  EXPECT_STREQ("2024-01-02", out);
  trb_bq_default_eval_fn(TRB_BQ_DEFAULT_CURRENT_DATETIME, now, nullptr, out);
  EXPECT_STREQ("2024-01-02T03:04:05.123456", out);
  trb_bq_default_eval_fn(TRB_BQ_DEFAULT_CURRENT_TIME, now, nullptr, out);
  EXPECT_STREQ("03:04:05.123456", out);
  trb_bq_default_eval_fn(TRB_BQ_DEFAULT_CURRENT_DATE, -1, nullptr, out);
  EXPECT_STREQ("1969-12-31", out);
  trb_bq_default_eval_fn(TRB_BQ_DEFAULT_CURRENT_TIME, -1, nullptr, out);
  EXPECT_STREQ("23:59:59.999999", out);
  uint8_t rnd[16];
  memset(rnd, 0xFF, sizeof rnd);
  EXPECT_EQ(36u, trb_bq_default_eval_fn(TRB_BQ_DEFAULT_GENERATE_UUID, 0, rnd, out));
  EXPECT_STREQ("ffffffff-ffff-4fff-bfff-ffffffffffff", out);
  memset(rnd, 0, sizeof rnd);
  trb_bq_default_eval_fn(TRB_BQ_DEFAULT_GENERATE_UUID, 0, rnd, out);
  EXPECT_STREQ("00000000-0000-4000-8000-000000000000", out);
  EXPECT_EQ(0u, trb_bq_default_eval_fn(TRB_BQ_DEFAULT_TEXT, now, rnd, out));
  EXPECT_EQ(0u, trb_bq_default_eval_fn(TRB_BQ_DEFAULT_CURRENT_TIMESTAMP,
                                       TRB_BQ_TIMESTAMP_MAX_US + 1, nullptr, out));
}

}  // namespace
