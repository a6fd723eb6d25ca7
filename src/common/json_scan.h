/*
 * json_scan.h — find the next byte of a JSON string that cannot stand as it
 * is: a quotation mark, a reverse solidus or a control byte (< 0x20), the
 * three kinds RFC 8259 section 7 requires escaped — and, on request, any
 * byte >= 0x80 (the start or middle of a UTF-8 sequence the caller wants to
 * validate itself, with trb_json_utf8_len).
 *
 * Header-only (`static inline`): the callers are tight per-string loops
 * (src/ingest/json_input.c fast check and escaper, src/bigquery/transcode.c
 * reader); a call across a translation unit would cost more than a short
 * string's scan. 16 bytes per step with SSE2 where the compiler targets it
 * (every x86-64), then 8 per step as SWAR ("SIMD within a register") on a
 * uint64_t, then byte by byte.
 *
 * Threading: pure functions of their arguments; thread-safe.
 * Source: RFC 8259 section 7 (characters that must be escaped).
 */
#ifndef TRB_SRC_COMMON_JSON_SCAN_H
#define TRB_SRC_COMMON_JSON_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- internals (named for the unit test; callers use the two below) ---- */

#define TRB_JSON_SWAR_ONES 0x0101010101010101ULL
#define TRB_JSON_SWAR_HIGHS 0x8080808080808080ULL

/**
 * SWAR mask of the special bytes of `w` (8 input bytes loaded so that the
 * byte at the lowest address is the least significant: see
 * trb_json_swar_load_): bit 8k+7 is set for byte k when it is '"', '\\' or
 * below 0x20 (and, with `stop_high`, >= 0x80); other bits are 0.
 *
 * The tests are the "has a zero byte" idiom (x - 0x01..) & ~x & 0x80..,
 * exact about whether some byte hits; a borrow only runs towards more
 * significant bytes, so the LOWEST set flag is always a real hit (a flag
 * above it may be false). Callers take only the lowest (ctz).
 */
static inline uint64_t trb_json_swar_mask_(uint64_t w, bool stop_high) {
  uint64_t q = w ^ (TRB_JSON_SWAR_ONES * (uint8_t)'"');
  uint64_t bs = w ^ (TRB_JSON_SWAR_ONES * (uint8_t)'\\');
  uint64_t m = ((w - TRB_JSON_SWAR_ONES * 0x20) & ~w) |
               ((q - TRB_JSON_SWAR_ONES) & ~q) |
               ((bs - TRB_JSON_SWAR_ONES) & ~bs);
  if (stop_high) m |= w;
  return m & TRB_JSON_SWAR_HIGHS;
}

/** The 8 bytes at p as a uint64_t with p[0] least significant (any byte
 *  order; unaligned p is fine). */
static inline uint64_t trb_json_swar_load_(const uint8_t *p) {
  uint64_t w;
  memcpy(&w, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  w = __builtin_bswap64(w);
#endif
  return w;
}

/**
 * The scan 8 bytes at a time (SWAR), then byte by byte: how many leading
 * bytes of p[0..n) are plain (see trb_json_plain_run). Used alone where
 * there is no SSE2 and for the last 0..15 bytes after the SSE2 loop.
 */
static inline size_t trb_json_scan_swar_(const uint8_t *p, size_t n,
                                         bool stop_high) {
  size_t i = 0;
  for (; n - i >= 8; i += 8) {
    uint64_t m = trb_json_swar_mask_(trb_json_swar_load_(p + i), stop_high);
    if (m) return i + ((size_t)__builtin_ctzll(m) >> 3);
  }
  for (; i < n; i++) {
    uint8_t c = p[i];
    if (c < 0x20 || c == '"' || c == '\\' || (stop_high && c >= 0x80)) break;
  }
  return i;
}

#if defined(__SSE2__)
/**
 * The scan 16 bytes at a time (SSE2), the rest by trb_json_scan_swar_.
 * Control bytes: with `stop_high`, one signed compare x < 0x20 flags both
 * 0x00..0x1f and 0x80..0xff (negative as signed); without it, the unsigned
 * min(x, 0x1f) == x flags only 0x00..0x1f.
 */
static inline size_t trb_json_scan_sse2_(const uint8_t *p, size_t n,
                                         bool stop_high) {
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i bslash = _mm_set1_epi8('\\');
  size_t i = 0;
  for (; n - i >= 16; i += 16) {
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
    __m128i ctl = stop_high
                      ? _mm_cmplt_epi8(x, _mm_set1_epi8(0x20))
                      : _mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8(0x1f)), x);
    __m128i sp = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, bslash)), ctl);
    unsigned m = (unsigned)_mm_movemask_epi8(sp);
    if (m) return i + (size_t)__builtin_ctz(m);
  }
  return i + trb_json_scan_swar_(p + i, n - i, stop_high);
}
#define TRB_JSON_SCAN_(p, n, stop_high) trb_json_scan_sse2_(p, n, stop_high)
#else
#define TRB_JSON_SCAN_(p, n, stop_high) trb_json_scan_swar_(p, n, stop_high)
#endif

/* ---- API ---------------------------------------------------------------- */

/**
 * How many leading bytes of p[0..n) a JSON string can hold as they are:
 * the index of the first '"' (0x22), '\\' (0x5c) or control byte
 * (0x00..0x1f), or `n` when there is none. Bytes >= 0x80 do NOT stop it
 * (the escaper copies UTF-8 through).
 *
 * Params:  p — the bytes, borrowed, not NULL, read only within p[0..n)
 *          (no alignment needed); n — their count in bytes.
 * Returns: 0..n.
 * Threading: thread-safe.
 */
static inline size_t trb_json_plain_run(const uint8_t *p, size_t n) {
  return TRB_JSON_SCAN_(p, n, false);
}

/**
 * Like trb_json_plain_run, but bytes >= 0x80 stop it too: the length of
 * the leading run of printable ASCII other than '"' and '\\' (0x20..0x7f
 * without 0x22 and 0x5c). For readers that validate UTF-8 themselves at
 * the byte where it stops.
 *
 * Params:  as trb_json_plain_run.
 * Returns: 0..n.
 * Threading: thread-safe.
 */
static inline size_t trb_json_plain_ascii_run(const uint8_t *p, size_t n) {
  return TRB_JSON_SCAN_(p, n, true);
}

/**
 * Length of the well-formed UTF-8 sequence at p — what a scan above that
 * stopped at a byte >= 0x80 checks next: 1 for an ASCII byte (< 0x80),
 * 2..4 for a well-formed multi-byte sequence that ends at or before `end`,
 * 0 for anything else (a continuation or 0xc0/0xc1/0xf5..0xff lead, an
 * overlong form, a surrogate U+D800..U+DFFF, above U+10FFFF, or cut short).
 *
 * Params:  p — first byte, borrowed, p < end; end — one past the last byte
 *          that may be read.
 * Returns: 0..4 as above.
 * Threading: thread-safe.
 * Source: RFC 3629 section 4 (the table of well-formed byte sequences;
 *         Unicode 15 table 3-7).
 */
static inline size_t trb_json_utf8_len(const uint8_t *p, const uint8_t *end) {
  size_t avail = (size_t)(end - p);
  uint8_t c = p[0];
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    return avail >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
  }
  if (c >= 0xE0 && c <= 0xEF) {
    if (avail < 3) return 0;
    uint8_t lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    return p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80 ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (avail < 4) return 0;
    uint8_t lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    return p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80 &&
                   (p[3] & 0xC0) == 0x80
               ? 4
               : 0;
  }
  return 0;
}

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_COMMON_JSON_SCAN_H */
