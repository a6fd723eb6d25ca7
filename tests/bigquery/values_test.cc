// values_test.cc — BigQuery value encodings: round trips, boundaries,
// malformed input.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>

#include "src/bigquery/values.h"

namespace {

std::string Date(int64_t d) {
  char b[TRB_BQ_DATE_BUF];
  trb_status_t st{};
  if (trb_bq_date_format(d, b, &st) != GRPC_STATUS_OK) return "ERR";
  return b;
}

TEST(DateTest, FormatsAndParsesBoundaries) {
  EXPECT_EQ("1970-01-01", Date(0));
  EXPECT_EQ("0001-01-01", Date(TRB_BQ_DATE_MIN));
  EXPECT_EQ("9999-12-31", Date(TRB_BQ_DATE_MAX));
  EXPECT_EQ("2024-02-29", Date(19782));
  EXPECT_EQ("ERR", Date(TRB_BQ_DATE_MIN - 1));
  EXPECT_EQ("ERR", Date(TRB_BQ_DATE_MAX + 1));
  int32_t d = 0;
  trb_status_t st{};
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_date_parse("0001-01-01", 10, &d, &st));
  EXPECT_EQ(TRB_BQ_DATE_MIN, d);
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_date_parse("9999-12-31", 10, &d, &st));
  EXPECT_EQ(TRB_BQ_DATE_MAX, d);
}

TEST(DateTest, RoundTripsEveryThousandthDay) {
  for (int64_t d = TRB_BQ_DATE_MIN; d <= TRB_BQ_DATE_MAX; d += 997) {
    std::string s = Date(d);
    int32_t back = 0;
    ASSERT_EQ(GRPC_STATUS_OK, trb_bq_date_parse(s.data(), s.size(), &back, nullptr)) << s;
    ASSERT_EQ(d, back) << s;
  }
}

TEST(DateTest, RejectsMalformed) {
  const char* bad[] = {"2024-02-30", "2023-02-29", "0000-12-31", "2024-1-01", "2024-01-01x",
                       "", "20240101", "2024-13-01", "2024-00-10", "2024/01/01"};
  for (const char* s : bad) {
    int32_t d;
    trb_status_t st{};
    EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_bq_date_parse(s, strlen(s), &d, &st)) << s;
    EXPECT_NE(nullptr, strstr(st.msg, "DATE")) << st.msg;
  }
}

TEST(TimeTest, PackMatchesCivilTimeEncoder) {
  // CivilTimeEncoder: 12:34:56.789 -> (12<<12|34<<6|56)<<20 | 789000.
  int64_t p = trb_bq_time_pack(12, 34, 56, 789000);
  EXPECT_EQ(((int64_t)(12 << 12 | 34 << 6 | 56) << 20) | 789000, p);
  char b[TRB_BQ_TIME_BUF];
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_time_format(p, b, nullptr));
  EXPECT_STREQ("12:34:56.789000", b);
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_time_format(trb_bq_time_pack(0, 0, 0, 0), b, nullptr));
  EXPECT_STREQ("00:00:00", b);
  int64_t q = 0;
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_time_parse("23:59:59.999999", 15, &q, nullptr));
  EXPECT_EQ(trb_bq_time_pack(23, 59, 59, 999999), q);
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_time_parse("01:02:03.5", 10, &q, nullptr));
  EXPECT_EQ(trb_bq_time_pack(1, 2, 3, 500000), q);
}

TEST(TimeTest, RejectsOutOfRange) {
  char b[TRB_BQ_TIME_BUF];
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_bq_time_format(trb_bq_time_pack(24, 0, 0, 0), b, nullptr));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_bq_time_format(trb_bq_time_pack(1, 60, 0, 0), b, nullptr));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_bq_time_format(trb_bq_time_pack(1, 0, 0, 1000000), b, nullptr));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_bq_time_format(-1, b, nullptr));
  const char* bad[] = {"24:00:00", "12:60:00", "12:00:60", "1:00:00", "12:00:00.", "12:00:00.1234567", "12:00"};
  for (const char* s : bad) {
    int64_t q;
    EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_bq_time_parse(s, strlen(s), &q, nullptr)) << s;
  }
}

TEST(DatetimeTest, RoundTripAndBoundaries) {
  char b[TRB_BQ_DATETIME_BUF];
  int64_t p = trb_bq_datetime_pack(2024, 1, 2, 3, 4, 5, 123456);
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_datetime_format(p, b, nullptr));
  EXPECT_STREQ("2024-01-02T03:04:05.123456", b);
  int64_t q = 0;
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_datetime_parse(b, strlen(b), &q, nullptr));
  EXPECT_EQ(p, q);
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_datetime_parse("9999-12-31 23:59:59.999999", 26, &q, nullptr));
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_datetime_format(q, b, nullptr));
  EXPECT_STREQ("9999-12-31T23:59:59.999999", b);
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_bq_datetime_format(trb_bq_datetime_pack(2023, 2, 29, 0, 0, 0, 0), b, nullptr));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_bq_datetime_format(trb_bq_datetime_pack(0, 1, 1, 0, 0, 0, 0), b, nullptr));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_bq_datetime_parse("2024-01-02X03:04:05", 19, &q, nullptr));
}

