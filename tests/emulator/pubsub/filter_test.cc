// Tests for src/emulator/pubsub/filter.h: the Pub/Sub subscription filter
// language. Accepted and rejected filters come from the "Filter messages from
// a subscription" guide (docs.cloud.google.com/pubsub/docs/filtering) where
// it gives examples, plus edge cases of the grammar documented in filter.h.

#include "src/emulator/pubsub/filter.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "src/common/alloc.h"

namespace {

using Attrs = std::vector<std::pair<std::string, std::string>>;

// Parses `expr`; on success stores the filter in `*out`.
grpc_status_code Parse(const std::string &expr, trb_ps_filter_t **out,
                       trb_status_t *st) {
  return trb_ps_filter_parse(expr.c_str(), out, st);
}

bool Match(const trb_ps_filter_t *f, const Attrs &attrs) {
  std::vector<const char *> keys, values;
  for (const auto &kv : attrs) {
    keys.push_back(kv.first.c_str());
    values.push_back(kv.second.c_str());
  }
  return trb_ps_filter_match(f, keys.data(), values.data(), attrs.size());
}

// The 0-based offset in "... at byte offset N", or -1 if absent.
long ErrorOffset(const char *msg) {
  const char *tag = "at byte offset ";
  const char *last = nullptr;
  for (const char *p = strstr(msg, tag); p != nullptr;
       p = strstr(p + 1, tag)) {
    last = p;
  }
  if (last == nullptr) return -1;
  return strtol(last + strlen(tag), nullptr, 10);
}

// ---- accepted filters -----------------------------------------------------

struct Expect {
  Attrs attrs;
  bool match;
};

struct Accepted {
  const char *filter;
  std::vector<Expect> expect;
};

const Attrs kNone = {};

const std::vector<Accepted> &AcceptedCases() {
  static const std::vector<Accepted> cases = {
      // The docs' table of filters on the `name` attribute.
      {"attributes:name",
       {{{{"name", "com"}}, true},
        {{{"name", ""}}, true},
        {kNone, false},
        {{{"Name", "com"}}, false},
        {{{"names", "com"}}, false},
        {{{"nam", "com"}}, false}}},
      {"NOT attributes:name",
       {{{{"name", "com"}}, false}, {kNone, true}, {{{"x", "y"}}, true}}},
      {"attributes.name = \"com\"",
       {{{{"name", "com"}}, true},
        {{{"name", "COM"}}, false},
        {{{"name", "co"}}, false},
        {{{"name", "comm"}}, false},
        {{{"other", "com"}}, false},
        {kNone, false}}},
      {"attributes.name != \"com\"",
       {{{{"name", "com"}}, false},
        {{{"name", "net"}}, true},
        {{{"name", ""}}, true},
        {kNone, true}}},
      {"hasPrefix(attributes.name, \"co\")",
       {{{{"name", "com"}}, true},
        {{{"name", "co"}}, true},
        {{{"name", "c"}}, false},
        {{{"name", "Com"}}, false},
        {{{"name", "xco"}}, false},
        {kNone, false}}},
      {"NOT hasPrefix(attributes.name, \"co\")",
       {{{{"name", "com"}}, false}, {{{"name", "net"}}, true}, {kNone, true}}},
      {"hasPrefix(attributes.name, \"\")",
       {{{{"name", ""}}, true}, {{{"name", "x"}}, true}, {kNone, false}}},
      // Boolean operators, as in the docs.
      {"attributes:\"iana.org/language_tag\" AND NOT attributes.name = \"com\"",
       {{{{"iana.org/language_tag", "en"}}, true},
        {{{"iana.org/language_tag", "en"}, {"name", "com"}}, false},
        {{{"iana.org/language_tag", "en"}, {"name", "net"}}, true},
        {{{"name", "net"}}, false}}},
      {"attributes:\"iana.org/language_tag\" AND (attributes.name = \"net\" OR "
       "attributes.name = \"org\")",
       {{{{"iana.org/language_tag", "en"}, {"name", "net"}}, true},
        {{{"iana.org/language_tag", "en"}, {"name", "org"}}, true},
        {{{"iana.org/language_tag", "en"}, {"name", "com"}}, false},
        {{{"name", "net"}}, false}}},
      {"attributes.name = \"com\" AND -attributes:\"iana.org/language_tag\"",
       {{{{"name", "com"}}, true},
        {{{"name", "com"}, {"iana.org/language_tag", "en"}}, false}}},
      {"attributes.\"iana.org/language_tag\" = \"en\"",
       {{{{"iana.org/language_tag", "en"}}, true},
        {{{"iana.org/language_tag", "de"}}, false}}},
      {"attributes:\"\\u307F\\u3093\\u306A\"",
       {{{{"\xE3\x81\xBF\xE3\x82\x93\xE3\x81\xAA", "x"}}, true},
        {{{"\\u307F\\u3093\\u306A", "x"}}, false}}},
      {"attributes:\"iana.org/language_tag\" AND (attributes.domain = \"net\" "
       "OR hasPrefix(attributes.domain, \"co\")) AND NOT "
       "hasPrefix(attributes.head, \"foo\")",
       {{{{"iana.org/language_tag", "en"}, {"domain", "com"}}, true},
        {{{"iana.org/language_tag", "en"}, {"domain", "net"}, {"head", "f"}},
         true},
        {{{"iana.org/language_tag", "en"}, {"domain", "com"}, {"head", "food"}},
         false},
        {{{"iana.org/language_tag", "en"}, {"domain", "org"}}, false}}},
      // Client-library samples in the same guide.
      {"attributes.author=\"unknown\"",
       {{{{"author", "unknown"}}, true}, {{{"author", "known"}}, false}}},
      {"attributes.is-even = \"false\"",
       {{{{"is-even", "false"}}, true}, {{{"is", "false"}}, false}}},
      // Precedence: NOT binds tighter than AND / OR.
      {"NOT attributes:a AND attributes:b",
       {{{{"b", ""}}, true}, {{{"a", ""}, {"b", ""}}, false}, {kNone, false}}},
      {"-attributes:a OR attributes:b",
       {{kNone, true}, {{{"a", ""}}, false}, {{{"a", ""}, {"b", ""}}, true}}},
      {"NOT (attributes:a OR attributes:b)",
       {{kNone, true}, {{{"a", ""}}, false}, {{{"b", ""}}, false}}},
      {"-(attributes:a AND attributes:b)",
       {{kNone, true}, {{{"a", ""}}, true}, {{{"a", ""}, {"b", ""}}, false}}},
      {"NOT NOT attributes:a", {{kNone, false}, {{{"a", ""}}, true}}},
      {"--attributes:a", {{kNone, false}, {{{"a", ""}}, true}}},
      {"NOT(attributes:a)", {{kNone, true}, {{{"a", ""}}, false}}},
      {"NOT -attributes:a", {{kNone, false}, {{{"a", ""}}, true}}},
      {"attributes:a AND attributes:b AND attributes:c",
       {{{{"a", ""}, {"b", ""}, {"c", ""}}, true},
        {{{"a", ""}, {"c", ""}}, false}}},
      {"attributes:a OR attributes:b OR attributes:c",
       {{{{"c", ""}}, true}, {{{"d", ""}}, false}}},
      {"(attributes:a AND attributes:b) OR (attributes:c AND attributes:d)",
       {{{{"a", ""}, {"b", ""}}, true},
        {{{"c", ""}, {"d", ""}}, true},
        {{{"a", ""}, {"d", ""}}, false}}},
      {"((attributes:a))", {{{{"a", ""}}, true}, {kNone, false}}},
      // Whitespace between tokens and around the filter.
      {"  attributes:a  ", {{{{"a", ""}}, true}}},
      {"\tattributes:a\r\n", {{{{"a", ""}}, true}}},
      {"attributes : a", {{{{"a", ""}}, true}}},
      {"attributes . a = \"x\"", {{{{"a", "x"}}, true}}},
      {"hasPrefix ( attributes.a , \"x\" )", {{{{"a", "xy"}}, true}}},
      {"(attributes:a)AND(attributes:b)", {{{{"a", ""}, {"b", ""}}, true}}},
      {"attributes:\"a\"AND attributes:b", {{{{"a", ""}, {"b", ""}}, true}}},
      // Unquoted keys: letters, digits, '_' and '-'.
      {"attributes:123", {{{{"123", ""}}, true}}},
      {"attributes:_a-b_9", {{{{"_a-b_9", ""}}, true}}},
      {"attributes:-a", {{{{"-a", ""}}, true}, {{{"a", ""}}, false}}},
      {"attributes:\"a b\"", {{{{"a b", ""}}, true}}},
      {"attributes:\"\"", {{{{"", "x"}}, true}, {kNone, false}}},
      // String literals and escapes.
      {"attributes.k = \"\"", {{{{"k", ""}}, true}, {{{"k", "x"}}, false}}},
      {"attributes.k = \"a\\\"b\"", {{{{"k", "a\"b"}}, true}}},
      {"attributes.k = \"a\\\\b\"", {{{{"k", "a\\b"}}, true}}},
      {"attributes.k = \"\\a\\b\\f\\n\\r\\t\\v\\'\\`\\?\"",
       {{{{"k", "\a\b\f\n\r\t\v'`?"}}, true}}},
      {"attributes.k = \"\\x41\\X42\"", {{{{"k", "AB"}}, true}}},
      {"attributes.k = \"\\101\\102\"", {{{{"k", "AB"}}, true}}},
      {"attributes.k = \"\\xe9\\351\\u00E9\"",
       {{{{"k", "\xC3\xA9\xC3\xA9\xC3\xA9"}}, true}}},
      {"attributes.k = \"\\U0001F600\"", {{{{"k", "\xF0\x9F\x98\x80"}}, true}}},
      {"attributes.k = \"\xE6\x97\xA5\xE6\x9C\xAC\"",
       {{{{"k", "\xE6\x97\xA5\xE6\x9C\xAC"}}, true}}},
      // A literal holding NUL can never equal a (NUL-terminated) attribute.
      {"attributes.k = \"a\\000\"",
       {{{{"k", "a"}}, false}, {{{"k", "a0"}}, false}}},
      {"hasPrefix(attributes.k, \"a\\x00\")",
       {{{{"k", "a"}}, false}, {{{"k", "ab"}}, false}}},
      {"attributes:\"k\\u0000\"", {{{{"k", ""}}, false}}},
      // The first of duplicate keys counts.
      {"attributes.k = \"1\"",
       {{{{"k", "1"}, {"k", "2"}}, true}, {{{"k", "2"}, {"k", "1"}}, false}}},
  };
  return cases;
}

TEST(FilterTest, AcceptedFiltersMatchAsDocumented) {
  for (const Accepted &c : AcceptedCases()) {
    SCOPED_TRACE(c.filter);
    trb_ps_filter_t *f = nullptr;
    trb_status_t st;
    ASSERT_EQ(GRPC_STATUS_OK, Parse(c.filter, &f, &st)) << st.msg;
    ASSERT_NE(nullptr, f);
    EXPECT_STREQ("", st.msg);
    for (size_t i = 0; i < c.expect.size(); i++) {
      SCOPED_TRACE("attribute set #" + std::to_string(i));
      EXPECT_EQ(c.expect[i].match, Match(f, c.expect[i].attrs));
    }
    trb_ps_filter_free(f);
  }
}

TEST(FilterTest, EmptyOrWhitespaceFilterMatchesEverything) {
  for (const char *expr : {"", " ", " \t\r\n\f\v "}) {
    trb_ps_filter_t *f = reinterpret_cast<trb_ps_filter_t *>(0x1);
    trb_status_t st;
    EXPECT_EQ(GRPC_STATUS_OK, trb_ps_filter_parse(expr, &f, &st));
    EXPECT_EQ(nullptr, f);
  }
  trb_ps_filter_t *f = reinterpret_cast<trb_ps_filter_t *>(0x1);
  EXPECT_EQ(GRPC_STATUS_OK, trb_ps_filter_parse(nullptr, &f, nullptr));
  EXPECT_EQ(nullptr, f);
  EXPECT_TRUE(Match(nullptr, kNone));
  EXPECT_TRUE(Match(nullptr, {{"a", "b"}}));
  trb_ps_filter_free(nullptr);
}

TEST(FilterTest, MatchWithNoAttributeArrays) {
  trb_ps_filter_t *f = nullptr;
  ASSERT_EQ(GRPC_STATUS_OK, Parse("NOT attributes:a", &f, nullptr));
  EXPECT_TRUE(trb_ps_filter_match(f, nullptr, nullptr, 0));
  trb_ps_filter_free(f);
}

TEST(FilterTest, LengthLimitIs256Bytes) {
  // "attributes.k = \"" + padding + "\"" padded to exactly N bytes.
  auto of_len = [](size_t n) {
    std::string head = "attributes.k = \"";
    return head + std::string(n - head.size() - 1, 'v') + "\"";
  };
  std::string at_limit = of_len(256);
  ASSERT_EQ(256u, at_limit.size());
  trb_ps_filter_t *f = nullptr;
  trb_status_t st;
  ASSERT_EQ(GRPC_STATUS_OK, Parse(at_limit, &f, &st)) << st.msg;
  std::string value(256 - 17, 'v');
  EXPECT_TRUE(Match(f, {{"k", value}}));
  EXPECT_FALSE(Match(f, {{"k", value + "v"}}));
  trb_ps_filter_free(f);

  f = reinterpret_cast<trb_ps_filter_t *>(0x1);
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, Parse(of_len(257), &f, &st));
  EXPECT_EQ(nullptr, f);
  EXPECT_NE(nullptr, strstr(st.msg, "longer than the maximum of 256 bytes"))
      << st.msg;
  EXPECT_EQ(256, ErrorOffset(st.msg));
  // The limit applies to the raw bytes, whitespace included.
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            Parse(std::string(300, ' '), &f, &st));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            Parse(std::string(250, ' ') + "attributes:a", &f, &st));
}

