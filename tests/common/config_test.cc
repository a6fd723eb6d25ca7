// Tests for src/common/config.h: defaults, typed parsing, bounds, errors that
// name their source, unknown and duplicate keys, env overrides, help text,
// string ownership and allocation failure.
#include "src/common/config.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <string>

#include <gtest/gtest.h>

#include "src/common/alloc.h"

namespace {

struct TestConfig {
  bool verbose;
  int64_t max_batch_rows;
  double sample_ratio;
  char *project;
  int64_t flush_interval_ms;
  int64_t max_request_bytes;
  char *endpoint;
  int64_t offset;
};

const trb_config_entry_t kEntries[] = {
    {"verbose", TRB_CONFIG_BOOL, "false", offsetof(TestConfig, verbose), 0, 0, 0, 0,
     nullptr, "Log every batch."},
    {"max_batch_rows", TRB_CONFIG_INT64, "500", offsetof(TestConfig, max_batch_rows), 1,
     10000, 0, 0, "rows", "Maximum rows per AppendRows request."},
    {"sample_ratio", TRB_CONFIG_DOUBLE, "0.5", offsetof(TestConfig, sample_ratio), 0, 0, 0.0,
     1.0, nullptr, "Fraction of events traced."},
    {"project", TRB_CONFIG_STRING, "demo-project", offsetof(TestConfig, project), 0, 0, 0, 0,
     nullptr, "Google Cloud project ID."},
    {"flush_interval_ms", TRB_CONFIG_DURATION_MS, "250ms",
     offsetof(TestConfig, flush_interval_ms), 10, 60000, 0, 0, nullptr,
     "Longest time a partial batch waits."},
    {"max_request_bytes", TRB_CONFIG_SIZE_BYTES, "10MiB",
     offsetof(TestConfig, max_request_bytes), 1024, 20 * 1024 * 1024, 0, 0, nullptr,
     "Largest AppendRows request."},
    {"endpoint", TRB_CONFIG_STRING, nullptr, offsetof(TestConfig, endpoint), 0, 0, 0, 0,
     nullptr, "Override the service endpoint."},
    {"offset", TRB_CONFIG_INT64, "-5", offsetof(TestConfig, offset), 0, 0, 0, 0, nullptr,
     "Unbounded signed value."},
};
const trb_config_table_t kTable = {"test", kEntries, sizeof(kEntries) / sizeof(kEntries[0])};

// Fails every allocation numbered >= fail_at (1-based), counting all calls.
struct FailAt {
  int calls = 0;
  int fail_at = 0;
};
int fail_at_hook(size_t, void *user) {
  FailAt *f = static_cast<FailAt *>(user);
  return ++f->calls >= f->fail_at;
}

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    memset(&cfg_, 0, sizeof(cfg_));
    ASSERT_EQ(GRPC_STATUS_OK, trb_config_defaults(&kTable, &cfg_, &st_)) << st_.msg;
  }
  void TearDown() override {
    trb_alloc_set_fail_hook(nullptr, nullptr);
    trb_config_free(&kTable, &cfg_);
  }
  grpc_status_code Set(const char *key, const char *value, const char *src = "test") {
    return trb_config_set(&kTable, &cfg_, nullptr, key, value, src, &st_);
  }

  TestConfig cfg_;
  trb_status_t st_;
};

TEST_F(ConfigTest, DefaultsFillEveryField) {
  EXPECT_FALSE(cfg_.verbose);
  EXPECT_EQ(500, cfg_.max_batch_rows);
  EXPECT_DOUBLE_EQ(0.5, cfg_.sample_ratio);
  EXPECT_STREQ("demo-project", cfg_.project);
  EXPECT_EQ(250, cfg_.flush_interval_ms);
  EXPECT_EQ(10 * 1024 * 1024, cfg_.max_request_bytes);
  EXPECT_EQ(nullptr, cfg_.endpoint);
  EXPECT_EQ(-5, cfg_.offset);
  EXPECT_STREQ("", st_.msg);
}

