// The TLS listener: the server speaks HTTPS itself (a certificate `openssl` makes for the
// test), the official widget solves over it in a person's Chromium and passes, and an HTTP bot
// on Node's TLS library (OpenSSL) that replays that person's request under Chromium's
// User-Agent is refused: its ClientHello is not Chromium's, whatever its headers say.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import https from 'node:https';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { API_KEY, SITE_KEY, freePort, onlyLoopback, startDemo, startServer, widgetOutcome } from './harness.mjs';
import { humanClick, launchHumanBrowser, startXvfb } from './human.mjs';
import { solveTask } from './pow.mjs';

let server;
let demo;
let xvfb;
let human;
let ca;
let adminUrl;
let demoOrigin;
/** The person's create request, for the bot to replay. */
let recording;

before(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tc-tls-'));
  const [certificate, privateKey] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
    '-keyout', privateKey, '-out', certificate,
  ], { stdio: 'ignore' });
  ca = readFileSync(certificate);
  const [serverPort, adminPort, demoPort] = [await freePort(), await freePort(), await freePort()];
  demoOrigin = `http://127.0.0.1:${demoPort}`;
  adminUrl = `http://127.0.0.1:${adminPort}`;
  server = await startServer({
    port: serverPort, adminPort, demoOrigin,
    extraServer: `tls = { certificate = "${certificate}", private_key = "${privateKey}" }`,
  });
  demo = await startDemo({ port: demoPort, apiUrl: server.url });
  xvfb = await startXvfb();
  human = await launchHumanBrowser(xvfb.display, ['--ignore-certificate-errors']);
});

after(async () => {
  await human?.close();
  await xvfb?.stop();
  await demo?.stop();
  await server?.stop();
});

/** A request over Node's HTTPS (OpenSSL), trusting the test's certificate. */
function request(url, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const call = https.request(url, { method, headers, ca }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => { text += chunk; });
      response.on('end', () => resolve({ status: response.statusCode, body: text ? JSON.parse(text) : null }));
    });
    call.on('error', reject);
    call.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** The result of `token`, fetched as a backend does. */
async function result(token) {
  const { verificationId } = JSON.parse(Buffer.from(token, 'base64').toString());
  const { status, body } = await request(`${server.url}/v2/verifications/${verificationId}/results`, {
    headers: { authorization: `Bearer ${API_KEY}` },
  });
  assert.equal(status, 200);
  return body;
}

async function tlsSignals() {
  const response = await fetch(`${adminUrl}/admin/statistics?site=e2e&window=hour`);
  const { counts } = await response.json();
  return counts['signal:tls'] ?? 0;
}

test('the listener offers HTTP/2 over ALPN and serves HTTPS', async () => {
  assert.match(server.url, /^https:\/\//);
  const session = http2.connect(server.url, { ca });
  try {
    const stream = session.request({ ':path': '/healthz' });
    const [headers] = await new Promise((resolve, reject) => {
      stream.on('response', (...args) => resolve(args));
      stream.on('error', reject);
    });
    stream.resume();
    assert.equal(headers[':status'], 200);
    assert.equal(session.alpnProtocol, 'h2');
  } finally {
    session.close();
  }
});

test('a person solves the official widget over TLS and passes; Chromium\'s ClientHello is Chromium\'s', async () => {
  const { page } = human;
  page.requests = [];
  page.on('request', (request) => page.requests.push({ method: request.method(), url: request.url() }));
  const created = page.waitForRequest((request) => request.url().endsWith('/v2/verifications'));
  await page.goto(`${demoOrigin}/`);
  await page.waitForSelector('trustcaptcha-component.hydrated');
  await humanClick(page, '.tc-checkbox-control');
  const createRequest = await created;
  recording = { body: createRequest.postDataJSON(), headers: await createRequest.allHeaders() };
  const token = await widgetOutcome(page);
  assert.ok(onlyLoopback(page));
  assert.ok(page.requests.some(({ url }) => url.startsWith(`${server.url}/widget/`)), 'the widget came over TLS');
  const shown = await result(token);
  assert.equal(shown.verificationPassed, true);
  assert.ok(shown.score <= 0.5, `a person passes: score ${shown.score}`);
  assert.equal(await tlsSignals(), 0, 'the browser\'s TLS is the browser its User-Agent names');
});

test('an HTTP bot on Node\'s TLS replaying that request under Chromium\'s name is refused', async () => {
  assert.ok(recording, 'the person\'s session ran first');
  const headers = {
    'content-type': 'application/json', origin: demoOrigin,
    'user-agent': recording.headers['user-agent'],
    'accept-language': recording.headers['accept-language'],
  };
  for (const name of ['sec-ch-ua', 'sec-ch-ua-mobile', 'sec-ch-ua-platform', 'sec-fetch-site', 'sec-fetch-mode', 'sec-fetch-dest']) {
    if (recording.headers[name]) headers[name] = recording.headers[name];
  }
  const now = Date.now();
  const body = {
    ...recording.body,
    widget: {
      ...recording.body.widget,
      boxCreationTimestamp: new Date(now - 2600).toISOString(),
      startSolvingTimestamp: new Date(now).toISOString(),
    },
  };
  const created = await request(`${server.url}/v2/verifications`, { method: 'POST', headers, body });
  assert.equal(created.status, 200);
  const { challenge } = created.body;
  const started = new Date();
  const tasks = challenge.tasks.map(({ number, input }) => ({ number, nonce: solveTask(input, challenge.difficulty) }));
  const submitted = await request(`${server.url}/v2/verifications/${challenge.verificationId}/challenges`, {
    method: 'POST', headers, body: {
      startSolvingTimestamp: started.toISOString(), solvedTimestamp: new Date().toISOString(),
      tasks, honeypotFields: recording.body.honeypotFields, userEvents: [],
    },
  });
  assert.equal(submitted.status, 201);
  const shown = await result(submitted.body.finished.verificationToken);
  assert.ok(shown.score > 0.5, `refused by the guide's check: score ${shown.score}`);
  assert.equal(await tlsSignals(), 1, 'its TLS library gave it away');
});