TEST(FilterTest, DeepestNestingWithinTheLimitParses) {
  // 122 parentheses on each side around a 12-byte term: 256 bytes.
  std::string deep = std::string(122, '(') + "attributes:a" +
                     std::string(122, ')');
  ASSERT_EQ(256u, deep.size());
  trb_ps_filter_t *f = nullptr;
  trb_status_t st;
  ASSERT_EQ(GRPC_STATUS_OK, Parse(deep, &f, &st)) << st.msg;
  EXPECT_TRUE(Match(f, {{"a", ""}}));
  trb_ps_filter_free(f);
  // 244 negations: an even count cancels out.
  std::string nots = std::string(244, '-') + "attributes:a";
  ASSERT_EQ(GRPC_STATUS_OK, Parse(nots, &f, &st)) << st.msg;
  EXPECT_TRUE(Match(f, {{"a", ""}}));
  EXPECT_FALSE(Match(f, kNone));
  trb_ps_filter_free(f);
}

// ---- rejected filters -----------------------------------------------------

struct Rejected {
  std::string filter;
  long offset;         // expected 0-based byte offset in the message
  const char *reason;  // expected substring of the message
};

const std::vector<Rejected> &RejectedCases() {
  static const std::vector<Rejected> cases = {
      // The docs' "Invalid" examples.
      {"attributes:\"iana.org/language_tag\" AND attributes.name = \"net\" OR "
       "attributes.name = \"org\"",
       63, "AND and OR cannot be combined without parentheses (OR follows the "
           "AND at byte offset 35)"},
      {"attributes.name = \"com\" AND (\"net\" OR \"org\")", 29,
       "found a string literal"},
      {"\"com\" = attributes.name", 0, "found a string literal"},
      {"attributes.name = attributes.website", 18,
       "expected a string literal after '=', found 'attributes'"},
      {"attributes:\\u307F\\u3093\\u306A", 11, "expected an attribute key"},
      // hasPrefix is the only function (PROTOCOL.md 64: no hasSuffix).
      {"hasSuffix(attributes.name, \"m\")", 0, "unknown function 'hasSuffix'"},
      {"hasprefix(attributes.name, \"m\")", 0, "unknown function 'hasprefix'"},
      {"matches (attributes.name, \"m\")", 0, "unknown function 'matches'"},
      // AND / OR mixing in the other order, and inside parentheses.
      {"attributes:a OR attributes:b AND attributes:c", 29,
       "AND and OR cannot be combined"},
      {"(attributes:a AND attributes:b OR attributes:c)", 31,
       "AND and OR cannot be combined"},
      {"attributes:a AND NOT attributes:b OR attributes:c", 34,
       "AND and OR cannot be combined"},
      // Operators are upper case.
      {"attributes:a and attributes:b", 13, "must be upper case, found 'and'"},
      {"attributes:a Or attributes:b", 13, "must be upper case, found 'Or'"},
      {"not attributes:a", 0, "must be upper case, found 'not'"},
      // Incomplete expressions.
      {"attributes:a AND", 16, "expected an expression, found end of filter"},
      {"AND attributes:a", 0, "expected an expression before AND"},
      {"attributes:a AND OR attributes:b", 17,
       "expected an expression before OR"},
      {"-", 1, "expected an expression, found end of filter"},
      {"NOT", 3, "expected an expression, found end of filter"},
      {"NOT NOT", 7, "expected an expression, found end of filter"},
      {"(attributes:a", 13, "to close the '(' opened at byte offset 0"},
      {"attributes:a)", 12, "expected AND, OR or end of filter, found ')'"},
      {"()", 1, "found ')'"},
      {"attributes:a attributes:b", 13, "found 'attributes'"},
      {"attributes:a ANDattributes:b", 13, "found 'ANDattributes'"},
      {"NOTattributes:a", 0, "unknown identifier 'NOTattributes'"},
      // Attribute forms.
      {"attributes", 10, "expected ':' or '.' after 'attributes'"},
      {"attributes:", 11, "expected an attribute key"},
      {"attributes.a", 12, "expected '=' or '!=' after attributes.KEY"},
      {"attributes.a:\"x\"", 12, "expected '=' or '!='"},
      {"attributes.a == \"x\"", 14,
       "expected a string literal after '=', found '='"},
      {"attributes.a = x", 15, "expected a string literal after '='"},
      {"attributes.a != 'x'", 16, "expected a string literal after '!='"},
      {"attributes.a = \"x\" = \"y\"", 19, "found '='"},
      {"attributes:a.b", 12, "found '.'"},
      {"attributes:a/b", 12, "found '/'"},
      {"attributes.a > \"x\"", 13, "found '>'"},
      {"attributes[\"a\"]", 10, "found '['"},
      {"data:a", 0, "unknown identifier 'data'"},
      {"foo", 0, "unknown identifier 'foo'"},
      {"Attributes:a", 0, "unknown identifier 'Attributes'"},
      {"a = \"b\"", 0, "unknown identifier 'a'"},
      {"!attributes:a", 0, "found '!'"},
      {"attributes:a && attributes:b", 13, "found '&'"},
      // hasPrefix arguments.
      {"hasPrefix attributes.a", 10, "expected '(' after hasPrefix"},
      {"hasPrefix(attributes.a)", 22, "expected ',' after the first argument"},
      {"hasPrefix(attributes.a, \"x\", \"y\")", 27,
       "hasPrefix takes exactly 2 arguments"},
      {"hasPrefix(attributes:a, \"x\")", 20, "expected '.' after 'attributes'"},
      {"hasPrefix(\"x\", attributes.a)", 10,
       "first argument of hasPrefix must be attributes.KEY"},
      {"hasPrefix(attributes.a, attributes.b)", 24,
       "expected a string literal after ',' in hasPrefix"},
      {"hasPrefix(attributes.a, \"x\"", 27, "expected ')'"},
      {"hasPrefix()", 10, "must be attributes.KEY"},
      // String literals.
      {"attributes.a = \"x", 15, "unterminated string literal"},
      {"attributes:\"", 11, "unterminated string literal"},
      {"attributes.a = \"x\\", 17, "unterminated escape sequence"},
      {"attributes.a = \"\\q\"", 16, "invalid escape sequence '\\q'"},
      {"attributes.a = \"\\4\"", 16, "invalid escape sequence '\\4'"},
      {"attributes.a = \"\\x4\"", 16, "needs 2 hex digits"},
      {"attributes.a = \"\\u00e\"", 16, "needs 4 hex digits"},
      {"attributes.a = \"\\U0001F60\"", 16, "needs 8 hex digits"},
      {"attributes.a = \"\\uD800\"", 16, "not a Unicode scalar value"},
      {"attributes.a = \"\\U00110000\"", 16, "not a Unicode scalar value"},
      {"attributes.a = \"\\08\"", 16, "octal escape sequence needs 3 digits"},
      {"attributes.a = \"x\ny\"", 17, "control character 0x0A"},
      {"attributes.a = \"x\ty\"", 17, "control character 0x09"},
      {"attributes.a = \"\x7F\"", 16, "control character 0x7F"},
      // Not UTF-8 (a proto3 string).
      {"attributes:\"\xFF\"", 12, "not valid UTF-8"},
      {"attributes:\"\xC3\"", 12, "not valid UTF-8"},
      {"attributes:\"\xC0\x80\"", 12, "not valid UTF-8"},          // overlong
      {"attributes:\"\xED\xA0\x80\"", 12, "not valid UTF-8"},      // surrogate
      // Valid UTF-8 outside a string literal is still not a token.
      {"attributes:a AND \xC3\xA9", 17, "found byte 0xC3"},
  };
  return cases;
}

