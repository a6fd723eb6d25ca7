// Official @google-cloud/bigquery-storage JSONWriter (managedwriter): append
// BENCH_N JSON rows to one COMMITTED stream of BENCH_TABLE with explicit
// offsets, BENCH_BATCH rows per append, at most BENCH_INFLIGHT appends
// unacknowledged — the Node side of perf/append_bench.c.
//
// Rows: BENCH_BASE holds one JSON array [head, tail] per corpus order event;
// row i is head + "#n" + i + tail of event i % k (a distinct order_id), built
// as JSON text before the clock. Inside the clock, per row: JSON.parse and
// order_date -> Date (JSONWriter encodes TIMESTAMP from Date objects; a
// string would not be converted), then JSONWriter.appendRows(rows, offset).
// Prints "<rows/s> <client CPU seconds>" on its last line, both over the
// clock only (process.cpuUsage: all of this process's threads).
// Env: BIGQUERY_STORAGE_EMULATOR_HOST, BENCH_TABLE, BENCH_BASE, BENCH_N,
//      BENCH_BATCH, BENCH_INFLIGHT.
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { adapt, managedwriter } from '@google-cloud/bigquery-storage';

const n = Number(process.env.BENCH_N || 100000);
const batch = Number(process.env.BENCH_BATCH || 1000);
const inflight = Number(process.env.BENCH_INFLIGHT || 8);
const table = process.env.BENCH_TABLE;
const project = table.split('/')[1];
const [host, port] = process.env.BIGQUERY_STORAGE_EMULATOR_HOST.split(':');

const base = readFileSync(process.env.BENCH_BASE, 'utf8').split('\n').filter(l => l).map(l => JSON.parse(l));
const texts = new Array(n);
for (let i = 0; i < n; i++) {
  const [head, tail] = base[i % base.length];
  texts[i] = head + '#n' + i + tail;
}

const client = new managedwriter.WriterClient({
  projectId: project, apiEndpoint: host, port: Number(port), sslCreds: grpc.credentials.createInsecure(),
});
const connection = await client.createStreamConnection({
  streamType: managedwriter.CommittedStream, destinationTable: table,
});
const ws = await client.getWriteStream({ streamId: connection.getStreamId(), view: 'FULL' });
const writer = new managedwriter.JSONWriter({
  connection, protoDescriptor: adapt.convertStorageSchemaToProto2Descriptor(ws.tableSchema, 'root'),
});

function check(r, off) {
  if (r.error) throw new Error(`append at ${off}: ${r.error.code} ${r.error.message}`);
  if (r.rowErrors && r.rowErrors.length) throw new Error(`append at ${off}: row error ${r.rowErrors[0].message}`);
}

const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
const pending = [];
for (let off = 0; off < n; off += batch) {
  const end = Math.min(n, off + batch);
  const rows = new Array(end - off);
  for (let i = off; i < end; i++) {
    const row = JSON.parse(texts[i]);
    if (row.order_date !== undefined && row.order_date !== null) row.order_date = new Date(row.order_date);
    rows[i - off] = row;
  }
  pending.push([off, writer.appendRows(rows, off).getResult()]);
  if (pending.length >= inflight) {
    const [o, p] = pending.shift();
    check(await p, o);
  }
}
for (const [o, p] of pending) check(await p, o);
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
const cpu = process.cpuUsage(cpu0);
writer.close();
client.close();
console.log(`${(n / secs).toFixed(0)} ${((cpu.user + cpu.system) / 1e6).toFixed(3)}`);
