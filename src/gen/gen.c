/*
 * gen.c — see gen.h.
 */
#include "src/gen/gen.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define DEFAULT_BASE_US 1736899200000000LL /* 2025-01-15T00:00:00Z */

static const uint32_t kDefaultWeights[TRB_GEN_KINDS] = {30, 25, 30, 10, 5};

static uint64_t next64(trb_gen_t *g) {
  uint64_t z = (g->state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/* Uniform in [0, n); n > 0. */
static uint32_t below(trb_gen_t *g, uint32_t n) {
  return (uint32_t)(((next64(g) >> 32) * (uint64_t)n) >> 32);
}

static double unit(trb_gen_t *g) {
  return (double)(next64(g) >> 11) / 9007199254740992.0;
}

#define PICK(g, arr) ((arr)[below((g), sizeof(arr) / sizeof((arr)[0]))])

void trb_gen_init(trb_gen_t *g, const trb_gen_config_t *cfg) {
  memset(g, 0, sizeof(*g));
  g->cfg = *cfg;
  if (g->cfg.malformed_fraction < 0) g->cfg.malformed_fraction = 0;
  if (g->cfg.malformed_fraction > 1) g->cfg.malformed_fraction = 1;
  for (int i = 0; i < TRB_GEN_KINDS; i++) g->weight_sum += g->cfg.weights[i];
  if (g->weight_sum == 0) {
    memcpy(g->cfg.weights, kDefaultWeights, sizeof(kDefaultWeights));
    for (int i = 0; i < TRB_GEN_KINDS; i++) g->weight_sum += kDefaultWeights[i];
  }
  if (g->cfg.base_time_us == 0) g->cfg.base_time_us = DEFAULT_BASE_US;
  g->state = cfg->seed;
}

const char *trb_gen_kind_name(trb_gen_kind_t k) {
  static const char *const n[] = {"order", "inventory", "user_activity",
                                  "issue", "raw_order"};
  return (unsigned)k < TRB_GEN_KINDS ? n[k] : "?";
}

const char *trb_gen_defect_name(trb_gen_defect_t d) {
  static const char *const n[] = {"valid", "broken_json", "unknown_event_type",
                                  "wrong_type", "missing_required"};
  return (unsigned)d < TRB_GEN_DEFECTS ? n[d] : "?";
}

void trb_gen_format_time(int64_t us, int style, char *out) {
  int off_min = style == 3 ? 120 : style == 4 ? -300 : 0;
  int64_t s = us / 1000000;
  int64_t frac = us % 1000000;
  if (frac < 0) {
    frac += 1000000;
    s -= 1;
  }
  time_t t = (time_t)(s + off_min * 60);
  struct tm tm;
  gmtime_r(&t, &tm);
  char base[32];
  strftime(base, sizeof base, style == 5 ? "%Y-%m-%d" : "%Y-%m-%dT%H:%M:%S",
           &tm);
  switch (style) {
    case 1:
      sprintf(out, "%s.%03dZ", base, (int)(frac / 1000));
      break;
    case 2:
      sprintf(out, "%s.%06dZ", base, (int)frac);
      break;
    case 3:
      sprintf(out, "%s+02:00", base);
      break;
    case 4:
      sprintf(out, "%s-05:00", base);
      break;
    case 5:
      strcpy(out, base);
      break;
    default:
      sprintf(out, "%sZ", base);
      break;
  }
}

/* A timestamp style, weighted like the corpus (mostly plain Z). */
static int time_style(trb_gen_t *g, bool date_ok) {
  uint32_t r = below(g, 100);
  if (r < 55) return 0;
  if (r < 70) return 1;
  if (r < 80) return 2;
  if (r < 88) return 3;
  if (r < 95 || !date_ok) return 4;
  return 5;
}

static void uuid4(trb_gen_t *g, char out[37]) {
  uint64_t a = next64(g), b = next64(g);
  a = (a & ~0xF000ULL) | 0x4000ULL;
  b = (b & ~(0xC000ULL << 48)) | (0x8000ULL << 48);
  sprintf(out, "%08x-%04x-%04x-%04x-%012llx", (unsigned)(a >> 32),
          (unsigned)((a >> 16) & 0xFFFF), (unsigned)(a & 0xFFFF),
          (unsigned)(b >> 48), (unsigned long long)(b & 0xFFFFFFFFFFFFULL));
}

/* An id in one of the corpus's styles for `what` ("ord", "cust", ...). */
static void make_id(trb_gen_t *g, const char *pfx, const char *long_pfx,
                    uint32_t range, char out[48]) {
  uint32_t r = below(g, 10);
  if (r < 6) {
    sprintf(out, "%s-%05u", pfx, below(g, range));
  } else if (r < 8) {
    sprintf(out, "%s-%u", long_pfx, below(g, range));
  } else {
    uuid4(g, out);
  }
}

typedef struct {
  const char *id;
  const char *name;
  int cents;
} product_t;

static const product_t kProducts[] = {
    {"prod-001", "Wireless Headphones", 9999},
    {"prod-002", "Phone Case", 1999},
    {"prod-003", "USB-C Cable", 1299},
    {"prod-004", "Mechanical Keyboard", 12950},
    {"prod-005", "Running Shoes", 8900},
    {"prod-006", "Water Bottle", 2450},
    {"prod-007", "Yoga Mat", 3500},
    {"prod-008", "Desk Lamp", 4599},
    {"prod-009", "Backpack", 6999},
    {"prod-010", "Coffee Grinder", 5425},
    {"prod-011", "Smart Watch", 24900},
    {"prod-012", "Gym Hoodie", 5000},
    {"prod-013", "Bluetooth Speaker", 7999},
    {"prod-014", "Notebook (A5, dotted)", 850},
    {"prod-015", "Caf\\u00e9 Mug", 1500},
};

typedef struct {
  const char *street;
  const char *city;
  const char *country;
} address_t;

static const address_t kAddresses[] = {
    {"123 Main Street", "Amsterdam", "NL"},
    {"456 Another St", "Rotterdam", "NL"},
    {"12 Rue de Rivoli", "Paris", "FR"},
    {"Unter den Linden 5", "Berlin", "DE"},
    {"221B Baker Street", "London", "GB"},
    {"350 Fifth Avenue", "New York", "US"},
    {"1600 Amphitheatre Pkwy", "Mountain View", "US"},
    {"Calle de Alcal\\u00e1 42", "Madrid", "ES"},
    {"Rua Augusta 100", "S\\u00e3o Paulo", "BR"},
    {"1-1 Chiyoda", "Tokyo", "JP"},
};

static const char *const kStatuses[] = {"pending", "processing", "shipped",
                                        "delivered"};
static const char *const kReasons[] = {"restock", "sale", "return", "damage"};
static const char *const kActivities[] = {"login", "logout", "view_product",
                                          "add_to_cart", "remove_from_cart"};
static const char *const kPlatforms[] = {"web", "mobile", "tablet"};
static const char *const kWarehouses[] = {"wh-eu-west-1", "wh-us-central",
                                          "wh-us-east-1", "wh-ap-south-1",
                                          "wh-1"};
static const char *const kAgents[] = {
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) Mobile/15E148",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) Safari/605.1.15",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) Chrome/120.0 Mobile",
    "Mozilla/5.0 (Mobile)",
};
static const char *const kUnknownTypes[] = {"unknown_type", "refund",
                                            "shipment", "cart_abandoned",
                                            "page_view"};
