// The console in Chromium: sign in, make a site, put the official widget on a page with its new
// site key, and verify with its new API key from a backend (the demo, with the trustcaptcha
// crate); rotate the key (the old one works for the overlap, then stops); a viewer changes
// nothing; a stolen cookie without the CSRF token changes nothing; and a second server on the
// same Redis serves the new site. Screenshots go to e2e/screenshots/console-*.png (the
// operators' guide shows them).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  SERVER_BIN, clickWidget, freePort, launchBrowser, request, screenshot, serverConfig, start, startDemo,
  submitAndRead, widgetOutcome,
} from './harness.mjs';
import { humanClick, launchHumanBrowser, startXvfb } from './human.mjs';

const ADMIN = 'console-admin';
const ADMIN_PASSWORD = 'a long console password';
const VIEWER = 'console-viewer';
const VIEWER_PASSWORD = 'the viewer password';

let redis;
let servers = [];
let demos = [];
let browser;
let xvfb;
let humans = [];
let config;
let demoPort;
let demoOrigin;

/** A Redis on a free loopback port, keeping nothing on disk. */
async function startRedis() {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (data) => { if (String(data).includes('Ready to accept connections')) resolve(); });
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}`)));
  });
  return { url: `redis://127.0.0.1:${port}`, async stop() { child.kill('SIGTERM'); await once(child, 'exit'); } };
}

function userAdd(name, password, role) {
  const added = spawnSync(SERVER_BIN, ['user', 'add', '--config', config, name, '--role', role], { input: `${password}\n` });
  assert.equal(added.status, 0, String(added.stderr));
}

/** A server process on the shared configuration; its public and admin URLs. */
async function startServerProcess() {
  const port = await freePort();
  const adminPort = await freePort();
  const server = await start(
    SERVER_BIN,
    ['serve', '--config', config, '--listen', `127.0.0.1:${port}`, '--admin-listen', `127.0.0.1:${adminPort}`],
    /listening on (https?:\/\/\S+)/,
  );
  servers.push(server);
  return { url: server.url, admin: `http://127.0.0.1:${adminPort}` };
}

before(async () => {
  redis = await startRedis();
  demoPort = await freePort();
  demoOrigin = `http://127.0.0.1:${demoPort}`;
  const dir = mkdtempSync(join(tmpdir(), 'tc-console-'));
  config = join(dir, 'server.toml');
  writeFileSync(config, `${serverConfig({ demoOrigin, outageBeforeStart: false })}\n[store]\nurl = "${redis.url}"\n`);
  userAdd(ADMIN, ADMIN_PASSWORD, 'admin');
  userAdd(VIEWER, VIEWER_PASSWORD, 'viewer');
  browser = await launchBrowser();
  xvfb = await startXvfb();
});

after(async () => {
  for (const human of humans) await human.close();
  await xvfb?.stop();
  await browser?.close();
  for (const demo of demos) await demo.stop();
  for (const server of servers) await server.stop();
  await redis?.stop();
});

/** A fresh browser context signed in to `admin` as `name`. */
async function signIn(admin, name, password) {
  const context = await browser.newContext();
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: admin });
  const page = await context.newPage();
  // The pages' Content-Security-Policy allows their own script only: a violation is a bug.
  page.violations = [];
  page.on('console', (message) => { if (/Content.Security.Policy/i.test(message.text())) page.violations.push(message.text()); });
  await page.goto(`${admin}/`);
  assert.match(page.url(), /\/sign-in$/, 'the console sends a stranger to sign in');
  await page.fill('#name', name);
  await page.fill('#password', password);
  await Promise.all([page.waitForURL(`${admin}/`), page.press('#password', 'Enter')]);
  return page;
}

/** A person's verification on the demo page at `origin`: what the backend decided. */
async function verifyAsPerson(origin) {
  const human = await launchHumanBrowser(xvfb.display);
  humans.push(human);
  const { page } = human;
  await page.goto(`${origin}/`);
  await page.waitForSelector('trustcaptcha-component.hydrated');
  await humanClick(page, '.tc-checkbox-control');
  await widgetOutcome(page);
  const decision = await submitAndRead(page);
  await human.close();
  humans = humans.filter((other) => other !== human);
  return decision;
}

