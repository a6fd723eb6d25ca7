// Official @google-cloud/bigquery-storage client (managedwriter JSONWriter):
// append BENCH_N ~600-byte rows to one COMMITTED stream of bench.events,
// 1000 rows per request, with offsets. Prints rows/s on the last line.
// Env: BIGQUERY_STORAGE_EMULATOR_HOST, BENCH_PROJECT, BENCH_N.
import * as grpc from '@grpc/grpc-js';
import { adapt, managedwriter } from '@google-cloud/bigquery-storage';

const n = Number(process.env.BENCH_N || 50000);
const project = process.env.BENCH_PROJECT;
const [host, port] = process.env.BIGQUERY_STORAGE_EMULATOR_HOST.split(':');
const table = `projects/${project}/datasets/bench/tables/events`;
const client = new managedwriter.WriterClient({
  projectId: project, apiEndpoint: host, port: Number(port), sslCreds: grpc.credentials.createInsecure(),
});
const connection = await client.createStreamConnection({ streamType: managedwriter.CommittedStream, destinationTable: table });
const ws = await client.getWriteStream({ streamId: connection.getStreamId(), view: 'FULL' });
const writer = new managedwriter.JSONWriter({
  connection, protoDescriptor: adapt.convertStorageSchemaToProto2Descriptor(ws.tableSchema, 'root'),
});
const payload = 'p'.repeat(519);
const batch = 1000;
const t0 = process.hrtime.bigint();
const pending = [];
for (let off = 0; off < n; off += batch) {
  const rows = [];
  for (let i = 0; i < batch; i++) {
    rows.push({ id: off + i, user_id: 'user-000123', event_type: 'order', amount: 12.5,
      event_time: 1700000000000000 + off + i, payload });
  }
  pending.push(writer.appendRows(rows, off).getResult());
  if (pending.length >= 8) {
    const r = await pending.shift();
    if (r.error) throw new Error(r.error.message);
  }
}
for (const p of pending) {
  const r = await p;
  if (r.error) throw new Error(r.error.message);
}
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
writer.close();
client.close();
console.log((n / secs).toFixed(0));
