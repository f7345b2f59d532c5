// The detection benchmark: sessions of each kind against a real site with default settings,
// and for each kind the score distribution, the detection signals that fired and the share that
// passes the integration guide's check (`verificationPassed && score <= 0.5`).
//
//   node detection-bench.mjs [--sessions N] [--humans N] [--check] [--json FILE]
//
// Kinds: protocol bots (the server's `solve` command; a raw HTTP client replaying a recorded
// browser request with made-up events, solving natively), automated browsers (headless Chromium
// through Playwright as it comes; the same with the obvious flags hidden and scripted input),
// and human-like browsers (see tests/human.mjs) in several variants. Every session comes from
// its own network (a forwarding proxy in front of the server sets X-Forwarded-For), as
// visitors of a real site do. `--check` exits non-zero when a goal is missed: protocol bots
// and flag-carrying automation never pass, flag-hidden automation is refused at least 90 % of
// the time, human-like sessions pass at least 99 % of the time.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SERVER_BIN, freePort, startDemo, widgetOutcome } from './tests/harness.mjs';
import { solveTask } from './tests/pow.mjs';
import {
  HUMAN_VARIANTS, humanClick, humanType, launchAutomatedBrowser, launchHumanBrowser, startXvfb,
} from './tests/human.mjs';

const { values: options } = parseArgs({
  options: {
    sessions: { type: 'string', default: '20' },
    humans: { type: 'string' },
    check: { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});
const SESSIONS = Number(options.sessions);
const HUMANS = Number(options.humans ?? options.sessions);
const SITE_KEY = '7b3c1d2e-9f8a-4b6c-8d5e-0a1b2c3d4e5f';
const API_KEY = 'ak_detection_benchmark_0123456789';

// The server, with one site at default settings, behind a proxy that names each visitor's
// network.
const serverPort = await freePort();
const adminPort = await freePort();
const proxyPort = await freePort();
const demoPort = await freePort();
const demoOrigin = `http://127.0.0.1:${demoPort}`;
const dir = mkdtempSync(join(tmpdir(), 'tc-detection-'));
writeFileSync(join(dir, 'server.toml'), `
[server]
trusted_proxies = ["127.0.0.1/32"]
client_address_header = "x-forwarded-for"
widget_dir = "${join(import.meta.dirname, 'node_modules', '@trustcomponent', 'trustcaptcha-frontend')}"

[[sites]]
name = "bench"
site_key = "${SITE_KEY}"
api_keys = ["${API_KEY}"]
allowed_origins = ["${demoOrigin}"]
`);
const server = spawn(SERVER_BIN, [
  'serve', '--config', join(dir, 'server.toml'), '--listen', `127.0.0.1:${serverPort}`,
  '--admin-listen', `127.0.0.1:${adminPort}`,
], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, RUST_LOG: 'warn' } });
const serverUrl = `http://127.0.0.1:${serverPort}`;
await waitFor(`${serverUrl}/healthz`);

let visitor = 0;
let visitorAddress = '198.18.0.1';
/** The next session comes from a network of its own. */
function nextVisitor() {
  visitor += 1;
  visitorAddress = `198.18.${visitor >> 8}.${visitor & 255}`;
}
const proxy = http.createServer((request, response) => {
  const upstream = http.request({
    host: '127.0.0.1', port: serverPort, path: request.url, method: request.method,
    headers: { ...request.headers, 'x-forwarded-for': visitorAddress },
  }, (answer) => {
    response.writeHead(answer.statusCode, answer.headers);
    answer.pipe(response);
  });
  upstream.on('error', () => response.destroy());
  request.pipe(upstream);
}).listen(proxyPort, '127.0.0.1');
await once(proxy, 'listening');
const apiUrl = `http://127.0.0.1:${proxyPort}`;
const demo = await startDemo({ port: demoPort, apiUrl, siteKey: SITE_KEY, apiKey: API_KEY });
const xvfb = await startXvfb();

