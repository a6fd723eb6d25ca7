/*
 * prom.c — see prom.h.
 */
#include "src/up/prom.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

void trb_prom_each(const char *text, size_t len, const char *name,
                   trb_prom_sample_cb cb, void *user) {
  size_t nl = strlen(name);
  const char *p = text, *end = text + len;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) eol = end;
    size_t ln = (size_t)(eol - p);
    if (ln > nl && p[0] != '#' && memcmp(p, name, nl) == 0 &&
        (p[nl] == '{' || p[nl] == ' ')) {
      const char *labels = "";
      size_t labels_len = 0;
      const char *v = p + nl;
      if (*v == '{') {
        /* Find the closing brace outside quoted values. */
        const char *q = v + 1;
        bool inq = false;
        while (q < eol && (inq || *q != '}')) {
          if (*q == '\\' && inq) {
            q += 2;
            continue;
          }
          if (*q == '"') inq = !inq;
          q++;
        }
        if (q >= eol) {
          p = eol + 1;
          continue;
        }
        labels = v + 1;
        labels_len = (size_t)(q - labels);
        v = q + 1;
      }
      while (v < eol && *v == ' ') v++;
      char num[64];
      size_t k = 0;
      while (v < eol && *v != ' ' && k + 1 < sizeof num) num[k++] = *v++;
      num[k] = '\0';
      if (k) {
        double d = strcmp(num, "+Inf") == 0   ? INFINITY
                   : strcmp(num, "-Inf") == 0 ? -INFINITY
                                              : strtod(num, NULL);
        cb(user, labels, labels_len, d);
      }
    }
    p = eol + 1;
  }
}

int trb_prom_label(const char *labels, size_t labels_len, const char *label,
                   char *out, size_t cap) {
  size_t ll = strlen(label);
  const char *p = labels, *end = labels + labels_len;
  while (p < end) {
    while (p < end && (*p == ',' || *p == ' ')) p++;
    const char *eq = memchr(p, '=', (size_t)(end - p));
    if (!eq || eq + 1 >= end || eq[1] != '"') return 0;
    bool match = (size_t)(eq - p) == ll && memcmp(p, label, ll) == 0;
    const char *q = eq + 2;
    size_t k = 0;
    while (q < end && *q != '"') {
      char c = *q;
      if (c == '\\' && q + 1 < end) {
        q++;
        c = *q == 'n' ? '\n' : *q;
      }
      if (match && k + 1 < cap) out[k++] = c;
      q++;
    }
    if (match) {
      if (cap) out[k] = '\0';
      return 1;
    }
    p = q + 1;
  }
  return 0;
}

typedef struct {
  const char *label, *value;
  double sum;
} sum_ctx_t;

static void sum_cb(void *user, const char *labels, size_t labels_len,
                   double v) {
  sum_ctx_t *c = user;
  if (c->label) {
    char got[256];
    if (!trb_prom_label(labels, labels_len, c->label, got, sizeof got) ||
        strcmp(got, c->value) != 0)
      return;
  }
  c->sum += v;
}

double trb_prom_sum(const char *text, size_t len, const char *name,
                    const char *label, const char *value) {
  sum_ctx_t c = {label, value, 0};
  trb_prom_each(text, len, name, sum_cb, &c);
  return c.sum;
}

static void hist_cb(void *user, const char *labels, size_t labels_len,
                    double v) {
  trb_prom_hist_t *h = user;
  char le[64];
  if (!trb_prom_label(labels, labels_len, "le", le, sizeof le)) return;
  double b = strcmp(le, "+Inf") == 0 ? INFINITY : strtod(le, NULL);
  int i = 0;
  while (i < h->n && h->le[i] < b) i++;
  if (i < h->n && h->le[i] == b) {
    h->count[i] += v;
    return;
  }
  if (h->n == TRB_PROM_MAX_BUCKETS) return;
  memmove(&h->le[i + 1], &h->le[i], (size_t)(h->n - i) * sizeof(double));
  memmove(&h->count[i + 1], &h->count[i], (size_t)(h->n - i) * sizeof(double));
  h->le[i] = b;
  h->count[i] = v;
  h->n++;
}

void trb_prom_hist_add(trb_prom_hist_t *h, const char *text, size_t len,
                       const char *name) {
  char bucket[256];
  size_t nl = strlen(name);
  if (nl + 8 > sizeof bucket) return;
  memcpy(bucket, name, nl);
  memcpy(bucket + nl, "_bucket", 8);
  trb_prom_each(text, len, bucket, hist_cb, h);
}

double trb_prom_hist_quantile(const trb_prom_hist_t *h, double q) {
  if (h->n == 0) return -1;
  double total = h->count[h->n - 1];
  if (total <= 0) return -1;
  double want = q * total;
  double prev_le = 0, prev_c = 0;
  for (int i = 0; i < h->n; i++) {
    if (h->count[i] >= want) {
      if (isinf(h->le[i])) return prev_le;
      double in = h->count[i] - prev_c;
      double frac = in > 0 ? (want - prev_c) / in : 1;
      return prev_le + (h->le[i] - prev_le) * frac;
    }
    if (!isinf(h->le[i])) prev_le = h->le[i];
    prev_c = h->count[i];
  }
  return prev_le;
}