TEST_F(ConfigTest, SetParsesEveryType) {
  EXPECT_EQ(GRPC_STATUS_OK, Set("verbose", "yes"));
  EXPECT_TRUE(cfg_.verbose);
  EXPECT_EQ(GRPC_STATUS_OK, Set("verbose", "OFF"));
  EXPECT_FALSE(cfg_.verbose);
  EXPECT_EQ(GRPC_STATUS_OK, Set("max_batch_rows", "10000"));
  EXPECT_EQ(10000, cfg_.max_batch_rows);
  EXPECT_EQ(GRPC_STATUS_OK, Set("sample_ratio", "1e-3"));
  EXPECT_DOUBLE_EQ(0.001, cfg_.sample_ratio);
  EXPECT_EQ(GRPC_STATUS_OK, Set("project", "my-proj"));
  EXPECT_STREQ("my-proj", cfg_.project);
  EXPECT_EQ(GRPC_STATUS_OK, Set("flush_interval_ms", "5s"));
  EXPECT_EQ(5000, cfg_.flush_interval_ms);
  EXPECT_EQ(GRPC_STATUS_OK, Set("max_request_bytes", "64KiB"));
  EXPECT_EQ(65536, cfg_.max_request_bytes);
  EXPECT_EQ(GRPC_STATUS_OK, Set("endpoint", ""));
  EXPECT_STREQ("", cfg_.endpoint);
  EXPECT_EQ(GRPC_STATUS_OK, Set("offset", "-9223372036854775808"));
  EXPECT_EQ(INT64_MIN, cfg_.offset);
}

TEST_F(ConfigTest, BelowMinimumNamesTheFileAndLine) {
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, Set("max_batch_rows", "0", "pipeline.yaml:12"));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, st_.code);
  EXPECT_STREQ("pipeline.yaml:12: key \"max_batch_rows\": 0 is below the minimum 1", st_.msg);
  EXPECT_EQ(500, cfg_.max_batch_rows);  // unchanged
}

TEST_F(ConfigTest, BoundErrorsUseTheTypesNotation) {
  struct Case {
    const char *key, *value, *want;
  } cases[] = {
      {"max_batch_rows", "10001",
       "flag --max_batch_rows: key \"max_batch_rows\": 10001 is above the maximum 10000"},
      {"flush_interval_ms", "5ms",
       "flag --max_batch_rows: key \"flush_interval_ms\": 5ms is below the minimum 10ms"},
      {"flush_interval_ms", "2m",
       "flag --max_batch_rows: key \"flush_interval_ms\": 2m is above the maximum 1m"},
      {"max_request_bytes", "100",
       "flag --max_batch_rows: key \"max_request_bytes\": 100 is below the minimum 1KiB"},
      {"max_request_bytes", "1GiB",
       "flag --max_batch_rows: key \"max_request_bytes\": 1GiB is above the maximum 20MiB"},
      {"sample_ratio", "1.5",
       "flag --max_batch_rows: key \"sample_ratio\": 1.5 is above the maximum 1"},
      {"sample_ratio", "-0.1",
       "flag --max_batch_rows: key \"sample_ratio\": -0.1 is below the minimum 0"},
  };
  for (const Case &c : cases) {
    EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, Set(c.key, c.value, "flag --max_batch_rows"));
    EXPECT_STREQ(c.want, st_.msg);
  }
  EXPECT_EQ(250, cfg_.flush_interval_ms);
  EXPECT_EQ(10 * 1024 * 1024, cfg_.max_request_bytes);
  EXPECT_DOUBLE_EQ(0.5, cfg_.sample_ratio);
}

