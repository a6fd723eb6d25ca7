/*
 * admin.c — EmulatorAdmin handlers over the fault registry.
 */
#include "src/emulator/admin.h"

#include <string.h>

#include "src/rpc/pb.h"
#include "tributary/emulator/v1/admin.pb.h"

#define ADMIN "/tributary.emulator.v1.EmulatorAdmin/"

static void fail(trb_rpc_server_call_t *call, const trb_status_t *st) {
  trb_rpc_server_call_finish(call, st->code, st->msg, NULL, 0, NULL, 0);
}

static void inject_fault(void *user, trb_rpc_server_call_t *call,
                         const uint8_t *req, size_t len) {
  trb_faults_t *f = user;
  tributary_emulator_v1_InjectFaultRequest r =
      tributary_emulator_v1_InjectFaultRequest_init_zero;
  trb_status_t st = {0};
  grpc_status_code code = trb_pb_decode(
      tributary_emulator_v1_InjectFaultRequest_fields, req, len, &r, &st);
  if (code == GRPC_STATUS_OK && (!r.method || !*r.method)) {
    code = trb_status_set(&st, GRPC_STATUS_INVALID_ARGUMENT,
                          "method is required (a full method name or \"*\")");
  }
  if (code == GRPC_STATUS_OK && r.count != 0 &&
      (r.code <= 0 || r.code > GRPC_STATUS_UNAUTHENTICATED)) {
    code = trb_status_set(&st, GRPC_STATUS_INVALID_ARGUMENT,
                          "code %d is not a non-OK gRPC status code", r.code);
  }
  if (code == GRPC_STATUS_OK && r.count != 0) {
    code = trb_faults_add_error(f, r.method, r.count, (grpc_status_code)r.code,
                                r.message && *r.message ? r.message : NULL, &st);
  }
  if (code == GRPC_STATUS_OK && r.drop_after_write < 0) {
    code = trb_status_set(&st, GRPC_STATUS_INVALID_ARGUMENT,
                          "drop_after_write must not be negative");
  }
  if (code == GRPC_STATUS_OK && r.drop_after_write > 0) {
    code = trb_faults_add_drop_after_write(f, r.method, r.drop_after_write, &st);
  }
  if (code == GRPC_STATUS_OK && (r.latency_ms != 0 ||
                                 (r.count == 0 && r.drop_after_write == 0))) {
    code = trb_faults_set_latency(f, r.method, r.latency_ms, &st);
  }
  trb_pb_release(tributary_emulator_v1_InjectFaultRequest_fields, &r);
  if (code != GRPC_STATUS_OK) {
    fail(call, &st);
    return;
  }
  tributary_emulator_v1_InjectFaultResponse resp =
      tributary_emulator_v1_InjectFaultResponse_init_zero;
  trb_rpc_server_call_reply(call, tributary_emulator_v1_InjectFaultResponse_fields, &resp);
}

static void clear_faults(void *user, trb_rpc_server_call_t *call,
                         const uint8_t *req, size_t len) {
  tributary_emulator_v1_ClearFaultsRequest r =
      tributary_emulator_v1_ClearFaultsRequest_init_zero;
  trb_status_t st = {0};
  if (trb_pb_decode(tributary_emulator_v1_ClearFaultsRequest_fields, req, len,
                    &r, &st) != GRPC_STATUS_OK) {
    fail(call, &st);
    return;
  }
  trb_faults_clear(user);
  tributary_emulator_v1_ClearFaultsResponse resp =
      tributary_emulator_v1_ClearFaultsResponse_init_zero;
  trb_rpc_server_call_reply(call, tributary_emulator_v1_ClearFaultsResponse_fields, &resp);
}

static void drop_streams(void *user, trb_rpc_server_call_t *call,
                         const uint8_t *req, size_t len) {
  trb_faults_t *f = user;
  tributary_emulator_v1_DropStreamsRequest r =
      tributary_emulator_v1_DropStreamsRequest_init_zero;
  trb_status_t st = {0};
  grpc_status_code code = trb_pb_decode(
      tributary_emulator_v1_DropStreamsRequest_fields, req, len, &r, &st);
  if (code == GRPC_STATUS_OK &&
      (r.code < 0 || r.code > GRPC_STATUS_UNAUTHENTICATED)) {
    code = trb_status_set(&st, GRPC_STATUS_INVALID_ARGUMENT,
                          "code %d is not a gRPC status code", r.code);
  }
  if (code != GRPC_STATUS_OK) {
    trb_pb_release(tributary_emulator_v1_DropStreamsRequest_fields, &r);
    fail(call, &st);
    return;
  }
  trb_faults_drop_streams(
      f, r.code == 0 ? GRPC_STATUS_UNAVAILABLE : (grpc_status_code)r.code,
      r.message && *r.message ? r.message : NULL);
  trb_pb_release(tributary_emulator_v1_DropStreamsRequest_fields, &r);
  tributary_emulator_v1_DropStreamsResponse resp =
      tributary_emulator_v1_DropStreamsResponse_init_zero;
  resp.faults_injected = trb_faults_injected(f);
  trb_rpc_server_call_reply(call, tributary_emulator_v1_DropStreamsResponse_fields, &resp);
}

static void update_table_schema(void *user, trb_rpc_server_call_t *call,
                                const uint8_t *req, size_t len) {
  trb_faults_t *f = user;
  tributary_emulator_v1_UpdateTableSchemaRequest r =
      tributary_emulator_v1_UpdateTableSchemaRequest_init_zero;
  trb_status_t st = {0};
  grpc_status_code code = trb_pb_decode(
      tributary_emulator_v1_UpdateTableSchemaRequest_fields, req, len, &r, &st);
  if (code == GRPC_STATUS_OK && (!r.table || !*r.table || !r.schema_json)) {
    code = trb_status_set(&st, GRPC_STATUS_INVALID_ARGUMENT,
                          "table and schema_json are required");
  }
  if (code == GRPC_STATUS_OK) {
    code = trb_faults_update_table_schema(f, r.table, r.schema_json,
                                          strlen(r.schema_json), &st);
  }
  trb_pb_release(tributary_emulator_v1_UpdateTableSchemaRequest_fields, &r);
  if (code != GRPC_STATUS_OK) {
    fail(call, &st);
    return;
  }
  tributary_emulator_v1_UpdateTableSchemaResponse resp =
      tributary_emulator_v1_UpdateTableSchemaResponse_init_zero;
  trb_rpc_server_call_reply(call, tributary_emulator_v1_UpdateTableSchemaResponse_fields,
                            &resp);
}

grpc_status_code trb_emu_admin_register(trb_rpc_server_t *srv,
                                        trb_faults_t *faults, trb_status_t *st) {
  grpc_status_code code =
      trb_rpc_server_add_unary(srv, ADMIN "InjectFault", inject_fault, faults, st);
  if (code == GRPC_STATUS_OK)
    code = trb_rpc_server_add_unary(srv, ADMIN "ClearFaults", clear_faults, faults, st);
  if (code == GRPC_STATUS_OK)
    code = trb_rpc_server_add_unary(srv, ADMIN "DropStreams", drop_streams, faults, st);
  if (code == GRPC_STATUS_OK)
    code = trb_rpc_server_add_unary(srv, ADMIN "UpdateTableSchema", update_table_schema,
                                    faults, st);
  return code;
}
