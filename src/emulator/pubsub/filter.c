/*
 * filter.c — Pub/Sub subscription filter: recursive-descent parser over the
 * raw bytes (no separate token list) into a small expression tree, and its
 * evaluator. Grammar and semantics: filter.h.
 *
 * The parser builds the tree in fixed arrays on the stack — a filter is at
 * most TRB_PS_FILTER_MAX_BYTES bytes, every node consumes at least one input
 * byte and decoded strings are never longer than their source — then copies
 * it into one exact-size heap block. Nodes refer to each other by index and
 * to their strings by offset, so the copy is a memcpy.
 */
#include "src/emulator/pubsub/filter.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "src/common/alloc.h"

enum {
  MAX_NODES = TRB_PS_FILTER_MAX_BYTES,
  MAX_STR_BYTES = TRB_PS_FILTER_MAX_BYTES,
  /* Quoted words in error messages are cut to this many bytes. */
  MAX_QUOTE = 24,
};

typedef enum {
  NODE_HAS,    /* attributes:KEY */
  NODE_EQ,     /* attributes.KEY = "VAL" (!= is NOT over this) */
  NODE_PREFIX, /* hasPrefix(attributes.KEY, "VAL") */
  NODE_NOT,    /* NOT a  /  -a */
  NODE_AND,    /* a AND b */
  NODE_OR,     /* a OR b */
} node_kind_t;

typedef struct {
  uint8_t kind;     /* node_kind_t */
  uint16_t a, b;    /* children (NOT: a; AND/OR: a, b) */
  uint16_t key_off; /* leaves: key bytes at strs + key_off */
  uint16_t key_len;
  uint16_t val_off; /* EQ/PREFIX: value bytes at strs + val_off */
  uint16_t val_len;
} node_t;

struct trb_ps_filter_s {
  uint16_t root;
  uint16_t n_nodes;
  node_t nodes[]; /* n_nodes nodes, then the string bytes */
};

typedef struct {
  const char *src;
  size_t len;
  size_t pos;
  trb_status_t *st;
  size_t n_nodes;
  size_t n_strs;
  node_t nodes[MAX_NODES];
  char strs[MAX_STR_BYTES];
} parser_t;

/* ---- errors ---------------------------------------------------------- */

