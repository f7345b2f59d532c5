// The widget's proof-of-work, solved natively (Node's crypto), as a bot that skips the browser
// does it.
import { createHash } from 'node:crypto';

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
