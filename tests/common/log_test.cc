// Tests for src/common/log.h: line format (checked with a real JSON parser),
// escaping, truncation, levels, sinks, concurrency and rate limiting.
#include "src/common/log.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace {

struct Captured {
  trb_log_level_t level;
  std::string line;
};

struct Capture {
  std::mutex mu;
  std::vector<Captured> lines;
};

void capture_sink(trb_log_level_t level, const char *line, size_t len, void *user) {
  Capture *c = static_cast<Capture *>(user);
  EXPECT_EQ('\0', line[len]);
  std::lock_guard<std::mutex> lock(c->mu);
  c->lines.push_back({level, std::string(line, len)});
}

struct JsonDeleter {
  void operator()(json_t *j) const { json_decref(j); }
};
using Json = std::unique_ptr<json_t, JsonDeleter>;

// Parses one line; fails the test unless it is exactly one JSON object
// followed by '\n', within TRB_LOG_LINE_MAX.
Json ParseLine(const std::string &line) {
  json_error_t err;
  EXPECT_LE(line.size(), size_t{TRB_LOG_LINE_MAX});
  EXPECT_FALSE(line.empty());
  if (line.empty()) return nullptr;
  EXPECT_EQ('\n', line.back());
  EXPECT_EQ(line.size() - 1, line.find('\n')) << "embedded newline";
  json_t *j = json_loadb(line.data(), line.size(), JSON_REJECT_DUPLICATES, &err);
  EXPECT_NE(nullptr, j) << err.text << " in: " << line;
  if (j != nullptr) {
    EXPECT_TRUE(json_is_object(j));
  }
  return Json(j);
}

std::string Str(json_t *obj, const char *key) {
  json_t *v = json_object_get(obj, key);
  EXPECT_TRUE(json_is_string(v)) << key;
  return v != nullptr && json_is_string(v) ? json_string_value(v) : "";
}

// "YYYY-MM-DDTHH:MM:SS.uuuuuuZ" (std::regex is avoided: GCC 12 reports
// false maybe-uninitialized warnings in <regex> under -O1 + ASan).
bool IsRfc3339Micros(const std::string &t) {
  static const char pattern[] = "dddd-dd-ddTdd:dd:dd.ddddddZ";
  if (t.size() != sizeof(pattern) - 1) return false;
  for (size_t i = 0; i < t.size(); i++) {
    bool ok = pattern[i] == 'd' ? (t[i] >= '0' && t[i] <= '9') : t[i] == pattern[i];
    if (!ok) return false;
  }
  return true;
}

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    trb_log_set_sink(capture_sink, &cap_);
    trb_log_set_level(TRB_LOG_DEBUG);
  }
  void TearDown() override {
    trb_log_set_sink(nullptr, nullptr);
    trb_log_set_level(TRB_LOG_INFO);
  }
  size_t Count() {
    std::lock_guard<std::mutex> lock(cap_.mu);
    return cap_.lines.size();
  }
  Json Line(size_t i) { return ParseLine(cap_.lines.at(i).line); }

  Capture cap_;
};

TEST_F(LogTest, WritesCloudLoggingFields) {
  int line = __LINE__ + 1;
  TRB_LOG(TRB_LOG_WARNING, "ingest", "accepted %d events", 42);
  ASSERT_EQ(1u, Count());
  EXPECT_EQ(TRB_LOG_WARNING, cap_.lines[0].level);
  Json j = Line(0);
  ASSERT_TRUE(j);
  EXPECT_EQ("WARNING", Str(j.get(), "severity"));
  EXPECT_EQ("accepted 42 events", Str(j.get(), "message"));
  EXPECT_EQ("ingest", Str(j.get(), "component"));
  EXPECT_TRUE(IsRfc3339Micros(Str(j.get(), "time"))) << Str(j.get(), "time");
  json_t *loc = json_object_get(j.get(), "logging.googleapis.com/sourceLocation");
  ASSERT_TRUE(json_is_object(loc));
  EXPECT_EQ(__FILE__, Str(loc, "file"));
  EXPECT_EQ(std::to_string(line), Str(loc, "line"));
  EXPECT_EQ(nullptr, json_object_get(j.get(), "truncated"));
  // The fixed members come first, in this order.
  EXPECT_EQ(0u, cap_.lines[0].line.find("{\"severity\":\"WARNING\",\"time\":\""));
}