static const char *const kIssueTitles[] = {
    "Checkout button does nothing on Safari",
    "Order confirmation email never arrives",
    "Inventory count negative after return",
    "Login loop with SSO",
    "Search returns \\\"no results\\\" for existing products",
    "Mobile app crashes on cart screen",
};
static const char *const kSeverities[] = {"low", "medium", "high",
                                          "critical"};
static const char *const kLabels[] = {"ui", "backend", "payments", "auth",
                                      "mobile", "regression"};

typedef struct {
  trb_gen_t *g;
  trb_buf_t *b;
  int rc;
  bool first;
} jw_t;

static void raw(jw_t *w, const char *s) {
  w->rc |= trb_buf_append_str(w->b, s);
}

static void key(jw_t *w, const char *k) {
  w->rc |= trb_buf_appendf(w->b, "%s\"%s\": ", w->first ? "" : ", ", k);
  w->first = false;
}

/* Strings here never need escaping beyond what the tables hold already. */
static void kv_str(jw_t *w, const char *k, const char *v) {
  key(w, k);
  w->rc |= trb_buf_appendf(w->b, "\"%s\"", v);
}

static void kv_int(jw_t *w, const char *k, long long v) {
  key(w, k);
  w->rc |= trb_buf_appendf(w->b, "%lld", v);
}