TEST_F(ConfigTest, UnparsableValuesSayWhatWasExpected) {
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, Set("verbose", "maybe", "env TRB_VERBOSE"));
  EXPECT_STREQ("env TRB_VERBOSE: key \"verbose\": \"maybe\" is not a boolean "
               "(true/false, yes/no, on/off, 1/0)",
               st_.msg);
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, Set("max_batch_rows", "12rows"));
  EXPECT_STREQ("test: key \"max_batch_rows\": \"12rows\" is not an integer", st_.msg);
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, Set("max_batch_rows", " 12"));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, Set("max_batch_rows", "99999999999999999999"));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, Set("sample_ratio", "nan"));
  EXPECT_STREQ("test: key \"sample_ratio\": \"nan\" is not a finite number", st_.msg);
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, Set("flush_interval_ms", "250"));
  EXPECT_STREQ("test: key \"flush_interval_ms\": \"250\" is not a duration (an integer with "
               "unit ms, s, m or h, e.g. 250ms, 5s, 2m)",
               st_.msg);
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, Set("max_request_bytes", "10 MiB"));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, Set("max_request_bytes", nullptr));
  EXPECT_STREQ("test: key \"max_request_bytes\": missing value", st_.msg);
}

TEST_F(ConfigTest, UnknownKeyIsRejected) {
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, Set("max_batch_row", "5", "pipeline.yaml:3"));
  EXPECT_STREQ("pipeline.yaml:3: unknown configuration key \"max_batch_row\"", st_.msg);
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, Set(nullptr, "5", nullptr));
  EXPECT_STREQ("(unknown source): unknown configuration key \"\"", st_.msg);
}

TEST_F(ConfigTest, DuplicateKeyWithinOneSourceIsRejected) {
  trb_config_seen_t *file = trb_config_seen_create(&kTable);
  ASSERT_NE(nullptr, file);
  EXPECT_EQ(GRPC_STATUS_OK, trb_config_set(&kTable, &cfg_, file, "max_batch_rows", "7",
                                           "pipeline.yaml:12", &st_));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_config_set(&kTable, &cfg_, file, "max_batch_rows", "8", "pipeline.yaml:30",
                           &st_));
  EXPECT_STREQ("pipeline.yaml:30: key \"max_batch_rows\" is set more than once (first at "
               "pipeline.yaml:12)",
               st_.msg);
  EXPECT_EQ(7, cfg_.max_batch_rows);

  // A failed set does not count as "set".
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_config_set(&kTable, &cfg_, file, "verbose", "perhaps", "pipeline.yaml:31", &st_));
  EXPECT_EQ(GRPC_STATUS_OK,
            trb_config_set(&kTable, &cfg_, file, "verbose", "true", "pipeline.yaml:32", &st_));

  // A later source overrides: a new tracker (or none) per source.
  trb_config_seen_t *flags = trb_config_seen_create(&kTable);
  ASSERT_NE(nullptr, flags);
  EXPECT_EQ(GRPC_STATUS_OK, trb_config_set(&kTable, &cfg_, flags, "max_batch_rows", "9",
                                           "flag --max_batch_rows", &st_));
  EXPECT_EQ(9, cfg_.max_batch_rows);
  trb_config_seen_destroy(flags);
  trb_config_seen_destroy(file);
  trb_config_seen_destroy(nullptr);
}

TEST_F(ConfigTest, TrackerFromAnotherTableIsAnError) {
  const trb_config_table_t other = {"other", kEntries, 1};
  trb_config_seen_t *seen = trb_config_seen_create(&other);
  ASSERT_NE(nullptr, seen);
  EXPECT_EQ(GRPC_STATUS_INTERNAL,
            trb_config_set(&kTable, &cfg_, seen, "verbose", "true", "x", &st_));
  trb_config_seen_destroy(seen);
}