TEST_F(LogTest, TimeIsCurrentUtc) {
  time_t before = time(nullptr);
  TRB_LOG(TRB_LOG_INFO, "c", "now");
  time_t after = time(nullptr);
  Json j = Line(0);
  ASSERT_TRUE(j);
  struct tm tm = {};
  std::string t = Str(j.get(), "time");
  ASSERT_NE(nullptr, strptime(t.c_str(), "%Y-%m-%dT%H:%M:%S", &tm));
  time_t logged = timegm(&tm);
  EXPECT_LE(before, logged);
  EXPECT_GE(after, logged);
}

TEST_F(LogTest, SeverityNamesForEveryLevel) {
  TRB_LOG(TRB_LOG_DEBUG, "c", "d");
  TRB_LOG(TRB_LOG_INFO, "c", "i");
  TRB_LOG(TRB_LOG_WARNING, "c", "w");
  TRB_LOG(TRB_LOG_ERROR, "c", "e");
  trb_log_write(static_cast<trb_log_level_t>(99), nullptr, nullptr, 0, nullptr, 0, "x");
  ASSERT_EQ(5u, Count());
  const char *want[] = {"DEBUG", "INFO", "WARNING", "ERROR", "ERROR"};
  for (size_t i = 0; i < 5; i++) {
    Json j = Line(i);
    ASSERT_TRUE(j);
    EXPECT_EQ(want[i], Str(j.get(), "severity"));
  }
  Json last = Line(4);
  EXPECT_EQ("", Str(last.get(), "component"));
}

TEST_F(LogTest, DisabledLevelDoesNotEvaluateArguments) {
  int evaluated = 0;
  trb_log_set_level(TRB_LOG_WARNING);
  EXPECT_FALSE(trb_log_enabled(TRB_LOG_INFO));
  EXPECT_TRUE(trb_log_enabled(TRB_LOG_WARNING));
  TRB_LOG(TRB_LOG_INFO, "c", "%d", ++evaluated);
  TRB_LOG(TRB_LOG_DEBUG, "c", "%d", ++evaluated);
  EXPECT_EQ(0, evaluated);
  EXPECT_EQ(0u, Count());
  TRB_LOG(TRB_LOG_ERROR, "c", "%d", ++evaluated);
  EXPECT_EQ(1, evaluated);
  EXPECT_EQ(1u, Count());
  EXPECT_EQ(TRB_LOG_WARNING, trb_log_get_level());
}

TEST_F(LogTest, MacroIsOneStatementInUnbracedIfElse) {
  bool flag = false;
  int other = 0;
  if (flag)
    TRB_LOG(TRB_LOG_INFO, "c", "never");
  else
    other = 1;
  EXPECT_EQ(1, other);
  EXPECT_EQ(0u, Count());
}

TEST_F(LogTest, StructuredFieldsKeepTheirJsonTypes) {
  trb_log_field_t f[] = {
      TRB_LOG_STR("stream", "projects/p/datasets/d/tables/t/streams/_default"),
      TRB_LOG_INT("min", INT64_MIN),
      TRB_LOG_INT("attempt", 3),
      TRB_LOG_DBL("ratio", 0.1),
      TRB_LOG_DBL("nan", NAN),
      TRB_LOG_DBL("inf", -INFINITY),
      TRB_LOG_BOOL("retry", 1),
      TRB_LOG_BOOL("final", 0),
      TRB_LOG_STR("action", nullptr),
  };
  TRB_LOGF(TRB_LOG_ERROR, "streamer", f, sizeof(f) / sizeof(f[0]), "append failed");
  ASSERT_EQ(1u, Count());
  Json j = Line(0);
  ASSERT_TRUE(j);
  EXPECT_EQ("projects/p/datasets/d/tables/t/streams/_default", Str(j.get(), "stream"));
  EXPECT_EQ(INT64_MIN, json_integer_value(json_object_get(j.get(), "min")));
  EXPECT_EQ(3, json_integer_value(json_object_get(j.get(), "attempt")));
  EXPECT_DOUBLE_EQ(0.1, json_real_value(json_object_get(j.get(), "ratio")));
  EXPECT_NE(std::string::npos, cap_.lines[0].line.find("\"ratio\":0.1,"));
  EXPECT_EQ("NaN", Str(j.get(), "nan"));
  EXPECT_EQ("-Infinity", Str(j.get(), "inf"));
  EXPECT_TRUE(json_is_true(json_object_get(j.get(), "retry")));
  EXPECT_TRUE(json_is_false(json_object_get(j.get(), "final")));
  EXPECT_TRUE(json_is_null(json_object_get(j.get(), "action")));
}

