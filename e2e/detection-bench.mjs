// The detection benchmark: sessions of each kind against a real site with default settings,
// and for each kind the score distribution, the detection signals that fired and the share that
// passes the integration guide's check (`verificationPassed && score <= 0.5`).
//
//   node detection-bench.mjs [--sessions N] [--humans N] [--check] [--json FILE] [--only TEXT]
//
// (`--only`: just the kinds whose name holds TEXT.)
//
// Kinds: protocol bots (the server's `solve` command; raw HTTP clients replaying a recorded
// browser request, with made-up events or none, and one on Node's TLS against the TLS
// listener), automated browsers (Playwright as it comes, and with one or two tweaks: a mouse
// move, a claimed touch screen and a script's focus, a pen press), automated browsers that hide
// themselves (flags hidden and scripted input; headless with the User-Agent and client hints
// overridden and a curved path), and human-like browsers (see tests/human.mjs) in several
// variants: as installed, privacy settings, another language, a Firefox-like configuration,
// keyboard only, a touch screen, over TLS. Every session on the plain listener comes from its
// own network (a forwarding proxy in front of the server sets X-Forwarded-For), as visitors of
// a real site do; the TLS listener's sessions come straight from loopback. For each kind the
// table also gives the difficulty asked and the proof-of-work's time (create answered to
// submission sent), medians. `--check` exits non-zero when a goal is missed: protocol bots and
// stock automation (with up to two tweaks) never pass, automation that hides itself is refused
// at least 90 % of the time, human-like sessions pass at least 99 % of the time.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SERVER_BIN, freePort, makeCertificate, request, startDemo, widgetOutcome } from './tests/harness.mjs';
import { replay } from './tests/bots.mjs';
import {
  CHROME_USER_AGENT, HUMAN_VARIANTS, humanClick, humanType, keyboardType, launchAutomatedBrowser,
  launchHumanBrowser, startXvfb, touchTap,
} from './tests/human.mjs';

const { values: options } = parseArgs({
  options: {
    sessions: { type: 'string', default: '20' },
    humans: { type: 'string' },
    check: { type: 'boolean', default: false },
    json: { type: 'string' },
    only: { type: 'string' },
  },
});
const SESSIONS = Number(options.sessions);
const HUMANS = Number(options.humans ?? options.sessions);
const SITE_KEY = '7b3c1d2e-9f8a-4b6c-8d5e-0a1b2c3d4e5f';
const API_KEY = 'ak_detection_benchmark_0123456789';

// Two servers with one site at default settings: one behind a proxy that names each visitor's
// network, one serving TLS itself.
const serverPort = await freePort();
const adminPort = await freePort();
const proxyPort = await freePort();
const demoPort = await freePort();
const tlsPort = await freePort();
const tlsAdminPort = await freePort();
const tlsDemoPort = await freePort();
const demoOrigin = `http://127.0.0.1:${demoPort}`;
const tlsDemoOrigin = `http://127.0.0.1:${tlsDemoPort}`;
const { certificate, privateKey, ca } = makeCertificate();
const dir = mkdtempSync(join(tmpdir(), 'tc-detection-'));
const site = `
[[sites]]
name = "bench"
site_key = "${SITE_KEY}"
api_keys = ["${API_KEY}"]
allowed_origins = ["${demoOrigin}", "${tlsDemoOrigin}"]
`;
const widgetDir = join(import.meta.dirname, 'node_modules', '@trustcomponent', 'trustcaptcha-frontend');
writeFileSync(join(dir, 'server.toml'), `
[server]
trusted_proxies = ["127.0.0.1/32"]
client_address_header = "x-forwarded-for"
widget_dir = "${widgetDir}"
${site}`);
writeFileSync(join(dir, 'tls.toml'), `
[server]
widget_dir = "${widgetDir}"
tls = { certificate = "${certificate}", private_key = "${privateKey}" }
${site}`);
const startServer = (config, port, admin) => spawn(SERVER_BIN, [
  'serve', '--config', join(dir, config), '--listen', `127.0.0.1:${port}`,
  '--admin-listen', `127.0.0.1:${admin}`,
], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, RUST_LOG: 'warn' } });
const server = startServer('server.toml', serverPort, adminPort);
const tlsServer = startServer('tls.toml', tlsPort, tlsAdminPort);
const serverUrl = `http://127.0.0.1:${serverPort}`;
const tlsUrl = `https://127.0.0.1:${tlsPort}`;
await waitFor(`${serverUrl}/healthz`);
await waitFor(`http://127.0.0.1:${tlsAdminPort}/healthz`);