static int fail(parser_t *p, size_t offset, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records a syntax error at byte `offset` and returns -1. */
static int fail(parser_t *p, size_t offset, const char *fmt, ...) {
  char reason[TRB_STATUS_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof reason, fmt, ap);
  va_end(ap);
  trb_status_set(p->st, GRPC_STATUS_INVALID_ARGUMENT,
                 "invalid filter: %s at byte offset %zu", reason, offset);
  return -1;
}

static bool is_ws(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
         c == '\v';
}
static bool is_alpha(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static bool is_ident_start(unsigned char c) { return is_alpha(c) || c == '_'; }
static bool is_ident_char(unsigned char c) {
  return is_alpha(c) || is_digit(c) || c == '_';
}
/* Unquoted keys: "hyphens, underscores, or alphanumeric characters". */
static bool is_key_char(unsigned char c) {
  return is_ident_char(c) || c == '-';
}

static unsigned char peek(const parser_t *p) {
  return p->pos < p->len ? (unsigned char)p->src[p->pos] : 0;
}
static bool at_end(const parser_t *p) { return p->pos >= p->len; }

static void skip_ws(parser_t *p) {
  while (p->pos < p->len && is_ws((unsigned char)p->src[p->pos])) p->pos++;
}

/* Length of the identifier at `off` (0 if none starts there). */
static size_t word_len(const parser_t *p, size_t off) {
  if (off >= p->len || !is_ident_start((unsigned char)p->src[off])) return 0;
  size_t n = 1;
  while (off + n < p->len && is_ident_char((unsigned char)p->src[off + n])) n++;
  return n;
}

static bool word_is(const parser_t *p, size_t off, size_t n, const char *w) {
  return n == strlen(w) && memcmp(p->src + off, w, n) == 0;
}

static bool word_is_nocase(const parser_t *p, size_t off, size_t n,
                           const char *w) {
  if (n != strlen(w)) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p->src[off + i];
    if (c >= 'a' && c <= 'z') c = (unsigned char)(c - 'a' + 'A');
    if (c != (unsigned char)w[i]) return false;
  }
  return true;
}

/* Describes what starts at p->pos, for "expected X, found Y" messages. */
static const char *describe(const parser_t *p, char *buf, size_t cap) {
  if (at_end(p)) return "end of filter";
  unsigned char c = peek(p);
  size_t n = word_len(p, p->pos);
  if (n > 0) {
    snprintf(buf, cap, "'%.*s'", (int)(n > MAX_QUOTE ? MAX_QUOTE : n),
             p->src + p->pos);
  } else if (c == '"') {
    return "a string literal";
  } else if (c == '!' && p->pos + 1 < p->len && p->src[p->pos + 1] == '=') {
    return "'!='";
  } else if (c >= 0x21 && c < 0x7F) {
    snprintf(buf, cap, "'%c'", c);
  } else {
    snprintf(buf, cap, "byte 0x%02X", c);
  }
  return buf;
}

/* ---- tree building --------------------------------------------------- */

static int new_node(parser_t *p, node_kind_t kind, size_t offset) {
  if (p->n_nodes >= MAX_NODES) {
    /* Unreachable: every node consumes at least one input byte. */
    return fail(p, offset, "filter too complex");
  }
  node_t *n = &p->nodes[p->n_nodes];
  memset(n, 0, sizeof *n);
  n->kind = (uint8_t)kind;
  return (int)p->n_nodes++;
}

static int new_pair(parser_t *p, node_kind_t kind, int a, int b,
                    size_t offset) {
  int i = new_node(p, kind, offset);
  if (i < 0) return -1;
  p->nodes[i].a = (uint16_t)a;
  p->nodes[i].b = (uint16_t)b;
  return i;
}

static bool str_put(parser_t *p, const char *bytes, size_t n) {
  if (n > MAX_STR_BYTES - p->n_strs) return false;
  memcpy(p->strs + p->n_strs, bytes, n);
  p->n_strs += n;
  return true;
}

static size_t utf8_encode(uint32_t cp, char out[4]) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Offset of the first byte that is not part of valid UTF-8, or len. */
static size_t utf8_invalid_at(const unsigned char *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    unsigned char c = s[i];
    size_t n;
    uint32_t cp, min;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      n = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      n = 4, cp = c & 0x07, min = 0x10000;
    } else {
      return i;
    }
    if (n > len - i) return i;
    for (size_t k = 1; k < n; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += n;
  }
  return len;
}

static int hex_value(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Reads `ndigits` hex digits at p->pos into *cp. */
static int read_hex(parser_t *p, size_t esc_off, int ndigits, uint32_t *cp) {
  uint32_t v = 0;
  for (int i = 0; i < ndigits; i++) {
    int h = p->pos < p->len ? hex_value((unsigned char)p->src[p->pos]) : -1;
    if (h < 0) {
      return fail(p, esc_off, "escape sequence '\\%c' needs %d hex digits",
                  p->src[esc_off + 1], ndigits);
    }
    v = (v << 4) | (uint32_t)h;
    p->pos++;
  }
  *cp = v;
  return 0;
}

/* Decodes one escape sequence (p->pos at the backslash) into the string
 * buffer. */
static int parse_escape(parser_t *p) {
  size_t esc_off = p->pos;
  p->pos++; /* the backslash */
  if (at_end(p)) return fail(p, esc_off, "unterminated escape sequence");
  unsigned char e = peek(p);
  p->pos++;
  uint32_t cp;
  switch (e) {
    case 'a': cp = 0x07; break;
    case 'b': cp = 0x08; break;
    case 'f': cp = 0x0C; break;
    case 'n': cp = 0x0A; break;
    case 'r': cp = 0x0D; break;
    case 't': cp = 0x09; break;
    case 'v': cp = 0x0B; break;
    case '\\': case '"': case '\'': case '`': case '?': cp = e; break;
    case 'x':
    case 'X':
      if (read_hex(p, esc_off, 2, &cp) < 0) return -1;
      break;
    case 'u':
    case 'U':
      if (read_hex(p, esc_off, e == 'u' ? 4 : 8, &cp) < 0) return -1;
      if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return fail(p, esc_off,
                    "escape sequence is not a Unicode scalar value (U+%X)",
                    (unsigned)cp);
      }
      break;
    case '0': case '1': case '2': case '3':
      cp = (uint32_t)(e - '0');
      for (int i = 0; i < 2; i++) {
        unsigned char d = peek(p);
        if (at_end(p) || d < '0' || d > '7') {
          return fail(p, esc_off, "octal escape sequence needs 3 digits");
        }
        cp = (cp << 3) | (uint32_t)(d - '0');
        p->pos++;
      }
      break;
    default:
      if (e >= 0x21 && e < 0x7F) {
        return fail(p, esc_off, "invalid escape sequence '\\%c'", e);
      }
      return fail(p, esc_off, "invalid escape sequence (backslash before byte "
                  "0x%02X)", e);
  }
  char utf8[4];
  size_t n = utf8_encode(cp, utf8);
  if (!str_put(p, utf8, n)) return fail(p, esc_off, "filter too complex");
  return 0;
}