TEST(FilterTest, RejectedFiltersNameTheReasonAndOffset) {
  for (const Rejected &c : RejectedCases()) {
    SCOPED_TRACE(c.filter);
    trb_ps_filter_t *f = reinterpret_cast<trb_ps_filter_t *>(0x1);
    trb_status_t st;
    EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, Parse(c.filter, &f, &st));
    EXPECT_EQ(nullptr, f);
    EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, st.code);
    EXPECT_EQ(0, strncmp(st.msg, "invalid filter: ", 16)) << st.msg;
    EXPECT_NE(nullptr, strstr(st.msg, c.reason)) << st.msg;
    EXPECT_EQ(c.offset, ErrorOffset(st.msg)) << st.msg;
  }
}

TEST(FilterTest, NullOutIsInvalidArgument) {
  trb_status_t st;
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_ps_filter_parse("attributes:a", nullptr, &st));
}

TEST(FilterTest, StatusMayBeNull) {
  trb_ps_filter_t *f = nullptr;
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, Parse("attributes", &f, nullptr));
  EXPECT_EQ(GRPC_STATUS_OK, Parse("attributes:a", &f, nullptr));
  trb_ps_filter_free(f);
}

// ---- allocation failure ---------------------------------------------------

struct FailNth {
  int calls = 0;
  int fail_at = -1;  // 0-based index of the allocation to fail
};

