// Scaled out as a team deploys it: the official widget in Chromium and the demo backend both
// reach three trustcaptcha-server instances only through Debian's HAProxy (round robin, so each
// request may land on another instance), and the instances share a Redis Cluster of three
// primaries with a replica each, acknowledging deciding writes only once a replica has them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  clickWidget, freePort, launchBrowser, newPage, onlyLoopback, request, startDemo, startServer,
  submitAndRead, widgetOutcome,
} from './harness.mjs';

const processes = [];
let browser;
let demo;
let balancer;
let haproxy;
let demoOrigin;
const instances = [];

/** Polls `check` every 50 ms until it returns something truthy, for at most `ms`. */
async function until(what, check, ms = 30_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`${what} did not happen in time`);
    await sleep(50);
  }
}

function redisCli(port, ...args) {
  try {
    return execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return '';
  }
}

/** Six cluster-enabled Redis nodes joined as three primaries with a replica each. */
async function startCluster() {
  const ports = [];
  for (let i = 0; i < 6; i += 1) {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'tc-e2e-redis-'));
    processes.push(spawn('redis-server', [
      '--bind', '127.0.0.1', '--port', String(port), '--dir', dir, '--save', '', '--appendonly', 'yes',
      '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '5000',
      '--maxmemory', '64mb', '--maxmemory-policy', 'noeviction',
    ], { stdio: 'ignore' }));
    ports.push(port);
    await until('redis answering', () => redisCli(port, 'ping').includes('PONG'));
  }
  const create = spawn('redis-cli', [
    '--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '1', '--cluster-yes',
  ], { stdio: 'ignore' });
  processes.push(create);
  const [code] = await Promise.race([once(create, 'exit'), sleep(60_000, null, { ref: false }).then(() => [null])]);
  assert.equal(code, 0, 'redis-cli --cluster create');
  await until('the cluster ready with its replicas in sync', () => ports.every((port) => {
    const info = redisCli(port, 'info', 'replication');
    return redisCli(port, 'cluster', 'info').includes('cluster_state:ok')
      && (info.includes('role:master') || info.includes('master_link_status:up'));
  }));
  return `redis+cluster://${ports.map((port) => `127.0.0.1:${port}`).join(',')}`;
}

/** HAProxy in front of the instances, health-checking their admin listeners' /readyz. */
async function startBalancer(backends) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'tc-e2e-haproxy-'));
  const config = join(dir, 'haproxy.cfg');
  writeFileSync(config, [
    'global', '  maxconn 500',
    'defaults', '  mode http', '  timeout connect 1s', '  timeout client 30s', '  timeout server 30s',
    '  retries 2', '  option redispatch 1', '  retry-on conn-failure empty-response',
    'frontend public', `  bind 127.0.0.1:${port}`, '  default_backend instances',
    'backend instances', '  balance roundrobin', '  option forwardfor',
    '  option httpchk GET /readyz', '  http-check expect status 200', '  default-server inter 200ms fall 2 rise 2',
    ...backends.map(({ port: backend, adminPort }, i) => `  server i${i} 127.0.0.1:${backend} check port ${adminPort}`),
    '',
  ].join('\n'));
  haproxy = spawn('haproxy', ['-db', '-f', config], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  await until('haproxy up, every instance in rotation', async () => {
    const checks = await Promise.all(backends.map(() => request(`${url}/healthz`).catch(() => null)));
    return checks.every((answer) => answer?.status === 200);
  });
  return url;
}

/** What an instance counted, from its own metrics. */
async function counted(adminPort, family) {
  const { body } = await request(`http://127.0.0.1:${adminPort}/metrics`);
  return String(body).split('\n')
    .filter((line) => line.startsWith(family))
    .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
}

before(async () => {
  const storeUrl = await startCluster();
  const demoPort = await freePort();
  demoOrigin = `http://127.0.0.1:${demoPort}`;
  for (let i = 0; i < 3; i += 1) {
    const port = await freePort();
    const adminPort = await freePort();
    const server = await startServer({
      port, adminPort, demoOrigin,
      extraServer: [
        'trusted_proxies = ["127.0.0.1/32"]', 'client_address_header = "x-forwarded-for"',
        '[store]', `url = "${storeUrl}"`, 'wait_for_replicas = 1', 'replica_timeout_ms = 1500',
      ].join('\n'),
    });
    instances.push({ server, port, adminPort });
  }
  balancer = await startBalancer(instances);
  demo = await startDemo({ port: demoPort, apiUrl: balancer });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await demo?.stop();
  haproxy?.kill('SIGKILL');
  for (const { server } of instances) await server.stop();
  for (const child of processes) if (child.exitCode === null) child.kill('SIGKILL');
});

test('through the balancer: the widget solves, the backend verifies once, each on any instance', async () => {
  const page = await newPage(browser);
  await page.goto(`${demoOrigin}/`);
  await clickWidget(page);
  const token = await widgetOutcome(page);
  assert.ok(token.length > 40);
  assert.ok(
    page.requests.some(({ url }) => url.startsWith(`${balancer}/widget/`)),
    'the widget came through the balancer',
  );
  assert.ok(
    page.requests.some(({ method, url }) => method === 'POST' && url.startsWith(`${balancer}/v2/verifications`)),
    'the widget talked to the balancer',
  );
  assert.ok(onlyLoopback(page));

  const shown = await submitAndRead(page);
  assert.equal(shown.outcome, 'ok');
  assert.equal(shown.result.verificationPassed, true);
  // HAProxy appended the address it saw; the instances trust it for that and nothing more.
  assert.equal(shown.result.ipAddress, '127.0.0.1');
  const again = await submitAndRead(page, '#again');
  assert.equal(again.outcome, 'VerificationResultRetrievalLimitReached');

  // Round robin spread the widget's and the backend's requests: one verification was created,
  // on one instance, and at least two instances answered requests about it.
  const created = await Promise.all(instances.map(({ adminPort }) => counted(adminPort, 'trustcaptcha_verifications_created_total')));
  assert.equal(created.reduce((a, b) => a + b, 0), 1, `created: ${created}`);
  const answered = await Promise.all(instances.map(({ adminPort }) => counted(adminPort, 'trustcaptcha_http_requests_total')));
  assert.ok(answered.filter((count) => count > 0).length >= 2, `answered: ${answered}`);
});
