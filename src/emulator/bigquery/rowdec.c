/*
 * rowdec.c — descriptor-driven protobuf row decoder (see rowdec.h).
 */
#include "src/emulator/bigquery/rowdec.h"

#include <inttypes.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "src/bigquery/values.h"
#include "src/common/alloc.h"

#define MAX_DEPTH 16
#define DIRECT 64 /* field numbers below this are looked up directly */

typedef google_protobuf_FieldDescriptorProto_Type ptype_t;
#define PT(x) google_protobuf_FieldDescriptorProto_Type_TYPE_##x

typedef struct node_s node_t;

/* One raw field value. */
typedef struct raw_s {
  uint64_t v;          /* varint / fixed */
  const uint8_t *data; /* length-delimited */
  size_t len;
} raw_t;

/* One value of an enum type (for STRING columns: number -> name). */
typedef struct enum_val_s {
  int32_t number;
  char *name; /* owned */
} enum_val_t;

typedef struct pfield_s {
  uint32_t number;
  ptype_t ptype;
  bool repeated;
  int col;                   /* index among the node's BQ fields */
  const trb_bq_field_t *bq;
  node_t *sub;               /* message fields */
  enum_val_t *enums;         /* enum fields: owned, sorted by number */
  size_t n_enums;
  bool has_dflt;             /* proto2 default_value, as a raw value */
  raw_t dflt;
  uint8_t *dflt_mem;         /* owned bytes of a string/bytes default */
} pfield_t;

struct node_s {
  const trb_bq_field_t *bq; /* the node's BQ fields */
  size_t n_bq;
  pfield_t *fields;         /* sorted by number */
  size_t n_fields;
  int16_t direct[DIRECT];   /* number -> index in fields, -1 none */
  const pfield_t **by_col;  /* n_bq: the descriptor field of each column */
  trb_bq_value_t *scratch;  /* n_bq slots when used as a nested node */
  uint8_t *seen;            /* n_bq repeated-occurrence flags */
  node_t *next_alloc;       /* every node, for freeing */
};

struct trb_rowdec_plan_s {
  node_t *root;
  node_t *all;
  trb_buf_t tmp[MAX_DEPTH + 1];
};

/* ---- plan --------------------------------------------------------------- */

static const char *last_component(const char *name) {
  const char *d = strrchr(name, '.');
  return d ? d + 1 : name;
}

static const google_protobuf_DescriptorProto *find_type(
    const google_protobuf_DescriptorProto *scope, const char *name) {
  for (pb_size_t i = 0; i < scope->nested_type_count; i++) {
    const google_protobuf_DescriptorProto *n = &scope->nested_type[i];
    if (n->name && strcmp(n->name, name) == 0) return n;
  }
  for (pb_size_t i = 0; i < scope->nested_type_count; i++) {
    const google_protobuf_DescriptorProto *r = find_type(&scope->nested_type[i], name);
    if (r) return r;
  }
  return NULL;
}

static bool is_int_ptype(ptype_t t) {
  switch (t) {
    case PT(INT32): case PT(INT64): case PT(UINT32): case PT(UINT64):
    case PT(SINT32): case PT(SINT64): case PT(FIXED32): case PT(FIXED64):
    case PT(SFIXED32): case PT(SFIXED64): case PT(ENUM): case PT(BOOL):
      return true;
    default:
      return false;
  }
}

/* Fact 35: which protobuf types each BigQuery type accepts. */
static bool compatible(ptype_t t, trb_bq_type_t bq) {
  switch (bq) {
    case TRB_BQ_TYPE_BOOL:
      return t == PT(BOOL) || t == PT(INT32) || t == PT(INT64) ||
             t == PT(UINT32) || t == PT(UINT64) || t == PT(SINT32) ||
             t == PT(SINT64) || t == PT(FIXED32) || t == PT(FIXED64) ||
             t == PT(SFIXED32) || t == PT(SFIXED64);
    case TRB_BQ_TYPE_BYTES:
      return t == PT(BYTES) || t == PT(STRING);
    case TRB_BQ_TYPE_DATE:
      return t == PT(INT32) || t == PT(INT64) || t == PT(SINT32) ||
             t == PT(SINT64) || t == PT(SFIXED32) || t == PT(SFIXED64) ||
             t == PT(STRING);
    case TRB_BQ_TYPE_DATETIME:
    case TRB_BQ_TYPE_TIME:
      return t == PT(STRING) || t == PT(INT64) || t == PT(SINT64) ||
             t == PT(SFIXED64);
    case TRB_BQ_TYPE_DOUBLE:
      return t == PT(DOUBLE) || t == PT(FLOAT);
    case TRB_BQ_TYPE_STRING:
      return t == PT(STRING) || t == PT(ENUM);
    case TRB_BQ_TYPE_GEOGRAPHY:
    case TRB_BQ_TYPE_JSON:
    case TRB_BQ_TYPE_INTERVAL:
      return t == PT(STRING);
    case TRB_BQ_TYPE_INT64:
      return is_int_ptype(t) && t != PT(UINT64) && t != PT(FIXED64) &&
             t != PT(BOOL);
    case TRB_BQ_TYPE_NUMERIC:
    case TRB_BQ_TYPE_BIGNUMERIC:
      return (is_int_ptype(t) && t != PT(ENUM) && t != PT(BOOL)) ||
             t == PT(DOUBLE) || t == PT(FLOAT) || t == PT(STRING) ||
             t == PT(BYTES);
    case TRB_BQ_TYPE_TIMESTAMP:
      return t == PT(INT64) || t == PT(INT32) || t == PT(UINT32) ||
             t == PT(SINT64) || t == PT(SINT32) || t == PT(SFIXED64) ||
             t == PT(SFIXED32) || t == PT(FIXED32);
    case TRB_BQ_TYPE_STRUCT:
      return t == PT(MESSAGE);
    case TRB_BQ_TYPE_UNSPECIFIED:
      break;
  }
  return false;
}