int FailNthHook(size_t, void *user) {
  FailNth *s = static_cast<FailNth *>(user);
  return s->calls++ == s->fail_at ? 1 : 0;
}

TEST(FilterTest, AllocationFailureIsResourceExhausted) {
  const char *expr =
      "attributes:\"iana.org/language_tag\" AND (attributes.domain = \"net\" OR "
      "hasPrefix(attributes.domain, \"co\"))";
  FailNth counter;
  trb_alloc_set_fail_hook(FailNthHook, &counter);
  trb_ps_filter_t *f = nullptr;
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_filter_parse(expr, &f, nullptr));
  trb_ps_filter_free(f);
  const int n_allocs = counter.calls;
  ASSERT_GE(n_allocs, 1);
  for (int k = 0; k < n_allocs; k++) {
    SCOPED_TRACE("failing allocation #" + std::to_string(k));
    FailNth s;
    s.fail_at = k;
    trb_alloc_set_fail_hook(FailNthHook, &s);
    f = reinterpret_cast<trb_ps_filter_t *>(0x1);
    trb_status_t st;
    EXPECT_EQ(GRPC_STATUS_RESOURCE_EXHAUSTED,
              trb_ps_filter_parse(expr, &f, &st));
    EXPECT_EQ(GRPC_STATUS_RESOURCE_EXHAUSTED, st.code);
    EXPECT_EQ(nullptr, f);
  }
  // An empty filter allocates nothing, so it cannot fail.
  FailNth all;
  all.fail_at = 0;
  trb_alloc_set_fail_hook(FailNthHook, &all);
  EXPECT_EQ(GRPC_STATUS_OK, trb_ps_filter_parse("  ", &f, nullptr));
  EXPECT_EQ(0, all.calls);
  trb_alloc_set_fail_hook(nullptr, nullptr);
}