static void kv_money(jw_t *w, const char *k, long long cents) {
  key(w, k);
  w->rc |= trb_buf_appendf(w->b, "%lld.%02lld", cents / 100, cents % 100);
}

static void kv_time(jw_t *w, const char *k, int64_t us, bool date_ok) {
  char t[40];
  trb_gen_format_time(us, time_style(w->g, date_ok), t);
  kv_str(w, k, t);
}

static void open_obj(jw_t *w) {
  raw(w, "{");
  w->first = true;
}

static void close_obj(jw_t *w) {
  raw(w, "}");
  w->first = false;
}

/* Which field a MISSING_REQUIRED / WRONG_TYPE event breaks (0 or 1). */
typedef struct {
  trb_gen_defect_t defect;
  int variant;
} fault_t;

static bool omit(const fault_t *f, int variant) {
  return f->defect == TRB_GEN_MISSING_REQUIRED && f->variant == variant;
}

static bool wrong(const fault_t *f, int variant) {
  return f->defect == TRB_GEN_WRONG_TYPE && f->variant == variant;
}

static void gen_order(jw_t *w, int64_t t, const char *etype,
                      const fault_t *f) {
  trb_gen_t *g = w->g;
  char id[48];
  open_obj(w);
  kv_str(w, "event_type", etype);
  if (!omit(f, 0)) {
    make_id(g, "ord", "order", 100000, id);
    kv_str(w, "order_id", id);
  }
  make_id(g, "cust", "customer", 5000, id);
  kv_str(w, "customer_id", id);
  if (!omit(f, 1)) kv_time(w, "order_date", t, true);
  kv_str(w, "status", PICK(g, kStatuses));
  uint32_t n = 1 + below(g, 4);
  long long total = 0;
  key(w, "items");
  if (wrong(f, 2)) {
    raw(w, "{\"product_id\": \"prod-001\", \"quantity\": 1}");
  } else {
    raw(w, "[");
    for (uint32_t i = 0; i < n; i++) {
      const product_t *p = &PICK(g, kProducts);
      uint32_t q = 1 + below(g, 5);
      total += (long long)q * p->cents;
      if (i) raw(w, ", ");
      open_obj(w);
      kv_str(w, "product_id", p->id);
      kv_str(w, "product_name", p->name);
      if (wrong(f, 0) && i == 0) {
        kv_str(w, "quantity", "two");
      } else {
        kv_int(w, "quantity", q);
      }
      kv_money(w, "price", p->cents);
      close_obj(w);
    }
    raw(w, "]");
  }
  w->first = false;
  const address_t *a = &PICK(g, kAddresses);
  key(w, "shipping_address");
  if (wrong(f, 1)) {
    w->rc |= trb_buf_appendf(w->b, "\"%s, %s\"", a->street, a->city);
  } else {
    open_obj(w);
    kv_str(w, "street", a->street);
    kv_str(w, "city", a->city);
    kv_str(w, "country", a->country);
    close_obj(w);
  }
  w->first = false;
  kv_money(w, "total_amount", total);
  close_obj(w);
}