static const char *ptype_name(ptype_t t) {
  static const char *k[] = {"?", "double", "float", "int64", "uint64",
                            "int32", "fixed64", "fixed32", "bool", "string",
                            "group", "message", "bytes", "uint32", "enum",
                            "sfixed32", "sfixed64", "sint32", "sint64"};
  return (unsigned)t < sizeof k / sizeof k[0] ? k[t] : "?";
}

/* The enum type `name` (last component) in `scope`'s enum_type or in any
 * nested type's (Go wraps each enum in a message "<full_name>_E"). */
static const google_protobuf_EnumDescriptorProto *find_enum(
    const google_protobuf_DescriptorProto *scope, const char *name) {
  for (pb_size_t i = 0; i < scope->enum_type_count; i++) {
    const google_protobuf_EnumDescriptorProto *e = &scope->enum_type[i];
    if (e->name && strcmp(e->name, name) == 0) return e;
  }
  for (pb_size_t i = 0; i < scope->nested_type_count; i++) {
    const google_protobuf_EnumDescriptorProto *e = find_enum(&scope->nested_type[i], name);
    if (e) return e;
  }
  return NULL;
}

static int cmp_enum(const void *a, const void *b) {
  const enum_val_t *x = a, *y = b;
  return x->number < y->number ? -1 : x->number > y->number;
}

/* Copy the values of enum field `fd` into `pf`. */
static grpc_status_code plan_enum(pfield_t *pf, const google_protobuf_DescriptorProto *root,
                                  const google_protobuf_FieldDescriptorProto *fd,
                                  const char *path, trb_status_t *st) {
  const google_protobuf_EnumDescriptorProto *e =
      fd->type_name ? find_enum(root, last_component(fd->type_name)) : NULL;
  if (!e || e->value_count == 0)
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "invalid writer schema: enum type \"%s\" of field %s.%s is not "
                          "in the descriptor (or has no values)",
                          fd->type_name ? fd->type_name : "", path, fd->name);
  pf->enums = trb_calloc(e->value_count, sizeof *pf->enums);
  if (!pf->enums) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  for (pb_size_t i = 0; i < e->value_count; i++) {
    const google_protobuf_EnumValueDescriptorProto *v = &e->value[i];
    if (!v->name || !*v->name || !v->has_number)
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "invalid writer schema: enum %s has a value without a name "
                            "or number", e->name ? e->name : "");
    pf->enums[pf->n_enums].number = v->number;
    pf->enums[pf->n_enums].name = trb_strdup(v->name);
    if (!pf->enums[pf->n_enums++].name)
      return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  }
  qsort(pf->enums, pf->n_enums, sizeof *pf->enums, cmp_enum);
  return GRPC_STATUS_OK;
}

static const enum_val_t *enum_by_number(const pfield_t *f, int32_t n) {
  size_t lo = 0, hi = f->n_enums;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (f->enums[mid].number < n) lo = mid + 1;
    else hi = mid;
  }
  return lo < f->n_enums && f->enums[lo].number == n ? &f->enums[lo] : NULL;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* descriptor.proto: a bytes default is C-escaped. Returns the length or -1. */
static long c_unescape(const char *s, uint8_t *out) {
  long n = 0;
  while (*s) {
    if (*s != '\\') {
      out[n++] = (uint8_t)*s++;
      continue;
    }
    s++;
    switch (*s) {
      case 'n': out[n++] = '\n'; s++; break;
      case 'r': out[n++] = '\r'; s++; break;
      case 't': out[n++] = '\t'; s++; break;
      case 'a': out[n++] = '\a'; s++; break;
      case 'b': out[n++] = '\b'; s++; break;
      case 'f': out[n++] = '\f'; s++; break;
      case 'v': out[n++] = '\v'; s++; break;
      case '\\': case '\'': case '"': case '?': out[n++] = (uint8_t)*s++; break;
      case 'x': case 'X': {
        s++;
        int v = 0, k = 0;
        while (k < 2 && hexval(*s) >= 0) v = v * 16 + hexval(*s++), k++;
        if (!k) return -1;
        out[n++] = (uint8_t)v;
        break;
      }
      default: {
        int v = 0, k = 0;
        while (k < 3 && *s >= '0' && *s <= '7') v = v * 8 + (*s++ - '0'), k++;
        if (!k || v > 255) return -1;
        out[n++] = (uint8_t)v;
        break;
      }
    }
  }
  return n;
}

