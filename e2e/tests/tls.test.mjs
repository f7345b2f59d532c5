// The TLS listener: the server speaks HTTPS itself (a certificate `openssl` makes for the
// test), the official widget solves over it in a person's Chromium and passes, and an HTTP bot
// on Node's TLS library (OpenSSL) that replays that person's request under Chromium's
// User-Agent is refused: its ClientHello is not Chromium's, whatever its headers say.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { API_KEY, freePort, makeCertificate, onlyLoopback, request, startDemo, startServer, widgetOutcome } from './harness.mjs';
import { humanClick, launchHumanBrowser, startXvfb } from './human.mjs';
import { replay } from './bots.mjs';

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
  const { certificate, privateKey, ca: trusted } = makeCertificate();
  ca = trusted;
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

/** The result of `token`, fetched as a backend does. */
async function result(token) {
  const { verificationId } = JSON.parse(Buffer.from(token, 'base64').toString());
  const { status, body } = await request(`${server.url}/v2/verifications/${verificationId}/results`, {
    headers: { authorization: `Bearer ${API_KEY}` }, ca,
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
  // Everything the browser sent: its headers, its page description, its own events.
  const { token } = await replay(recording, { apiUrl: server.url, origin: demoOrigin, events: 'recorded', allHeaders: true, ca });
  const shown = await result(token);
  assert.ok(shown.score > 0.5, `refused by the guide's check: score ${shown.score}`);
  assert.equal(await tlsSignals(), 1, 'its TLS library gave it away');
});
