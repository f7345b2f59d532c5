// The whole system as a user sees it: the official widget in Chromium (headless through
// Playwright, and as a person's browser on a virtual display: human.mjs), talking to
// trustcaptcha-server, and the demo backend verifying tokens with the trustcaptcha crate.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BYPASS_KEY, GEOBLOCKED_SITE_KEY, HARDER_SITE_KEY, LOCKED_SITE_KEY, MINIMAL_SITE_KEY, QUOTA_SITE_KEY, SCREENSHOTS,
  clickWidget, freePort, launchBrowser, newPage,
  onlyLoopback, screenshot, startDemo, startServer, submitAndRead, widgetOutcome,
} from './harness.mjs';
import { humanClick, humanType, launchAutomatedBrowser, launchHumanBrowser, startXvfb } from './human.mjs';

let browser;
let xvfb;
let server;
let demo;
let serverPort;
let demoOrigin;

before(async () => {
  serverPort = await freePort();
  const demoPort = await freePort();
  demoOrigin = `http://127.0.0.1:${demoPort}`;
  server = await startServer({ port: serverPort, demoOrigin });
  demo = await startDemo({ port: demoPort, apiUrl: server.url });
  browser = await launchBrowser();
  xvfb = await startXvfb();
});

/** A person's browser (see human.mjs) on the demo page; its requests are recorded too. */
async function openAsPerson(url) {
  const human = await launchHumanBrowser(xvfb.display);
  humans.push(human);
  const { page } = human;
  page.requests = [];
  page.on('request', (request) => page.requests.push({ method: request.method(), url: request.url() }));
  openedPages.push(page);
  await page.goto(url);
  await page.waitForSelector('trustcaptcha-component.hydrated');
  return page;
}
const humans = [];

// Every page of every scenario may have contacted loopback only.
afterEach(() => {
  for (const page of openedPages.splice(0)) {
    assert.ok(onlyLoopback(page), `left loopback: ${JSON.stringify(page.requests)}`);
  }
});

const openedPages = [];
async function open(url) {
  const page = await newPage(browser);
  openedPages.push(page);
  await page.goto(url);
  return page;
}

after(async () => {
  for (const human of humans) await human.close();
  await xvfb?.stop();
  await browser?.close();
  await demo?.stop();
  await server?.stop();
});

test('happy path: a person types, clicks, solves, submits; verified result; the same token is refused the second time', async () => {
  const page = await openAsPerson(`${demoOrigin}/`);
  await humanClick(page, '.tc-checkbox-control');
  const token = await widgetOutcome(page);
  // Typing first would have started the widget by itself (autostart on focus).
  await humanType(page, 'input[name=email]', 'person@example.com');
  assert.ok(token.length > 40);
  const hidden = await page.locator('input[name="tc-verification-token"]').inputValue();
  assert.equal(hidden, token, 'the widget fills the hidden form field');
  await screenshot(page, '01-solved');

  assert.ok(
    page.requests.some(({ url }) => url === `${server.url}/widget/dist/bundles/trustcaptcha.umd.min.js`),
    'the widget came from the server',
  );
  const shown = await submitAndRead(page);
  assert.equal(shown.outcome, 'ok');
  assert.equal(shown.result.verificationPassed, true);
  assert.ok(shown.result.origin.startsWith(demoOrigin), shown.result.origin);
  assert.equal(shown.result.ipAddress, '127.0.0.1');
  assert.match(shown.result.browser, /^Chrome \d+/);
  assert.equal(shown.result.decisionType, 'STANDARD');
  assert.equal(shown.decision, 'Allow', `a person passes: score ${shown.result.score}`);
  await screenshot(page, '01-result');
  copyFileSync(join(SCREENSHOTS, '01-result.png'), join(SCREENSHOTS, 'readme-demo.png'));

  // Scenario 2: the backend fetches the same token again.
  const again = await submitAndRead(page, '#again');
  assert.equal(again.outcome, 'VerificationResultRetrievalLimitReached');
  assert.equal(again.decision, 'Reject');
  assert.match(again.error, /retrieved as often as allowed/);
  await screenshot(page, '02-replayed');
});