/* Parse the proto2 default_value text of `fd` (type `t`) into pf->dflt. */
static grpc_status_code plan_default(pfield_t *pf, ptype_t t,
                                     const google_protobuf_FieldDescriptorProto *fd,
                                     const char *path, trb_status_t *st) {
  const char *s = fd->default_value;
  char *end = NULL;
  bool ok = true;
  errno = 0;
  switch (t) {
    case PT(INT32): case PT(SINT32): case PT(SFIXED32):
    case PT(INT64): case PT(SINT64): case PT(SFIXED64): {
      long long x = strtoll(s, &end, 0);
      bool w32 = t == PT(INT32) || t == PT(SINT32) || t == PT(SFIXED32);
      ok = *s && !*end && errno == 0 && (!w32 || (x >= INT32_MIN && x <= INT32_MAX));
      if (t == PT(SINT32)) pf->dflt.v = (uint32_t)(((uint32_t)x << 1) ^ (uint32_t)((int32_t)x >> 31));
      else if (t == PT(SINT64)) pf->dflt.v = ((uint64_t)x << 1) ^ (uint64_t)((int64_t)x >> 63);
      else pf->dflt.v = (uint64_t)(int64_t)x;
      break;
    }
    case PT(UINT32): case PT(FIXED32): case PT(UINT64): case PT(FIXED64): {
      unsigned long long x = strtoull(s, &end, 0);
      bool w32 = t == PT(UINT32) || t == PT(FIXED32);
      ok = *s && *s != '-' && !*end && errno == 0 && (!w32 || x <= UINT32_MAX);
      pf->dflt.v = (uint64_t)x;
      break;
    }
    case PT(BOOL):
      ok = strcmp(s, "true") == 0 || strcmp(s, "false") == 0;
      pf->dflt.v = s[0] == 't';
      break;
    case PT(DOUBLE): case PT(FLOAT): {
      double d = strtod(s, &end);
      ok = *s && !*end;
      if (t == PT(FLOAT)) {
        float f = (float)d;
        uint32_t u;
        memcpy(&u, &f, 4);
        pf->dflt.v = u;
      } else {
        memcpy(&pf->dflt.v, &d, 8);
      }
      break;
    }
    case PT(STRING): case PT(BYTES): {
      size_t n = strlen(s);
      pf->dflt_mem = trb_malloc(n + 1);
      if (!pf->dflt_mem) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
      long m = (long)n;
      if (t == PT(BYTES)) m = c_unescape(s, pf->dflt_mem);
      else memcpy(pf->dflt_mem, s, n);
      ok = m >= 0;
      pf->dflt.data = pf->dflt_mem;
      pf->dflt.len = ok ? (size_t)m : 0;
      break;
    }
    case PT(ENUM):
      ok = false;
      for (size_t i = 0; i < pf->n_enums; i++) {
        if (strcmp(pf->enums[i].name, s) == 0) {
          pf->dflt.v = (uint64_t)(int64_t)pf->enums[i].number;
          ok = true;
        }
      }
      break;
    default:
      ok = false;
      break;
  }
  if (!ok)
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "invalid writer schema: field %s.%s has an invalid default "
                          "value \"%s\" for its type %s", path, fd->name, s, ptype_name(t));
  pf->has_dflt = true;
  return GRPC_STATUS_OK;
}

static int cmp_pfield(const void *a, const void *b) {
  const pfield_t *x = a, *y = b;
  return x->number < y->number ? -1 : x->number > y->number;
}