static void gen_inventory(jw_t *w, int64_t t, const char *etype,
                          const fault_t *f) {
  trb_gen_t *g = w->g;
  char id[48];
  open_obj(w);
  kv_str(w, "event_type", etype);
  if (!omit(f, 0)) {
    make_id(g, "inv", "inventory", 100000, id);
    kv_str(w, "inventory_id", id);
  }
  kv_str(w, "product_id", PICK(g, kProducts).id);
  kv_str(w, "warehouse_id", PICK(g, kWarehouses));
  const char *reason = PICK(g, kReasons);
  int mag = 1 + (int)below(g, 100);
  int change = strcmp(reason, "restock") == 0 || strcmp(reason, "return") == 0
                   ? mag
                   : -mag;
  if (wrong(f, 0)) {
    kv_str(w, "quantity_change", "minus five");
  } else if (wrong(f, 2)) {
    key(w, "quantity_change");
    raw(w, "2.5");
  } else {
    kv_int(w, "quantity_change", change);
  }
  kv_str(w, "reason", reason);
  if (omit(f, 1)) {
    /* no timestamp */
  } else if (wrong(f, 1)) {
    kv_str(w, "timestamp", "yesterday at noon");
  } else {
    kv_time(w, "timestamp", t, false);
  }
  close_obj(w);
}

static void gen_activity(jw_t *w, int64_t t, const char *etype,
                         const fault_t *f) {
  trb_gen_t *g = w->g;
  char id[48];
  open_obj(w);
  kv_str(w, "event_type", etype);
  if (!omit(f, 0)) {
    make_id(g, "user", "user", 20000, id);
    kv_str(w, "user_id", id);
  }
  kv_str(w, "activity_type", PICK(g, kActivities));
  char ip[32];
  if (below(g, 2)) {
    sprintf(ip, "192.168.%u.%u", below(g, 256), 1 + below(g, 254));
  } else {
    sprintf(ip, "10.%u.%u.%u", below(g, 256), below(g, 256), 1 + below(g, 254));
  }
  kv_str(w, "ip_address", ip);
  kv_str(w, "user_agent", PICK(g, kAgents));
  if (!omit(f, 1)) {
    if (wrong(f, 1)) {
      key(w, "timestamp");
      raw(w, "true");
    } else {
      kv_time(w, "timestamp", t, false);
    }
  }
  key(w, "metadata");
  if (wrong(f, 0) || wrong(f, 2)) {
    raw(w, wrong(f, 0) ? "\"web\"" : "[\"web\"]");
  } else {
    char sess[48];
    sprintf(sess, "sess-%06x", below(g, 0xFFFFFF));
    open_obj(w);
    kv_str(w, "session_id", sess);
    kv_str(w, "platform", PICK(g, kPlatforms));
    close_obj(w);
  }
  w->first = false;
  close_obj(w);
}

static void gen_issue(jw_t *w, int64_t t) {
  trb_gen_t *g = w->g;
  char id[48];
  open_obj(w);
  kv_str(w, "title", PICK(g, kIssueTitles));
  kv_str(w, "severity", PICK(g, kSeverities));
  make_id(g, "user", "user", 20000, id);
  kv_str(w, "reporter", id);
  key(w, "labels");
  uint32_t n = below(g, 3);
  raw(w, "[");
  for (uint32_t i = 0; i < n; i++) {
    w->rc |= trb_buf_appendf(w->b, "%s\"%s\"", i ? ", " : "",
                             PICK(g, kLabels));
  }
  raw(w, "]");
  w->first = false;
  if (below(g, 2)) {
    key(w, "context");
    open_obj(w);
    kv_str(w, "platform", PICK(g, kPlatforms));
    kv_int(w, "build", 1000 + below(g, 9000));
    close_obj(w);
    w->first = false;
  }
  kv_time(w, "reported_at", t, false);
  close_obj(w);
}

static void gen_raw_order(jw_t *w, int64_t t) {
  trb_gen_t *g = w->g;
  char id[48];
  open_obj(w);
  make_id(g, "ord", "order", 100000, id);
  kv_str(w, "order_id", id);
  make_id(g, "user", "user", 20000, id);
  kv_str(w, "user_id", id);
  const product_t *p = &PICK(g, kProducts);
  kv_str(w, "product_id", p->id);
  kv_money(w, "amount", (long long)p->cents * (1 + below(g, 3)));
  kv_time(w, "event_time", t, false);
  close_obj(w);
}