TEST_F(LogTest, EscapesQuotesBackslashesAndControlCharacters) {
  std::string msg = "say \"hi\"\\ path\n\ttab\r \x01\x1f\x7f end";
  trb_log_field_t f[] = {TRB_LOG_STR("k\"ey", "v\\al\n")};
  TRB_LOGF(TRB_LOG_INFO, "c", f, 1, "%s", msg.c_str());
  const std::string &raw = cap_.lines.at(0).line;
  EXPECT_NE(std::string::npos, raw.find("\\u0001\\u001f"));
  EXPECT_NE(std::string::npos, raw.find("\\n\\ttab\\r"));
  Json j = Line(0);
  ASSERT_TRUE(j);
  EXPECT_EQ(msg, Str(j.get(), "message"));
  EXPECT_EQ("v\\al\n", Str(j.get(), "k\"ey"));
}

TEST_F(LogTest, ValidUtf8PassesThroughUnchanged) {
  std::string msg = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";  // café € 😀
  TRB_LOG(TRB_LOG_INFO, "c", "%s", msg.c_str());
  EXPECT_NE(std::string::npos, cap_.lines.at(0).line.find(msg));
  Json j = Line(0);
  ASSERT_TRUE(j);
  EXPECT_EQ(msg, Str(j.get(), "message"));
}

TEST_F(LogTest, InvalidUtf8IsReplacedPerByte) {
  const std::string r = "\xef\xbf\xbd";  // U+FFFD as the parser returns it
  struct Case {
    const char *in;
    std::string want;
  } cases[] = {
      {"a\xff" "b", "a" + r + "b"},
      {"x\xc3", "x" + r},                       // cut-off 2-byte sequence
      {"\xc0\xaf", r + r},                      // overlong '/'
      {"\xed\xa0\x80", r + r + r},              // UTF-16 surrogate
      {"\xf4\x90\x80\x80", r + r + r + r},      // above U+10FFFF
      {"\x80z", r + "z"},                       // stray continuation byte
  };
  for (const Case &c : cases) {
    cap_.lines.clear();
    TRB_LOG(TRB_LOG_INFO, "c", "%s", c.in);
    Json j = Line(0);  // jansson rejects invalid UTF-8, so parsing proves validity
    ASSERT_TRUE(j);
    EXPECT_EQ(c.want, Str(j.get(), "message"));
  }
}

TEST_F(LogTest, LongMessageIsTruncatedToValidJsonWithMarker) {
  std::string big(10000, 'x');
  trb_log_field_t f[] = {TRB_LOG_INT("dropped", 1)};
  TRB_LOGF(TRB_LOG_ERROR, "c", f, 1, "%s", big.c_str());
  const std::string &raw = cap_.lines.at(0).line;
  EXPECT_LE(raw.size(), size_t{TRB_LOG_LINE_MAX});
  EXPECT_GT(raw.size(), size_t{TRB_LOG_LINE_MAX} - 64);
  Json j = Line(0);
  ASSERT_TRUE(j);
  EXPECT_TRUE(json_is_true(json_object_get(j.get(), "truncated")));
  std::string m = Str(j.get(), "message");
  EXPECT_GT(m.size(), 3000u);
  EXPECT_EQ(std::string(m.size(), 'x'), m);
  EXPECT_EQ(nullptr, json_object_get(j.get(), "dropped"));
  EXPECT_EQ("ERROR", Str(j.get(), "severity"));
}