let visitor = 0;
let visitorAddress = '198.18.0.1';
/** The next session comes from a network of its own. */
function nextVisitor() {
  visitor += 1;
  visitorAddress = `198.18.${visitor >> 8}.${visitor & 255}`;
}
const proxy = http.createServer((request, response) => {
  const upstream = http.request({
    // A connection per request: a pooled one the server closed as idle would reset it.
    agent: false,
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
// Its backend cannot verify against a certificate of the test's own; results are fetched here.
const tlsDemo = await startDemo({ port: tlsDemoPort, apiUrl: tlsUrl, siteKey: SITE_KEY, apiKey: API_KEY });

/** Where a kind's sessions go: the plain listener behind the proxy, or the TLS listener. */
const PLAIN = { serverUrl, apiUrl, adminPort, demoOrigin };
const TLS = { serverUrl: tlsUrl, apiUrl: tlsUrl, adminPort: tlsAdminPort, demoOrigin: tlsDemoOrigin };

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
async function result(token, target) {
  const { verificationId } = JSON.parse(Buffer.from(token, 'base64').toString());
  const response = await request(`${target.serverUrl}/v2/verifications/${verificationId}/results`, {
    headers: { authorization: `Bearer ${API_KEY}` }, ca,
  });
  if (response.status !== 200) throw new Error(`results answered ${response.status}`);
  return response.body;
}

/** The site's signal counts this hour (to attribute signals to each kind by difference). */
async function signalCounts(target) {
  const response = await fetch(`http://127.0.0.1:${target.adminPort}/admin/statistics?site=bench&window=hour`);
  const { counts } = await response.json();
  return Object.fromEntries(Object.entries(counts).filter(([event]) => event.startsWith('signal:')));
}

/** Watches a page's widget requests: the difficulty it was asked, and how long it solved (the
 * create request answered to the submission sent). */
function watchWork(page) {
  const work = {};
  page.on('response', async (response) => {
    if (response.request().method() !== 'POST' || !response.url().endsWith('/v2/verifications')) return;
    work.created = Date.now();
    try {
      work.difficulty = (await response.json()).challenge?.difficulty;
    } catch { /* a finished answer (201) has no challenge */ }
  });
  page.on('request', (request) => {
    if (request.url().endsWith('/challenges')) work.ms = Date.now() - work.created;
  });
  return work;
}

// ---- the kinds ----

/** `trustcaptcha-server solve`: native proof-of-work, no browser at all. */
async function solveCommand() {
  const child = spawn(SERVER_BIN, ['solve', '--api-url', apiUrl, '--site-key', SITE_KEY, '--origin', demoOrigin], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let token = '';
  child.stdout.on('data', (chunk) => { token += chunk; });
  const started = Date.now();
  const [code] = await once(child, 'exit');
  if (code !== 0) throw new Error(`solve exited with ${code}`);
  return { token: token.trim(), ms: Date.now() - started };
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

/** Chromium through Playwright, as a bot author drives it: `how` says how the widget is
 * started. */
async function automatedBrowser(how, session) {
  const options = {
    'as it comes': { hidden: false },
    'headful, one mouse move': { hidden: false, display: xvfb.display },
    'touch claimed, script focus': { hidden: false, hasTouch: true },
    'flags hidden, scripted input': { hidden: true },
    'flags hidden, pen press': { hidden: true },
    'flags hidden, User-Agent and client hints overridden, curved path': { hidden: true, window: [1366, 768] },
  }[how];
  const automated = await launchAutomatedBrowser(options);
  try {
    const { page } = automated;
    const work = watchWork(page);
    if (how.includes('client hints overridden')) {
      const cdp = await page.context().newCDPSession(page);
      await cdp.send('Emulation.setUserAgentOverride', {
        userAgent: CHROME_USER_AGENT, acceptLanguage: 'en-US,en',
        userAgentMetadata: {
          brands: [{ brand: 'Chromium', version: '156' }, { brand: 'Not=A?Brand', version: '24' }],
          platform: 'Linux', platformVersion: '', architecture: 'x86', model: '', mobile: false,
        },
      });
    }
    await page.goto(`${demoOrigin}/`);
    await page.waitForSelector('trustcaptcha-component.hydrated');
    const checkbox = page.locator('.tc-checkbox-control');
    const box = await checkbox.boundingBox();
    const [x, y] = [box.x + box.width / 2, box.y + box.height / 2];
    if (how === 'headful, one mouse move') {
      await page.mouse.move(x - 40, y - 30);
      await checkbox.click();
    } else if (how === 'touch claimed, script focus') {
      await page.focus('input[name=email]');
    } else if (how === 'flags hidden, pen press') {
      const cdp = await page.context().newCDPSession(page);
      for (const type of ['mousePressed', 'mouseReleased']) {
        await cdp.send('Input.dispatchMouseEvent', { type, x, y, button: 'left', clickCount: 1, pointerType: 'pen' });
      }
    } else if (how.includes('curved path')) {
      await humanClick(page, '.tc-checkbox-control');
    } else if (how === 'flags hidden, scripted input' && session % 2 === 1) {
      await page.mouse.move(20, 20);
      await page.mouse.move(x, y, { steps: 15 });
      await page.mouse.down();
      await page.mouse.up();
    } else {
      await checkbox.click();
    }
    return { token: await widgetOutcome(page), ...work };
  } finally {
    await automated.close();
  }
}

/** A person (see tests/human.mjs) of `variant`: alternately clicks the checkbox, or starts
 * typing into the form (the widget starts by itself on focus); keyboard-only people reach the
 * form with the Tab key, touch-screen people swipe and tap. */
async function humanBrowser(variant, session, target) {
  const flags = target === TLS ? ['--ignore-certificate-errors'] : HUMAN_VARIANTS[variant] ?? [];
  // People's windows differ (one machine plays every person here; its window size is what
  // tells the device set-ups apart, as windows, bars and zoom do between people's machines).
  const size = `--window-size=${1000 + Math.floor(Math.random() * 340)},${560 + Math.floor(Math.random() * 180)}`;
  const human = await launchHumanBrowser(xvfb.display, [...flags, size]);
  try {
    const { page } = human;
    const work = watchWork(page);
    await page.goto(`${target.demoOrigin}/`);
    await page.waitForSelector('trustcaptcha-component.hydrated');
    if (variant === 'keyboard only') {
      await keyboardType(page, 'input[name=email]', 'person@example.com');
    } else if (variant === 'touch screen') {
      await touchTap(page, '.tc-checkbox-control');
    } else if (session % 2 === 0) {
      await humanClick(page, '.tc-checkbox-control');
    } else {
      await humanType(page, 'input[name=email]', 'person@example.com');
    }
    return { token: await widgetOutcome(page), ...work };
  } finally {
    await human.close();
  }
}

const AUTOMATED = ['as it comes', 'headful, one mouse move', 'touch claimed, script focus', 'flags hidden, pen press'];
const HIDDEN = ['flags hidden, scripted input', 'flags hidden, User-Agent and client hints overridden, curved path'];
const PEOPLE = [...Object.keys(HUMAN_VARIANTS), 'keyboard only', 'touch screen'];
const perPerson = Math.ceil(HUMANS / (PEOPLE.length + 1));
/** A raw HTTP client replaying the recorded request (see tests/bots.mjs). */
const replayingClient = (target, options) => replay(recording, { apiUrl: target.apiUrl, origin: target.demoOrigin, ca, ...options });

const kinds = [
  { name: 'protocol: solve command', group: 'protocol', count: SESSIONS, target: PLAIN, run: solveCommand },
  { name: 'protocol: HTTP client replaying, made-up events', group: 'protocol', count: SESSIONS, target: PLAIN, run: () => replayingClient(PLAIN, { events: 'madeUp' }) },
  { name: 'protocol: HTTP client replaying, no events', group: 'protocol', count: SESSIONS, target: PLAIN, run: () => replayingClient(PLAIN, { events: 'none', allHeaders: true }) },
  { name: 'protocol: HTTP client on Node\'s TLS replaying everything (TLS listener)', group: 'protocol', count: SESSIONS, target: TLS, run: () => replayingClient(TLS, { events: 'recorded', allHeaders: true }) },
  ...AUTOMATED.map((how) => ({ name: `automated: Playwright, ${how}`, group: 'automated', count: SESSIONS, target: PLAIN, run: (i) => automatedBrowser(how, i) })),
  ...HIDDEN.map((how) => ({ name: `automated: Playwright headless, ${how}`, group: 'hidden', count: SESSIONS, target: PLAIN, run: (i) => automatedBrowser(how, i) })),
  ...PEOPLE.map((variant) => ({ name: `human-like: ${variant}`, group: 'human', count: perPerson, target: PLAIN, run: (i) => humanBrowser(variant, i, PLAIN) })),
  { name: 'human-like: plain, TLS listener', group: 'human', count: perPerson, target: TLS, run: (i) => humanBrowser('plain', i, TLS) },
];

const median = (values) => {
  const known = values.filter((value) => value !== undefined).sort((a, b) => a - b);
  return known.length ? known[Math.floor(known.length / 2)] : '–';
};

const report = [];
try {
  nextVisitor();
  await record();
  for (const kind of kinds.filter(({ name }) => !options.only || name.includes(options.only))) {
    const before = await signalCounts(kind.target);
    const scores = [];
    const difficulties = [];
    const times = [];
    let passed = 0;
    for (let session = 0; session < kind.count; session++) {
      nextVisitor();
      const { token, difficulty, ms } = await kind.run(session);
      const outcome = await result(token, kind.target);
      scores.push(outcome.score);
      difficulties.push(difficulty);
      times.push(ms);
      if (outcome.verificationPassed && outcome.score <= 0.5) passed += 1;
    }
    // Counts reach the store in batches; reading the statistics flushes them.
    const after = await signalCounts(kind.target);
    const signals = Object.entries(after)
      .map(([event, count]) => [event.slice('signal:'.length), count - (before[event] ?? 0)])
      .filter(([, count]) => count > 0)
      .map(([signal, count]) => `${signal} ${count}`)
      .join(', ');
    scores.sort((a, b) => a - b);
    const row = {
      kind: kind.name, group: kind.group, sessions: kind.count, passed,
      min: scores[0], median: scores[Math.floor(scores.length / 2)], max: scores[scores.length - 1], signals,
      difficulty: median(difficulties), powMs: median(times),
    };
    report.push(row);
    console.error(`${row.kind}: ${passed}/${kind.count} passed, scores ${row.min}/${row.median}/${row.max}, difficulty ${row.difficulty}, ${row.powMs} ms (${signals})`);
  }
} finally {
  await demo.stop();
  await tlsDemo.stop();
  await xvfb.stop();
  proxy.close();
  for (const child of [server, tlsServer]) {
    child.kill('SIGTERM');
    await once(child, 'exit');
  }
}

console.log('| kind | sessions | pass the guide\'s check | score min / median / max | difficulty, proof-of-work ms (medians) | signals fired (sessions) |');
console.log('|---|---|---|---|---|---|');
for (const row of report) {
  console.log(`| ${row.kind} | ${row.sessions} | ${row.passed} (${(100 * row.passed / row.sessions).toFixed(0)} %) | ${row.min} / ${row.median} / ${row.max} | ${row.difficulty}, ${row.powMs} | ${row.signals} |`);
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
