// The official Vue wrapper (@trustcomponent/trustcaptcha-vue, unmodified, used as its README
// shows: imported, then the widget's element in a template with Vue's event bindings) in a small
// Vue 3 page,
// in Chromium, against trustcaptcha-server: a person solves it and the token reaches the demo
// backend, which verifies it with the trustcaptcha crate; a locked site's widget fails; reset()
// clears the token. The Vue events reach the page's own handlers in each case.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { dirname, extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  LOCKED_SITE_KEY, SITE_KEY, freePort, onlyLoopback, screenshot, startDemo, startServer, submitAndRead,
} from './harness.mjs';
import { humanClick, launchHumanBrowser, startXvfb } from './human.mjs';

const MODULES = join(dirname(fileURLToPath(import.meta.url)), '..', 'node_modules');

let server;
let demo;
let page;
let xvfb;
let human;
let vueOrigin;

/** The page: Vue 3 from its browser build, the wrapper and the widget from their packages. */
function vuePage({ apiUrl, backend, sitekey }) {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Vue sign-up</title>
<script type="importmap">{"imports": {
  "vue": "/modules/vue/dist/vue.esm-browser.prod.js",
  "@trustcomponent/trustcaptcha-vue": "/modules/@trustcomponent/trustcaptcha-vue/dist/index.js",
  "@trustcomponent/trustcaptcha-frontend/loader": "/modules/@trustcomponent/trustcaptcha-frontend/loader/index.js"
}}</script></head>
<body><div id="app"></div>
<script type="module">
import { createApp, ref } from 'vue';
// As the wrapper's README has it: importing it defines the widget's element, which the
// template then uses with Vue's event bindings.
import '@trustcomponent/trustcaptcha-vue';
const app = createApp({
  setup() {
    const state = ref('waiting');
    const detail = ref('');
    return {
      state, detail,
      solved: (event) => { state.value = 'solved'; detail.value = event.detail; },
      failed: (event) => { state.value = 'failed'; detail.value = JSON.stringify(event.detail); },
      reset: () => { state.value = 'reset'; detail.value = ''; },
    };
  },
  template: \`<form id="signup" method="post" action="${backend}/submit">
    <trustcaptcha-component sitekey="${sitekey}" api-url="${apiUrl}"
      @captchaSolved="solved" @captchaFailed="failed" @captchaReset="reset"></trustcaptcha-component>
    <button id="send" type="submit">Send</button>
    <p id="state" :data-detail="detail">{{ state }}</p>
  </form>\`,
});
app.config.compilerOptions.isCustomElement = (tag) => tag === 'trustcaptcha-component';
app.mount('#app');
</script></body></html>`;
}

/** Serves the page and the packages it imports (relative imports without `.js`, as the
 * wrapper's build writes them, are served as their `.js` file, as a bundler resolves them). */
async function startVueSite({ port, apiUrl, backend }) {
  const types = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css', '.json': 'application/json', '.map': 'application/json' };
  const site = createServer(async (request, response) => {
    const url = new URL(request.url, 'http://localhost');
    if (url.pathname === '/') {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      response.end(vuePage({ apiUrl, backend, sitekey: url.searchParams.get('sitekey') ?? SITE_KEY }));
      return;
    }
    const relative = normalize(decodeURIComponent(url.pathname.replace(/^\/modules\//, '')));
    if (!url.pathname.startsWith('/modules/') || relative.startsWith('..')) {
      response.writeHead(404).end();
      return;
    }
    for (const file of [join(MODULES, relative), `${join(MODULES, relative)}.js`]) {
      try {
        const body = await readFile(file);
        response.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' });
        response.end(body);
        return;
      } catch { /* the next candidate */ }
    }
    response.writeHead(404).end();
  });
  site.listen(port, '127.0.0.1');
  await once(site, 'listening');
  return { async stop() { site.closeAllConnections(); site.close(); await once(site, 'close'); } };
}

let vueSite;

before(async () => {
  const port = await freePort();
  const vuePort = await freePort();
  const demoPort = await freePort();
  vueOrigin = `http://127.0.0.1:${vuePort}`;
  server = await startServer({ port, demoOrigin: vueOrigin });
  demo = await startDemo({ port: demoPort, apiUrl: server.url });
  vueSite = await startVueSite({ port: vuePort, apiUrl: server.url, backend: demo.url });
  xvfb = await startXvfb();
  human = await launchHumanBrowser(xvfb.display);
  page = human.page;
  page.requests = [];
  page.on('request', (request) => page.requests.push({ method: request.method(), url: request.url() }));
});

after(async () => {
  await human?.close();
  await xvfb?.stop();
  await vueSite?.stop();
  await demo?.stop();
  await server?.stop();
});

async function state() {
  const element = page.locator('#state');
  return { state: (await element.innerText()).trim(), detail: await element.getAttribute('data-detail') };
}

test('the Vue wrapper: a person solves it, the token reaches the backend, which verifies it', async () => {
  await page.goto(`${vueOrigin}/`);
  await page.waitForSelector('trustcaptcha-component.hydrated');
  await humanClick(page, '.tc-checkbox-control');
  await page.waitForFunction(() => document.querySelector('#state')?.textContent.trim() !== 'waiting', null, { timeout: 60_000 });
  const solved = await state();
  assert.equal(solved.state, 'solved', JSON.stringify(solved));
  const hidden = await page.locator('input[name="tc-verification-token"]').inputValue();
  assert.equal(hidden, solved.detail, 'the Vue event carries the token the form sends');
  await screenshot(page, 'vue-solved');
  const decision = await submitAndRead(page);
  assert.equal(decision.decision, 'Allow', JSON.stringify(decision));
  assert.equal(decision.result.verificationPassed, true);
  assert.equal(decision.result.origin.replace(/\/$/, ''), vueOrigin);
});

test('the Vue wrapper: reset() clears the token and tells the page', async () => {
  await page.goto(`${vueOrigin}/`);
  await page.waitForSelector('trustcaptcha-component.hydrated');
  await humanClick(page, '.tc-checkbox-control');
  await page.waitForFunction(() => document.querySelector('#state')?.textContent.trim() === 'solved', null, { timeout: 60_000 });
  await page.evaluate(() => document.querySelector('trustcaptcha-component').reset());
  await page.waitForFunction(() => document.querySelector('#state')?.textContent.trim() === 'reset');
  assert.equal(await page.locator('input[name="tc-verification-token"][value]:not([value=""])').count(), 0, 'no token left in the form');
});

test('the Vue wrapper: a locked site fails, and the page hears why', async () => {
  await page.goto(`${vueOrigin}/?sitekey=${LOCKED_SITE_KEY}`);
  await page.waitForSelector('trustcaptcha-component.hydrated');
  await humanClick(page, '.tc-checkbox-control');
  await page.waitForFunction(() => document.querySelector('#state')?.textContent.trim() !== 'waiting', null, { timeout: 60_000 });
  const failed = await state();
  assert.equal(failed.state, 'failed', JSON.stringify(failed));
  assert.match(failed.detail, /LOCKED|BLOCKED/i);
  await screenshot(page, 'vue-failed');
  assert.ok(onlyLoopback(page), JSON.stringify(page.requests.filter(({ url }) => !url.includes('127.0.0.1'))));
});
