/*
 * config.c — declarative configuration tables (see config.h).
 *
 * Every value, defaults included, goes through set_entry(): parse into a
 * temporary, check bounds, then store, so a failed set leaves the struct
 * untouched.
 */
#include "src/common/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "src/common/alloc.h"

struct trb_config_seen_s {
  const trb_config_table_t *table;
  char (*sources)[TRB_CONFIG_SOURCE_MAX]; /* per entry; "" = not yet set */
};

/* A parsed value before it is stored. */
typedef union {
  bool b;
  int64_t i;
  double d;
} value_t;

const char *trb_config_type_name(trb_config_type_t type) {
  switch (type) {
    case TRB_CONFIG_BOOL:
      return "bool";
    case TRB_CONFIG_INT64:
      return "int64";
    case TRB_CONFIG_DOUBLE:
      return "double";
    case TRB_CONFIG_STRING:
      return "string";
    case TRB_CONFIG_DURATION_MS:
      return "duration";
    case TRB_CONFIG_SIZE_BYTES:
      return "size";
    default:
      return "unknown";
  }
}

const trb_config_entry_t *trb_config_find(const trb_config_table_t *t,
                                          const char *key) {
  if (key == NULL) return NULL;
  for (size_t i = 0; i < t->n_entries; i++) {
    if (t->entries[i].name != NULL && strcmp(t->entries[i].name, key) == 0) {
      return &t->entries[i];
    }
  }
  return NULL;
}

/* ---------------------------------------------------------------- parsing */

/* Unsigned decimal prefix of `s`; *end points past the digits. */
static bool parse_digits(const char *s, int64_t *out, const char **end) {
  int64_t v = 0;
  const char *p = s;
  if (!isdigit((unsigned char)*p)) return false;
  for (; isdigit((unsigned char)*p); p++) {
    int digit = *p - '0';
    if (v > (INT64_MAX - digit) / 10) return false;
    v = v * 10 + digit;
  }
  *out = v;
  *end = p;
  return true;
}

static bool mul_checked(int64_t v, int64_t mult, int64_t *out) {
  if (v != 0 && mult > INT64_MAX / v) return false;
  *out = v * mult;
  return true;
}

bool trb_config_parse_duration_ms(const char *s, int64_t *out_ms) {
  static const struct {
    const char *unit;
    int64_t ms;
  } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
  int64_t v;
  const char *u;

  if (s == NULL || !parse_digits(s, &v, &u)) return false;
  if (*u == '\0') {
    if (v != 0) return false; /* a bare number is ambiguous */
    *out_ms = 0;
    return true;
  }
  for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
    if (strcmp(u, units[i].unit) == 0) return mul_checked(v, units[i].ms, out_ms);
  }
  return false;
}

bool trb_config_parse_size_bytes(const char *s, int64_t *out_bytes) {
  static const struct {
    const char *unit;
    int64_t bytes;
  } units[] = {
      {"", 1},
      {"b", 1},
      {"kib", INT64_C(1) << 10},
      {"mib", INT64_C(1) << 20},
      {"gib", INT64_C(1) << 30},
      {"tib", INT64_C(1) << 40},
      {"kb", INT64_C(1000)},
      {"mb", INT64_C(1000000)},
      {"gb", INT64_C(1000000000)},
      {"tb", INT64_C(1000000000000)},
  };
  int64_t v;
  const char *u;

  if (s == NULL || !parse_digits(s, &v, &u)) return false;
  for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
    if (strcasecmp(u, units[i].unit) == 0) return mul_checked(v, units[i].bytes, out_bytes);
  }
  return false;
}

static bool parse_bool(const char *s, bool *out) {
  static const char *const yes[] = {"true", "yes", "on", "1"};
  static const char *const no[] = {"false", "no", "off", "0"};
  for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
    if (strcasecmp(s, yes[i]) == 0) {
      *out = true;
      return true;
    }
    if (strcasecmp(s, no[i]) == 0) {
      *out = false;
      return true;
    }
  }
  return false;
}