for (const [name, path, code, message] of [
  ['unknown site key', '/?sitekey=0f0f0f0f-0000-4000-8000-000000000000', 'CAPTCHA_NOT_FOUND', /No captcha found for site key/],
  ['origin not allowed', null, 'CAPTCHA_NOT_ACCESSIBLE', /not accessible from 'localhost'/],
  ['minimal-data mode mismatch', '/?minimal=1', 'MINIMAL_DATA_MODE_MISMATCH', /minimal-data mode setting/],
  ['locked site', `/?sitekey=${LOCKED_SITE_KEY}`, 'LOCKED', /Captcha blocked/],
]) {
  test(`configuration errors are shown by the widget: ${name}`, async () => {
    // The same demo served as http://localhost is a different origin from the allowed one.
    const page = await open(path ? `${demoOrigin}${path}` : `${demoOrigin.replace('127.0.0.1', 'localhost')}/`);
    await clickWidget(page);
    await assert.rejects(widgetOutcome(page), (error) => error.detail?.errorCode === code);
    await page.locator('span', { hasText: message }).first().waitFor();
    assert.equal(await page.locator('input[name="tc-verification-token"]').count(), 0);
    await screenshot(page, `03-${code.toLowerCase()}`);
  });
}

test('a used-up hourly quota is shown by the widget', async () => {
  const first = await open(`${demoOrigin}/?sitekey=${QUOTA_SITE_KEY}`);
  await clickWidget(first);
  await widgetOutcome(first);
  const second = await open(`${demoOrigin}/?sitekey=${QUOTA_SITE_KEY}`);
  await clickWidget(second);
  await assert.rejects(widgetOutcome(second), (error) => error.detail?.errorCode === 'PAYMENT_REQUIRED');
  await second.locator('span', { hasText: /Limit of verifications has been reached/ }).first().waitFor();
  await screenshot(second, '03-payment_required');
});

test('a network over its rate gets 429, which the widget shows as an error without a token', async () => {
  // A server of its own, whose per-network budget is one create request.
  const port = await freePort();
  const demoPort = await freePort();
  const origin = `http://127.0.0.1:${demoPort}`;
  const limited = await startServer({
    port, demoOrigin: origin, extraServer: 'widget_requests_per_minute = 1\nwidget_burst = 1',
  });
  const limitedDemo = await startDemo({ port: demoPort, apiUrl: limited.url });
  try {
    const first = await open(`${origin}/`);
    await clickWidget(first);
    await widgetOutcome(first);
    const second = await open(`${origin}/`);
    await clickWidget(second);
    await assert.rejects(widgetOutcome(second), (error) => error.detail?.errorCode === 'UNKNOWN_ERROR');
    assert.equal(await second.locator('input[name="tc-verification-token"]').count(), 0);
    await screenshot(second, '07-rate-limited');
  } finally {
    await limitedDemo.stop();
    await limited.stop();
  }
});

test('minimal-data mode on both sides passes with score 0', async () => {
  const page = await open(`${demoOrigin}/?minimal=1&sitekey=${MINIMAL_SITE_KEY}`);
  await clickWidget(page);
  await widgetOutcome(page);
  const shown = await submitAndRead(page);
  assert.equal(shown.outcome, 'ok');
  assert.equal(shown.result.verificationPassed, true);
  assert.equal(shown.result.minimalDataModeEnabled, true);
  assert.equal(shown.result.score, 0);
  assert.equal(shown.decision, 'Allow');
  await screenshot(page, '05-minimal-data-mode');
});

test('a bypass key finishes without proof-of-work', async () => {
  const page = await open(`${demoOrigin}/?bypass=${BYPASS_KEY}`);
  await clickWidget(page);
  await widgetOutcome(page);
  const api = page.requests.filter(({ url }) => url.startsWith(server.url) && !url.endsWith('OPTIONS'));
  assert.equal(api.filter(({ method, url }) => method === 'POST' && url.endsWith('/v2/verifications')).length, 1);
  assert.equal(api.filter(({ url }) => url.includes('/challenges')).length, 0, 'no proof-of-work submitted');
  const shown = await submitAndRead(page);
  assert.equal(shown.result.decisionType, 'BYPASS_KEY');
  assert.equal(shown.result.verificationPassed, true);
  await screenshot(page, '06-bypass-key');
});

