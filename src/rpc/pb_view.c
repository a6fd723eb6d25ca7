/*
 * pb_view.c — zero-copy bytes fields (see pb_view.h).
 */
#include "src/rpc/pb_view.h"

#include <stdlib.h>

#include <pb_decode.h>
#include <pb_encode.h>

void trb_pb_view_list_free(trb_pb_view_list_t *l) {
  if (l == NULL) return;
  if (l->cap > 0) free(l->items);
  l->items = NULL;
  l->count = 0;
  l->cap = 0;
}

static bool is_buffer_stream(const pb_istream_t *is) {
  pb_istream_t probe = pb_istream_from_buffer(NULL, 0);
  return is->callback == probe.callback;
}

static bool decode_view(pb_istream_t *is, const pb_field_t *field) {
  trb_pb_view_t v;

  if (!is_buffer_stream(is)) PB_RETURN_ERROR(is, "view needs a buffer stream");
  v.data = (const uint8_t *)is->state;
  v.len = is->bytes_left;
  if (!pb_read(is, NULL, v.len)) return false;
  if (PB_HTYPE(field->type) == PB_HTYPE_REPEATED) {
    trb_pb_view_list_t *l = field->pData;
    if (l->count == l->cap) {
      size_t cap = l->cap ? l->cap * 2 : 16;
      trb_pb_view_t *items;
      if (l->cap == 0 && l->count > 0) {
        PB_RETURN_ERROR(is, "view list is not owned");
      }
      items = realloc(l->items, cap * sizeof(*items));
      if (items == NULL) PB_RETURN_ERROR(is, "realloc failed");
      l->items = items;
      l->cap = cap;
    }
    l->items[l->count++] = v;
  } else {
    *(trb_pb_view_t *)field->pData = v;
  }
  return true;
}

static bool encode_one(pb_ostream_t *os, const pb_field_t *field,
                       const trb_pb_view_t *v) {
  return pb_encode_tag_for_field(os, field) &&
         pb_encode_string(os, v->data, v->len);
}

static bool encode_view(pb_ostream_t *os, const pb_field_t *field) {
  if (PB_HTYPE(field->type) == PB_HTYPE_REPEATED) {
    const trb_pb_view_list_t *l = field->pData;
    for (size_t i = 0; i < l->count; i++) {
      if (!encode_one(os, field, &l->items[i])) return false;
    }
    return true;
  }
  {
    const trb_pb_view_t *v = field->pData;
    if (v->len == 0) return true; /* proto3: empty bytes are not sent */
    return encode_one(os, field, v);
  }
}

bool trb_pb_view_cb(pb_istream_t *istream, pb_ostream_t *ostream,
                    const pb_field_t *field) {
  if (istream != NULL) return decode_view(istream, field);
  if (ostream != NULL) return encode_view(ostream, field);
  return true;
}
