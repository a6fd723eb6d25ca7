// Official @google-cloud/pubsub client: publish BENCH_N 600-byte messages
// and receive + ack them all with the streaming subscriber. Prints the
// end-to-end rate (messages/s) on the last line. Env: PUBSUB_EMULATOR_HOST,
// BENCH_PROJECT, BENCH_N. Topic "bench" / subscription "bench-sub" exist.
import { PubSub } from '@google-cloud/pubsub';

const n = Number(process.env.BENCH_N || 50000);
const pubsub = new PubSub({ projectId: process.env.BENCH_PROJECT });
const topic = pubsub.topic('bench', { batching: { maxMessages: 1000, maxMilliseconds: 10, maxBytes: 9 * 1024 * 1024 } });
const sub = pubsub.subscription('bench-sub', { flowControl: { maxMessages: 20000, allowExcessMessages: false } });
const data = Buffer.alloc(600, 'x');

const t0 = process.hrtime.bigint();
let acked = 0;
const done = new Promise((resolve, reject) => {
  sub.on('error', reject);
  sub.on('message', m => {
    m.ack();
    if (++acked === n) resolve();
  });
});
const window = 20000;
for (let sent = 0; sent < n;) {
  const batch = [];
  for (let i = 0; i < window && sent < n; i++, sent++) batch.push(topic.publishMessage({ data }));
  await Promise.all(batch);
}
await done;
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
await sub.close();
await pubsub.close();
console.log((n / secs).toFixed(0));
