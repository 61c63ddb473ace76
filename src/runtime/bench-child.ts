/**
 * The child process of `benchmark`: measures one model x profile and sends the result back over IPC, so
 * its resident-memory high-water mark belongs to that model alone (see benchmark.ts).
 */
import { describeError } from '../util/errors.js';
import { measure, type MeasureRequest } from './benchmark.js';

process.once('message', (req: MeasureRequest) => {
  measure(req, true)
    .then((result) => process.send!({ ok: true, result }))
    .catch((e: unknown) => process.send!({ ok: false, error: describeError(e) }))
    .finally(() => process.disconnect());
});