static grpc_status_code build_node(trb_rowdec_plan_t *plan,
                                   const google_protobuf_DescriptorProto *root,
                                   const google_protobuf_DescriptorProto *d,
                                   const trb_bq_field_t *bq, size_t n_bq,
                                   const char *path, int depth, node_t **out,
                                   bool *extra, trb_status_t *st) {
  if (depth > 15) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "invalid writer schema: message nesting deeper than "
                          "15 levels at %s (recursive types are not allowed)",
                          path);
  }
  node_t *n = trb_calloc(1, sizeof *n);
  if (!n) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  n->next_alloc = plan->all;
  plan->all = n;
  *out = n;
  n->bq = bq;
  n->n_bq = n_bq;
  memset(n->direct, 0xFF, sizeof n->direct);
  n->by_col = trb_calloc(n_bq, sizeof *n->by_col);
  n->scratch = trb_calloc(n_bq, sizeof *n->scratch);
  n->seen = trb_calloc(n_bq, 1);
  n->fields = trb_calloc(d->field_count ? d->field_count : 1, sizeof *n->fields);
  if (!n->by_col || !n->scratch || !n->seen || !n->fields)
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  for (pb_size_t i = 0; i < d->field_count; i++) {
    const google_protobuf_FieldDescriptorProto *fd = &d->field[i];
    if (!fd->name || !*fd->name)
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "invalid writer schema: field %u of %s has no name",
                            (unsigned)i, path);
    if (!fd->has_number || fd->number < 1 || fd->number > 536870911)
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "invalid writer schema: field %s.%s has no valid "
                            "number", path, fd->name);
    for (size_t k = 0; k < n->n_fields; k++) {
      if (n->fields[k].number == (uint32_t)fd->number)
        return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                              "invalid writer schema: field number %d is used "
                              "twice in %s", fd->number, path);
    }
    ptype_t t = fd->has_type ? fd->type : (fd->type_name ? PT(MESSAGE) : (ptype_t)0);
    if (t < PT(DOUBLE) || t > PT(SINT64) || t == PT(GROUP))
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "invalid writer schema: field %s.%s has an "
                            "unsupported type", path, fd->name);
    int col = trb_bq_field_find(bq, n_bq, fd->name, strlen(fd->name));
    if (col < 0) {
      *extra = true;
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "Input schema has more fields than BigQuery "
                            "schema, extra fields: '%s%s%s'",
                            depth ? path + 5 : "", depth ? "." : "", fd->name);
    }
    if (n->by_col[col])
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "invalid writer schema: fields %s and %s of %s "
                            "both map to column %s",
                            n->by_col[col]->bq->name, fd->name, path,
                            bq[col].name);
    const trb_bq_field_t *bf = &bq[col];
    bool rep = fd->has_label &&
               fd->label == google_protobuf_FieldDescriptorProto_Label_LABEL_REPEATED;
    if (rep != (bf->mode == TRB_BQ_MODE_REPEATED))
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "The proto field %s is %srepeated but the "
                            "BigQuery field %s is %s",
                            fd->name, rep ? "" : "not ", bf->name,
                            trb_bq_mode_name(bf->mode));
    if (!compatible(t, bf->type))
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "The proto field %s of type %s cannot be written "
                            "to the BigQuery %s field %s",
                            fd->name, ptype_name(t), trb_bq_type_name(bf->type),
                            bf->name);
    pfield_t *pf = &n->fields[n->n_fields++];
    pf->number = (uint32_t)fd->number;
    pf->ptype = t;
    pf->repeated = rep;
    pf->col = col;
    pf->bq = bf;
    if (t == PT(ENUM)) {
      grpc_status_code c = plan_enum(pf, root, fd, path, st);
      if (c) return c;
    }
    if (fd->default_value && !rep) {
      grpc_status_code c = plan_default(pf, t, fd, path, st);
      if (c) return c;
    }
    if (t == PT(MESSAGE)) {
      const google_protobuf_DescriptorProto *sd =
          fd->type_name ? find_type(root, last_component(fd->type_name)) : NULL;
      if (!sd)
        return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                              "invalid writer schema: message type \"%s\" of "
                              "field %s is not in the descriptor's nested "
                              "types", fd->type_name ? fd->type_name : "",
                              fd->name);
      char p2[256];
      snprintf(p2, sizeof p2, "%s.%s", path, bf->name);
      grpc_status_code c = build_node(plan, root, sd, bf->fields, bf->n_fields,
                                      p2, depth + 1, &pf->sub, extra, st);
      if (c) return c;
    }
  }
  qsort(n->fields, n->n_fields, sizeof *n->fields, cmp_pfield);
  for (size_t k = 0; k < n->n_fields; k++) {
    n->by_col[n->fields[k].col] = &n->fields[k];
    if (n->fields[k].number < DIRECT) n->direct[n->fields[k].number] = (int16_t)k;
  }
  return GRPC_STATUS_OK;
}

grpc_status_code trb_rowdec_plan_create(const google_protobuf_DescriptorProto *desc,
                                        const trb_bq_table_t *table,
                                        trb_rowdec_plan_t **out,
                                        bool *extra_field, trb_status_t *st) {
  *out = NULL;
  *extra_field = false;
  trb_rowdec_plan_t *p = trb_calloc(1, sizeof *p);
  if (!p) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  grpc_status_code c = build_node(p, desc, desc, table->fields, table->n_fields,
                                  "root", 0, &p->root, extra_field, st);
  if (c) {
    trb_rowdec_plan_destroy(p);
    return c;
  }
  *out = p;
  return GRPC_STATUS_OK;
}

void trb_rowdec_plan_destroy(trb_rowdec_plan_t *p) {
  if (!p) return;
  node_t *n = p->all;
  while (n) {
    node_t *next = n->next_alloc;
    for (size_t i = 0; i < n->n_fields; i++) {
      for (size_t k = 0; k < n->fields[i].n_enums; k++) trb_free(n->fields[i].enums[k].name);
      trb_free(n->fields[i].enums);
      trb_free(n->fields[i].dflt_mem);
    }
    trb_free(n->by_col);
    trb_free(n->scratch);
    trb_free(n->seen);
    trb_free(n->fields);
    trb_free(n);
    n = next;
  }
  for (int i = 0; i <= MAX_DEPTH; i++) trb_buf_deinit(&p->tmp[i]);
  trb_free(p);
}

size_t trb_rowdec_plan_columns(const trb_rowdec_plan_t *p) {
  return p->root->n_bq;
}

/* ---- wire --------------------------------------------------------------- */

typedef struct cur_s {
  const uint8_t *p, *end;
} cur_t;

static bool rd_varint(cur_t *c, uint64_t *v) {
  uint64_t x = 0;
  for (int shift = 0; shift < 64 && c->p < c->end; shift += 7) {
    uint8_t b = *c->p++;
    x |= (uint64_t)(b & 0x7F) << shift;
    if (!(b & 0x80)) {
      *v = x;
      return true;
    }
  }
  return false;
}

static bool rd_value(cur_t *c, unsigned wire, raw_t *r) {
  switch (wire) {
    case 0:
      return rd_varint(c, &r->v);
    case 1:
      if (c->end - c->p < 8) return false;
      memcpy(&r->v, c->p, 8);
      c->p += 8;
      return true;
    case 5: {
      if (c->end - c->p < 4) return false;
      uint32_t x;
      memcpy(&x, c->p, 4);
      r->v = x;
      c->p += 4;
      return true;
    }
    case 2: {
      uint64_t n;
      if (!rd_varint(c, &n) || n > (uint64_t)(c->end - c->p)) return false;
      r->data = c->p;
      r->len = (size_t)n;
      c->p += n;
      return true;
    }
    default:
      return false; /* groups (3, 4) and invalid wire types */
  }
}