// ---- mutation test --------------------------------------------------------

struct Rng {
  uint64_t s;
  uint64_t Next() {  // xorshift64*
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1DULL;
  }
  size_t Below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(Next() % n); }
};

// Fragments that mutations insert: the language's tokens and its edge cases.
const char *const kFragments[] = {
    "attributes", "hasPrefix", "hasSuffix", "NOT", "AND", "OR", "and", "-",
    "(", ")", ":", ".", "=", "!=", ",", "\"", "\\", "\\u", "\\x", "\\U",
    "\\0", "\\n", " ", "\t", "\"k\"", "\"v\"", "name", "a", "b", "k",
    "attributes:a", "attributes.k = \"v\"", "hasPrefix(attributes.k, \"v\")",
    "\xC3\xA9", "\xFF", "\xE3\x81", "0", "7", "_", "\"\\u307F\"",
};

std::string Mutate(Rng &rng, const std::vector<std::string> &seeds) {
  std::string s = seeds[rng.Below(seeds.size())];
  size_t n_mut = 1 + rng.Below(4);
  for (size_t m = 0; m < n_mut; m++) {
    size_t pos = rng.Below(s.size() + 1);
    switch (rng.Below(7)) {
      case 0:  // replace a byte with a random one
        if (!s.empty()) s[rng.Below(s.size())] = static_cast<char>(rng.Next());
        break;
      case 1:  // flip one bit
        if (!s.empty()) s[rng.Below(s.size())] ^= static_cast<char>(1 << rng.Below(8));
        break;
      case 2:  // insert a fragment
        s.insert(pos, kFragments[rng.Below(sizeof kFragments / sizeof *kFragments)]);
        break;
      case 3:  // delete a range
        s.erase(pos, rng.Below(8) + 1);
        break;
      case 4:  // duplicate a range
        if (!s.empty()) {
          size_t from = rng.Below(s.size());
          s.insert(pos, s.substr(from, rng.Below(16) + 1));
        }
        break;
      case 5: {  // splice in part of another seed
        const std::string &o = seeds[rng.Below(seeds.size())];
        size_t from = rng.Below(o.size() + 1);
        s.insert(pos, o.substr(from, rng.Below(24) + 1));
        break;
      }
      default:  // truncate
        s.resize(pos);
        break;
    }
  }
  return s;
}