TEST_F(LogTest, LongFieldValueIsCutAndLaterFieldsDropped) {
  std::string big(5000, 'y');
  trb_log_field_t f[] = {TRB_LOG_INT("first", 7), TRB_LOG_STR("body", big.c_str()),
                         TRB_LOG_BOOL("after", 1)};
  TRB_LOGF(TRB_LOG_INFO, "c", f, 3, "short");
  Json j = Line(0);
  ASSERT_TRUE(j);
  EXPECT_EQ("short", Str(j.get(), "message"));
  EXPECT_EQ(7, json_integer_value(json_object_get(j.get(), "first")));
  EXPECT_LT(Str(j.get(), "body").size(), big.size());
  EXPECT_EQ(nullptr, json_object_get(j.get(), "after"));
  EXPECT_TRUE(json_is_true(json_object_get(j.get(), "truncated")));
}

// Sweep message lengths across the truncation boundary with characters of
// every encoded width (1-byte, escaped 2- and 6-byte, 2..4-byte UTF-8): the
// line must always be valid JSON within the limit, and untruncated lines
// must carry the message exactly.
class LogBoundaryTest : public LogTest, public ::testing::WithParamInterface<int> {};

TEST_P(LogBoundaryTest, AlwaysValidAtEveryLength) {
  static const char *const units[] = {"a", "\"", "\x01", "\xc3\xa9", "\xe2\x82\xac",
                                      "\xf0\x9f\x98\x80", "\xff"};
  for (const char *u : units) {
    std::string msg;
    while (msg.size() < static_cast<size_t>(GetParam())) msg += u;
    cap_.lines.clear();
    TRB_LOG(TRB_LOG_INFO, "c", "%s", msg.c_str());
    Json j = Line(0);
    ASSERT_TRUE(j) << "unit " << static_cast<int>(static_cast<unsigned char>(u[0]));
    if (json_object_get(j.get(), "truncated") == nullptr && u[0] != '\xff') {
      EXPECT_EQ(msg, Str(j.get(), "message"));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Lengths, LogBoundaryTest,
                         ::testing::Values(0, 1, 500, 630, 1300, 2000, 3900, 3950, 3990,
                                           4000, 4001, 4030, 4070, 4094, 4095, 4096, 4097,
                                           5000, 8191, 8192, 20000));

TEST(LogLevelTest, ParseNamesCaseInsensitively) {
  trb_log_level_t l = TRB_LOG_INFO;
  EXPECT_TRUE(trb_log_level_parse("debug", &l));
  EXPECT_EQ(TRB_LOG_DEBUG, l);
  EXPECT_TRUE(trb_log_level_parse("WARNING", &l));
  EXPECT_EQ(TRB_LOG_WARNING, l);
  EXPECT_TRUE(trb_log_level_parse("warn", &l));
  EXPECT_TRUE(trb_log_level_parse("Error", &l));
  EXPECT_EQ(TRB_LOG_ERROR, l);
  EXPECT_TRUE(trb_log_level_parse("info", &l));
  EXPECT_EQ(TRB_LOG_INFO, l);
  EXPECT_FALSE(trb_log_level_parse("verbose", &l));
  EXPECT_FALSE(trb_log_level_parse(nullptr, &l));
  EXPECT_EQ(TRB_LOG_INFO, l);
  EXPECT_STREQ("WARNING", trb_log_level_name(TRB_LOG_WARNING));
  EXPECT_STREQ("DEBUG", trb_log_level_name(TRB_LOG_DEBUG));
}

TEST(LogLevelTest, InitFromEnvironment) {
  trb_status_t st;
  unsetenv("TRB_LOG_LEVEL");
  trb_log_set_level(TRB_LOG_WARNING);
  EXPECT_EQ(GRPC_STATUS_OK, trb_log_init_from_env(&st));
  EXPECT_EQ(TRB_LOG_WARNING, trb_log_get_level());

  setenv("TRB_LOG_LEVEL", "debug", 1);
  EXPECT_EQ(GRPC_STATUS_OK, trb_log_init_from_env(&st));
  EXPECT_EQ(TRB_LOG_DEBUG, trb_log_get_level());

  setenv("TRB_LOG_LEVEL", "loud", 1);
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_log_init_from_env(&st));
  EXPECT_STREQ("env TRB_LOG_LEVEL: unknown log level \"loud\" (expected debug, info, "
               "warning or error)",
               st.msg);
  EXPECT_EQ(TRB_LOG_DEBUG, trb_log_get_level());
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_log_init_from_env(nullptr));

  unsetenv("TRB_LOG_LEVEL");
  trb_log_set_level(TRB_LOG_INFO);
}