static bool parse_int64(const char *s, int64_t *out) {
  char *end;
  long long v;
  if (*s == '\0' || isspace((unsigned char)*s)) return false;
  errno = 0;
  v = strtoll(s, &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *out = (int64_t)v;
  return true;
}

static bool parse_double(const char *s, double *out) {
  char *end;
  double v;
  if (*s == '\0' || isspace((unsigned char)*s)) return false;
  errno = 0;
  v = strtod(s, &end);
  if (errno != 0 || *end != '\0' || !isfinite(v)) return false;
  *out = v;
  return true;
}

/* Bounds in the entry's own notation: "2s", "64KiB", "1000". */
static void format_bound(const trb_config_entry_t *e, int64_t v, char *out, size_t cap) {
  if (e->type == TRB_CONFIG_DURATION_MS) {
    if (v != 0 && v % 3600000 == 0) {
      snprintf(out, cap, "%" PRId64 "h", v / 3600000);
    } else if (v != 0 && v % 60000 == 0) {
      snprintf(out, cap, "%" PRId64 "m", v / 60000);
    } else if (v != 0 && v % 1000 == 0) {
      snprintf(out, cap, "%" PRId64 "s", v / 1000);
    } else {
      snprintf(out, cap, "%" PRId64 "ms", v);
    }
  } else if (e->type == TRB_CONFIG_SIZE_BYTES) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    size_t u = 0;
    while (u < 4 && v != 0 && v % 1024 == 0) v /= 1024, u++;
    snprintf(out, cap, "%" PRId64 "%s", v, units[u]);
  } else {
    snprintf(out, cap, "%" PRId64, v);
  }
}

/* Parse and bounds-check `text` for `e`. Strings are not handled here. */
static grpc_status_code parse_value(const trb_config_entry_t *e, const char *text,
                                    const char *src, value_t *out, trb_status_t *st) {
  static const char *const expected[] = {
      [TRB_CONFIG_BOOL] = "a boolean (true/false, yes/no, on/off, 1/0)",
      [TRB_CONFIG_INT64] = "an integer",
      [TRB_CONFIG_DOUBLE] = "a finite number",
      [TRB_CONFIG_DURATION_MS] = "a duration (an integer with unit ms, s, m or h, e.g. 250ms, 5s, 2m)",
      [TRB_CONFIG_SIZE_BYTES] = "a size (an integer with optional unit B, KiB, MiB, GiB, TiB, kB, MB, GB, TB)",
  };
  bool ok;
  char lo[32], hi[32];

  switch (e->type) {
    case TRB_CONFIG_BOOL:
      ok = parse_bool(text, &out->b);
      break;
    case TRB_CONFIG_INT64:
      ok = parse_int64(text, &out->i);
      break;
    case TRB_CONFIG_DOUBLE:
      ok = parse_double(text, &out->d);
      break;
    case TRB_CONFIG_DURATION_MS:
      ok = trb_config_parse_duration_ms(text, &out->i);
      break;
    case TRB_CONFIG_SIZE_BYTES:
      ok = trb_config_parse_size_bytes(text, &out->i);
      break;
    default:
      return trb_status_set(st, GRPC_STATUS_INTERNAL, "%s: key \"%s\": unknown type %d",
                            src, e->name, (int)e->type);
  }
  if (!ok) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "%s: key \"%s\": \"%.64s\" is not %s", src, e->name, text,
                          expected[e->type]);
  }
  if (e->type == TRB_CONFIG_DOUBLE) {
    if (e->dmin == 0 && e->dmax == 0) return GRPC_STATUS_OK;
    if (out->d < e->dmin) {
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "%s: key \"%s\": %.64s is below the minimum %g", src,
                            e->name, text, e->dmin);
    }
    if (out->d > e->dmax) {
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "%s: key \"%s\": %.64s is above the maximum %g", src,
                            e->name, text, e->dmax);
    }
    return GRPC_STATUS_OK;
  }
  if (e->type == TRB_CONFIG_BOOL || (e->min == 0 && e->max == 0)) return GRPC_STATUS_OK;
  format_bound(e, e->min, lo, sizeof(lo));
  format_bound(e, e->max, hi, sizeof(hi));
  if (out->i < e->min) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "%s: key \"%s\": %.64s is below the minimum %s", src, e->name,
                          text, lo);
  }
  if (out->i > e->max) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "%s: key \"%s\": %.64s is above the maximum %s", src, e->name,
                          text, hi);
  }
  return GRPC_STATUS_OK;
}