TEST_F(ConfigTest, EnvironmentOverridesUsePrefixAndUpperCase) {
  setenv("TRB_TEST_MAX_BATCH_ROWS", "42", 1);
  setenv("TRB_TEST_PROJECT", "from-env", 1);
  setenv("TRB_TEST_VERBOSE", "", 1);  // empty: ignored
  EXPECT_EQ(GRPC_STATUS_OK, trb_config_apply_env(&kTable, &cfg_, "TRB_TEST_", &st_)) << st_.msg;
  EXPECT_EQ(42, cfg_.max_batch_rows);
  EXPECT_STREQ("from-env", cfg_.project);
  EXPECT_FALSE(cfg_.verbose);

  setenv("TRB_TEST_FLUSH_INTERVAL_MS", "1h", 1);
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_config_apply_env(&kTable, &cfg_, "TRB_TEST_", &st_));
  EXPECT_STREQ("env TRB_TEST_FLUSH_INTERVAL_MS: key \"flush_interval_ms\": 1h is above the "
               "maximum 1m",
               st_.msg);
  unsetenv("TRB_TEST_MAX_BATCH_ROWS");
  unsetenv("TRB_TEST_PROJECT");
  unsetenv("TRB_TEST_VERBOSE");
  unsetenv("TRB_TEST_FLUSH_INTERVAL_MS");
}

TEST_F(ConfigTest, HelpTextIsGeneratedFromTheTable) {
  trb_buf_t out = TRB_BUF_INIT;
  ASSERT_EQ(GRPC_STATUS_OK, trb_config_help(&kTable, "TRB_TEST_", &out, &st_));
  std::string help(out.data, out.len);
  EXPECT_EQ(0u, help.find("test configuration:\n"));
  EXPECT_NE(std::string::npos,
            help.find("  max_batch_rows (int64 rows; default 500; range 1..10000; env "
                      "TRB_TEST_MAX_BATCH_ROWS)\n      Maximum rows per AppendRows request.\n"));
  EXPECT_NE(std::string::npos,
            help.find("  flush_interval_ms (duration; default 250ms; range 10ms..1m; env "
                      "TRB_TEST_FLUSH_INTERVAL_MS)\n"));
  EXPECT_NE(std::string::npos, help.find("  max_request_bytes (size; default 10MiB; range "
                                         "1KiB..20MiB; env TRB_TEST_MAX_REQUEST_BYTES)\n"));
  EXPECT_NE(std::string::npos, help.find("  project (string; default \"demo-project\"; env "));
  EXPECT_NE(std::string::npos, help.find("  sample_ratio (double; default 0.5; range 0..1; "));
  EXPECT_NE(std::string::npos, help.find("  endpoint (string; env TRB_TEST_ENDPOINT)\n"));
  trb_buf_reset(&out);
  ASSERT_EQ(GRPC_STATUS_OK, trb_config_help(&kTable, nullptr, &out, &st_));
  EXPECT_EQ(nullptr, strstr(out.data, "env "));
  trb_buf_deinit(&out);
}

TEST_F(ConfigTest, StringsAreOwnedCopies) {
  char value[] = "original";
  ASSERT_EQ(GRPC_STATUS_OK, Set("endpoint", value));
  value[0] = 'X';
  EXPECT_STREQ("original", cfg_.endpoint);
  ASSERT_EQ(GRPC_STATUS_OK, Set("endpoint", "second"));  // old copy freed (ASan checks)
  EXPECT_STREQ("second", cfg_.endpoint);
  trb_config_free(&kTable, &cfg_);
  EXPECT_EQ(nullptr, cfg_.endpoint);
  EXPECT_EQ(nullptr, cfg_.project);
  trb_config_free(&kTable, nullptr);
}

TEST_F(ConfigTest, AllocationFailureKeepsTheOldString) {
  FailAt f;
  f.fail_at = 1;
  trb_alloc_set_fail_hook(fail_at_hook, &f);
  EXPECT_EQ(GRPC_STATUS_RESOURCE_EXHAUSTED, Set("project", "new", "flag --project"));
  trb_alloc_set_fail_hook(nullptr, nullptr);
  EXPECT_STREQ("flag --project: key \"project\": out of memory copying the value", st_.msg);
  EXPECT_STREQ("demo-project", cfg_.project);
}

