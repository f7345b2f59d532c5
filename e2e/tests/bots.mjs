// What a bot that skips the browser does: the widget's proof-of-work solved natively (Node's
// crypto), events made up, and a recorded browser request replayed.
import { createHash } from 'node:crypto';
import { request } from './harness.mjs';

/** The first nonce `tcnN` whose SHA-256 with `input` (base64) has `difficulty` leading zero bits. */
export function solveTask(input, difficulty) {
  const bytes = Buffer.from(input, 'base64');
  for (let n = 0; ; n++) {
    const digest = createHash('sha256').update(bytes).update(`tcn${n}`).digest();
    let zeros = 0;
    for (const byte of digest) {
      if (byte === 0) { zeros += 8; continue; }
      zeros += Math.clz32(byte) - 24;
      break;
    }
    if (zeros >= difficulty) return `tcn${n}`;
  }
}

/** Events a script makes up: the pointer in equal steps along a line to the checkbox, a click. */
export function madeUpEvents(start) {
  const event = (type, timeStamp, x, y) => ({
    isTrusted: true, timeStamp, type, detail: type === 'mousemove' ? 0 : 1,
    x, y, screenX: x + 10, screenY: y + 97, pageX: x, pageY: y,
  });
  const moves = Array.from({ length: 12 }, (_, i) => event('mousemove', start + 17 * i, 40 + 25 * i, 120 + 8 * i));
  return [...moves, event('mousedown', start + 260, 315, 208), event('mouseup', start + 340, 315, 208),
    event('click', start + 340, 315, 208)];
}

/**
 * A raw HTTP client (Node's, over TLS when `apiUrl` is https: OpenSSL) replaying `recording`
 * (a browser's create request: `{ body, headers }`) with plausible timestamps, solving
 * natively. `events`: the recording's own (`recorded`), made up (`madeUp`), or `none`;
 * `allHeaders`: every header a browser's `fetch` sends (client hints, fetch metadata), not only
 * the User-Agent and languages; `ca`: the certificate to trust. Resolves with the token, the
 * difficulty asked and the solving time.
 */
export async function replay(recording, { apiUrl, origin, events, allHeaders, ca }) {
  const copied = allHeaders
    ? ['user-agent', 'accept-language', 'sec-ch-ua', 'sec-ch-ua-mobile', 'sec-ch-ua-platform', 'sec-fetch-site', 'sec-fetch-mode', 'sec-fetch-dest']
    : ['user-agent', 'accept-language'];
  const headers = { 'content-type': 'application/json', origin };
  for (const name of copied) if (recording.headers[name]) headers[name] = recording.headers[name];
  const now = Date.now();
  const userEvents = { recorded: recording.body.userEvents, madeUp: madeUpEvents(900), none: [] }[events];
  const body = {
    ...recording.body,
    widget: {
      ...recording.body.widget,
      boxCreationTimestamp: new Date(now - 2600).toISOString(),
      startSolvingTimestamp: new Date(now).toISOString(),
    },
    userEvents,
  };
  const created = await request(`${apiUrl}/v2/verifications`, { method: 'POST', headers, body, ca });
  if (created.status !== 200) throw new Error(`create answered ${created.status}`);
  const { challenge } = created.body;
  const started = new Date();
  const tasks = challenge.tasks.map(({ number, input }) => ({ number, nonce: solveTask(input, challenge.difficulty) }));
  const ms = Date.now() - started.getTime();
  const submitted = await request(`${apiUrl}/v2/verifications/${challenge.verificationId}/challenges`, {
    method: 'POST', headers, ca, body: {
      startSolvingTimestamp: started.toISOString(),
      solvedTimestamp: new Date(Math.max(Date.now(), started.getTime() + 450)).toISOString(),
      tasks, honeypotFields: recording.body.honeypotFields, userEvents: [],
    },
  });
  if (submitted.status !== 201) throw new Error(`submit answered ${submitted.status}`);
  return { token: submitted.body.finished.verificationToken, difficulty: challenge.difficulty, ms };
}
