/*
 * descriptor.h — the writer schema a Storage Write client sends: a
 * self-contained google.protobuf.DescriptorProto generated from a BigQuery
 * table definition (pure codec, no I/O), as the official clients' schema
 * converters do (Java BQTableSchemaToProtoDescriptor, Go adapt).
 *
 * Shape of the generated descriptor (PROTOCOL.md A.6 facts 33–34):
 *   - root message named "root"; field numbers 1..N in schema order;
 *   - proto2 labels: NULLABLE -> LABEL_OPTIONAL, REQUIRED -> LABEL_REQUIRED,
 *     REPEATED -> LABEL_REPEATED (repeated scalars are not marked packed;
 *     proto2 parsers accept both forms and trb_bq_transcode writes them
 *     unpacked);
 *   - field names are the column names lowercased (as Java does);
 *   - a RECORD column becomes TYPE_MESSAGE whose type is a nested_type of
 *     the enclosing message, named from the scope like Java:
 *     "root__<field>", "root__<field>__<subfield>", ... (lowercased); the
 *     field's type_name is that short name (resolved as a nested type);
 *   - types (fact 33): BOOL bool; BYTES bytes; DATE int32 (epoch days);
 *     DATETIME and TIME int64 (CivilTimeEncoder packed); FLOAT64 double;
 *     GEOGRAPHY, JSON, INTERVAL, STRING string; INT64 int64; NUMERIC and
 *     BIGNUMERIC bytes (little-endian two's complement unscaled value);
 *     TIMESTAMP int64 (microseconds since the epoch).
 *
 * Column names that are not proto identifiers ([A-Za-z_][A-Za-z0-9_]*)
 * get Go's placeholder "col_" + base64(name) with '+', '/' and '=' removed.
 * LIMITATION: the real clients also attach the FieldOption
 * (google.cloud.bigquery.storage.v1.column_name) = "<original name>" so the
 * server maps the placeholder back; googleapis/nanopb.options declares that
 * extension FT_IGNORE, so it cannot be emitted here and a table with such
 * (flexible) column names will not match on a real server. Tables parsed
 * by trb_bq_table_parse never have such names (it only accepts
 * identifiers), so this only concerns hand-built tables.
 *
 * RANGE columns: trb_bq_table_t has no RANGE type; a RANGE column from a
 * server TableSchema is modelled as a RECORD {start, end} by
 * trb_bq_table_from_write_schema, which yields the same descriptor.
 * Not supported: TIMESTAMP with picosecond precision (Java's string form).
 *
 * Memory: the descriptor is allocated with malloc the way nanopb's
 * pb_release frees it; release with trb_bq_descriptor_release.
 * Threading: thread-safe (no state).
 * Source: google/protobuf/descriptor.proto; PROTOCOL.md A.6 facts 33–34;
 * google/cloud/bigquery/storage/v1/protobuf.proto (ProtoSchema
 * .proto_descriptor: "self-contained", nested types only).
 */
#ifndef TRB_SRC_BIGQUERY_DESCRIPTOR_H
#define TRB_SRC_BIGQUERY_DESCRIPTOR_H

#include <stddef.h>

#include <grpc/status.h>

#include "google/protobuf/descriptor.pb.h"
#include "src/bigquery/schema.h"
#include "src/common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Name of the root message of generated descriptors. */
#define TRB_BQ_DESCRIPTOR_ROOT "root"

/**
 * Build the writer schema for `t` (borrowed) into `out` (overwritten).
 * Returns: OK; INVALID_ARGUMENT (no columns, more than 536870911 fields in
 *          one message, a RECORD without fields, an unknown type);
 *          RESOURCE_EXHAUSTED. On error `out` is released and zeroed.
 */
grpc_status_code trb_bq_descriptor_build(const trb_bq_table_t *t,
                                         google_protobuf_DescriptorProto *out,
                                         trb_status_t *st);

/**
 * The table definition a writer needs from the TableSchema the server
 * returns (GetWriteStream with view FULL, CreateWriteStream,
 * AppendRowsResponse.updated_schema), for trb_bq_descriptor_build and
 * trb_bq_transcode_row. Unlike trb_bq_table_from_proto (the emulator's
 * strict check of what it stores) it keeps any non-empty column name
 * (flexible column names; the descriptor gets a placeholder) and ignores
 * default_value_expression and description, which do not affect the
 * writer schema.
 * RANGE<T> (T = DATE, DATETIME or TIMESTAMP): trb_bq_table_t has no RANGE
 * type, so the column becomes a RECORD with NULLABLE fields "start" and
 * "end" of type T — exactly the descriptor shape of fact 33
 * (message{start=1, end=2}); its JSON value is then an object
 * {"start": ..., "end": ...}, a missing or null bound meaning unbounded.
 * Returns: OK; INVALID_ARGUMENT (no columns, an empty or duplicate name
 *          — case-insensitive, per level —, an unknown type or mode, a
 *          RANGE without a DATE/DATETIME/TIMESTAMP element type, a RECORD
 *          without fields, nesting deeper than 15 levels);
 *          RESOURCE_EXHAUSTED. On error `out` is left empty. Release with
 *          trb_bq_table_deinit.
 */
grpc_status_code trb_bq_table_from_write_schema(
    const google_cloud_bigquery_storage_v1_TableSchema *in,
    trb_bq_table_t *out, trb_status_t *st);

/** Free what a descriptor from trb_bq_descriptor_build owns and zero it.
 *  NULL-safe. */
void trb_bq_descriptor_release(google_protobuf_DescriptorProto *d);

/**
 * The proto field name used for column `name` (NUL-terminated): the name
 * lowercased when it is a proto identifier, else the "col_" placeholder.
 * Writes at most `cap` bytes (NUL included) into `out`.
 * Returns: the length the full name needs (excluding NUL); the output is
 * complete when that is < cap.
 */
size_t trb_bq_proto_field_name(const char *name, char *out, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_BIGQUERY_DESCRIPTOR_H */
