// Real processes for the browser tests: trustcaptcha-server and the demo backend (built by
// scripts/test.sh), and headless Debian Chromium driven by playwright-core.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const target = process.env.CARGO_TARGET_DIR ?? join(root, 'target');
export const SERVER_BIN = join(target, 'debug', 'trustcaptcha-server');
export const DEMO_BIN = join(target, 'debug', 'trustcaptcha-demo');
export const SCREENSHOTS = join(root, 'e2e', 'screenshots');
/** The official widget's npm package, which the server serves under /widget/. */
const WIDGET_PACKAGE = join(root, 'e2e', 'node_modules', '@trustcomponent', 'trustcaptcha-frontend');
mkdirSync(SCREENSHOTS, { recursive: true });

export const SITE_KEY = 'a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d';
export const MINIMAL_SITE_KEY = 'b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e';
export const LOCKED_SITE_KEY = 'c3d4e5f6-a7b8-4c9d-8e1f-2a3b4c5d6e7f';
export const QUOTA_SITE_KEY = 'd4e5f6a7-b8c9-4d0e-9f1a-3b4c5d6e7f80';
export const GEOBLOCKED_SITE_KEY = 'e5f6a7b8-c9d0-4e1f-8a2b-4c5d6e7f8091';
export const HARDER_SITE_KEY = 'f6a7b8c9-d0e1-4f2a-9b3c-5d6e7f8091a2';
export const API_KEY = 'ak_e2e_browser_tests_0123456789';
export const BYPASS_KEY = 'e2e-bypass-key-42';

/** A self-signed certificate for 127.0.0.1 that `openssl` makes: its PEM files' paths, and the
 * certificate's text for clients to trust. */
export function makeCertificate() {
  const dir = mkdtempSync(join(tmpdir(), 'tc-tls-'));
  const [certificate, privateKey] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
    '-keyout', privateKey, '-out', certificate,
  ], { stdio: 'ignore' });
  return { certificate, privateKey, ca: readFileSync(certificate) };
}

/** A request over Node's HTTP or HTTPS (OpenSSL; trusting `ca`): the status and the JSON body.
 * A connection of its own (no keep-alive pool: a pooled connection the server closed as idle
 * at the moment it is reused would fail the request). */
export function request(url, { method = 'GET', headers = {}, body, ca } = {}) {
  const client = url.startsWith('https:') ? https : http;
  return new Promise((resolve, reject) => {
    const call = client.request(url, { method, headers, ca, agent: false }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => { text += chunk; });
      response.on('end', () => {
        let parsed = null;
        try { parsed = text ? JSON.parse(text) : null; } catch { parsed = text; }
        resolve({ status: response.statusCode, body: parsed });
      });
    });
    call.on('error', reject);
    call.end(body === undefined || typeof body === 'string' ? body : JSON.stringify(body));
  });
}

