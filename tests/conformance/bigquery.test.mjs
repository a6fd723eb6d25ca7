// @google-cloud/bigquery-storage (official Node.js client, managedwriter)
// against tributary emulator: JSONWriter on _default and on a COMMITTED
// stream with offsets; results checked with `tributary sql`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { adapt, managedwriter } from '@google-cloud/bigquery-storage';
import { startEmulator, PROJECT } from './lib/emulator.mjs';

const { WriterClient, JSONWriter } = managedwriter;

// A table in the `bq mk --schema` JSON format, written to a fresh --tables dir.
const SCHEMA = [
  { name: 'id', type: 'INTEGER', mode: 'REQUIRED' },
  { name: 'name', type: 'STRING' },
  { name: 'amount', type: 'NUMERIC' },
  { name: 'ok', type: 'BOOLEAN' },
  { name: 'event_time', type: 'TIMESTAMP' },
  { name: 'day', type: 'DATE' },
  { name: 'tags', type: 'STRING', mode: 'REPEATED' },
  { name: 'address', type: 'RECORD', fields: [
    { name: 'city', type: 'STRING' }, { name: 'zip', type: 'STRING' }] },
];
const TABLE = `projects/${PROJECT}/datasets/conf/tables/rows`;
// Column defaults (defaultValueExpression) for missing-value interpretation.
const DEFAULTS_SCHEMA = [
  { name: 'id', type: 'INTEGER', mode: 'REQUIRED' },
  { name: 'uid', type: 'STRING', mode: 'REQUIRED', defaultValueExpression: 'GENERATE_UUID()' },
  { name: 'status', type: 'STRING', defaultValueExpression: "'new'" },
  { name: 'qty', type: 'INTEGER', defaultValueExpression: '1' },
  { name: 'created', type: 'TIMESTAMP', defaultValueExpression: 'CURRENT_TIMESTAMP()' },
  { name: 'note', type: 'STRING', defaultValueExpression: "'n/a'" },
];
const DEFAULTS_TABLE = `projects/${PROJECT}/datasets/conf/tables/defaults`;

let emu, client, tablesDir;

before(async () => {
  tablesDir = mkdtempSync(path.join(tmpdir(), 'trb-conf-tables-'));
  writeFileSync(path.join(tablesDir, 'conf.rows.json'), JSON.stringify(SCHEMA));
  writeFileSync(path.join(tablesDir, 'conf.defaults.json'), JSON.stringify(DEFAULTS_SCHEMA));
  emu = await startEmulator({ tables: tablesDir });
  client = new WriterClient({
    projectId: PROJECT,
    apiEndpoint: emu.bigqueryHost,
    port: emu.bigqueryPort,
    sslCreds: grpc.credentials.createInsecure(),
  });
});

after(async () => {
  client?.close();
  await emu?.stop();
  rmSync(tablesDir, { recursive: true, force: true });
});

async function descriptorFor(streamId) {
  const ws = await client.getWriteStream({ streamId, view: 'FULL' });
  assert.ok(ws.tableSchema, 'GetWriteStream(FULL) returns the table schema');
  return adapt.convertStorageSchemaToProto2Descriptor(ws.tableSchema, 'root');
}

const micros = iso => BigInt(Date.parse(iso)) * 1000n;

test('JSONWriter on the _default stream: rows visible at ack, values stored readably', async () => {
  const streamId = `${TABLE}/streams/_default`;
  const connection = await client.createStreamConnection({ streamId });
  const writer = new JSONWriter({ connection, protoDescriptor: await descriptorFor(streamId) });
  const pw = writer.appendRows([
    { id: 1, name: 'a', amount: '12.50', ok: true, event_time: new Date('2024-03-01T10:00:00.123Z'),
      day: 19783, tags: ['x', 'y'], address: { city: 'Paris', zip: '75001' } },
    { id: 2, name: 'b', amount: '-0.000000001', ok: false, event_time: new Date('1999-12-31T23:59:59Z') },
  ]);
  const res = await pw.getResult();
  assert.ok(!res.error, res.error?.message);
  assert.equal(res.appendResult?.offset ?? null, null, '_default appends carry no offset');
  writer.close();
  const rows = emu.sql('SELECT * FROM conf.rows ORDER BY id');
  assert.equal(rows.length, 2);
  assert.equal(rows[0].name, 'a');
  assert.equal(rows[0].amount, '12.5');
  assert.equal(rows[0].event_time, '2024-03-01T10:00:00.123000Z');
  assert.equal(rows[0].day, '2024-03-01');
  assert.deepEqual(JSON.parse(rows[0].tags), ['x', 'y']);
  assert.deepEqual(JSON.parse(rows[0].address), { city: 'Paris', zip: '75001' });
  assert.equal(rows[1].amount, '-0.000000001');
  assert.equal(rows[1].event_time, '1999-12-31T23:59:59.000000Z');
  assert.equal(rows[1].tags === null || rows[1].tags === '[]', true);
});

