// @google-cloud/pubsub (official Node.js client) against tributary emulator:
// publish / subscribe / ack / nack, dead-lettering, ordering keys, admin.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PubSub, v1 } from '@google-cloud/pubsub';
import * as grpc from '@grpc/grpc-js';
import { startEmulator, PROJECT } from './lib/emulator.mjs';

let emu;
let pubsub;

before(async () => {
  emu = await startEmulator({
    config: {
      topics: ['orders', 'dlq', 'ordered'],
      subscriptions: [
        { name: 'orders-sub', topic: 'orders', ackDeadlineSeconds: 10 },
        { name: 'dlq-sub', topic: 'dlq' },
      ],
    },
  });
  process.env.PUBSUB_EMULATOR_HOST = emu.pubsubHost;
  pubsub = new PubSub({ projectId: PROJECT });
});

after(async () => {
  await pubsub?.close();
  await emu?.stop();
});

// Collect `n` messages from `sub`, calling onMessage(m) for each (which
// must ack or nack); resolves with the messages in arrival order.
function receive(sub, n, onMessage, timeoutMs = 30000) {
  return new Promise((resolve, reject) => {
    const got = [];
    const timer = setTimeout(() => {
      sub.removeAllListeners('message');
      reject(new Error(`received ${got.length} of ${n} messages`));
    }, timeoutMs);
    sub.on('error', err => { clearTimeout(timer); reject(err); });
    sub.on('message', m => {
      got.push(m);
      onMessage(m, got.length);
      if (got.length === n) {
        clearTimeout(timer);
        resolve(got);
      }
    });
  });
}

test('admin: topics and subscriptions declared by --config are listed; create/get/delete work', async () => {
  const [topics] = await pubsub.getTopics();
  const names = topics.map(t => t.name).sort();
  assert.deepEqual(names, [`projects/${PROJECT}/topics/dlq`, `projects/${PROJECT}/topics/ordered`,
    `projects/${PROJECT}/topics/orders`]);
  const [t] = await pubsub.createTopic('scratch');
  assert.equal(t.name, `projects/${PROJECT}/topics/scratch`);
  await assert.rejects(pubsub.createTopic('scratch'), e => e.code === 6 /* ALREADY_EXISTS */);
  const [s] = await t.createSubscription('scratch-sub', { ackDeadlineSeconds: 42 });
  const [meta] = await s.getMetadata();
  assert.equal(meta.ackDeadlineSeconds, 42);
  await s.delete();
  await t.delete();
  await assert.rejects(pubsub.topic('scratch').getMetadata(), e => e.code === 5 /* NOT_FOUND */);
});

test('publish, subscribe with StreamingPull, ack: every message exactly once', async () => {
  const topic = pubsub.topic('orders', { batching: { maxMessages: 50, maxMilliseconds: 5 } });
  const n = 200;
  const ids = await Promise.all(Array.from({ length: n }, (_, i) =>
    topic.publishMessage({ data: Buffer.from(JSON.stringify({ order_id: i })), attributes: { i: String(i) } })));
  assert.equal(new Set(ids).size, n);
  const sub = pubsub.subscription('orders-sub');
  const got = await receive(sub, n, m => m.ack());
  await sub.close();
  const seen = new Set(got.map(m => JSON.parse(m.data.toString()).order_id));
  assert.equal(seen.size, n);
  for (const m of got) assert.equal(m.attributes.i, String(JSON.parse(m.data).order_id));
  // Nothing is redelivered: a synchronous Pull finds the subscription empty.
  const [host, port] = emu.pubsubHost.split(':');
  const client = new v1.SubscriberClient({ servicePath: host, port: Number(port), sslCreds: grpc.credentials.createInsecure() });
  const [resp] = await client.pull({ subscription: `projects/${PROJECT}/subscriptions/orders-sub`,
    maxMessages: 100, returnImmediately: true });
  assert.equal(resp.receivedMessages.length, 0);
  await client.close();
});

test('nack redelivers the message; the redelivery is acked', async () => {
  const topic = pubsub.topic('orders');
  await topic.publishMessage({ data: Buffer.from('nack-me') });
  const sub = pubsub.subscription('orders-sub');
  const got = await receive(sub, 2, (m, i) => (i === 1 ? m.nack() : m.ack()));
  await sub.close();
  assert.equal(got[0].id, got[1].id);
  assert.equal(got[1].data.toString(), 'nack-me');
});

