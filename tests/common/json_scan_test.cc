// Tests for src/common/json_scan.h: both scans (stopping at >= 0x80 or not),
// through the public functions and through each path (SSE2 where built,
// SWAR always), against a byte-by-byte reference: every byte value at every
// offset of every length 1..40 on fillers chosen to provoke SWAR borrows,
// then random strings. Buffers are heap blocks of exactly n bytes, so ASan
// reports any read past p[n-1].
#include "src/common/json_scan.h"

#include <stdint.h>
#include <string.h>

#include <memory>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace {

bool Special(uint8_t c, bool stop_high) {
  return c < 0x20 || c == '"' || c == '\\' || (stop_high && c >= 0x80);
}

size_t Reference(const uint8_t *p, size_t n, bool stop_high) {
  size_t i = 0;
  while (i < n && !Special(p[i], stop_high)) i++;
  return i;
}

// Every way the header can scan, as (name, function, stop_high).
struct Path {
  const char *name;
  size_t (*scan)(const uint8_t *, size_t);
  bool stop_high;
};

size_t SwarPlain(const uint8_t *p, size_t n) {
  return trb_json_scan_swar_(p, n, false);
}
size_t SwarAscii(const uint8_t *p, size_t n) {
  return trb_json_scan_swar_(p, n, true);
}
#if defined(__SSE2__)
size_t Sse2Plain(const uint8_t *p, size_t n) {
  return trb_json_scan_sse2_(p, n, false);
}
size_t Sse2Ascii(const uint8_t *p, size_t n) {
  return trb_json_scan_sse2_(p, n, true);
}
#endif

std::vector<Path> Paths() {
  std::vector<Path> v = {
      {"trb_json_plain_run", trb_json_plain_run, false},
      {"trb_json_plain_ascii_run", trb_json_plain_ascii_run, true},
      {"swar plain", SwarPlain, false},
      {"swar ascii", SwarAscii, true},
  };
#if defined(__SSE2__)
  v.push_back({"sse2 plain", Sse2Plain, false});
  v.push_back({"sse2 ascii", Sse2Ascii, true});
#endif
  return v;
}

#if defined(__x86_64__)
TEST(JsonScan, Sse2PathIsBuiltOnX8664) {
  // Every x86-64 has SSE2; if this fails the fast path silently fell away.
#if !defined(__SSE2__)
  FAIL() << "__SSE2__ not defined on x86-64";
#endif
}
#endif

TEST(JsonScan, EveryByteAtEveryOffset) {
  // Fillers: plain bytes, including the ones one above a special byte
  // ('#' = '"' + 1, ']' = '\\' + 1, '!' = 0x20 + 1), whose SWAR subtraction
  // borrows, and 0xc3 (plain only when >= 0x80 does not stop the scan).
  const uint8_t fillers[] = {'a', '#', ']', '!', 0x20, 0x7f, 0xc3};
  size_t checked = 0;
  for (const Path &path : Paths()) {
    for (uint8_t f : fillers) {
      if (Special(f, path.stop_high)) continue;
      for (size_t n = 1; n <= 40; n++) {
        std::unique_ptr<uint8_t[]> buf(new uint8_t[n]);
        for (size_t k = 0; k < n; k++) {
          for (int b = 0; b < 256; b++) {
            for (size_t j = 0; j < n; j++) buf[j] = f;
            buf[k] = static_cast<uint8_t>(b);
            size_t want = Reference(buf.get(), n, path.stop_high);
            size_t got = path.scan(buf.get(), n);
            ASSERT_EQ(got, want) << path.name << " n=" << n << " offset=" << k
                                 << " byte=0x" << std::hex << b
                                 << " filler=0x" << int(f);
            checked++;
          }
        }
      }
    }
  }
  // 6 paths x 40*41/2 placements x 256 bytes x (7 or 6 fillers).
  EXPECT_GT(checked, 6u * 820u * 256u * 6u - 1u);
}

TEST(JsonScan, TwoSpecialBytesLowestWins) {
  // A special byte followed (at a higher address) by another: the scan
  // stops at the first; and one preceded by a borrow-prone neighbour.
  const uint8_t specials[] = {0x00, 0x1f, '"', '\\', 0x80, 0xff};
  for (const Path &path : Paths()) {
    for (size_t n = 2; n <= 40; n++) {
      std::unique_ptr<uint8_t[]> buf(new uint8_t[n]);
      for (size_t k = 0; k + 1 < n; k++) {
        for (uint8_t a : specials) {
          for (uint8_t b : specials) {
            for (size_t j = 0; j < n; j++) buf[j] = 'x';
            buf[k] = a;
            buf[k + 1] = b;
            ASSERT_EQ(path.scan(buf.get(), n),
                      Reference(buf.get(), n, path.stop_high))
                << path.name << " n=" << n << " k=" << k;
          }
        }
      }
    }
  }
}