std::string RandomBytes(Rng &rng) {
  static const char kAlphabet[] = "attributes hasPrefix NOT AND OR ().:=!,\"\\-ukx";
  std::string s(rng.Below(300), '\0');
  for (char &c : s) {
    c = rng.Below(2) == 0 ? kAlphabet[rng.Below(sizeof kAlphabet - 1)]
                          : static_cast<char>(rng.Next());
  }
  return s;
}

std::vector<Attrs> RandomAttrSets(Rng &rng) {
  static const char *const kKeys[] = {"a", "b", "c", "k", "name", "domain",
                                      "iana.org/language_tag", "v", ""};
  static const char *const kValues[] = {"", "v", "com", "co", "net", "x",
                                        "vv", "\xC3\xA9"};
  std::vector<Attrs> sets = {kNone};
  for (int i = 0; i < 6; i++) {
    Attrs a;
    size_t n = rng.Below(5);
    for (size_t j = 0; j < n; j++) {
      a.emplace_back(kKeys[rng.Below(sizeof kKeys / sizeof *kKeys)],
                     kValues[rng.Below(sizeof kValues / sizeof *kValues)]);
    }
    sets.push_back(a);
  }
  return sets;
}

// Checks the parse contract on one input; returns 1 if it was accepted.
int CheckOne(const std::string &raw, Rng &rng) {
  std::string s = raw;
  for (char &c : s) {
    if (c == '\0') c = ' ';  // a C string
  }
  trb_ps_filter_t *f = reinterpret_cast<trb_ps_filter_t *>(0x1);
  trb_status_t st;
  grpc_status_code rc = Parse(s, &f, &st);
  if (rc != GRPC_STATUS_OK) {
    EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, rc) << s << "\n" << st.msg;
    EXPECT_EQ(nullptr, f);
    long off = ErrorOffset(st.msg);
    EXPECT_GE(off, 0) << st.msg;
    EXPECT_LE(off, static_cast<long>(s.size())) << st.msg;
    return 0;
  }
  if (f == nullptr) {
    EXPECT_EQ(std::string::npos, s.find_first_not_of(" \t\r\n\f\v")) << s;
    return 1;
  }
  // Metamorphic checks: "(s)" matches like s and "NOT (s)" the opposite.
  trb_ps_filter_t *paren = nullptr, *negated = nullptr;
  if (s.size() + 2 <= TRB_PS_FILTER_MAX_BYTES) {
    EXPECT_EQ(GRPC_STATUS_OK, Parse("(" + s + ")", &paren, &st)) << s;
  }
  if (s.size() + 6 <= TRB_PS_FILTER_MAX_BYTES) {
    EXPECT_EQ(GRPC_STATUS_OK, Parse("NOT (" + s + ")", &negated, &st)) << s;
  }
  for (const Attrs &a : RandomAttrSets(rng)) {
    bool m = Match(f, a);
    if (paren != nullptr) {
      EXPECT_EQ(m, Match(paren, a)) << s;
    }
    if (negated != nullptr) {
      EXPECT_EQ(!m, Match(negated, a)) << s;
    }
  }
  trb_ps_filter_free(paren);
  trb_ps_filter_free(negated);
  trb_ps_filter_free(f);
  return 1;
}

