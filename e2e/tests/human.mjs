// Sessions as close to a person as this machine allows, and the automated ones they are told
// apart from. A "human-like" browser is Debian's Chromium started by us, without any automation
// flag, with a window on a virtual display (Xvfb), driven over the DevTools protocol with
// trusted input events at a hand's pace: curved, decelerating pointer paths, pauses, clicks
// held for a while, typing with per-key delays. A person's browser has no DevTools client
// attached; Chromium reports the one that drives these sessions as `navigator.webdriver`, so
// that report is switched off (AutomationControlled) as part of playing the person.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
/** Chromium may reach loopback only. */
const OFFLINE = '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1';
const QUIET = ['--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic'];

/** A virtual X display; resolves with its number and a stop function. */
export async function startXvfb() {
  const child = spawn('Xvfb', ['-displayfd', '3', '-screen', '0', '1366x768x24', '-nolisten', 'tcp'], {
    stdio: ['ignore', 'ignore', 'inherit', 'pipe'],
  });
  const exited = once(child, 'exit').then(([code]) => { throw new Error(`Xvfb exited with ${code}`); });
  const display = new Promise((resolve) => {
    createInterface({ input: child.stdio[3] }).once('line', (line) => resolve(`:${line.trim()}`));
  });
  return {
    display: await Promise.race([display, exited]),
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

/** Human-like browser variants: a privacy-minded person's browser must pass too. */
export const HUMAN_VARIANTS = {
  /** Chromium as installed. */
  plain: [],
  /** No client hints at all (as Firefox, or Chromium with them turned off). */
  'no-client-hints': ['--disable-features=UserAgentClientHint'],
  /** Another language. */
  german: ['--lang=de-DE', '--accept-lang=de-DE,de'],
  /** A reduced, frozen User-Agent string. */
  'reduced-user-agent': ['--user-agent=Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36'],
  /** A Firefox-like configuration: Firefox's User-Agent and languages, no client hints (the
   * engine is still Chromium's: only the request and the page's account are Firefox's). */
  'firefox-like': [
    '--user-agent=Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0',
    '--disable-features=UserAgentClientHint', '--accept-lang=en-US,en',
  ],
};

/**
 * Starts Chromium on `display` without automation flags and connects over the DevTools
 * protocol. `args` are the variant's extra flags.
 */
export async function launchHumanBrowser(display, args = []) {
  const profile = mkdtempSync(join(tmpdir(), 'tc-human-'));
  const child = spawn(CHROMIUM, [
    '--remote-debugging-port=0', `--user-data-dir=${profile}`, '--no-sandbox', '--disable-gpu',
    ...(args.some((arg) => arg.startsWith('--window-size=')) ? [] : ['--window-size=1280,740']),
    '--disable-blink-features=AutomationControlled', OFFLINE, ...QUIET,
    ...args, 'about:blank',
  ], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, DISPLAY: display }, detached: true });
  const endpoint = await new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`chromium exited with ${code}`)));
    createInterface({ input: child.stderr }).on('line', (line) => {
      const match = line.match(/DevTools listening on (ws:\/\/\S+)/);
      if (match) resolve(match[1]);
    });
  });
  const browser = await chromium.connectOverCDP(endpoint);
  return {
    browser,
    /** The window Chromium opened with. */
    page: browser.contexts()[0].pages()[0],
    async close() {
      await browser.close().catch(() => {});
      if (child.exitCode === null) {
        const exited = once(child, 'exit');
        // The whole process group: Chromium's helpers write to the profile too.
        process.kill(-child.pid, 'SIGTERM');
        await exited;
      }
      try {
        rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
      } catch {
        // A helper still finishing a write; the temporary directory stays behind.
      }
    },
  };
}

/** Chromium through Playwright, as a bot author starts it. `hidden`: the obvious automation
 * flags removed (no `--enable-automation`, no AutomationControlled, a User-Agent without
 * "Headless"); `display`: headful on that X display instead of headless; `hasTouch`: a context
 * that claims a touch screen; `window`: a window of this size (`--window-size`) instead of
 * Playwright's emulated viewport. */