async function waitFor(url) {
  for (let attempt = 0; attempt < 200; attempt++) {
    try {
      if ((await fetch(url)).ok) return;
    } catch { /* not yet listening */ }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${url} did not answer`);
}

/** The result of a token, fetched as the site's backend does. */
async function result(token) {
  const { verificationId } = JSON.parse(Buffer.from(token, 'base64').toString());
  const response = await fetch(`${serverUrl}/v2/verifications/${verificationId}/results`, {
    headers: { authorization: `Bearer ${API_KEY}` },
  });
  if (!response.ok) throw new Error(`results answered ${response.status}`);
  return response.json();
}

/** The site's signal counts this hour (to attribute signals to each kind by difference). */
async function signalCounts() {
  const response = await fetch(`http://127.0.0.1:${adminPort}/admin/statistics?site=bench&window=hour`);
  const { counts } = await response.json();
  return Object.fromEntries(Object.entries(counts).filter(([event]) => event.startsWith('signal:')));
}

// ---- the kinds ----

/** `trustcaptcha-server solve`: native proof-of-work, no browser at all. */
async function solveCommand() {
  const child = spawn(SERVER_BIN, ['solve', '--api-url', apiUrl, '--site-key', SITE_KEY, '--origin', demoOrigin], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let token = '';
  child.stdout.on('data', (chunk) => { token += chunk; });
  const [code] = await once(child, 'exit');
  if (code !== 0) throw new Error(`solve exited with ${code}`);
  return token.trim();
}

/** A create request recorded from a person's session: body and headers. */
let recording;
async function record() {
  const human = await launchHumanBrowser(xvfb.display);
  try {
    const created = human.page.waitForRequest((request) => request.url().endsWith('/v2/verifications'));
    await human.page.goto(`${demoOrigin}/`);
    await human.page.waitForSelector('trustcaptcha-component.hydrated');
    await humanClick(human.page, '.tc-checkbox-control');
    const request = await created;
    recording = { body: request.postDataJSON(), headers: await request.allHeaders() };
    await widgetOutcome(human.page);
  } finally {
    await human.close();
  }
}

/** Events a script makes up: the pointer in equal steps along a line to the checkbox, a click. */
function madeUpEvents(start) {
  const event = (type, timeStamp, x, y) => ({
    isTrusted: true, timeStamp, type, detail: type === 'mousemove' ? 0 : 1,
    x, y, screenX: x + 10, screenY: y + 97, pageX: x, pageY: y,
  });
  const moves = Array.from({ length: 12 }, (_, i) => event('mousemove', start + 17 * i, 40 + 25 * i, 120 + 8 * i));
  return [...moves, event('mousedown', start + 260, 315, 208), event('mouseup', start + 340, 315, 208),
    event('click', start + 340, 315, 208)];
}

/** A raw HTTP client replaying the recorded request: the same page description and integrity
 * hash, the browser's User-Agent and languages, made-up events and plausible timestamps. */
async function replayingClient() {
  const headers = {
    'content-type': 'application/json', origin: demoOrigin,
    'user-agent': recording.headers['user-agent'], 'accept-language': recording.headers['accept-language'],
  };
  const now = Date.now();
  const body = {
    ...recording.body,
    widget: {
      ...recording.body.widget,
      boxCreationTimestamp: new Date(now - 2600).toISOString(),
      startSolvingTimestamp: new Date(now).toISOString(),
    },
    userEvents: madeUpEvents(900),
  };
  const created = await fetch(`${apiUrl}/v2/verifications`, { method: 'POST', headers, body: JSON.stringify(body) });
  if (created.status !== 200) throw new Error(`create answered ${created.status}`);
  const { challenge } = await created.json();
  const started = new Date();
  const tasks = challenge.tasks.map(({ number, input }) => ({ number, nonce: solveTask(input, challenge.difficulty) }));
  const submitted = await fetch(`${apiUrl}/v2/verifications/${challenge.verificationId}/challenges`, {
    method: 'POST', headers, body: JSON.stringify({
      startSolvingTimestamp: started.toISOString(),
      solvedTimestamp: new Date(Math.max(Date.now(), started.getTime() + 450)).toISOString(),
      tasks, honeypotFields: recording.body.honeypotFields, userEvents: [],
    }),
  });
  if (submitted.status !== 201) throw new Error(`submit answered ${submitted.status}`);
  return (await submitted.json()).finished.verificationToken;
}

/** Headless Chromium through Playwright; `hidden` also scripts its input (a driver's click, or
 * a move in steps and a press). */
async function automatedBrowser(hidden, session) {
  const automated = await launchAutomatedBrowser({ hidden });
  try {
    const { page } = automated;
    await page.goto(`${demoOrigin}/`);
    await page.waitForSelector('trustcaptcha-component.hydrated');
    const checkbox = page.locator('.tc-checkbox-control');
    if (hidden && session % 2 === 1) {
      const box = await checkbox.boundingBox();
      await page.mouse.move(20, 20);
      await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2, { steps: 15 });
      await page.mouse.down();
      await page.mouse.up();
    } else {
      await checkbox.click();
    }
    return await widgetOutcome(page);
  } finally {
    await automated.close();
  }
}

/** A person: alternately clicks the checkbox, or starts typing into the form (the widget
 * starts by itself on focus). */
async function humanBrowser(variant, session) {
  const human = await launchHumanBrowser(xvfb.display, HUMAN_VARIANTS[variant]);
  try {
    const { page } = human;
    await page.goto(`${demoOrigin}/`);
    await page.waitForSelector('trustcaptcha-component.hydrated');
    if (session % 2 === 0) {
      await humanClick(page, '.tc-checkbox-control');
    } else {
      await humanType(page, 'input[name=email]', 'person@example.com');
    }
    return await widgetOutcome(page);
  } finally {
    await human.close();
  }
}

const kinds = [
  { name: 'protocol: solve command', group: 'protocol', count: SESSIONS, run: solveCommand },
  { name: 'protocol: replaying HTTP client', group: 'protocol', count: SESSIONS, run: replayingClient },
  { name: 'automated: Playwright headless, flags as they come', group: 'automated', count: SESSIONS, run: (i) => automatedBrowser(false, i) },
  { name: 'automated: Playwright headless, flags hidden, scripted input', group: 'hidden', count: SESSIONS, run: (i) => automatedBrowser(true, i) },
  ...Object.keys(HUMAN_VARIANTS).map((variant) => ({
    name: `human-like: ${variant}`, group: 'human', count: Math.ceil(HUMANS / Object.keys(HUMAN_VARIANTS).length),
    run: (i) => humanBrowser(variant, i),
  })),
];

const report = [];
try {
  nextVisitor();
  await record();
  for (const kind of kinds) {
    const before = await signalCounts();
    const scores = [];
    let passed = 0;
    for (let session = 0; session < kind.count; session++) {
      nextVisitor();
      const outcome = await result(await kind.run(session));
      scores.push(outcome.score);
      if (outcome.verificationPassed && outcome.score <= 0.5) passed += 1;
    }
    // Counts reach the store in batches; reading the statistics flushes them.
    const after = await signalCounts();
    const signals = Object.entries(after)
      .map(([event, count]) => [event.slice('signal:'.length), count - (before[event] ?? 0)])
      .filter(([, count]) => count > 0)
      .map(([signal, count]) => `${signal} ${count}`)
      .join(', ');
    scores.sort((a, b) => a - b);
    const row = {
      kind: kind.name, group: kind.group, sessions: kind.count, passed,
      min: scores[0], median: scores[Math.floor(scores.length / 2)], max: scores[scores.length - 1], signals,
    };
    report.push(row);
    console.error(`${row.kind}: ${passed}/${kind.count} passed, scores ${row.min}/${row.median}/${row.max} (${signals})`);
  }
} finally {
  await demo.stop();
  await xvfb.stop();
  proxy.close();
  server.kill('SIGTERM');
  await once(server, 'exit');
}

console.log('| kind | sessions | pass the guide\'s check | score min / median / max | signals fired (sessions) |');
console.log('|---|---|---|---|---|');
for (const row of report) {
  console.log(`| ${row.kind} | ${row.sessions} | ${row.passed} (${(100 * row.passed / row.sessions).toFixed(0)} %) | ${row.min} / ${row.median} / ${row.max} | ${row.signals} |`);
}
if (options.json) writeFileSync(options.json, JSON.stringify(report, null, 2));

if (options.check) {
  const total = (group, field) => report.filter((row) => row.group === group).reduce((sum, row) => sum + row[field], 0);
  const failures = [];
  for (const group of ['protocol', 'automated']) {
    if (total(group, 'passed') > 0) failures.push(`${group} sessions passed`);
  }
  if (total('hidden', 'passed') > 0.1 * total('hidden', 'sessions')) failures.push('flag-hidden automation passed more than 10 %');
  if (total('human', 'passed') < 0.99 * total('human', 'sessions')) failures.push('human-like sessions passed less than 99 %');
  if (failures.length) {
    console.error(`detection goals missed: ${failures.join('; ')}`);
    process.exit(1);
  }
}