/* Parses a double-quoted string literal at p->pos; its decoded bytes are
 * appended to the string buffer at *off, *len. */
static int parse_string(parser_t *p, uint16_t *off, uint16_t *len) {
  size_t open = p->pos;
  size_t start = p->n_strs;
  p->pos++; /* opening quote */
  for (;;) {
    if (at_end(p)) return fail(p, open, "unterminated string literal");
    unsigned char c = peek(p);
    if (c == '"') {
      p->pos++;
      break;
    }
    if (c == '\\') {
      if (parse_escape(p) < 0) return -1;
      continue;
    }
    if (c < 0x20 || c == 0x7F) {
      return fail(p, p->pos,
                  "control character 0x%02X in a string literal must be "
                  "escaped", c);
    }
    if (!str_put(p, p->src + p->pos, 1)) {
      return fail(p, p->pos, "filter too complex");
    }
    p->pos++;
  }
  *off = (uint16_t)start;
  *len = (uint16_t)(p->n_strs - start);
  return 0;
}

/* key := [A-Za-z0-9_-]+ | string */
static int parse_key(parser_t *p, uint16_t *off, uint16_t *len) {
  skip_ws(p);
  if (peek(p) == '"' && !at_end(p)) return parse_string(p, off, len);
  size_t start = p->pos;
  while (!at_end(p) && is_key_char(peek(p))) p->pos++;
  if (p->pos == start) {
    char buf[48];
    return fail(p, start,
                "expected an attribute key (letters, digits, '_' and '-', or "
                "a string literal), found %s", describe(p, buf, sizeof buf));
  }
  size_t n = p->pos - start;
  size_t at = p->n_strs;
  if (!str_put(p, p->src + start, n)) {
    return fail(p, start, "filter too complex");
  }
  *off = (uint16_t)at;
  *len = (uint16_t)n;
  return 0;
}

/* A value operand: must be a string literal. */
static int parse_value(parser_t *p, const char *after, uint16_t *off,
                       uint16_t *len) {
  skip_ws(p);
  if (peek(p) == '"' && !at_end(p)) return parse_string(p, off, len);
  char buf[48];
  return fail(p, p->pos, "expected a string literal after %s, found %s", after,
              describe(p, buf, sizeof buf));
}

static int parse_expr(parser_t *p, size_t depth);

/* After "attributes": ':' key | '.' key ('=' | '!=') string. */
static int parse_attributes(parser_t *p, size_t off) {
  skip_ws(p);
  unsigned char c = peek(p);
  if (at_end(p) || (c != ':' && c != '.')) {
    char buf[48];
    return fail(p, p->pos, "expected ':' or '.' after 'attributes', found %s",
                describe(p, buf, sizeof buf));
  }
  p->pos++;
  uint16_t key_off, key_len;
  if (parse_key(p, &key_off, &key_len) < 0) return -1;
  if (c == ':') {
    int i = new_node(p, NODE_HAS, off);
    if (i < 0) return -1;
    p->nodes[i].key_off = key_off;
    p->nodes[i].key_len = key_len;
    return i;
  }
  skip_ws(p);
  size_t op_off = p->pos;
  bool negate;
  if (peek(p) == '=' && !at_end(p)) {
    negate = false;
    p->pos++;
  } else if (peek(p) == '!' && p->pos + 1 < p->len &&
             p->src[p->pos + 1] == '=') {
    negate = true;
    p->pos += 2;
  } else {
    char buf[48];
    return fail(p, op_off, "expected '=' or '!=' after attributes.KEY, found "
                "%s", describe(p, buf, sizeof buf));
  }
  uint16_t val_off, val_len;
  if (parse_value(p, negate ? "'!='" : "'='", &val_off, &val_len) < 0) {
    return -1;
  }
  int i = new_node(p, NODE_EQ, off);
  if (i < 0) return -1;
  p->nodes[i].key_off = key_off;
  p->nodes[i].key_len = key_len;
  p->nodes[i].val_off = val_off;
  p->nodes[i].val_len = val_len;
  if (!negate) return i;
  int n = new_node(p, NODE_NOT, op_off);
  if (n < 0) return -1;
  p->nodes[n].a = (uint16_t)i;
  return n;
}