TEST_F(LogTest, ConcurrentLoggersReachTheSinkWhole) {
  constexpr int kThreads = 4, kLines = 250;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([t] {
      for (int i = 0; i < kLines; i++) {
        trb_log_field_t f[] = {TRB_LOG_INT("thread", t), TRB_LOG_INT("i", i)};
        TRB_LOGF(TRB_LOG_INFO, "c", f, 2, "line %d of thread %d", i, t);
      }
    });
  }
  for (auto &th : threads) th.join();
  ASSERT_EQ(size_t{kThreads * kLines}, Count());
  std::vector<int> next(kThreads, 0);
  for (size_t k = 0; k < cap_.lines.size(); k++) {
    Json j = Line(k);
    ASSERT_TRUE(j);
    int t = static_cast<int>(json_integer_value(json_object_get(j.get(), "thread")));
    int i = static_cast<int>(json_integer_value(json_object_get(j.get(), "i")));
    ASSERT_EQ(next.at(t), i);  // each thread's lines arrive in order
    next[t]++;
  }
}

// The default sink: redirect fd 2 to a file, log long lines from several
// threads, and check every line came out whole (one write(2) per line).
TEST(LogStderrTest, ThreadsNeverInterleaveLines) {
  constexpr int kThreads = 4, kLines = 100;
  const char *dir = getenv("TEST_TMPDIR");
  std::string path = std::string(dir != nullptr ? dir : "/tmp") + "/log_stderr_XXXXXX";
  std::vector<char> tmpl(path.begin(), path.end());
  tmpl.push_back('\0');
  int fd = mkstemp(tmpl.data());
  ASSERT_GE(fd, 0);
  int saved = dup(STDERR_FILENO);
  ASSERT_GE(saved, 0);
  trb_log_set_sink(nullptr, nullptr);
  trb_log_set_level(TRB_LOG_INFO);
  ASSERT_EQ(STDERR_FILENO, dup2(fd, STDERR_FILENO));

  std::string pad(3000, 'p');
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([t, &pad] {
      for (int i = 0; i < kLines; i++) {
        TRB_LOG(TRB_LOG_INFO, "stderr", "%d %d %s", t, i, pad.c_str());
      }
    });
  }
  for (auto &th : threads) th.join();
  ASSERT_EQ(STDERR_FILENO, dup2(saved, STDERR_FILENO));
  close(saved);

  std::string all;
  char buf[65536];
  ASSERT_EQ(0, lseek(fd, 0, SEEK_SET));
  for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) all.append(buf, static_cast<size_t>(n));
  close(fd);
  unlink(tmpl.data());

  size_t lines = 0, pos = 0;
  while (pos < all.size()) {
    size_t nl = all.find('\n', pos);
    ASSERT_NE(std::string::npos, nl);
    Json j = ParseLine(all.substr(pos, nl + 1 - pos));
    ASSERT_TRUE(j);
    EXPECT_EQ("stderr", Str(j.get(), "component"));
    lines++;
    pos = nl + 1;
  }
  EXPECT_EQ(size_t{kThreads * kLines}, lines);
}

