// Official @google-cloud/pubsub streaming subscriber: receive + ack BENCH_N
// messages already published to subscription "bench-sub" (flowControl
// maxMessages BENCH_FLOW, default 1000; ack each message in the callback).
// Prints "<messages/s> <client CPU seconds>" on its last line, both over the
// receive phase only (from open() until the last ack was sent by close();
// the channel is connected by a GetSubscription call before the clock).
// Env: PUBSUB_EMULATOR_HOST, BENCH_PROJECT, BENCH_N, BENCH_FLOW.
import { PubSub } from '@google-cloud/pubsub';

const n = Number(process.env.BENCH_N || 50000);
const flow = Number(process.env.BENCH_FLOW || 1000);
const pubsub = new PubSub({ projectId: process.env.BENCH_PROJECT });
const sub = pubsub.subscription('bench-sub', {
  flowControl: { maxMessages: flow, allowExcessMessages: false },
  streamingOptions: { maxStreams: 1 },
});

await sub.getMetadata(); // connect (channel, auth) first, outside the clock

const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
let acked = 0;
await new Promise((resolve, reject) => {
  sub.on('error', reject);
  sub.on('message', m => {
    m.ack();
    if (++acked === n) resolve();
  });
});
await sub.close(); // flushes the pending acks
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
const cpu = process.cpuUsage(cpu0);
await pubsub.close();
console.log(`${(n / secs).toFixed(0)} ${((cpu.user + cpu.system) / 1e6).toFixed(3)}`);