/* Consumes `c` (after optional whitespace) or fails with `what`. */
static int expect_char(parser_t *p, char c, const char *what) {
  skip_ws(p);
  if (!at_end(p) && peek(p) == (unsigned char)c) {
    p->pos++;
    return 0;
  }
  char buf[48];
  return fail(p, p->pos, "expected %s, found %s", what,
              describe(p, buf, sizeof buf));
}

/* After "hasPrefix": '(' attributes '.' key ',' string ')'. */
static int parse_has_prefix(parser_t *p, size_t off) {
  if (expect_char(p, '(', "'(' after hasPrefix") < 0) return -1;
  skip_ws(p);
  size_t n = word_len(p, p->pos);
  if (!word_is(p, p->pos, n, "attributes")) {
    char buf[48];
    return fail(p, p->pos,
                "the first argument of hasPrefix must be attributes.KEY, "
                "found %s", describe(p, buf, sizeof buf));
  }
  p->pos += n;
  if (expect_char(p, '.', "'.' after 'attributes' in hasPrefix") < 0) {
    return -1;
  }
  uint16_t key_off, key_len, val_off, val_len;
  if (parse_key(p, &key_off, &key_len) < 0) return -1;
  if (expect_char(p, ',', "',' after the first argument of hasPrefix") < 0) {
    return -1;
  }
  if (parse_value(p, "',' in hasPrefix", &val_off, &val_len) < 0) return -1;
  skip_ws(p);
  if (peek(p) == ',' && !at_end(p)) {
    return fail(p, p->pos, "hasPrefix takes exactly 2 arguments");
  }
  if (expect_char(p, ')', "')' after the arguments of hasPrefix") < 0) {
    return -1;
  }
  int i = new_node(p, NODE_PREFIX, off);
  if (i < 0) return -1;
  p->nodes[i].key_off = key_off;
  p->nodes[i].key_len = key_len;
  p->nodes[i].val_off = val_off;
  p->nodes[i].val_len = val_len;
  return i;
}

static int parse_primary(parser_t *p, size_t depth) {
  skip_ws(p);
  size_t off = p->pos;
  char buf[48];
  if (at_end(p)) {
    return fail(p, off, "expected an expression, found end of filter");
  }
  unsigned char c = peek(p);
  if (c == '(') {
    p->pos++;
    int e = parse_expr(p, depth + 1);
    if (e < 0) return -1;
    skip_ws(p);
    if (at_end(p) || peek(p) != ')') {
      return fail(p, p->pos,
                  "expected AND, OR or ')' to close the '(' opened at byte "
                  "offset %zu, found %s", off, describe(p, buf, sizeof buf));
    }
    p->pos++;
    return e;
  }
  size_t n = word_len(p, off);
  if (n == 0) {
    if (c == '"') {
      return fail(p, off,
                  "expected an expression (attributes, hasPrefix, NOT, - or "
                  "'('), found a string literal; a comparison needs "
                  "attributes.KEY on its left");
    }
    return fail(p, off,
                "expected an expression (attributes, hasPrefix, NOT, - or "
                "'('), found %s", describe(p, buf, sizeof buf));
  }
  if (word_is(p, off, n, "attributes")) {
    p->pos += n;
    return parse_attributes(p, off);
  }
  if (word_is(p, off, n, "hasPrefix")) {
    p->pos += n;
    return parse_has_prefix(p, off);
  }
  int qn = (int)(n > MAX_QUOTE ? MAX_QUOTE : n);
  if (word_is(p, off, n, "AND") || word_is(p, off, n, "OR")) {
    return fail(p, off, "expected an expression before %.*s", qn,
                p->src + off);
  }
  if (word_is_nocase(p, off, n, "AND") || word_is_nocase(p, off, n, "OR") ||
      word_is_nocase(p, off, n, "NOT")) {
    return fail(p, off, "boolean operators must be upper case, found '%.*s'",
                qn, p->src + off);
  }
  size_t after = off + n;
  while (after < p->len && is_ws((unsigned char)p->src[after])) after++;
  if (after < p->len && p->src[after] == '(') {
    return fail(p, off,
                "unknown function '%.*s' (hasPrefix is the only supported "
                "function)", qn, p->src + off);
  }
  return fail(p, off,
              "unknown identifier '%.*s' (an expression starts with "
              "attributes, hasPrefix, NOT, - or '(')", qn, p->src + off);
}

