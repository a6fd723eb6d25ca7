// Start `tributary emulator` as a child process on free ports with a fresh
// data directory, and query its tables with `tributary sql --json`.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..', '..');
export const tributaryBin =
  process.env.TRIBUTARY_BIN || path.join(repoRoot, 'bazel-bin', 'src', 'cli', 'tributary');
export const adminProto = path.join(repoRoot, 'proto', 'tributary', 'emulator', 'v1', 'admin.proto');

export const PROJECT = 'conformance';

// config: the --config document (object); tables: a --tables directory.
export async function startEmulator({ config = {}, tables = path.join(repoRoot, 'examples', 'tables') } = {}) {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'trb-conformance-'));
  const configPath = path.join(dataDir, 'emulator.json');
  writeFileSync(configPath, JSON.stringify({ project: PROJECT, ...config }));
  const args = ['emulator', '--pubsub-port', '0', '--bigquery-port', '0',
    '--data-dir', path.join(dataDir, 'data'), '--config', configPath, '--tables', tables];
  const child = spawn(tributaryBin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', d => { stderr += d; });
  const env = await new Promise((resolve, reject) => {
    let out = '';
    const found = {};
    const timer = setTimeout(() => reject(new Error(`emulator did not start in 30 s:\n${stderr}`)), 30000);
    child.stdout.on('data', d => {
      out += d;
      for (const line of out.split('\n')) {
        const m = /^([A-Z_]+)=(.+)$/.exec(line.trim());
        if (m) found[m[1]] = m[2];
      }
      if (found.PUBSUB_EMULATOR_HOST && found.BIGQUERY_STORAGE_EMULATOR_HOST) {
        clearTimeout(timer);
        resolve(found);
      }
    });
    child.on('exit', code => {
      clearTimeout(timer);
      reject(new Error(`emulator exited with ${code}:\n${stderr}`));
    });
  });
  const [bqHost, bqPort] = env.BIGQUERY_STORAGE_EMULATOR_HOST.split(':');
  return {
    pubsubHost: env.PUBSUB_EMULATOR_HOST,
    bigqueryHost: bqHost,
    bigqueryPort: Number(bqPort),
    dataDir: path.join(dataDir, 'data'),
    stderr: () => stderr,
    sql(query) {
      const out = execFileSync(tributaryBin, ['sql', '--data-dir', path.join(dataDir, 'data'), '--json', query],
        { encoding: 'utf8' });
      return out.split('\n').filter(l => l.trim() !== '').map(l => JSON.parse(l));
    },
    async stop() {
      child.removeAllListeners('exit');
      const exited = new Promise(resolve => child.on('exit', (code, signal) => resolve({ code, signal })));
      child.kill('SIGTERM');
      const { code } = await exited;
      rmSync(dataDir, { recursive: true, force: true });
      if (code !== 0) throw new Error(`emulator exited with ${code} on SIGTERM:\n${stderr}`);
    },
  };
}

// Resolve when pred() is true; reject after timeoutMs.
export async function waitFor(pred, timeoutMs = 20000, what = 'condition') {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await pred()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise(r => setTimeout(r, 20));
  }
}