TEST(ConfigFaultTest, EveryAllocationFailureIsReportedWithoutLeaks) {
  // Fail the 1st, 2nd, ... allocation of a full load until one succeeds.
  for (int n = 1; n < 20; n++) {
    TestConfig cfg;
    memset(&cfg, 0, sizeof(cfg));
    trb_status_t st;
    FailAt f;
    f.fail_at = n;
    trb_alloc_set_fail_hook(fail_at_hook, &f);
    grpc_status_code code = trb_config_defaults(&kTable, &cfg, &st);
    trb_config_seen_t *seen = nullptr;
    if (code == GRPC_STATUS_OK) {
      seen = trb_config_seen_create(&kTable);
      if (seen == nullptr) code = GRPC_STATUS_RESOURCE_EXHAUSTED;
    }
    if (code == GRPC_STATUS_OK) {
      code = trb_config_set(&kTable, &cfg, seen, "endpoint", "e", "f:1", &st);
    }
    trb_buf_t help = TRB_BUF_INIT;
    if (code == GRPC_STATUS_OK) code = trb_config_help(&kTable, "P_", &help, &st);
    trb_alloc_set_fail_hook(nullptr, nullptr);
    trb_buf_deinit(&help);
    trb_config_seen_destroy(seen);
    trb_config_free(&kTable, &cfg);
    if (code == GRPC_STATUS_OK) {
      // The project default, the tracker (2 blocks), the endpoint copy and
      // the help buffer all had their turn to fail.
      EXPECT_GT(n, 5);
      return;
    }
    EXPECT_EQ(GRPC_STATUS_RESOURCE_EXHAUSTED, code) << "n=" << n << ": " << st.msg;
  }
  FAIL() << "never succeeded";
}

TEST(ConfigTableTest, MalformedTablesAreInternalErrors) {
  struct Cfg {
    int64_t a;
    int64_t b;
  } cfg = {0, 0};
  trb_status_t st;
  const trb_config_entry_t dup[] = {
      {"a", TRB_CONFIG_INT64, "1", offsetof(Cfg, a), 0, 0, 0, 0, nullptr, ""},
      {"a", TRB_CONFIG_INT64, "1", offsetof(Cfg, b), 0, 0, 0, 0, nullptr, ""},
  };
  const trb_config_table_t t1 = {"dup", dup, 2};
  EXPECT_EQ(GRPC_STATUS_INTERNAL, trb_config_defaults(&t1, &cfg, &st));
  EXPECT_STREQ("config table \"dup\": key \"a\" is defined more than once", st.msg);

  const trb_config_entry_t bad_default[] = {
      {"a", TRB_CONFIG_INT64, "abc", offsetof(Cfg, a), 0, 0, 0, 0, nullptr, ""},
  };
  const trb_config_table_t t2 = {"bad", bad_default, 1};
  EXPECT_EQ(GRPC_STATUS_INTERNAL, trb_config_defaults(&t2, &cfg, &st));
  EXPECT_EQ(GRPC_STATUS_INTERNAL, st.code);
  EXPECT_STREQ("config table \"bad\": default: key \"a\": \"abc\" is not an integer", st.msg);

  const trb_config_entry_t out_of_bounds[] = {
      {"a", TRB_CONFIG_INT64, "0", offsetof(Cfg, a), 1, 5, 0, 0, nullptr, ""},
  };
  const trb_config_table_t t3 = {"oob", out_of_bounds, 1};
  EXPECT_EQ(GRPC_STATUS_INTERNAL, trb_config_defaults(&t3, &cfg, &st));

  const trb_config_entry_t bad_type[] = {
      {"a", static_cast<trb_config_type_t>(42), nullptr, 0, 0, 0, 0, 0, nullptr, ""},
  };
  const trb_config_table_t t4 = {"type", bad_type, 1};
  EXPECT_EQ(GRPC_STATUS_INTERNAL, trb_config_defaults(&t4, &cfg, &st));

  const trb_config_entry_t no_name[] = {
      {"", TRB_CONFIG_BOOL, nullptr, 0, 0, 0, 0, 0, nullptr, ""},
  };
  const trb_config_table_t t5 = {"noname", no_name, 1};
  EXPECT_EQ(GRPC_STATUS_INTERNAL, trb_config_defaults(&t5, &cfg, &st));
  EXPECT_STREQ("config table \"noname\": entry 0 has no name", st.msg);
}