TEST(FilterTest, SeededMutationsNeverCrashAndKeepTheContract) {
  std::vector<std::string> seeds;
  for (const Accepted &c : AcceptedCases()) seeds.push_back(c.filter);
  for (const Rejected &c : RejectedCases()) seeds.push_back(c.filter);

  const uint64_t kSeed = 0x5EED0F117E5ULL;
  const int kIterations = 100000;
  Rng rng{kSeed};
  int accepted = 0;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kIterations; i++) {
    std::string in = rng.Below(4) == 0 ? RandomBytes(rng) : Mutate(rng, seeds);
    accepted += CheckOne(in, rng);
    if (::testing::Test::HasFailure()) {
      FAIL() << "seed " << kSeed << " iteration " << i;
    }
  }
  double secs = std::chrono::duration<double>(
                    std::chrono::steady_clock::now() - start).count();
  printf("filter mutation test: %d inputs, %d accepted, %.0f inputs/s\n",
         kIterations, accepted, kIterations / secs);
  // Both outcomes must be exercised, or the test proves nothing.
  EXPECT_GT(accepted, kIterations / 100);
  EXPECT_LT(accepted, kIterations - kIterations / 100);
}

TEST(FilterTest, EveryPrefixAndSuffixOfValidFiltersIsHandled) {
  Rng rng{42};
  for (const Accepted &c : AcceptedCases()) {
    std::string s = c.filter;
    for (size_t n = 0; n <= s.size(); n++) {
      CheckOne(s.substr(0, n), rng);
      CheckOne(s.substr(n), rng);
    }
  }
}

}  // namespace