static const char *const kBroken[] = {
    "{ this is not valid json }",
    "{ invalid json }",
    "invalid message",
    "{'event_type': 'order', 'order_id': 'ord-1'}",
    "{\"event_type\": \"order\",\"order_id\": \"order-123\",\"items\": [...]}",
    "{\"event_type\": \"inventory\", \"inventory_id\": \"inv-1\",}",
};

int trb_gen_next(trb_gen_t *g, trb_buf_t *out, trb_gen_event_t *ev) {
  memset(ev, 0, sizeof(*ev));
  ev->seq = g->seq++;
  /* Event time: ~50 ms apart with jitter, so timestamps vary in every
   * style's precision. */
  int64_t t = g->cfg.base_time_us + (int64_t)ev->seq * 50000 +
              (int64_t)below(g, 50000);
  uint32_t r = below(g, (uint32_t)g->weight_sum);
  trb_gen_kind_t kind = TRB_GEN_ORDER;
  for (int i = 0; i < TRB_GEN_KINDS; i++) {
    if (r < g->cfg.weights[i]) {
      kind = (trb_gen_kind_t)i;
      break;
    }
    r -= g->cfg.weights[i];
  }
  ev->kind = kind;
  fault_t f = {TRB_GEN_VALID, 0};
  bool backend = kind <= TRB_GEN_USER_ACTIVITY;
  if (backend && g->cfg.malformed_fraction > 0 &&
      unit(g) < g->cfg.malformed_fraction) {
    f.defect = (trb_gen_defect_t)(1 + below(g, TRB_GEN_DEFECTS - 1));
    f.variant = (int)below(g, f.defect == TRB_GEN_WRONG_TYPE ? 3 : 2);
  }
  ev->defect = f.defect;
  static const char *const kTables[] = {
      "backend_events.order_events", "backend_events.inventory_events",
      "backend_events.user_activity_events", "tributary.issues",
      "tributary.raw_orders"};
  static const char *const kTypes[] = {"order", "inventory", "user_activity"};
  ev->table = kTables[kind];
  if (backend) {
    ev->topic = "backend-events";
    ev->path = "/events";
    ev->event_type = kTypes[kind];
  } else if (kind == TRB_GEN_ISSUE) {
    ev->topic = "issues";
    ev->path = "/";
  } else {
    ev->topic = "raw-orders";
    ev->path = "/orders";
  }
  jw_t w = {g, out, 0, true};
  size_t start = out->len;
  switch (f.defect) {
    case TRB_GEN_BROKEN_JSON: {
      ev->stage = "parse";
      ev->table = NULL;
      ev->event_type = NULL;
      if (f.variant == 0) {
        raw(&w, PICK(g, kBroken));
      } else {
        /* A valid event cut short: never valid JSON. */
        fault_t none = {TRB_GEN_VALID, 0};
        gen_order(&w, t, "order", &none);
        size_t len = out->len - start;
        out->len = start + len / 3 + below(g, (uint32_t)(len / 2));
      }
      return w.rc ? -ENOMEM : 0;
    }
    case TRB_GEN_UNKNOWN_TYPE:
      ev->stage = "route";
      ev->table = NULL;
      ev->event_type = PICK(g, kUnknownTypes);
      break;
    case TRB_GEN_WRONG_TYPE:
    case TRB_GEN_MISSING_REQUIRED:
      ev->stage = "transcode";
      break;
    default:
      break;
  }
  const char *et = ev->event_type;
  switch (kind) {
    case TRB_GEN_ORDER:
      gen_order(&w, t, et, &f);
      break;
    case TRB_GEN_INVENTORY:
      gen_inventory(&w, t, et, &f);
      break;
    case TRB_GEN_USER_ACTIVITY:
      gen_activity(&w, t, et, &f);
      break;
    case TRB_GEN_ISSUE:
      gen_issue(&w, t);
      break;
    default:
      gen_raw_order(&w, t);
      break;
  }
  return w.rc ? -ENOMEM : 0;
}