test('COMMITTED stream with offsets: start offsets, ALREADY_EXISTS on a resend, OUT_OF_RANGE on a gap', async () => {
  const connection = await client.createStreamConnection({ streamType: managedwriter.CommittedStream, destinationTable: TABLE });
  const streamId = connection.getStreamId();
  assert.match(streamId, new RegExp(`^${TABLE}/streams/.+`));
  const writer = new JSONWriter({ connection, protoDescriptor: await descriptorFor(streamId) });
  const r1 = await writer.appendRows([{ id: 10 }], 0).getResult();
  assert.equal(Number(r1.appendResult.offset.value), 0);
  const r2 = await writer.appendRows([{ id: 11 }, { id: 12 }], 1).getResult();
  assert.equal(Number(r2.appendResult.offset.value), 1);
  const r3 = await writer.appendRows([{ id: 13 }], 3).getResult();
  assert.equal(Number(r3.appendResult.offset.value), 3);

  // The same rows again at offset 1: already in the table, nothing written.
  const dup = await writer.appendRows([{ id: 11 }, { id: 12 }], 1).getResult();
  assert.equal(dup.error?.code, grpc.status.ALREADY_EXISTS);
  assert.match(dup.error.message, /expected offset 4, received 1/);
  // A gap: offset 10 while the stream ends at 4.
  const gap = await writer.appendRows([{ id: 99 }], 10).getResult();
  assert.equal(gap.error?.code, grpc.status.OUT_OF_RANGE);
  assert.match(gap.error.message, /expected offset 4, received 10/);
  // The connection is still usable after in-stream errors.
  const r4 = await writer.appendRows([{ id: 14 }], 4).getResult();
  assert.equal(Number(r4.appendResult.offset.value), 4);

  const fin = await connection.finalize();
  assert.equal(Number(fin.rowCount), 5);
  writer.close();
  const ids = emu.sql('SELECT id FROM conf.rows WHERE id >= 10 ORDER BY id').map(r => Number(r.id));
  assert.deepEqual(ids, [10, 11, 12, 13, 14]);
});

test('a row missing a REQUIRED field is a row error and nothing from the request is written', async () => {
  const streamId = `${TABLE}/streams/_default`;
  const connection = await client.createStreamConnection({ streamId });
  const writer = new JSONWriter({ connection, protoDescriptor: await descriptorFor(streamId) });
  const res = await writer.appendRows([{ id: 50, name: 'fine' }, { name: 'no id' }]).getResult();
  writer.close();
  assert.equal(res.error?.code, grpc.status.INVALID_ARGUMENT);
  assert.equal(res.rowErrors.length, 1);
  assert.equal(Number(res.rowErrors[0].index), 1);
  assert.deepEqual(emu.sql('SELECT id FROM conf.rows WHERE id = 50'), []);
});

test('JSONWriter with DEFAULT_VALUE: missing columns take their defaultValueExpression, per-column NULL_VALUE wins', async () => {
  const streamId = `${DEFAULTS_TABLE}/streams/_default`;
  const ws = await client.getWriteStream({ streamId, view: 'FULL' });
  const byName = Object.fromEntries(ws.tableSchema.fields.map(f => [f.name, f]));
  assert.equal(byName.uid.defaultValueExpression, 'GENERATE_UUID()');
  assert.equal(byName.status.defaultValueExpression, "'new'");
  const connection = await client.createStreamConnection({ streamId });
  // The client makes a REQUIRED column with a default optional in the
  // descriptor, so rows may omit `uid`.
  const writer = new JSONWriter({
    connection,
    protoDescriptor: adapt.convertStorageSchemaToProto2Descriptor(ws.tableSchema, 'root'),
  });
  writer.setDefaultMissingValueInterpretation('DEFAULT_VALUE');
  writer.setMissingValueInterpretations({ note: 'NULL_VALUE' });
  const before = Date.now();
  const res = await writer.appendRows([{ id: 1 }, { id: 2, status: 'done', qty: 5 }]).getResult();
  assert.ok(!res.error, res.error?.message);
  writer.close();
  const rows = emu.sql('SELECT * FROM conf.defaults ORDER BY id');
  assert.equal(rows.length, 2);
  assert.equal(rows[0].status, 'new');
  assert.equal(Number(rows[0].qty), 1);
  assert.equal(rows[0].note, null);
  assert.equal(rows[1].status, 'done');
  assert.equal(Number(rows[1].qty), 5);
  for (const r of rows) {
    assert.match(r.uid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const t = Date.parse(r.created);
    assert.ok(t >= before - 1000 && t <= Date.now() + 1000, `created ${r.created} is the append time`);
  }
  assert.notEqual(rows[0].uid, rows[1].uid);
});