/* Parse, check and store `text` (NULL = zero value) into `e`'s field. */
static grpc_status_code set_entry(const trb_config_entry_t *e, void *cfg, const char *text,
                                  const char *src, trb_status_t *st) {
  char *field = (char *)cfg + e->offset;
  value_t v;
  grpc_status_code code;

  if (e->type == TRB_CONFIG_STRING) {
    char *copy = NULL, *old;
    if (text != NULL && (copy = trb_strdup(text)) == NULL) {
      return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                            "%s: key \"%s\": out of memory copying the value", src, e->name);
    }
    memcpy(&old, field, sizeof(old));
    trb_free(old);
    memcpy(field, &copy, sizeof(copy));
    return GRPC_STATUS_OK;
  }
  memset(&v, 0, sizeof(v));
  if (text != NULL) {
    code = parse_value(e, text, src, &v, st);
    if (code != GRPC_STATUS_OK) return code;
  }
  switch (e->type) {
    case TRB_CONFIG_BOOL:
      memcpy(field, &v.b, sizeof(v.b));
      break;
    case TRB_CONFIG_DOUBLE:
      memcpy(field, &v.d, sizeof(v.d));
      break;
    case TRB_CONFIG_INT64:
    case TRB_CONFIG_DURATION_MS:
    case TRB_CONFIG_SIZE_BYTES:
      memcpy(field, &v.i, sizeof(v.i));
      break;
    default:
      return trb_status_set(st, GRPC_STATUS_INTERNAL, "%s: key \"%s\": unknown type %d",
                            src, e->name, (int)e->type);
  }
  return GRPC_STATUS_OK;
}

static bool valid_type(trb_config_type_t type) {
  return (int)type >= TRB_CONFIG_BOOL && (int)type <= TRB_CONFIG_SIZE_BYTES;
}

grpc_status_code trb_config_defaults(const trb_config_table_t *t, void *cfg,
                                     trb_status_t *st) {
  const char *comp = t->component != NULL ? t->component : "";
  char src[96];

  for (size_t i = 0; i < t->n_entries; i++) {
    const trb_config_entry_t *e = &t->entries[i];
    if (e->name == NULL || e->name[0] == '\0') {
      return trb_status_set(st, GRPC_STATUS_INTERNAL,
                            "config table \"%s\": entry %zu has no name", comp, i);
    }
    if (!valid_type(e->type)) {
      return trb_status_set(st, GRPC_STATUS_INTERNAL,
                            "config table \"%s\": key \"%s\" has unknown type %d", comp,
                            e->name, (int)e->type);
    }
    if (trb_config_find(t, e->name) != e) {
      return trb_status_set(st, GRPC_STATUS_INTERNAL,
                            "config table \"%s\": key \"%s\" is defined more than once",
                            comp, e->name);
    }
  }
  snprintf(src, sizeof(src), "config table \"%s\": default", comp);
  for (size_t i = 0; i < t->n_entries; i++) {
    grpc_status_code code = set_entry(&t->entries[i], cfg, t->entries[i].default_value, src, st);
    if (code == GRPC_STATUS_INVALID_ARGUMENT) { /* a bad default is a table bug */
      code = GRPC_STATUS_INTERNAL;
      if (st != NULL) st->code = code;
    }
    if (code != GRPC_STATUS_OK) return code;
  }
  return trb_status_set(st, GRPC_STATUS_OK, "%s", "");
}

grpc_status_code trb_config_set(const trb_config_table_t *t, void *cfg,
                                trb_config_seen_t *seen, const char *key,
                                const char *value, const char *source,
                                trb_status_t *st) {
  const trb_config_entry_t *e;
  const char *src = source != NULL ? source : "(unknown source)";
  char *slot = NULL;
  grpc_status_code code;

  e = trb_config_find(t, key);
  if (e == NULL) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "%s: unknown configuration key \"%.64s\"", src,
                          key != NULL ? key : "");
  }
  if (seen != NULL) {
    if (seen->table != t) {
      return trb_status_set(st, GRPC_STATUS_INTERNAL,
                            "%s: key \"%s\": duplicate tracker belongs to another table",
                            src, e->name);
    }
    slot = seen->sources[e - t->entries];
    if (slot[0] != '\0') {
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "%s: key \"%s\" is set more than once (first at %s)", src,
                            e->name, slot);
    }
  }
  if (value == NULL) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT, "%s: key \"%s\": missing value",
                          src, e->name);
  }
  code = set_entry(e, cfg, value, src, st);
  if (code != GRPC_STATUS_OK) return code;
  if (slot != NULL) snprintf(slot, TRB_CONFIG_SOURCE_MAX, "%s", src);
  return trb_status_set(st, GRPC_STATUS_OK, "%s", "");
}