/** A free loopback port (bound, then released for the process that will use it). */
export async function freePort() {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

/** One site allowing only the demo's origin; `settings` are extra TOML lines. */
function site(name, siteKey, demoOrigin, settings) {
  return `
[[sites]]
name = "${name}"
site_key = "${siteKey}"
api_keys = ["${API_KEY}"]
allowed_origins = ["${demoOrigin}"]
difficulty = 8
tasks = 2
${settings.join('\n')}
`;
}

/** The server config: standard, minimal-data, locked, quota-limited, geoblocked (only DE is
 * allowed, and without a GeoIP database no visitor's country is known) and harder-for-Chrome
 * sites. */
export function serverConfig({ demoOrigin, outageBeforeStart, extraServer = '' }) {
  return `
[server]
outage_before_start = ${outageBeforeStart}
widget_dir = "${WIDGET_PACKAGE}"
failover_grace_secs = 300
${extraServer}
${site('e2e', SITE_KEY, demoOrigin, [`bypass_keys = ["${BYPASS_KEY}"]`])}
${site('e2e-minimal', MINIMAL_SITE_KEY, demoOrigin, ['minimal_data_mode = true'])}
${site('e2e-locked', LOCKED_SITE_KEY, demoOrigin, ['locked = true'])}
${site('e2e-quota', QUOTA_SITE_KEY, demoOrigin, ['hourly_quota = 1'])}
${site('e2e-geoblocked', GEOBLOCKED_SITE_KEY, demoOrigin, ['countries_allowed = ["DE"]'])}
${site('e2e-harder', HARDER_SITE_KEY, demoOrigin, [
    // The rule's effect alone: the test's browser is automated, which suspicion would price too.
    'suspicion = { max_extra = 0 }',
    '[[sites.rules]]', 'browsers = ["Chrome"]', 'action = "adjust"', 'difficulty = 3', 'tasks = 5',
  ])}
`;
}

/** Starts a process and resolves with the first stdout line matching `pattern`. */
export async function start(bin, args, pattern, env = {}) {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, RUST_LOG: process.env.E2E_RUST_LOG ?? 'warn', ...env } });
  const lines = createInterface({ input: child.stdout });
  const exited = once(child, 'exit').then(([code]) => { throw new Error(`${bin} exited with ${code}`); });
  const matched = new Promise((resolve) => {
    lines.on('line', (line) => {
      const match = line.match(pattern);
      if (match) resolve(match[1]);
    });
  });
  const url = await Promise.race([matched, exited]);
  return {
    url,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

/** trustcaptcha-server on `port` with the e2e config. */
export async function startServer({ port, demoOrigin, outageBeforeStart = false, extraServer = '', adminPort = 0 }) {
  const dir = mkdtempSync(join(tmpdir(), 'tc-e2e-'));
  const config = join(dir, 'server.toml');
  writeFileSync(config, serverConfig({ demoOrigin, outageBeforeStart, extraServer }));
  return start(
    SERVER_BIN,
    ['serve', '--config', config, '--listen', `127.0.0.1:${port}`, '--admin-listen', `127.0.0.1:${adminPort}`],
    /listening on (https?:\/\/\S+)/,
  );
}

/** The demo backend on `port`, verifying against `apiUrl` (the key goes through the environment,
 * not the command line, where any process could read it). Its pages load the widget from the
 * server, as an air-gapped site would. */
export async function startDemo({ port, apiUrl, siteKey = SITE_KEY, apiKey = API_KEY }) {
  return start(
    DEMO_BIN,
    [
      '--listen', `127.0.0.1:${port}`, '--api-url', apiUrl, '--site-key', siteKey,
      '--widget-url', `${apiUrl}/widget/dist/bundles/trustcaptcha.umd.min.js`,
    ],
    /demo listening on (http:\/\/\S+?)\/?$/,
    { TRUSTCAPTCHA_API_KEY: apiKey },
  );
}

/** Headless Debian Chromium that can reach nothing but loopback. */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1',
    ],
  });
}

/** A page that records every request, so tests can assert that only loopback was contacted. */
export async function newPage(browser) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.requests = [];
  page.on('request', (request) => page.requests.push({ method: request.method(), url: request.url() }));
  return page;
}

export function onlyLoopback(page) {
  return page.requests.every(({ url }) => {
    // The widget's PoW workers load from blob: URLs of the page's own origin.
    const { hostname } = new URL(url.replace(/^blob:/, ''));
    return hostname === '127.0.0.1' || hostname === 'localhost';
  });
}

/** Waits for the widget to hydrate and clicks its checkbox, as a person would. */
export async function clickWidget(page) {
  await page.waitForSelector('trustcaptcha-component.hydrated');
  await page.locator('.tc-checkbox-control').click();
}

/** Resolves with the token of `captchaSolved`, or rejects with the `captchaFailed` detail. */
export async function widgetOutcome(page) {
  const handle = await page.waitForFunction(() => window.__tcToken || window.__tcError, null, { timeout: 60_000 });
  const outcome = await handle.jsonValue();
  if (typeof outcome === 'string') return outcome;
  const error = new Error(`widget failed: ${outcome.errorCode}`);
  error.detail = outcome;
  throw error;
}

/** Submits the form and returns what the result page shows. */
export async function submitAndRead(page, button = '#send') {
  await Promise.all([page.waitForURL('**/submit'), page.click(button)]);
  const decision = await page.locator('#decision');
  const result = (await page.locator('#result').count()) ? JSON.parse(await page.locator('#result').innerText()) : null;
  const error = (await page.locator('#error').count()) ? await page.locator('#error').innerText() : null;
  return {
    decision: await decision.getAttribute('data-decision'),
    outcome: await decision.getAttribute('data-outcome'),
    text: await decision.innerText(),
    result,
    error,
  };
}

export async function screenshot(page, name) {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}