static unsigned wire_of(ptype_t t) {
  switch (t) {
    case PT(DOUBLE): case PT(FIXED64): case PT(SFIXED64): return 1;
    case PT(FLOAT): case PT(FIXED32): case PT(SFIXED32): return 5;
    case PT(STRING): case PT(BYTES): case PT(MESSAGE): return 2;
    default: return 0;
  }
}

static const pfield_t *lookup(const node_t *n, uint64_t num) {
  if (num < DIRECT) {
    int i = n->direct[num];
    return i >= 0 ? &n->fields[i] : NULL;
  }
  size_t lo = 0, hi = n->n_fields;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (n->fields[mid].number < num) lo = mid + 1;
    else hi = mid;
  }
  return lo < n->n_fields && n->fields[lo].number == num ? &n->fields[lo] : NULL;
}

/* Signed integer value of a numeric raw value per its protobuf type. */
static int64_t as_int(ptype_t t, uint64_t v, bool *unsig) {
  *unsig = false;
  switch (t) {
    case PT(INT32): case PT(ENUM): case PT(SFIXED32): return (int32_t)v;
    case PT(UINT32): case PT(FIXED32): return (uint32_t)v;
    case PT(SINT32): {
      uint32_t u = (uint32_t)v;
      return (int32_t)((u >> 1) ^ (~(u & 1) + 1));
    }
    case PT(SINT64): return (int64_t)((v >> 1) ^ (~(v & 1) + 1));
    case PT(UINT64): case PT(FIXED64): *unsig = true; return (int64_t)v;
    case PT(BOOL): return v != 0;
    default: return (int64_t)v;
  }
}

static double as_double(ptype_t t, uint64_t v) {
  if (t == PT(FLOAT)) {
    uint32_t u = (uint32_t)v;
    float f;
    memcpy(&f, &u, 4);
    return f;
  }
  double d;
  memcpy(&d, &v, 8);
  return d;
}

/* UTF-8 validation; returns the number of code points or -1. */
static long utf8_count(const uint8_t *s, size_t n) {
  long cp = 0;
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    if (c < 0x80) {
      i++;
    } else {
      int k;
      uint32_t v;
      if ((c & 0xE0) == 0xC0) { k = 1; v = c & 0x1F; }
      else if ((c & 0xF0) == 0xE0) { k = 2; v = c & 0x0F; }
      else if ((c & 0xF8) == 0xF0) { k = 3; v = c & 0x07; }
      else return -1;
      if (i + (size_t)k >= n) return -1;
      for (int j = 1; j <= k; j++) {
        if ((s[i + j] & 0xC0) != 0x80) return -1;
        v = v << 6 | (s[i + j] & 0x3F);
      }
      if ((k == 1 && v < 0x80) || (k == 2 && v < 0x800) ||
          (k == 3 && (v < 0x10000 || v > 0x10FFFF)) ||
          (v >= 0xD800 && v <= 0xDFFF))
        return -1;
      i += (size_t)k + 1;
    }
    cp++;
  }
  return cp;
}

static grpc_status_code oom(trb_status_t *st) {
  return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
}

static grpc_status_code put_text(trb_buf_t *b, const char *s, size_t n,
                                 trb_bq_value_t *v, trb_status_t *st) {
  size_t off = b->len;
  if (trb_buf_append(b, s, n)) return oom(st);
  v->kind = TRB_BQV_BTEXT;
  v->u.off = off;
  v->len = (uint32_t)n;
  return GRPC_STATUS_OK;
}

#define ROWERR(st, ...) trb_status_set((st), GRPC_STATUS_INVALID_ARGUMENT, __VA_ARGS__)

