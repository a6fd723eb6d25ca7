/*
 * json_input.c — see json_input.h.
 */
#include "src/ingest/json_input.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

bool trb_ingest_utf8_valid(const char *s, size_t len, size_t *bad_offset) {
  const uint8_t *p = (const uint8_t *)s;
  size_t i = 0;
  while (i < len) {
    uint8_t c = p[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t n;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
      cp = c & 0x1F;
      min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      cp = c & 0x0F;
      min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      cp = c & 0x07;
      min = 0x10000;
    } else {
      goto bad;
    }
    if (len - i <= n) goto bad;
    for (size_t k = 1; k <= n; k++) {
      if ((p[i + k] & 0xC0) != 0x80) goto bad;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) goto bad;
    i += n + 1;
  }
  return true;
bad:
  if (bad_offset) *bad_offset = i;
  return false;
}

int trb_ingest_json_depth(const char *s, size_t len, int limit) {
  int depth = 0, max = 0;
  bool in_str = false;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (in_str) {
      if (c == '\\') {
        i++;
      } else if (c == '"') {
        in_str = false;
      }
      continue;
    }
    if (c == '"') {
      in_str = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max) {
        max = depth;
        if (max > limit) return limit + 1;
      }
    } else if (c == ']' || c == '}') {
      if (depth > 0) depth--;
    }
  }
  return max;
}

bool trb_ingest_json_blank(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return false;
  }
  return true;
}

grpc_status_code trb_ingest_json_parse(const char *s, size_t len,
                                       int max_depth, json_t **out,
                                       trb_status_t *st) {
  *out = NULL;
  if (max_depth <= 0) max_depth = TRB_INGEST_DEFAULT_MAX_DEPTH;
  if (len == 0 || trb_ingest_json_blank(s, len)) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT, "empty body");
  }
  size_t bad = 0;
  if (!trb_ingest_utf8_valid(s, len, &bad)) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "invalid UTF-8 at byte %zu", bad);
  }
  if (trb_ingest_json_depth(s, len, max_depth) > max_depth) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "JSON nested deeper than %d levels", max_depth);
  }
  json_error_t err;
  json_t *root =
      json_loadb(s, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES |
                             JSON_ALLOW_NUL, &err);
  if (!root) {
    if (json_error_code(&err) == json_error_out_of_memory) {
      return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                            "out of memory parsing JSON");
    }
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "malformed JSON at line %d column %d: %s",
                          err.line, err.column, err.text);
  }
  *out = root;
  return GRPC_STATUS_OK;
}

bool trb_ingest_ndjson_next(const char *s, size_t len, size_t *pos,
                            const char **line, size_t *line_len,
                            size_t *lineno) {
  while (*pos < len) {
    size_t start = *pos;
    const char *nl = memchr(s + start, '\n', len - start);
    size_t end = nl ? (size_t)(nl - s) : len;
    *pos = nl ? end + 1 : len;
    if (lineno) (*lineno)++;
    size_t n = end - start;
    if (n > 0 && s[start + n - 1] == '\r') n--;
    if (trb_ingest_json_blank(s + start, n)) continue;
    *line = s + start;
    *line_len = n;
    return true;
  }
  return false;
}

int trb_ingest_json_append_str(trb_buf_t *b, const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  if (trb_buf_reserve(b, len + 2) != 0) return -ENOMEM;
  if (trb_buf_append(b, "\"", 1) != 0) return -ENOMEM;
  size_t run = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    if (trb_buf_append(b, s + run, i - run) != 0) return -ENOMEM;
    run = i + 1;
    char esc[7];
    size_t n = 2;
    esc[0] = '\\';
    switch (c) {
      case '"': esc[1] = '"'; break;
      case '\\': esc[1] = '\\'; break;
      case '\n': esc[1] = 'n'; break;
      case '\r': esc[1] = 'r'; break;
      case '\t': esc[1] = 't'; break;
      case '\b': esc[1] = 'b'; break;
      case '\f': esc[1] = 'f'; break;
      default:
        esc[1] = 'u';
        esc[2] = '0';
        esc[3] = '0';
        esc[4] = hex[c >> 4];
        esc[5] = hex[c & 15];
        n = 6;
        break;
    }
    if (trb_buf_append(b, esc, n) != 0) return -ENOMEM;
  }
  if (trb_buf_append(b, s + run, len - run) != 0) return -ENOMEM;
  if (trb_buf_append(b, "\"", 1) != 0) return -ENOMEM;
  return 0;
}