export async function launchAutomatedBrowser({ hidden, display, hasTouch = false, window }) {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: !display,
    env: display ? { ...process.env, DISPLAY: display } : process.env,
    ignoreDefaultArgs: hidden ? ['--enable-automation'] : [],
    args: ['--no-sandbox', '--disable-gpu', OFFLINE, ...QUIET,
      ...(hidden ? ['--disable-blink-features=AutomationControlled'] : []),
      ...(window ? [`--window-size=${window.join(',')}`] : [])],
  });
  const context = await browser.newContext({
    hasTouch,
    ...(window ? { viewport: null } : {}),
    ...(hidden ? { userAgent: CHROME_USER_AGENT } : {}),
  });
  return { browser, page: await context.newPage(), close: () => browser.close() };
}

/** What a bot that hides itself claims to be: a desktop Chromium on Linux. */
export const CHROME_USER_AGENT = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36';

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const between = (low, high) => low + Math.random() * (high - low);

/** The pointer's last position per page (a person's hand does not jump). */
const pointers = new WeakMap();

/**
 * Moves the pointer to (x, y) as a hand does: along a curve, accelerating then slowing down,
 * with a little tremor, one trusted event every 8–20 ms.
 */
export async function humanMove(page, x, y) {
  const [fromX, fromY] = pointers.get(page) ?? [between(200, 900), between(150, 600)];
  const distance = Math.hypot(x - fromX, y - fromY);
  const steps = Math.max(12, Math.round(distance / between(9, 14)));
  // A control point off the straight line bends the path: a hand moves in arcs (wrist and
  // elbow turn), never along a ruler.
  const bend = (Math.random() < 0.5 ? -1 : 1) * between(0.06, 0.3) * distance;
  const controlX = (fromX + x) / 2 + bend * ((y - fromY) / (distance || 1));
  const controlY = (fromY + y) / 2 - bend * ((x - fromX) / (distance || 1));
  for (let step = 1; step <= steps; step++) {
    const linear = step / steps;
    const t = 0.5 - Math.cos(Math.PI * linear) / 2;
    const px = (1 - t) ** 2 * fromX + 2 * (1 - t) * t * controlX + t ** 2 * x + between(-0.8, 0.8);
    const py = (1 - t) ** 2 * fromY + 2 * (1 - t) * t * controlY + t ** 2 * y + between(-0.8, 0.8);
    await page.mouse.move(px, py);
    await pause(between(8, 20));
  }
  pointers.set(page, [x, y]);
}

/** Moves to a point inside `selector`'s box, hesitates, and clicks, holding the button. */
export async function humanClick(page, selector) {
  const box = await page.locator(selector).boundingBox();
  const x = box.x + box.width * between(0.3, 0.7);
  const y = box.y + box.height * between(0.3, 0.7);
  await humanMove(page, x, y);
  await pause(between(80, 260));
  await page.mouse.down();
  await pause(between(60, 140));
  await page.mouse.up();
}

/** Reaches `selector` with the Tab key alone and types `text`: a keyboard-only person. */
export async function keyboardType(page, selector, text) {
  for (let presses = 0; presses < 20; presses++) {
    await page.keyboard.press('Tab');
    await pause(between(120, 300));
    if (await page.locator(selector).evaluate((element) => element === document.activeElement)) break;
  }
  for (const key of text) {
    await page.keyboard.type(key);
    await pause(between(60, 220));
  }
}

/** A finger on a touch screen: swipes the page a little, then taps `selector` (the browser
 * makes the tap's click). Over the DevTools protocol's touch input. */
export async function touchTap(page, selector) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Emulation.setTouchEmulationEnabled', { enabled: true, maxTouchPoints: 5 });
  const swipe = [between(300, 500), between(400, 500)];
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: [{ x: swipe[0], y: swipe[1] }] });
  for (let step = 1; step <= 8; step++) {
    await pause(between(12, 20));
    await cdp.send('Input.dispatchTouchEvent', {
      type: 'touchMove', touchPoints: [{ x: swipe[0] + between(-2, 2), y: swipe[1] - 6 * step }],
    });
  }
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
  await pause(between(400, 900));
  const box = await page.locator(selector).boundingBox();
  const [x, y] = [box.x + box.width * between(0.3, 0.7), box.y + box.height * between(0.3, 0.7)];
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: [{ x, y, radiusX: 11, radiusY: 11, force: 0.6 }] });
  await pause(between(60, 120));
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
}

/** Clicks into `selector` and types `text` key by key. */
export async function humanType(page, selector, text) {
  await humanClick(page, selector);
  await pause(between(150, 400));
  for (const key of text) {
    await page.keyboard.type(key);
    await pause(between(60, 220));
  }
}