/* unary := NOT unary | '-' unary | primary */
static int parse_unary(parser_t *p, size_t depth) {
  skip_ws(p);
  size_t off = p->pos;
  size_t n = word_len(p, off);
  bool neg = false;
  if (!at_end(p) && peek(p) == '-') {
    p->pos++;
    neg = true;
  } else if (word_is(p, off, n, "NOT")) {
    p->pos += n;
    neg = true;
  }
  if (!neg) return parse_primary(p, depth);
  if (depth > TRB_PS_FILTER_MAX_BYTES) {
    return fail(p, off, "filter nested too deeply"); /* unreachable */
  }
  int a = parse_unary(p, depth + 1);
  if (a < 0) return -1;
  int i = new_node(p, NODE_NOT, off);
  if (i < 0) return -1;
  p->nodes[i].a = (uint16_t)a;
  return i;
}

/* expr := unary { AND unary } | unary { OR unary } — AND and OR do not mix
 * at one level ("To combine the AND and OR operators, use parentheses"). */
static int parse_expr(parser_t *p, size_t depth) {
  if (depth > TRB_PS_FILTER_MAX_BYTES) {
    return fail(p, p->pos, "filter nested too deeply"); /* unreachable */
  }
  int left = parse_unary(p, depth);
  if (left < 0) return -1;
  node_kind_t op = NODE_HAS; /* none yet */
  size_t op_off = 0;
  for (;;) {
    skip_ws(p);
    size_t off = p->pos;
    size_t n = word_len(p, off);
    node_kind_t this_op;
    if (word_is(p, off, n, "AND")) {
      this_op = NODE_AND;
    } else if (word_is(p, off, n, "OR")) {
      this_op = NODE_OR;
    } else if (word_is_nocase(p, off, n, "AND") ||
               word_is_nocase(p, off, n, "OR")) {
      return fail(p, off, "boolean operators must be upper case, found '%.*s'",
                  (int)n, p->src + off);
    } else {
      return left; /* the caller checks what follows */
    }
    if (op != NODE_HAS && op != this_op) {
      return fail(p, off,
                  "AND and OR cannot be combined without parentheses (%s "
                  "follows the %s at byte offset %zu)",
                  this_op == NODE_AND ? "AND" : "OR",
                  op == NODE_AND ? "AND" : "OR", op_off);
    }
    op = this_op;
    op_off = off;
    p->pos += n;
    int right = parse_unary(p, depth);
    if (right < 0) return -1;
    left = new_pair(p, this_op, left, right, off);
    if (left < 0) return -1;
  }
}

/* ---- public API ------------------------------------------------------ */