/** The results endpoint for verification `id` with `key`: the status. */
async function results(url, id, key) {
  const answer = await request(`${url}/v2/verifications/${id}/results`, { headers: { authorization: `Bearer ${key}` } });
  return answer.status;
}

test('a team makes a site in the console; the widget and the backend work with its new keys on a second server; rotation, roles and CSRF hold', async () => {
  const first = await startServerProcess();
  const second = await startServerProcess();
  const admin = await signIn(first.admin, ADMIN, ADMIN_PASSWORD);
  await screenshot(admin, 'console-sites');

  // A new site: its page shows the API key once.
  await admin.fill('#new-name', 'console-shop');
  await Promise.all([admin.waitForURL('**/sites'), admin.click('text=Create')]);
  const apiKey = (await admin.locator('#new-key').innerText()).trim();
  const siteKey = (await admin.locator('#site-key').innerText()).trim();
  assert.match(apiKey, /^ak_[A-Za-z0-9]{49}$/);
  await admin.click('[data-copy="new-key"]');
  await admin.waitForSelector('[data-copy="new-key"]:has-text("Copied")');
  assert.equal(await admin.evaluate(() => navigator.clipboard.readText()), apiKey, 'the copy button copies the key');
  await admin.locator('#keys').scrollIntoViewIfNeeded();
  await screenshot(admin, 'console-new-site');

  // Its origins and difficulty in the settings form; more retrievals in its TOML.
  await admin.goto(`${first.admin}/sites/${siteKey}`);
  assert.equal(await admin.locator('#new-key').count(), 0, 'the key is shown only once');
  await admin.fill('#allowed_origins', demoOrigin);
  await admin.fill('#difficulty', '8');
  await admin.fill('#tasks', '2');
  await Promise.all([admin.waitForURL(`**/sites/${siteKey}`), admin.click('text=Save settings')]);
  const toml = await admin.locator('#settings-toml').inputValue();
  assert.match(toml, /difficulty = 8/);
  await admin.fill('#settings-toml', `${toml}\nmax_retrievals = 100\n`);
  await Promise.all([admin.waitForURL(`**/sites/${siteKey}`), admin.click('button:has-text("Save")>>nth=-1')]);
  assert.match(await admin.locator('#settings-toml').inputValue(), /max_retrievals = 100/);
  // A bad value is refused with the file's words, and nothing changes.
  await admin.fill('#difficulty', '30'); // allowed by the form, too slow for a browser: refused by the check
  await admin.click('text=Save settings');
  await admin.waitForSelector('.problems');
  assert.match(await admin.locator('.problems').innerText(), /difficulty/);
  await screenshot(admin, 'console-problems');

  // The demo page on the second server, its backend with the new key: a person passes.
  const demo = await startDemo({ port: demoPort, apiUrl: second.url, siteKey, apiKey });
  demos.push(demo);
  const passed = await verifyAsPerson(demoOrigin);
  assert.equal(passed.decision, 'Allow', JSON.stringify(passed));
  assert.equal(passed.result.verificationPassed, true);
  const id = passed.result.verificationId;

  // Rotation from the page (the browser's own request, with its session and CSRF token): the
  // old key works for the overlap, then stops; the new one works.
  await admin.goto(`${first.admin}/sites/${siteKey}`);
  const snippet = await admin.locator('#snippet-widget').innerText();
  assert.ok(snippet.includes(`sitekey="${siteKey}"`));
  const keyId = await admin.locator('tr[data-key-id]').first().getAttribute('data-key-id');
  const rotated = await admin.evaluate(async ([siteKey, keyId]) => {
    const me = await (await fetch('/admin/session')).json();
    const answer = await fetch(`/admin/sites/${siteKey}/keys/${keyId}/rotate`, {
      method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': me.csrf_token },
      body: JSON.stringify({ overlap_secs: 3 }),
    });
    return { status: answer.status, body: await answer.json() };
  }, [siteKey, keyId]);
  assert.equal(rotated.status, 201, JSON.stringify(rotated));
  const newKey = rotated.body.key;
  const rotatedAt = Date.now();
  assert.equal(await results(second.url, id, apiKey), 200, 'the old key works during the overlap');
  // The second server learns of the new key at its next poll of the store (every 250 ms).
  let fresh;
  do {
    fresh = await results(second.url, id, newKey);
    if (fresh !== 200) await new Promise((resolve) => setTimeout(resolve, 50));
  } while (fresh !== 200 && Date.now() - rotatedAt < 5_000);
  assert.equal(fresh, 200, 'the new key works on the second server within a poll');
  console.log(`the second server took the new key after ${Date.now() - rotatedAt} ms`);
  // Polled (each look spends one of the result's retrievals) until it stops.
  let status;
  do {
    await new Promise((resolve) => setTimeout(resolve, 250));
    status = await results(second.url, id, apiKey);
  } while (status === 200 && Date.now() - rotatedAt < 15_000);
  assert.equal(status, 403, 'the old key stops after the overlap');
  assert.ok(Date.now() - rotatedAt >= 3_000, 'not before the overlap ended');
  assert.equal(await results(second.url, id, newKey), 200);
  await admin.reload();
  await screenshot(admin, 'console-site');
  // Readable on a phone: nothing wider than the screen but what scrolls in its own box.
  await admin.setViewportSize({ width: 390, height: 844 });
  const overflow = await admin.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow} px wider than a phone`);
  await screenshot(admin, 'console-phone');
  await admin.setViewportSize({ width: 1280, height: 720 });

  // A stolen cookie without the CSRF token changes nothing, as a form or as JSON.
  const cookies = await admin.context().cookies();
  const session = cookies.find((cookie) => cookie.name.endsWith('trustcaptcha-session'));
  assert.ok(session.httpOnly && session.secure && session.sameSite === 'Strict', JSON.stringify(session));
  const stolen = { cookie: `${session.name}=${session.value}` };
  const form = await request(`${first.admin}/sites`, { method: 'POST', headers: { ...stolen, 'content-type': 'application/x-www-form-urlencoded' }, body: 'name=stolen' });
  assert.equal(form.status, 403);
  const json = await request(`${first.admin}/admin/sites/${siteKey}`, { method: 'DELETE', headers: stolen });
  assert.equal(json.status, 403);
  assert.equal(await results(second.url, id, newKey), 200, 'the site is still there');

  // A viewer sees the site but no form to change it, and the server refuses a change anyway.
  const viewer = await signIn(first.admin, VIEWER, VIEWER_PASSWORD);
  await viewer.goto(`${first.admin}/sites/${siteKey}`);
  assert.equal(await viewer.locator('text=Save settings').count(), 0);
  assert.equal(await viewer.locator('text=Rotate').count(), 0);
  assert.ok(await viewer.locator('#difficulty').isDisabled());
  await screenshot(viewer, 'console-viewer');
  const refused = await viewer.evaluate(async (siteKey) => {
    const me = await (await fetch('/admin/session')).json();
    const answer = await fetch(`/admin/sites/${siteKey}`, { method: 'DELETE', headers: { 'x-csrf-token': me.csrf_token } });
    return answer.status;
  }, siteKey);
  assert.equal(refused, 403);

  // The audit log names who did what; nothing in it is a key.
  await admin.goto(`${first.admin}/audit`);
  const log = await admin.locator('table').innerText();
  for (const action of ['site.create', 'site.change', 'key.rotate', 'user.add']) assert.ok(log.includes(action), action);
  assert.ok(log.includes(ADMIN));
  assert.ok(!log.includes(apiKey) && !log.includes(newKey));
  await screenshot(admin, 'console-audit');
  assert.deepEqual([...admin.violations, ...viewer.violations], []);
});
