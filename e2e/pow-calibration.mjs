// What the proof-of-work costs a browser: the official widget in headless Chromium solves
// challenges of several difficulties (4 tasks each, as the default), and the solving time it
// reports (its own timestamps around the work) is collected.
//
//   node pow-calibration.mjs [--sessions N] [--difficulties 10,12,14,16]
//
// Prints, per difficulty, the expected attempts and the browser's solving time
// min / median / max in milliseconds, and the attempts per second that implies.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { SERVER_BIN, freePort, launchBrowser, startDemo, widgetOutcome } from './tests/harness.mjs';

const { values: options } = parseArgs({
  options: {
    sessions: { type: 'string', default: '10' },
    difficulties: { type: 'string', default: '10,12,13,14,15,16' },
    tasks: { type: 'string', default: '4' },
  },
});
const SESSIONS = Number(options.sessions);
const TASKS = Number(options.tasks);
const difficulties = options.difficulties.split(',').map(Number);
const API_KEY = 'ak_pow_calibration_0123456789';
const siteKey = (difficulty) => `00000000-0000-4000-8000-0000000000${difficulty.toString(16).padStart(2, '0')}`;

const serverPort = await freePort();
const demoPort = await freePort();
const demoOrigin = `http://127.0.0.1:${demoPort}`;
const dir = mkdtempSync(join(tmpdir(), 'tc-pow-'));
writeFileSync(join(dir, 'server.toml'), `
[server]
widget_dir = "${join(import.meta.dirname, 'node_modules', '@trustcomponent', 'trustcaptcha-frontend')}"
${difficulties.map((difficulty) => `
[[sites]]
name = "d${difficulty}"
site_key = "${siteKey(difficulty)}"
api_keys = ["${API_KEY}"]
allowed_origins = ["${demoOrigin}"]
difficulty = ${difficulty}
tasks = ${TASKS}
adaptive_difficulty = { window_secs = 1, free_solves = 1000000, step = 0, max_extra = 0 }
`).join('')}
`);
const server = spawn(SERVER_BIN, ['serve', '--config', join(dir, 'server.toml'), '--listen', `127.0.0.1:${serverPort}`], {
  stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, RUST_LOG: 'warn' },
});
const serverUrl = `http://127.0.0.1:${serverPort}`;
for (let attempt = 0; ; attempt++) {
  try {
    if ((await fetch(`${serverUrl}/healthz`)).ok) break;
  } catch { /* not yet */ }
  if (attempt > 200) throw new Error('the server did not start');
  await new Promise((resolve) => setTimeout(resolve, 50));
}
const demo = await startDemo({ port: demoPort, apiUrl: serverUrl, apiKey: API_KEY });
const browser = await launchBrowser();

console.log(`| difficulty × tasks | expected attempts | browser solving time, ms (min / median / max of ${SESSIONS}) | attempts per second (median) |`);
console.log('|---|---|---|---|');
try {
  for (const difficulty of difficulties) {
    const times = [];
    for (let session = 0; session < SESSIONS; session++) {
      const page = await browser.newPage();
      const submitted = page.waitForRequest((request) => request.url().endsWith('/challenges'), { timeout: 120_000 });
      await page.goto(`${demoOrigin}/?sitekey=${siteKey(difficulty)}`);
      await page.waitForSelector('trustcaptcha-component.hydrated');
      await page.locator('.tc-checkbox-control').click();
      const body = (await submitted).postDataJSON();
      times.push(Date.parse(body.solvedTimestamp) - Date.parse(body.startSolvingTimestamp));
      await widgetOutcome(page);
      await page.close();
    }
    times.sort((a, b) => a - b);
    const expected = TASKS * 2 ** difficulty;
    const median = times[Math.floor(times.length / 2)];
    console.log(`| ${difficulty} × ${TASKS} | ${expected.toLocaleString('en')} | ${times[0]} / ${median} / ${times[times.length - 1]} | ${Math.round(expected / (median / 1000)).toLocaleString('en')} |`);
  }
} finally {
  await browser.close();
  await demo.stop();
  server.kill('SIGTERM');
  await once(server, 'exit');
}