/* Convert one raw scalar of field `f` into `v` (text into `b`). */
static grpc_status_code convert(const pfield_t *f, const raw_t *r,
                                trb_bq_value_t *v, trb_buf_t *b,
                                trb_status_t *st) {
  const trb_bq_field_t *bf = f->bq;
  const char *name = bf->name;
  bool unsig;
  char tb[TRB_BQ_NUMERIC_BUF];
  trb_status_t vs;
  switch (bf->type) {
    case TRB_BQ_TYPE_INT64:
      v->kind = TRB_BQV_INT;
      v->u.i = as_int(f->ptype, r->v, &unsig);
      return GRPC_STATUS_OK;
    case TRB_BQ_TYPE_BOOL:
      v->kind = TRB_BQV_INT;
      v->u.i = r->v != 0;
      return GRPC_STATUS_OK;
    case TRB_BQ_TYPE_DOUBLE:
      v->kind = TRB_BQV_REAL;
      v->u.d = as_double(f->ptype, r->v);
      return GRPC_STATUS_OK;
    case TRB_BQ_TYPE_STRING:
    case TRB_BQ_TYPE_JSON:
    case TRB_BQ_TYPE_GEOGRAPHY:
    case TRB_BQ_TYPE_INTERVAL: {
      if (f->ptype == PT(ENUM)) { /* STRING only: the value's name */
        const enum_val_t *e = enum_by_number(f, (int32_t)r->v);
        if (!e)
          return ROWERR(st, "Invalid enum value %" PRId32 " on field %s.", (int32_t)r->v, name);
        return put_text(b, e->name, strlen(e->name), v, st);
      }
      long cp = utf8_count(r->data, r->len);
      if (cp < 0) return ROWERR(st, "Invalid UTF-8 in field %s.", name);
      if (bf->max_length && cp > bf->max_length)
        return ROWERR(st, "Field %s: STRING(%" PRId64 ") has maximum length %"
                          PRId64 " but got a value with length %ld on field %s.",
                      name, bf->max_length, bf->max_length, cp, name);
      v->kind = TRB_BQV_TEXT;
      v->u.p = r->data;
      v->len = (uint32_t)r->len;
      return GRPC_STATUS_OK;
    }
    case TRB_BQ_TYPE_BYTES:
      if (bf->max_length && (int64_t)r->len > bf->max_length)
        return ROWERR(st, "Field %s: BYTES(%" PRId64 ") has maximum length %"
                          PRId64 " but got a value with length %zu on field %s.",
                      name, bf->max_length, bf->max_length, r->len, name);
      v->kind = TRB_BQV_BLOB;
      v->u.p = r->data;
      v->len = (uint32_t)r->len;
      return GRPC_STATUS_OK;
    case TRB_BQ_TYPE_TIMESTAMP: {
      int64_t us = as_int(f->ptype, r->v, &unsig);
      if (trb_bq_timestamp_format(us, tb, NULL))
        return ROWERR(st, "Timestamp field value is out of range: %" PRId64
                          " on field %s.", us, name);
      return put_text(b, tb, 27, v, st);
    }
    case TRB_BQ_TYPE_DATE: {
      int64_t d;
      if (f->ptype == PT(STRING)) {
        int32_t d32;
        if (trb_bq_date_parse((const char *)r->data, r->len, &d32, &vs))
          return ROWERR(st, "%s on field %s.", vs.msg, name);
        d = d32;
      } else {
        d = as_int(f->ptype, r->v, &unsig);
      }
      if (trb_bq_date_format(d, tb, NULL))
        return ROWERR(st, "Date field value is out of range: %" PRId64
                          " on field %s.", d, name);
      return put_text(b, tb, 10, v, st);
    }
    case TRB_BQ_TYPE_TIME:
    case TRB_BQ_TYPE_DATETIME: {
      bool dt = bf->type == TRB_BQ_TYPE_DATETIME;
      int64_t packed;
      if (f->ptype == PT(STRING)) {
        grpc_status_code c =
            dt ? trb_bq_datetime_parse((const char *)r->data, r->len, &packed, &vs)
               : trb_bq_time_parse((const char *)r->data, r->len, &packed, &vs);
        if (c) return ROWERR(st, "%s on field %s.", vs.msg, name);
      } else {
        packed = as_int(f->ptype, r->v, &unsig);
      }
      grpc_status_code c = dt ? trb_bq_datetime_format(packed, tb, &vs)
                              : trb_bq_time_format(packed, tb, &vs);
      if (c) return ROWERR(st, "%s on field %s.", vs.msg, name);
      return put_text(b, tb, strlen(tb), v, st);
    }
    case TRB_BQ_TYPE_NUMERIC:
    case TRB_BQ_TYPE_BIGNUMERIC: {
      bool big = bf->type == TRB_BQ_TYPE_BIGNUMERIC;
      grpc_status_code c;
      if (f->ptype == PT(BYTES)) {
        c = trb_bq_numeric_format(r->data, r->len, big, tb, sizeof tb, &vs);
      } else if (f->ptype == PT(STRING)) {
        c = trb_bq_numeric_canonical((const char *)r->data, r->len, big, tb,
                                     sizeof tb, &vs);
      } else {
        char num[64];
        int n;
        if (f->ptype == PT(DOUBLE) || f->ptype == PT(FLOAT)) {
          double d = as_double(f->ptype, r->v);
          if (!isfinite(d) || fabs(d) >= 1e40)
            return ROWERR(st, "Invalid %s value %g on field %s.",
                          trb_bq_type_name(bf->type), d, name);
          n = snprintf(num, sizeof num, "%.*f", big ? 38 : 9, d);
        } else {
          int64_t x = as_int(f->ptype, r->v, &unsig);
          n = unsig ? snprintf(num, sizeof num, "%" PRIu64, (uint64_t)x)
                    : snprintf(num, sizeof num, "%" PRId64, x);
        }
        c = trb_bq_numeric_canonical(num, (size_t)n, big, tb, sizeof tb, &vs);
      }
      if (c) return ROWERR(st, "%s on field %s.", vs.msg, name);
      return put_text(b, tb, strlen(tb), v, st);
    }
    case TRB_BQ_TYPE_STRUCT:
    case TRB_BQ_TYPE_UNSPECIFIED:
      break;
  }
  return ROWERR(st, "Unsupported value on field %s.", name);
}

/* ---- JSON serialization of nested values -------------------------------- */

static int json_str(trb_buf_t *o, const uint8_t *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  if (trb_buf_reserve(o, n * 6 + 2)) return -1;
  char *w = o->data + o->len;
  *w++ = '"';
  for (size_t i = 0; i < n; i++) {
    uint8_t c = s[i];
    if (c == '"' || c == '\\') {
      *w++ = '\\';
      *w++ = (char)c;
    } else if (c < 0x20) {
      *w++ = '\\';
      *w++ = 'u';
      *w++ = '0';
      *w++ = '0';
      *w++ = hex[c >> 4];
      *w++ = hex[c & 15];
    } else {
      *w++ = (char)c;
    }
  }
  *w++ = '"';
  o->len = (size_t)(w - o->data);
  o->data[o->len] = '\0';
  return 0;
}