std::string Ts(int64_t us) {
  char b[TRB_BQ_TIMESTAMP_BUF];
  if (trb_bq_timestamp_format(us, b, nullptr) != GRPC_STATUS_OK) return "ERR";
  return b;
}

TEST(TimestampTest, FormatsRfc3339WithMicros) {
  EXPECT_EQ("1970-01-01T00:00:00.000000Z", Ts(0));
  EXPECT_EQ("2024-01-02T03:04:05.123456Z", Ts(1704164645123456LL));
  EXPECT_EQ("1969-12-31T23:59:59.999999Z", Ts(-1));
  EXPECT_EQ("0001-01-01T00:00:00.000000Z", Ts(TRB_BQ_TIMESTAMP_MIN_US));
  EXPECT_EQ("9999-12-31T23:59:59.999999Z", Ts(TRB_BQ_TIMESTAMP_MAX_US));
  EXPECT_EQ("ERR", Ts(TRB_BQ_TIMESTAMP_MIN_US - 1));
  EXPECT_EQ("ERR", Ts(TRB_BQ_TIMESTAMP_MAX_US + 1));
  EXPECT_EQ("ERR", Ts(INT64_MIN));
}

TEST(TimestampTest, ParsesOffsetsAndRoundTrips) {
  int64_t us = 0;
  const char* s = "2024-01-02T05:04:05.123456+02:00";
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_timestamp_parse(s, strlen(s), &us, nullptr));
  EXPECT_EQ(1704164645123456LL, us);
  s = "2024-01-02T03:04:05Z";
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_timestamp_parse(s, strlen(s), &us, nullptr));
  EXPECT_EQ(1704164645000000LL, us);
  s = "2024-01-02T03:04:05.123456000Z";
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_timestamp_parse(s, strlen(s), &us, nullptr));
  EXPECT_EQ(1704164645123456LL, us);
  std::mt19937_64 rng(7);
  for (int i = 0; i < 20000; i++) {
    int64_t v = TRB_BQ_TIMESTAMP_MIN_US +
                (int64_t)(rng() % (uint64_t)(TRB_BQ_TIMESTAMP_MAX_US - TRB_BQ_TIMESTAMP_MIN_US));
    std::string t = Ts(v);
    int64_t back = 0;
    ASSERT_EQ(GRPC_STATUS_OK, trb_bq_timestamp_parse(t.data(), t.size(), &back, nullptr)) << t;
    ASSERT_EQ(v, back) << t;
  }
}

TEST(TimestampTest, RejectsMalformed) {
  const char* bad[] = {"2024-01-02T03:04:05", "2024-01-02T03:04:05.1234567Z", "2024-01-02 03:04Z",
                       "0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-00:01", "2024-01-02T03:04:05+2:00", ""};
  for (const char* s : bad) {
    int64_t us;
    trb_status_t st{};
    EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_bq_timestamp_parse(s, strlen(s), &us, &st)) << s;
    EXPECT_NE(nullptr, strstr(st.msg, "TIMESTAMP")) << st.msg;
  }
}

std::string Canon(const char* s, bool big) {
  char b[TRB_BQ_NUMERIC_BUF];
  trb_status_t st{};
  if (trb_bq_numeric_canonical(s, strlen(s), big, b, sizeof b, &st) != GRPC_STATUS_OK) return "ERR";
  return b;
}

TEST(NumericTest, EncodesLikeBigDecimalByteStringEncoder) {
  // 1.5 at scale 9 = 1500000000 = 0x59682F00 -> LE bytes 00 2F 68 59.
  uint8_t b[32];
  size_t n = 0;
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_numeric_parse("1.5", 3, false, b, &n, nullptr));
  ASSERT_EQ(4u, n);
  EXPECT_EQ(0x00, b[0]);
  EXPECT_EQ(0x2F, b[1]);
  EXPECT_EQ(0x68, b[2]);
  EXPECT_EQ(0x59, b[3]);
  // -1 unscaled: BigInteger(-1).toByteArray() = {0xFF}.
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_numeric_parse("-0.000000001", 12, false, b, &n, nullptr));
  ASSERT_EQ(1u, n);
  EXPECT_EQ(0xFF, b[0]);
  // 128 unscaled needs a sign byte: {0x80, 0x00}.
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_numeric_parse("0.000000128", 11, false, b, &n, nullptr));
  ASSERT_EQ(2u, n);
  EXPECT_EQ(0x80, b[0]);
  EXPECT_EQ(0x00, b[1]);
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_numeric_parse("0", 1, false, b, &n, nullptr));
  ASSERT_EQ(1u, n);
  EXPECT_EQ(0, b[0]);
  char out[TRB_BQ_NUMERIC_BUF];
  const uint8_t m128[] = {0x80, 0xFF};  // -128 unscaled
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_numeric_format(m128, 2, false, out, sizeof out, nullptr));
  EXPECT_STREQ("-0.000000128", out);
}

