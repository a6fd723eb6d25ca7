/*
 * admin.h — tributary.emulator.v1.EmulatorAdmin (proto/tributary/emulator/
 * v1/admin.proto): the fault registry over gRPC, for tests that run the
 * emulator as a separate process.
 */
#ifndef TRB_SRC_EMULATOR_ADMIN_H
#define TRB_SRC_EMULATOR_ADMIN_H

#include <grpc/status.h>

#include "src/common/status.h"
#include "src/emulator/faults.h"
#include "src/rpc/server.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Register InjectFault, ClearFaults, DropStreams and UpdateTableSchema
 * (forwarded to the hook of trb_faults_on_schema_update: UNIMPLEMENTED
 * without one) on `srv` (before it
 * starts). `faults` borrowed; must outlive the server.
 * Returns: OK; the server's registration error.
 * Handlers answer: OK; INVALID_ARGUMENT for a malformed request, an empty
 * method, an unknown or OK status code with count != 0, negative latency.
 * Threading: owner only.
 */
grpc_status_code trb_emu_admin_register(trb_rpc_server_t *srv,
                                        trb_faults_t *faults, trb_status_t *st);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_EMULATOR_ADMIN_H */