test('dead-lettering: after maxDeliveryAttempts nacks the message is on the dead-letter topic with its source attributes', async () => {
  const [sub] = await pubsub.topic('orders').createSubscription('orders-dl', {
    deadLetterPolicy: { deadLetterTopic: `projects/${PROJECT}/topics/dlq`, maxDeliveryAttempts: 5 },
  });
  await pubsub.topic('orders').publishMessage({ data: Buffer.from('poison'), attributes: { kind: 'bad' } });
  const attempts = await receive(sub, 5, m => m.nack());
  await sub.close();
  assert.deepEqual(attempts.map(m => m.deliveryAttempt), [1, 2, 3, 4, 5]);
  const dlq = pubsub.subscription('dlq-sub');
  const [dead] = await receive(dlq, 1, m => m.ack());
  await dlq.close();
  assert.equal(dead.data.toString(), 'poison');
  assert.equal(dead.attributes.kind, 'bad');
  assert.equal(dead.attributes.CloudPubSubDeadLetterSourceDeliveryCount, '5');
  assert.equal(dead.attributes.CloudPubSubDeadLetterSourceSubscription, 'orders-dl');
  assert.equal(dead.attributes.CloudPubSubDeadLetterSourceSubscriptionProject, PROJECT);
  assert.ok(dead.attributes.CloudPubSubDeadLetterSourceTopicPublishTime);
  await sub.delete();
});

test('ordering keys: messages of one key arrive in publish order', async () => {
  const [sub] = await pubsub.topic('ordered').createSubscription('ordered-sub', { enableMessageOrdering: true });
  const topic = pubsub.topic('ordered', { messageOrdering: true, batching: { maxMessages: 10 } });
  const keys = ['a', 'b', 'c'];
  const per = 50;
  const pubs = [];
  for (let i = 0; i < per; i++) {
    for (const k of keys) pubs.push(topic.publishMessage({ data: Buffer.from(`${k}:${i}`), orderingKey: k }));
  }
  await Promise.all(pubs);
  const got = await receive(sub, per * keys.length, m => m.ack());
  await sub.close();
  for (const k of keys) {
    const seq = got.filter(m => m.orderingKey === k).map(m => Number(m.data.toString().split(':')[1]));
    assert.deepEqual(seq, Array.from({ length: per }, (_, i) => i), `key ${k}`);
  }
});

test('publish validation: an empty message is rejected with INVALID_ARGUMENT', async () => {
  const topic = pubsub.topic('orders');
  await assert.rejects(topic.publishMessage({ data: Buffer.alloc(0) }),
    e => e.code === 3 || /data|attributes|empty/i.test(String(e.message)));
});

test('exactly-once delivery: ackWithResponse reports SUCCESS', async () => {
  const [sub] = await pubsub.topic('orders').createSubscription('orders-eod', { enableExactlyOnceDelivery: true });
  await pubsub.topic('orders').publishMessage({ data: Buffer.from('once') });
  const done = new Promise((resolve, reject) => {
    sub.on('error', reject);
    sub.on('message', async m => {
      try {
        const r = await m.ackWithResponse();
        resolve({ m, r });
      } catch (e) { reject(e); }
    });
  });
  const { m, r } = await done;
  assert.equal(m.data.toString(), 'once');
  assert.equal(r, 'SUCCESS');
  await sub.close();
  await sub.delete();
});

test('fault injection over EmulatorAdmin: an injected UNAVAILABLE on Publish is retried by the client', async () => {
  const protoLoader = await import('@grpc/proto-loader');
  const grpc = await import('@grpc/grpc-js');
  const { adminProto } = await import('./lib/emulator.mjs');
  const def = protoLoader.loadSync(adminProto, { keepCase: true });
  const Admin = grpc.loadPackageDefinition(def).tributary.emulator.v1.EmulatorAdmin;
  const admin = new Admin(emu.pubsubHost, grpc.credentials.createInsecure());
  const call = (method, req) => new Promise((resolve, reject) =>
    admin[method](req, (err, res) => (err ? reject(err) : resolve(res))));
  const [sub] = await pubsub.topic('orders').createSubscription('orders-faults');
  await call('InjectFault', { method: '/google.pubsub.v1.Publisher/Publish', count: 2, code: 14, message: 'injected' });
  const id = await pubsub.topic('orders').publishMessage({ data: Buffer.from('after-faults') });
  assert.ok(id);
  const res = await call('DropStreams', {});
  assert.equal(Number(res.faults_injected), 2);
  await call('ClearFaults', {});
  admin.close();
  const [got] = await receive(sub, 1, m => m.ack());
  await sub.close();
  await sub.delete();
  assert.equal(got.data.toString(), 'after-faults');
});