grpc_status_code trb_ps_filter_parse(const char *expr, trb_ps_filter_t **out,
                                     trb_status_t *st) {
  if (out == NULL) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "trb_ps_filter_parse: out is NULL");
  }
  *out = NULL;
  if (expr == NULL) expr = "";
  size_t len = strlen(expr);
  if (len > TRB_PS_FILTER_MAX_BYTES) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "invalid filter: longer than the maximum of %d "
                          "bytes (%zu bytes) at byte offset %d",
                          TRB_PS_FILTER_MAX_BYTES, len,
                          TRB_PS_FILTER_MAX_BYTES);
  }
  size_t bad = utf8_invalid_at((const unsigned char *)expr, len);
  if (bad < len) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "invalid filter: not valid UTF-8 at byte offset %zu",
                          bad);
  }
  size_t i = 0;
  while (i < len && is_ws((unsigned char)expr[i])) i++;
  if (i == len) {
    trb_status_clear(st);
    return GRPC_STATUS_OK; /* empty: no messages are filtered out */
  }

  parser_t *p = trb_malloc(sizeof *p);
  if (p == NULL) {
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                          "filter: out of memory parsing the filter");
  }
  p->src = expr;
  p->len = len;
  p->pos = 0;
  p->st = st;
  p->n_nodes = 0;
  p->n_strs = 0;

  grpc_status_code rc = GRPC_STATUS_INVALID_ARGUMENT;
  int root = parse_expr(p, 0);
  if (root < 0) goto done;
  skip_ws(p);
  if (!at_end(p)) {
    char buf[48];
    fail(p, p->pos, "expected AND, OR or end of filter, found %s",
         describe(p, buf, sizeof buf));
    goto done;
  }
  size_t nodes_bytes = p->n_nodes * sizeof(node_t);
  trb_ps_filter_t *f = trb_malloc(sizeof *f + nodes_bytes + p->n_strs);
  if (f == NULL) {
    rc = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                        "filter: out of memory storing the filter");
    goto done;
  }
  f->root = (uint16_t)root;
  f->n_nodes = (uint16_t)p->n_nodes;
  memcpy(f->nodes, p->nodes, nodes_bytes);
  if (p->n_strs > 0) {
    memcpy((char *)(f->nodes + f->n_nodes), p->strs, p->n_strs);
  }
  *out = f;
  trb_status_clear(st);
  rc = GRPC_STATUS_OK;
done:
  trb_free(p);
  return rc;
}

/* Value of attribute `key` (len bytes, may hold NUL), or NULL if absent. */
static const char *lookup(const char *key, size_t key_len,
                          const char *const *keys, const char *const *values,
                          size_t n_attrs) {
  for (size_t i = 0; i < n_attrs; i++) {
    const char *k = keys[i];
    if (k == NULL) continue;
    /* strnlen first: never read past the end of a shorter key. */
    if (strnlen(k, key_len + 1) == key_len && memcmp(k, key, key_len) == 0) {
      return values[i] != NULL ? values[i] : "";
    }
  }
  return NULL;
}

static bool eval(const trb_ps_filter_t *f, const char *strs, uint16_t i,
                 const char *const *keys, const char *const *values,
                 size_t n_attrs) {
  const node_t *n = &f->nodes[i];
  switch ((node_kind_t)n->kind) {
    case NODE_HAS:
      return lookup(strs + n->key_off, n->key_len, keys, values, n_attrs) !=
             NULL;
    case NODE_EQ: {
      const char *v =
          lookup(strs + n->key_off, n->key_len, keys, values, n_attrs);
      return v != NULL && strnlen(v, (size_t)n->val_len + 1) == n->val_len &&
             memcmp(v, strs + n->val_off, n->val_len) == 0;
    }
    case NODE_PREFIX: {
      const char *v =
          lookup(strs + n->key_off, n->key_len, keys, values, n_attrs);
      return v != NULL && strnlen(v, n->val_len) == n->val_len &&
             memcmp(v, strs + n->val_off, n->val_len) == 0;
    }
    case NODE_NOT:
      return !eval(f, strs, n->a, keys, values, n_attrs);
    case NODE_AND:
      return eval(f, strs, n->a, keys, values, n_attrs) &&
             eval(f, strs, n->b, keys, values, n_attrs);
    case NODE_OR:
      return eval(f, strs, n->a, keys, values, n_attrs) ||
             eval(f, strs, n->b, keys, values, n_attrs);
  }
  return false; /* unreachable: kinds are set only by the parser */
}

bool trb_ps_filter_match(const trb_ps_filter_t *f, const char *const *keys,
                         const char *const *values, size_t n_attrs) {
  if (f == NULL) return true;
  if (keys == NULL || values == NULL) n_attrs = 0;
  const char *strs = (const char *)(f->nodes + f->n_nodes);
  return eval(f, strs, f->root, keys, values, n_attrs);
}

void trb_ps_filter_free(trb_ps_filter_t *f) { trb_free(f); }
