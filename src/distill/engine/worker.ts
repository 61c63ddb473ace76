/**
 * Worker-thread entry of the trainer: hosts one TrainerCore and answers
 * requests `{ id, method, arg }` with `{ id, ok, value | error }`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { TrainerCore, type CoreSpec } from './core.js';

if (!parentPort) throw new Error('engine/worker.js must run as a worker thread');
const port = parentPort;
const ready = TrainerCore.create(workerData as CoreSpec);

port.on('message', async (msg: { id: number; method: string; arg?: unknown }) => {
  try {
    const core = await ready;
    let value: unknown;
    switch (msg.method) {
      case 'init':
        value = true;
        break;
      case 'step':
        value = await core.step(msg.arg as Parameters<TrainerCore['step']>[0]);
        break;
      case 'evaluate':
        value = await core.evaluate(msg.arg as Parameters<TrainerCore['evaluate']>[0]);
        break;
      case 'snapshot':
        value = core.snapshot();
        break;
      case 'restore':
        core.restore(msg.arg as Parameters<TrainerCore['restore']>[0]);
        value = true;
        break;
      case 'endProfiling':
        value = core.endProfiling();
        break;
      case 'release':
        await core.release();
        value = true;
        break;
      default:
        throw new Error(`unknown method ${msg.method}`);
    }
    port.postMessage({ id: msg.id, ok: true, value });
  } catch (err) {
    port.postMessage({ id: msg.id, ok: false, error: err instanceof Error ? err.message : String(err) });
  }
});