TEST(NumericTest, CanonicalTextAndBoundaries) {
  EXPECT_EQ("12.5", Canon("12.500", false));
  EXPECT_EQ("-12.5", Canon("-12.5", false));
  EXPECT_EQ("0", Canon("-0.0", false));
  EXPECT_EQ("0.5", Canon(".5", false));
  EXPECT_EQ("1000", Canon("1e3", false));
  EXPECT_EQ("0.00000015", Canon("1.5E-7", false));
  EXPECT_EQ("0.000000002", Canon("0.0000000015", false));  // half away from zero
  EXPECT_EQ("-0.000000002", Canon("-0.0000000015", false));
  EXPECT_EQ("0", Canon("0.0000000004", false));
  std::string max = std::string(29, '9') + "." + std::string(9, '9');
  EXPECT_EQ(max, Canon(max.c_str(), false));
  EXPECT_EQ("-" + max, Canon(("-" + max).c_str(), false));
  EXPECT_EQ("ERR", Canon(("1" + std::string(29, '0')).c_str(), false));
  EXPECT_EQ("ERR", Canon((max + "5").c_str(), false));  // rounds past the max
  // BIGNUMERIC: scale 38, 256-bit two's complement.
  EXPECT_EQ("0.00000000000000000000000000000000000001", Canon("1e-38", true));
  const char* bmax = "578960446186580977117854925043439539266.34992332820282019728792003956564819967";
  const char* bmin = "-578960446186580977117854925043439539266.34992332820282019728792003956564819968";
  EXPECT_EQ(bmax, Canon(bmax, true));
  EXPECT_EQ(bmin, Canon(bmin, true));
  EXPECT_EQ("ERR", Canon("578960446186580977117854925043439539266.34992332820282019728792003956564819968", true));
  EXPECT_EQ("ERR", Canon("-578960446186580977117854925043439539266.34992332820282019728792003956564819969", true));
  uint8_t b[32];
  size_t n = 0;
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_numeric_parse(bmin, strlen(bmin), true, b, &n, nullptr));
  EXPECT_EQ(32u, n);
  EXPECT_EQ(0x80, b[31]);
}

TEST(NumericTest, RejectsMalformed) {
  const char* bad[] = {"", "-", ".", "1.2.3", "1e", "abc", "1 ", "+-1", "0x10", "1e+"};
  for (const char* s : bad) EXPECT_EQ("ERR", Canon(s, false)) << s;
  char out[TRB_BQ_NUMERIC_BUF];
  uint8_t b17[17] = {1};
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_bq_numeric_format(b17, 17, false, out, sizeof out, nullptr));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_bq_numeric_format(b17, 0, true, out, sizeof out, nullptr));
  // 10^38 unscaled (16 bytes) is past NUMERIC's range.
  size_t n = 0;
  uint8_t tenp38[32];
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_numeric_parse("1", 1, true, tenp38, &n, nullptr));  // 10^38 at scale 38
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_bq_numeric_format(tenp38, n, false, out, sizeof out, nullptr));
}

TEST(NumericTest, RandomRoundTrips) {
  std::mt19937_64 rng(11);
  for (int i = 0; i < 5000; i++) {
    bool big = i % 2;
    uint8_t b[32];
    size_t len = 1 + rng() % (big ? 32 : 15);
    for (size_t k = 0; k < len; k++) b[k] = (uint8_t)rng();
    char text[TRB_BQ_NUMERIC_BUF];
    ASSERT_EQ(GRPC_STATUS_OK, trb_bq_numeric_format(b, len, big, text, sizeof text, nullptr));
    uint8_t back[32];
    size_t n = 0;
    ASSERT_EQ(GRPC_STATUS_OK, trb_bq_numeric_parse(text, strlen(text), big, back, &n, nullptr)) << text;
    char text2[TRB_BQ_NUMERIC_BUF];
    ASSERT_EQ(GRPC_STATUS_OK, trb_bq_numeric_format(back, n, big, text2, sizeof text2, nullptr));
    ASSERT_STREQ(text, text2);
    ASSERT_LE(n, len);
  }
}

}  // namespace