static int json_b64(trb_buf_t *o, const uint8_t *s, size_t n) {
  static const char t[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  if (trb_buf_reserve(o, (n + 2) / 3 * 4 + 2)) return -1;
  char *w = o->data + o->len;
  *w++ = '"';
  size_t i = 0;
  for (; i + 2 < n; i += 3) {
    uint32_t x = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
    *w++ = t[x >> 18];
    *w++ = t[x >> 12 & 63];
    *w++ = t[x >> 6 & 63];
    *w++ = t[x & 63];
  }
  if (i < n) {
    uint32_t x = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
    *w++ = t[x >> 18];
    *w++ = t[x >> 12 & 63];
    *w++ = i + 1 < n ? t[x >> 6 & 63] : '=';
    *w++ = '=';
  }
  *w++ = '"';
  o->len = (size_t)(w - o->data);
  o->data[o->len] = '\0';
  return 0;
}

/* Append the JSON form of `v` (a value of BQ field `bf`; buffer texts in
 * `src`) to `o`. */
static int json_value(trb_buf_t *o, const trb_bq_field_t *bf,
                      const trb_bq_value_t *v, const trb_buf_t *src) {
  switch (v->kind) {
    case TRB_BQV_NULL:
      return trb_buf_append(o, "null", 4);
    case TRB_BQV_INT:
      if (bf->type == TRB_BQ_TYPE_BOOL)
        return v->u.i ? trb_buf_append(o, "true", 4) : trb_buf_append(o, "false", 5);
      return trb_buf_appendf(o, "%" PRId64, v->u.i);
    case TRB_BQV_REAL:
      if (isnan(v->u.d)) return trb_buf_append_str(o, "\"NaN\"");
      if (isinf(v->u.d))
        return trb_buf_append_str(o, v->u.d > 0 ? "\"Infinity\"" : "\"-Infinity\"");
      return trb_buf_appendf(o, "%.17g", v->u.d);
    case TRB_BQV_TEXT:
      return json_str(o, v->u.p, v->len);
    case TRB_BQV_BLOB:
      return json_b64(o, v->u.p, v->len);
    case TRB_BQV_BTEXT:
      return json_str(o, (const uint8_t *)src->data + v->u.off, v->len);
    case TRB_BQV_BBLOB:
      return json_b64(o, (const uint8_t *)src->data + v->u.off, v->len);
    case TRB_BQV_BJSON:
      return trb_buf_append(o, src->data + v->u.off, v->len);
    default:
      return -1;
  }
}

static grpc_status_code decode_node(trb_rowdec_plan_t *p, node_t *n, int depth,
                                    const uint8_t *data, size_t len,
                                    const bool *fillable, trb_bq_value_t *slots,
                                    trb_buf_t *b, trb_status_t *st);

/* Decode a nested message of field `f` at `depth` + 1 and append its JSON
 * object to `o`. */
static grpc_status_code nested_json(trb_rowdec_plan_t *p, const pfield_t *f,
                                    int depth, const raw_t *r, trb_buf_t *o,
                                    trb_status_t *st) {
  node_t *sub = f->sub;
  trb_buf_t *tb = &p->tmp[depth + 1];
  trb_buf_reset(tb);
  grpc_status_code c = decode_node(p, sub, depth + 1, r->data, r->len,
                                   NULL, sub->scratch, tb, st);
  if (c) return c;
  if (trb_buf_append(o, "{", 1)) return oom(st);
  for (size_t i = 0; i < sub->n_bq; i++) {
    if (i && trb_buf_append(o, ",", 1)) return oom(st);
    if (json_str(o, (const uint8_t *)sub->bq[i].name, strlen(sub->bq[i].name)) ||
        trb_buf_append(o, ":", 1) ||
        json_value(o, &sub->bq[i], &sub->scratch[i], tb))
      return oom(st);
  }
  if (trb_buf_append(o, "}", 1)) return oom(st);
  return GRPC_STATUS_OK;
}

static grpc_status_code malformed(trb_status_t *st, const char *what) {
  return ROWERR(st, "Could not parse the serialized row: %s.", what);
}

/* Build the JSON array of repeated field `f` (rescanning `data`). */
static grpc_status_code repeated_json(trb_rowdec_plan_t *p, node_t *n,
                                      const pfield_t *f, int depth,
                                      const uint8_t *data, size_t len,
                                      trb_buf_t *o, trb_status_t *st) {
  cur_t c = {data, data + len};
  bool first = true;
  unsigned want = wire_of(f->ptype);
  trb_buf_t *tb = &p->tmp[depth + 1];
  if (trb_buf_append(o, "[", 1)) return oom(st);
  while (c.p < c.end) {
    uint64_t tag;
    raw_t r;
    if (!rd_varint(&c, &tag) || !rd_value(&c, (unsigned)(tag & 7), &r))
      return malformed(st, "truncated field");
    if (lookup(n, tag >> 3) != f) continue;
    unsigned wire = (unsigned)(tag & 7);
    if (wire == want) {
      if (!first && trb_buf_append(o, ",", 1)) return oom(st);
      first = false;
      if (f->sub) {
        grpc_status_code e = nested_json(p, f, depth, &r, o, st);
        if (e) return e;
      } else {
        trb_bq_value_t v = {0};
        trb_buf_reset(tb);
        grpc_status_code e = convert(f, &r, &v, tb, st);
        if (e) return e;
        if (json_value(o, f->bq, &v, tb)) return oom(st);
      }
    } else if (wire == 2 && want != 2) { /* packed */
      cur_t pc = {r.data, r.data + r.len};
      while (pc.p < pc.end) {
        raw_t e;
        if (!rd_value(&pc, want, &e)) return malformed(st, "bad packed field");
        if (!first && trb_buf_append(o, ",", 1)) return oom(st);
        first = false;
        trb_bq_value_t v = {0};
        trb_buf_reset(tb);
        grpc_status_code ec = convert(f, &e, &v, tb, st);
        if (ec) return ec;
        if (json_value(o, f->bq, &v, tb)) return oom(st);
      }
    } else {
      return malformed(st, "wire type does not match the writer schema");
    }
  }
  if (trb_buf_append(o, "]", 1)) return oom(st);
  return GRPC_STATUS_OK;
}

/* The proto2 default of absent field `f`, copied into `b` (the plan may be
 * freed before the decoded values are used). */
static grpc_status_code apply_default(const pfield_t *f, trb_bq_value_t *v, trb_buf_t *b,
                                      trb_status_t *st) {
  grpc_status_code e = convert(f, &f->dflt, v, b, st);
  if (e) return e;
  if (v->kind == TRB_BQV_TEXT || v->kind == TRB_BQV_BLOB) {
    bool blob = v->kind == TRB_BQV_BLOB;
    e = put_text(b, (const char *)v->u.p, v->len, v, st);
    if (e) return e;
    if (blob) v->kind = TRB_BQV_BBLOB;
  }
  return GRPC_STATUS_OK;
}

static grpc_status_code decode_node(trb_rowdec_plan_t *p, node_t *n, int depth,
                                    const uint8_t *data, size_t len,
                                    const bool *fillable, trb_bq_value_t *slots,
                                    trb_buf_t *b, trb_status_t *st) {
  memset(slots, 0, n->n_bq * sizeof *slots);
  memset(n->seen, 0, n->n_bq);
  bool any_rep = false;
  cur_t c = {data, data + len};
  while (c.p < c.end) {
    uint64_t tag;
    raw_t r;
    if (!rd_varint(&c, &tag) || (tag >> 3) == 0)
      return malformed(st, "invalid tag");
    unsigned wire = (unsigned)(tag & 7);
    if (!rd_value(&c, wire, &r)) return malformed(st, "truncated or invalid field");
    const pfield_t *f = lookup(n, tag >> 3);
    if (!f) continue; /* unknown field: skipped (proto2) */
    if (f->repeated) {
      n->seen[f->col] = 1;
      any_rep = true;
      continue;
    }
    if (wire != wire_of(f->ptype))
      return malformed(st, "wire type does not match the writer schema");
    trb_bq_value_t *v = &slots[f->col];
    if (f->sub) {
      size_t off = b->len;
      grpc_status_code e = nested_json(p, f, depth, &r, b, st);
      if (e) return e;
      v->kind = TRB_BQV_BJSON;
      v->u.off = off;
      v->len = (uint32_t)(b->len - off);
    } else {
      grpc_status_code e = convert(f, &r, v, b, st);
      if (e) return e;
    }
  }
  for (size_t i = 0; i < n->n_bq; i++) {
    const trb_bq_field_t *bf = &n->bq[i];
    if (bf->mode == TRB_BQ_MODE_REPEATED) {
      size_t off = b->len;
      if (any_rep && n->seen[i]) {
        grpc_status_code e = repeated_json(p, n, n->by_col[i], depth, data, len, b, st);
        if (e) return e;
      } else if (trb_buf_append(b, "[]", 2)) {
        return oom(st);
      }
      slots[i].kind = TRB_BQV_BJSON;
      slots[i].u.off = off;
      slots[i].len = (uint32_t)(b->len - off);
    } else if (slots[i].kind == TRB_BQV_NULL) {
      /* REQUIRED is satisfied only by a present field, not a proto2
       * default — unless the caller fills the column (DEFAULT_VALUE) */
      bool fill = fillable && fillable[i];
      if (bf->mode == TRB_BQ_MODE_REQUIRED && !fill)
        return ROWERR(st, "Missing required field: %s.", bf->name);
      const pfield_t *f = n->by_col[i];
      if (f && f->has_dflt) {
        grpc_status_code e = apply_default(f, &slots[i], b, st);
        if (e) return e;
      }
    }
  }
  return GRPC_STATUS_OK;
}

grpc_status_code trb_rowdec_decode(trb_rowdec_plan_t *p, const uint8_t *row,
                                   size_t len, trb_bq_value_t *vals,
                                   trb_buf_t *out, trb_status_t *st) {
  return trb_rowdec_decode_fill(p, row, len, NULL, vals, out, st);
}

grpc_status_code trb_rowdec_decode_fill(trb_rowdec_plan_t *p, const uint8_t *row,
                                        size_t len, const bool *fillable,
                                        trb_bq_value_t *vals, trb_buf_t *out,
                                        trb_status_t *st) {
  size_t mark = out->len;
  grpc_status_code c = decode_node(p, p->root, 0, row, len, fillable, vals, out, st);
  if (c) {
    out->len = mark;
    if (out->data) out->data[mark] = '\0';
  }
  return c;
}