TEST_F(LogTest, SetSinkNullRestoresDefaultAndStopsCallingOldSink) {
  TRB_LOG(TRB_LOG_INFO, "c", "to capture");
  trb_log_set_sink(nullptr, nullptr);
  trb_log_set_level(TRB_LOG_WARNING);  // keep stderr quiet
  TRB_LOG(TRB_LOG_INFO, "c", "filtered");
  EXPECT_EQ(1u, Count());
}

TEST(LogRateLimitTest, BurstThenSuppressThenReportCount) {
  trb_log_ratelimit_t rl = TRB_LOG_RATELIMIT_INIT(1000, 3);
  uint64_t sup = 99;
  for (int i = 0; i < 3; i++) {
    EXPECT_TRUE(trb_log_ratelimit_allow(&rl, 5000 + i, &sup));
    EXPECT_EQ(0u, sup);
  }
  sup = 99;
  for (int i = 0; i < 5; i++) EXPECT_FALSE(trb_log_ratelimit_allow(&rl, 5500, &sup));
  EXPECT_EQ(99u, sup);  // untouched when refused
  EXPECT_FALSE(trb_log_ratelimit_allow(&rl, 5999, nullptr));
  EXPECT_TRUE(trb_log_ratelimit_allow(&rl, 6000, &sup));  // new window
  EXPECT_EQ(6u, sup);
  EXPECT_TRUE(trb_log_ratelimit_allow(&rl, 6001, &sup));
  EXPECT_EQ(0u, sup);
}

TEST(LogRateLimitTest, ZeroIntervalNeverLimitsAndZeroBurstActsAsOne) {
  trb_log_ratelimit_t off;
  trb_log_ratelimit_init(&off, 0, 1);
  for (int i = 0; i < 100; i++) EXPECT_TRUE(trb_log_ratelimit_allow(&off, 0, nullptr));
  trb_log_ratelimit_t one;
  trb_log_ratelimit_init(&one, 100, 0);
  EXPECT_TRUE(trb_log_ratelimit_allow(&one, 0, nullptr));
  EXPECT_FALSE(trb_log_ratelimit_allow(&one, 1, nullptr));
  pthread_mutex_destroy(&off.mu);
  pthread_mutex_destroy(&one.mu);
}

TEST(LogRateLimitTest, ExactlyBurstAllowedAcrossThreads) {
  static trb_log_ratelimit_t rl = TRB_LOG_RATELIMIT_INIT(60000, 10);
  constexpr int kThreads = 8, kCalls = 1000;
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&allowed] {
      for (int i = 0; i < kCalls; i++) {
        if (trb_log_ratelimit_allow(&rl, 1000, nullptr)) allowed++;
      }
    });
  }
  for (auto &th : threads) th.join();
  EXPECT_EQ(10, allowed.load());
  uint64_t sup = 0;
  EXPECT_TRUE(trb_log_ratelimit_allow(&rl, 61000, &sup));
  EXPECT_EQ(uint64_t{kThreads * kCalls - 10}, sup);
}

TEST_F(LogTest, RateLimitedMacroAddsSuppressedCount) {
  trb_log_ratelimit_t rl = TRB_LOG_RATELIMIT_INIT(3600 * 1000, 2);
  int evaluated = 0;
  for (int i = 0; i < 10; i++) {
    TRB_LOG_RATELIMITED(&rl, TRB_LOG_ERROR, "c", "failure %d", ++evaluated);
  }
  EXPECT_EQ(2, evaluated);  // refused calls do not evaluate arguments
  ASSERT_EQ(2u, Count());
  Json j = Line(1);
  ASSERT_TRUE(j);
  EXPECT_EQ(nullptr, json_object_get(j.get(), "suppressed"));
  rl.window_start_ms = -1;  // white box: start a new window now
  TRB_LOG_RATELIMITED(&rl, TRB_LOG_ERROR, "c", "failure again");
  ASSERT_EQ(3u, Count());
  Json k = Line(2);
  ASSERT_TRUE(k);
  EXPECT_EQ(8, json_integer_value(json_object_get(k.get(), "suppressed")));
}

}  // namespace