test('failover: a widget that cannot reach the server, then a server that restarted', async () => {
  // The widget's server is down: with failover-enabled it makes up a token. The page loads the
  // widget from its own site (the server that also serves it is down), as the failover
  // guidance says to host it.
  const page = await open(`${demoOrigin}/?failover=1&widget=own`);
  await server.stop();
  await clickWidget(page);
  const token = await widgetOutcome(page);
  const claimed = JSON.parse(Buffer.from(token, 'base64').toString());
  assert.equal(claimed.clientFailover, true);

  // The backend reaches a server that has no outage on record: 412.
  server = await startServer({ port: serverPort, demoOrigin, outageBeforeStart: false });
  const rejected = await submitAndRead(page);
  assert.equal(rejected.outcome, 'ClientReportedServerUnreachable');
  assert.equal(rejected.decision, 'Reject');
  assert.match(rejected.error, /no record of an outage/);
  await screenshot(page, '04-failover-rejected');

  // The server was down and restarted: within the grace window the claim gets a FAILOVER result.
  await server.stop();
  const second = await open(`${demoOrigin}/?failover=1&widget=own`);
  await clickWidget(second);
  await widgetOutcome(second);
  server = await startServer({ port: serverPort, demoOrigin, outageBeforeStart: true });
  const tolerated = await submitAndRead(second);
  assert.equal(tolerated.outcome, 'ok');
  assert.equal(tolerated.result.decisionType, 'FAILOVER');
  assert.equal(tolerated.result.gatewayFailoverActive, true);
  await screenshot(second, '04-failover-tolerated');
});

/** Solves the widget on `page` and returns what the demo backend then shows. */
async function solveAndSubmit(page) {
  await clickWidget(page);
  await widgetOutcome(page);
  return submitAndRead(page);
}

test('a geoblocked visitor solves the widget, and the backend rejects the result', async () => {
  const page = await open(`${demoOrigin}/?sitekey=${GEOBLOCKED_SITE_KEY}`);
  const shown = await solveAndSubmit(page);
  assert.equal(shown.outcome, 'ok');
  assert.equal(shown.result.verificationPassed, false);
  assert.equal(shown.result.decisionType, 'CUSTOM_ACCESS_RULE');
  assert.equal(shown.result.decisionAction, 'BLOCK');
  assert.equal(shown.decision, 'Reject');
  await screenshot(page, '08-geoblocked');
});

test('a proof-of-work rule raises the work for a browser family', async () => {
  const page = await open(`${demoOrigin}/?sitekey=${HARDER_SITE_KEY}`);
  const challenge = page.waitForResponse((response) => response.url().endsWith('/v2/verifications'));
  await clickWidget(page);
  const body = await (await challenge).json();
  assert.equal(body.challenge.difficulty, 8 + 3, 'the site\'s 8 bits and the rule\'s 3');
  assert.equal(body.challenge.tasks.length, 5);
  await widgetOutcome(page);
  const shown = await submitAndRead(page);
  assert.equal(shown.result.verificationPassed, true);
  assert.equal(shown.result.decisionType, 'STANDARD');
  await screenshot(page, '09-harder');
});

test('a network on a reputation list is blocked on every site', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tc-e2e-reputation-'));
  const list = join(dir, 'tor-exits.txt');
  writeFileSync(list, 'ExitNode 0011BD2485AD45D984EC4159C88FC066E5E3300E\nExitAddress 127.0.0.1 2026-11-26 01:09:06\n');
  const port = await freePort();
  const demoPort = await freePort();
  const origin = `http://127.0.0.1:${demoPort}`;
  const listed = await startServer({ port, demoOrigin: origin, extraServer: `reputation_lists = ["${list}"]` });
  const listedDemo = await startDemo({ port: demoPort, apiUrl: listed.url });
  try {
    const page = await open(`${origin}/`);
    const shown = await solveAndSubmit(page);
    assert.equal(shown.result.verificationPassed, false);
    assert.equal(shown.result.decisionType, 'GLOBAL_IP_ACCESS_RULE');
    assert.equal(shown.result.decisionAction, 'BLOCK');
    assert.equal(shown.decision, 'Reject');
    await screenshot(page, '10-reputation-list');
  } finally {
    await listedDemo.stop();
    await listed.stop();
  }
});

