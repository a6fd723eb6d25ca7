// trb_ingest_json_append_str (src/ingest/json_input.h) against a plain
// byte-at-a-time reference escaper: random strings dense and sparse in
// special bytes, several specials inside one 8-byte word, and lengths on
// both sides of the 16 KiB bound below which the worst case is reserved
// up front (above it, room is reserved per escape).
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>

#include "src/common/arena.h"
#include "src/ingest/json_input.h"

namespace {

std::string Reference(const std::string& in) {
  static const char hex[] = "0123456789abcdef";
  std::string out = "\"";
  for (unsigned char c : in) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string Escape(const std::string& prefix, const std::string& in) {
  trb_buf_t b = TRB_BUF_INIT;
  EXPECT_EQ(0, trb_buf_append(&b, prefix.data(), prefix.size()));
  EXPECT_EQ(0, trb_ingest_json_append_str(&b, in.data(), in.size()));
  std::string out(b.data, b.len);
  EXPECT_EQ('\0', b.data[b.len]);
  trb_buf_deinit(&b);
  return out;
}

TEST(JsonEscapeTest, RandomStringsMatchTheReference) {
  std::mt19937 rng(7);
  const size_t lengths[] = {0, 1, 7, 8, 9, 15, 16, 17, 63, 600, 16383, 16384, 16385, 40000};
  const char pool[] = {'a', 'x', ' ', '"', '\\', '\n', '\0', '\x01', '\x1f', '\x7f', '\xc3', '\xa9'};
  for (size_t len : lengths) {
    for (int density : {0, 1, 10, 100}) {  // percent of special bytes
      std::string in(len, 'a');
      for (size_t i = 0; i < len; i++) {
        if (static_cast<int>(rng() % 100) < density) in[i] = pool[rng() % sizeof(pool)];
      }
      SCOPED_TRACE(std::to_string(len) + " bytes, " + std::to_string(density) + "%");
      EXPECT_EQ("p=" + Reference(in), Escape("p=", in));
    }
  }
}

TEST(JsonEscapeTest, SeveralSpecialsInOneWord) {
  for (unsigned mask = 0; mask < 256; mask++) {
    std::string in(16, 'k');
    for (int bit = 0; bit < 8; bit++) {
      if (mask & (1u << bit)) in[4 + bit] = (bit & 1) ? '"' : '\x02';
    }
    EXPECT_EQ(Reference(in), Escape("", in)) << mask;
  }
}

}  // namespace