grpc_status_code trb_config_apply_env(const trb_config_table_t *t, void *cfg,
                                      const char *prefix, trb_status_t *st) {
  char var[256], src[sizeof(var) + 8];

  if (prefix == NULL) prefix = "";
  for (size_t i = 0; i < t->n_entries; i++) {
    const trb_config_entry_t *e = &t->entries[i];
    size_t plen = strlen(prefix), nlen = strlen(e->name);
    const char *val;
    grpc_status_code code;

    if (plen + nlen >= sizeof(var)) {
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "env %s: variable name for key \"%s\" is too long", prefix,
                            e->name);
    }
    memcpy(var, prefix, plen);
    for (size_t k = 0; k < nlen; k++) {
      unsigned char c = (unsigned char)e->name[k];
      var[plen + k] = isalnum(c) ? (char)toupper(c) : '_';
    }
    var[plen + nlen] = '\0';
    val = getenv(var);
    if (val == NULL || val[0] == '\0') continue;
    snprintf(src, sizeof(src), "env %s", var);
    code = trb_config_set(t, cfg, NULL, e->name, val, src, st);
    if (code != GRPC_STATUS_OK) return code;
  }
  return trb_status_set(st, GRPC_STATUS_OK, "%s", "");
}

static int help_entry(const trb_config_entry_t *e, const char *env_prefix, trb_buf_t *out) {
  char lo[32], hi[32];
  int rc;

  rc = trb_buf_appendf(out, "  %s (%s", e->name, trb_config_type_name(e->type));
  if (rc == 0 && e->unit != NULL && e->unit[0] != '\0') rc = trb_buf_appendf(out, " %s", e->unit);
  if (rc == 0 && e->default_value != NULL) {
    rc = trb_buf_appendf(out, "; default %s%s%s", e->type == TRB_CONFIG_STRING ? "\"" : "",
                         e->default_value, e->type == TRB_CONFIG_STRING ? "\"" : "");
  }
  if (rc == 0 && e->type == TRB_CONFIG_DOUBLE && !(e->dmin == 0 && e->dmax == 0)) {
    rc = trb_buf_appendf(out, "; range %g..%g", e->dmin, e->dmax);
  } else if (rc == 0 && e->type != TRB_CONFIG_BOOL && e->type != TRB_CONFIG_STRING &&
             e->type != TRB_CONFIG_DOUBLE && !(e->min == 0 && e->max == 0)) {
    format_bound(e, e->min, lo, sizeof(lo));
    format_bound(e, e->max, hi, sizeof(hi));
    rc = trb_buf_appendf(out, "; range %s..%s", lo, hi);
  }
  if (rc == 0 && env_prefix != NULL) {
    rc = trb_buf_appendf(out, "; env %s", env_prefix);
    for (const char *p = e->name; rc == 0 && *p != '\0'; p++) {
      unsigned char c = (unsigned char)*p;
      char up = isalnum(c) ? (char)toupper(c) : '_';
      rc = trb_buf_append(out, &up, 1);
    }
  }
  if (rc == 0) {
    rc = trb_buf_appendf(out, ")\n      %s\n", e->description != NULL ? e->description : "");
  }
  return rc;
}

grpc_status_code trb_config_help(const trb_config_table_t *t,
                                 const char *env_prefix, trb_buf_t *out,
                                 trb_status_t *st) {
  int rc = trb_buf_appendf(out, "%s configuration:\n",
                           t->component != NULL ? t->component : "");
  for (size_t i = 0; rc == 0 && i < t->n_entries; i++) {
    rc = help_entry(&t->entries[i], env_prefix, out);
  }
  if (rc != 0) {
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                          "config help \"%s\": out of memory",
                          t->component != NULL ? t->component : "");
  }
  return trb_status_set(st, GRPC_STATUS_OK, "%s", "");
}

void trb_config_free(const trb_config_table_t *t, void *cfg) {
  if (cfg == NULL) return;
  for (size_t i = 0; i < t->n_entries; i++) {
    if (t->entries[i].type == TRB_CONFIG_STRING) {
      char *field = (char *)cfg + t->entries[i].offset;
      char *s, *null = NULL;
      memcpy(&s, field, sizeof(s));
      trb_free(s);
      memcpy(field, &null, sizeof(null));
    }
  }
}

trb_config_seen_t *trb_config_seen_create(const trb_config_table_t *t) {
  trb_config_seen_t *seen = trb_calloc(1, sizeof(*seen));
  if (seen == NULL) return NULL;
  seen->table = t;
  seen->sources = trb_calloc(t->n_entries != 0 ? t->n_entries : 1, TRB_CONFIG_SOURCE_MAX);
  if (seen->sources == NULL) goto fail;
  return seen;

fail:
  trb_config_seen_destroy(seen);
  return NULL;
}

void trb_config_seen_destroy(trb_config_seen_t *seen) {
  if (seen == NULL) return;
  trb_free(seen->sources);
  trb_free(seen);
}