TEST(ConfigTableTest, FindAndTypeNames) {
  EXPECT_EQ(&kEntries[1], trb_config_find(&kTable, "max_batch_rows"));
  EXPECT_EQ(nullptr, trb_config_find(&kTable, "nope"));
  EXPECT_EQ(nullptr, trb_config_find(&kTable, nullptr));
  EXPECT_STREQ("duration", trb_config_type_name(TRB_CONFIG_DURATION_MS));
  EXPECT_STREQ("size", trb_config_type_name(TRB_CONFIG_SIZE_BYTES));
  EXPECT_STREQ("unknown", trb_config_type_name(static_cast<trb_config_type_t>(9)));
}

struct ParseCase {
  const char *in;
  bool ok;
  int64_t want;
};

class DurationParseTest : public ::testing::TestWithParam<ParseCase> {};

TEST_P(DurationParseTest, Parses) {
  int64_t v = -1;
  ParseCase c = GetParam();
  EXPECT_EQ(c.ok, trb_config_parse_duration_ms(c.in, &v)) << (c.in ? c.in : "(null)");
  if (c.ok) {
    EXPECT_EQ(c.want, v) << c.in;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, DurationParseTest,
    ::testing::Values(ParseCase{"250ms", true, 250}, ParseCase{"5s", true, 5000},
                      ParseCase{"2m", true, 120000}, ParseCase{"1h", true, 3600000},
                      ParseCase{"0", true, 0}, ParseCase{"0ms", true, 0},
                      ParseCase{"9223372036854775807ms", true, INT64_MAX},
                      ParseCase{"9223372036854775807s", false, 0},
                      ParseCase{"9223372036854775808ms", false, 0},
                      ParseCase{"250", false, 0}, ParseCase{"", false, 0},
                      ParseCase{"ms", false, 0}, ParseCase{"-5s", false, 0},
                      ParseCase{"1.5s", false, 0}, ParseCase{"5S", false, 0},
                      ParseCase{"5 s", false, 0}, ParseCase{"5sec", false, 0},
                      ParseCase{nullptr, false, 0}));

class SizeParseTest : public ::testing::TestWithParam<ParseCase> {};

TEST_P(SizeParseTest, Parses) {
  int64_t v = -1;
  ParseCase c = GetParam();
  EXPECT_EQ(c.ok, trb_config_parse_size_bytes(c.in, &v)) << (c.in ? c.in : "(null)");
  if (c.ok) {
    EXPECT_EQ(c.want, v) << c.in;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, SizeParseTest,
    ::testing::Values(ParseCase{"1000", true, 1000}, ParseCase{"0", true, 0},
                      ParseCase{"12B", true, 12}, ParseCase{"64KiB", true, 65536},
                      ParseCase{"10MiB", true, 10485760}, ParseCase{"2GiB", true, 2147483648},
                      ParseCase{"1TiB", true, INT64_C(1) << 40}, ParseCase{"3kB", true, 3000},
                      ParseCase{"3KB", true, 3000}, ParseCase{"5MB", true, 5000000},
                      ParseCase{"1GB", true, 1000000000}, ParseCase{"1tb", true, 1000000000000},
                      ParseCase{"10mib", true, 10485760},
                      ParseCase{"8388608TiB", false, 0}, ParseCase{"10M", false, 0},
                      ParseCase{"", false, 0}, ParseCase{"KiB", false, 0},
                      ParseCase{"-1", false, 0}, ParseCase{"1.5MiB", false, 0},
                      ParseCase{nullptr, false, 0}));

}  // namespace
