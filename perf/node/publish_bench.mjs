// Official @google-cloud/pubsub Publisher: publish BENCH_N 600-byte messages
// to topic "bench" (batching 1000 messages / 10 ms / 9 MiB, at most 20000
// unresolved publishes) and wait for every message id. Prints
// "<messages/s> <client CPU seconds>" on its last line, both over the
// publish phase only. Env: PUBSUB_EMULATOR_HOST, BENCH_PROJECT, BENCH_N.
import { PubSub } from '@google-cloud/pubsub';

const n = Number(process.env.BENCH_N || 50000);
const pubsub = new PubSub({ projectId: process.env.BENCH_PROJECT });
const topic = pubsub.topic('bench', {
  batching: { maxMessages: 1000, maxMilliseconds: 10, maxBytes: 9 * 1024 * 1024 },
});
const data = Buffer.alloc(600, 'x');
await topic.publishMessage({ data }); // connect first, outside the clock

const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
const window = 20000;
for (let sent = 0; sent < n;) {
  const batch = [];
  for (let i = 0; i < window && sent < n; i++, sent++) batch.push(topic.publishMessage({ data }));
  await Promise.all(batch);
}
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
const cpu = process.cpuUsage(cpu0);
await pubsub.close();
console.log(`${(n / secs).toFixed(0)} ${((cpu.user + cpu.system) / 1e6).toFixed(3)}`);
