// Reference streaming pipeline on Google's official Node.js clients — the
// Node side of perf/stream_bench.c: @google-cloud/pubsub streaming
// subscriber on BENCH_SUB → JSON.parse → route by event_type → one
// @google-cloud/bigquery-storage JSONWriter per table on a COMMITTED write
// stream of BENCH_DATASET.{order,inventory,user_activity}_events with
// explicit offsets → message.ack() after the append's result resolved.
//
// Same settings as the streamer: a table's batch is sent when it holds
// BENCH_BATCH_ROWS rows or BENCH_BATCH_MS after its first row; flow control
// BENCH_FLOW outstanding messages over BENCH_STREAMS StreamingPull streams
// (the streamer's max_outstanding_messages × workers). Rows carry what the
// streamer's write_metadata adds: subscription_name, message_id,
// publish_time, attributes (JSON text). TIMESTAMP fields (order_date,
// timestamp, publish_time) are passed as Date objects, as JSONWriter needs.
// Appends are pipelined on each table's connection (not one in flight).
//
// Prints "<events/s> <CPU seconds>" on its last line, both from opening the
// subscription until every message was acked and close() flushed the acks
// (process.cpuUsage: every thread of this process; start-up, module loading
// and CreateWriteStream are outside the clock).
// Env: PUBSUB_EMULATOR_HOST, BIGQUERY_STORAGE_EMULATOR_HOST, BENCH_PROJECT,
//      BENCH_SUB, BENCH_DATASET, BENCH_N, BENCH_BATCH_ROWS, BENCH_BATCH_MS,
//      BENCH_FLOW, BENCH_STREAMS.
import * as grpc from '@grpc/grpc-js';
import { PubSub } from '@google-cloud/pubsub';
import { adapt, managedwriter } from '@google-cloud/bigquery-storage';

const env = process.env;
const project = env.BENCH_PROJECT;
const n = Number(env.BENCH_N);
const batchRows = Number(env.BENCH_BATCH_ROWS || 500);
const batchMs = Number(env.BENCH_BATCH_MS || 50);
const flow = Number(env.BENCH_FLOW || 4000);
const streams = Number(env.BENCH_STREAMS || 2);
const subName = `projects/${project}/subscriptions/${env.BENCH_SUB}`;
const [host, port] = env.BIGQUERY_STORAGE_EMULATOR_HOST.split(':');

const client = new managedwriter.WriterClient({
  projectId: project, apiEndpoint: host, port: Number(port), sslCreds: grpc.credentials.createInsecure(),
});

const ROUTES = { order: 'order_events', inventory: 'inventory_events', user_activity: 'user_activity_events' };
const TIME_FIELDS = ['order_date', 'timestamp'];

async function openSink(table) {
  const dest = `projects/${project}/datasets/${env.BENCH_DATASET}/tables/${table}`;
  const connection = await client.createStreamConnection({
    streamType: managedwriter.CommittedStream, destinationTable: dest,
  });
  const ws = await client.getWriteStream({ streamId: connection.getStreamId(), view: 'FULL' });
  const writer = new managedwriter.JSONWriter({
    connection, protoDescriptor: adapt.convertStorageSchemaToProto2Descriptor(ws.tableSchema, 'root'),
  });
  return { table, writer, offset: 0, rows: [], msgs: [], timer: null };
}

const sinks = {};
for (const [type, table] of Object.entries(ROUTES)) sinks[type] = await openSink(table);

const pubsub = new PubSub({ projectId: project });
const sub = pubsub.subscription(env.BENCH_SUB, {
  flowControl: { maxMessages: flow, allowExcessMessages: false },
  streamingOptions: { maxStreams: streams },
});
await sub.getMetadata(); // connect (channel) before the clock

let acked = 0;
let failure = null;
let done;
const finished = new Promise((resolve, reject) => { done = resolve; failure = reject; });

function flush(sink) {
  if (sink.timer) { clearTimeout(sink.timer); sink.timer = null; }
  if (sink.rows.length === 0) return;
  const rows = sink.rows, msgs = sink.msgs, offset = sink.offset;
  sink.rows = []; sink.msgs = []; sink.offset += rows.length;
  sink.writer.appendRows(rows, offset).getResult().then(r => {
    if (r.error) throw new Error(`${sink.table} append at ${offset}: ${r.error.code} ${r.error.message}`);
    if (r.rowErrors && r.rowErrors.length) throw new Error(`${sink.table} row error: ${r.rowErrors[0].message}`);
    for (const m of msgs) m.ack();
    acked += msgs.length;
    if (acked >= n) done();
  }).catch(failure);
}

const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
sub.on('error', e => failure(e));
sub.on('message', m => {
  let row;
  try { row = JSON.parse(m.data.toString('utf8')); } catch { m.nack(); return; }
  const sink = row && sinks[row.event_type];
  if (!sink) { m.nack(); return; }
  for (const f of TIME_FIELDS) if (typeof row[f] === 'string') row[f] = new Date(row[f]);
  row.subscription_name = subName;
  row.message_id = m.id;
  row.publish_time = m.publishTime; // PreciseDate (a Date)
  row.attributes = JSON.stringify(m.attributes || {});
  sink.rows.push(row);
  sink.msgs.push(m);
  if (sink.rows.length >= batchRows) flush(sink);
  else if (!sink.timer) sink.timer = setTimeout(() => flush(sink), batchMs);
});
await finished;
await sub.close(); // flushes the pending acks
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
const cpu = process.cpuUsage(cpu0);
for (const s of Object.values(sinks)) s.writer.close();
client.close();
await pubsub.close();
console.log(`${(n / secs).toFixed(0)} ${((cpu.user + cpu.system) / 1e6).toFixed(3)}`);
process.exit(0);