TEST(JsonScan, RandomStrings) {
  std::mt19937 rng(20261121);
  // Mostly plain text with the odd special byte, as in real JSON.
  const uint8_t rare[] = {'"', '\\', '\n', 0x00, 0x1f, 0x80, 0xc3, 0xff, '#'};
  for (int iter = 0; iter < 20000; iter++) {
    size_t n = rng() % 200 + 1;
    std::unique_ptr<uint8_t[]> buf(new uint8_t[n]);
    for (size_t j = 0; j < n; j++) {
      buf[j] = rng() % 64 == 0 ? rare[rng() % sizeof rare]
                               : static_cast<uint8_t>(0x20 + rng() % 0x5f);
    }
    for (const Path &path : Paths()) {
      ASSERT_EQ(path.scan(buf.get(), n),
                Reference(buf.get(), n, path.stop_high))
          << path.name << " iter=" << iter;
    }
  }
}

TEST(JsonScan, SwarMaskLowestFlagIsTheFirstSpecialByte) {
  // Single words directly: zero mask iff no special byte; else its lowest
  // flag is the first special byte (higher flags may be borrow artefacts).
  std::mt19937_64 rng(7);
  for (int iter = 0; iter < 200000; iter++) {
    uint8_t b[8];
    uint64_t r = rng();
    for (int j = 0; j < 8; j++) {
      uint8_t c = static_cast<uint8_t>(r >> (8 * j));
      // Skew towards the interesting values.
      if (c % 3 == 0) c = "\"\\\x1f\x20#]!\x80"[c % 8];
      b[j] = c;
    }
    for (bool stop_high : {false, true}) {
      uint64_t m = trb_json_swar_mask_(trb_json_swar_load_(b), stop_high);
      size_t want = Reference(b, 8, stop_high);
      size_t got = m ? static_cast<size_t>(__builtin_ctzll(m)) >> 3 : 8;
      ASSERT_EQ(got, want) << "iter=" << iter << " stop_high=" << stop_high;
    }
  }
}

TEST(JsonScan, EmptyRunsAndNoSpecial) {
  const uint8_t s[] = "plain text with no specials at all, 48 bytes...";
  size_t n = sizeof s - 1;
  EXPECT_EQ(trb_json_plain_run(s, n), n);
  EXPECT_EQ(trb_json_plain_ascii_run(s, n), n);
  EXPECT_EQ(trb_json_plain_run(s, 0), 0u);
  EXPECT_EQ(trb_json_plain_ascii_run(s, 0), 0u);
  const uint8_t u[] = "caf\xc3\xa9 \"";
  EXPECT_EQ(trb_json_plain_run(u, sizeof u - 1), 6u);
  EXPECT_EQ(trb_json_plain_ascii_run(u, sizeof u - 1), 3u);
}

// Independent reference: decode, then apply RFC 3629's rules.
size_t RefUtf8Len(const uint8_t *p, size_t avail) {
  uint8_t c = p[0];
  if (c < 0x80) return 1;
  size_t n;
  uint32_t cp;
  if ((c & 0xE0) == 0xC0) {
    n = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (avail < n) return 0;
  for (size_t k = 1; k < n; k++) {
    if ((p[k] & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (p[k] & 0x3F);
  }
  const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

TEST(JsonScan, Utf8LenEverySequenceUpToThreeBytesAndFourByteEdges) {
  // Every lead with every second and third byte, cut short at every
  // length; fourth bytes from the edges of the continuation range.
  const uint8_t fourth[] = {0x00, 0x7f, 0x80, 0x9f, 0xbf, 0xc0, 0xff};
  size_t valid = 0;
  // Exactly `avail` bytes on the heap: ASan catches a read past them.
  std::unique_ptr<uint8_t[]> bufs[5];
  for (size_t avail = 1; avail <= 4; avail++) bufs[avail].reset(new uint8_t[avail]);
  for (int a = 0; a < 256; a++) {
    for (int b = 0; b < 256; b++) {
      for (int c = 0; c < 256; c++) {
        for (uint8_t d : fourth) {
          if (a < 0xF0 && d != fourth[0]) continue;  // d not read
          const uint8_t seq[4] = {static_cast<uint8_t>(a),
                                  static_cast<uint8_t>(b),
                                  static_cast<uint8_t>(c), d};
          for (size_t avail = 1; avail <= 4; avail++) {
            std::unique_ptr<uint8_t[]> &buf = bufs[avail];
            memcpy(buf.get(), seq, avail);
            size_t want = RefUtf8Len(buf.get(), avail);
            ASSERT_EQ(trb_json_utf8_len(buf.get(), buf.get() + avail), want)
                << std::hex << a << " " << b << " " << c << " " << int(d)
                << " avail " << avail;
            valid += want > 1;
          }
        }
      }
    }
  }
  EXPECT_GT(valid, 0u);
}

TEST(JsonScan, Utf8LenKnownSequences) {
  const struct {
    const char *s;
    size_t want;
  } cases[] = {
      {"A", 1},          {"\xc3\xa9", 2},         {"\xe2\x82\xac", 3},
      {"\xf0\x9f\x98\x80", 4}, {"\xc0\x80", 0},  // overlong NUL
      {"\xed\xa0\x80", 0},      // U+D800
      {"\xf4\x90\x80\x80", 0},  // U+110000
      {"\x80", 0},       {"\xe2\x82", 0},         // cut short
  };
  for (const auto &tc : cases) {
    const uint8_t *p = reinterpret_cast<const uint8_t *>(tc.s);
    EXPECT_EQ(trb_json_utf8_len(p, p + strlen(tc.s)), tc.want) << tc.s;
  }
}

}  // namespace