test('the demo refuses an automated browser and lets a person through', async () => {
  for (const hidden of [false, true]) {
    const automated = await launchAutomatedBrowser({ hidden });
    try {
      const page = automated.page;
      await page.goto(`${demoOrigin}/`);
      await clickWidget(page);
      await widgetOutcome(page);
      await page.fill('input[name=email]', 'bot@example.com');
      const shown = await submitAndRead(page);
      assert.equal(shown.outcome, 'ok');
      assert.equal(shown.result.verificationPassed, true, 'the proof-of-work was done');
      assert.ok(shown.result.score > 0.5, `hidden=${hidden}: score ${shown.result.score}`);
      assert.equal(shown.decision, 'Reject');
      if (hidden) await screenshot(page, '12-automation-refused');
    } finally {
      await automated.close();
    }
  }
  const page = await openAsPerson(`${demoOrigin}/`);
  await humanType(page, 'input[name=email]', 'person@example.com');
  // Focusing the form started the widget (autostart); the person then sends the form.
  await widgetOutcome(page);
  const shown = await submitAndRead(page);
  assert.equal(shown.result.verificationPassed, true);
  assert.ok(shown.result.score <= 0.5, `score ${shown.result.score}`);
  assert.equal(shown.decision, 'Allow');
});

test('the console draws the numbers the visitors produced, loading nothing from elsewhere', async () => {
  const port = await freePort();
  const adminPort = await freePort();
  const demoPort = await freePort();
  const origin = `http://127.0.0.1:${demoPort}`;
  const console_ = await startServer({ port, demoOrigin: origin, adminPort });
  const consoleDemo = await startDemo({ port: demoPort, apiUrl: console_.url });
  try {
    // A person, then a headless browser.
    const person = await openAsPerson(`${origin}/`);
    await humanClick(person, '.tc-checkbox-control');
    await widgetOutcome(person);
    assert.equal((await submitAndRead(person)).decision, 'Allow');
    const bot = await solveAndSubmit(await open(`${origin}/`));
    assert.equal(bot.decision, 'Reject');
    const page = await open(`http://127.0.0.1:${adminPort}/statistics?site=e2e&range=24h`);
    const count = async (chart, label) => Number(
      await page.locator(`#${chart} g[data-label="${label}"]`).getAttribute('data-count'),
    );
    assert.equal(await count('verifications', 'created'), 2);
    assert.equal(await count('verifications', 'solved'), 2);
    assert.equal(await count('verifications', 'passed'), 1);
    assert.equal(await count('verifications', 'blocked'), 1);
    assert.equal(await count('retrievals', 'ok'), 2);
    assert.equal(await count('browsers', 'Chrome'), 2);
    // The bot's detection signals, each counted once.
    assert.equal(await count('signals', 'headless'), 1);
    assert.equal(await count('signals', 'automation'), 1);
    assert.match(await page.locator('#pass-rate').innerText(), /50\.0 % passed \(1 of 2\)/);
    // The bars are drawn: the solved bar is as wide as the created one.
    const width = async (label) => Number(
      await page.locator(`#verifications g[data-label="${label}"] rect`).getAttribute('width'),
    );
    assert.ok((await width('solved')) > 0);
    assert.equal(await width('solved'), await width('created'));
    // Over time: each line's points are drawn where their counts put them on the chart's axis,
    // one per hour, and this hour's are the counts above.
    const drawn = await page.evaluate(() => {
      const svg = document.querySelector('#over-time svg');
      const top = Number(svg.dataset.top);
      const lines = {};
      for (const series of svg.querySelectorAll('g.series')) {
        lines[series.dataset.event] = [...series.querySelectorAll('path.point')].map((point) => {
          const box = point.getBBox();
          return {
            count: Number(point.dataset.count),
            centre: box.y + box.height / 2,
            expected: 12 + 198 * (1 - Number(point.dataset.count) / top),
          };
        });
      }
      const layers = {};
      for (const layer of document.querySelectorAll('#signals-over-time polygon.layer')) {
        layers[layer.dataset.event] = layer.dataset.counts.split(',').map(Number);
      }
      return { top, lines, layers };
    });
    assert.equal(drawn.lines.created.length, 24, 'a point per hour');
    assert.deepEqual(drawn.lines.created.at(-1).count, 2);
    assert.equal(drawn.lines.passed.at(-1).count, 1);
    assert.equal(drawn.lines['blocked:score'].at(-1).count, 1);
    assert.equal(drawn.lines.created.reduce((sum, point) => sum + point.count, 0), 2);
    for (const [event, points] of Object.entries(drawn.lines)) {
      for (const point of points) {
        assert.ok(Math.abs(point.centre - point.expected) < 0.6, `${event}: ${JSON.stringify(point)}`);
      }
    }
    assert.equal(drawn.layers['signal:headless'].at(-1), 1);
    assert.equal(drawn.layers['signal:automation'].at(-1), 1);
    await screenshot(page, '11-console');
  } finally {
    await consoleDemo.stop();
    await console_.stop();
  }
});
