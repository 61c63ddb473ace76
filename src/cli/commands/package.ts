/**
 * `lesionfuse package MODEL --profile P --out DIR [--tar]` and `lesionfuse package verify DIR|FILE.tar.gz`:
 * a thin layer over packageBundle / verifyBundle (src/package).
 */
import type { CommandModule } from 'yargs';
import { packageBundle, verifyBundle } from '../../package/bundle.js';
import { packageWebBundle } from '../../package/web.js';
import { LesionFuseError } from '../../util/errors.js';
import { log } from '../../util/log.js';

interface Args {
  model: string;
  bundle?: string;
  profile?: string;
  out?: string;
  tar: boolean;
  sample?: string;
  name?: string;
  dice?: number;
  'latency-ms'?: number;
  json: boolean;
  force: boolean;
  sign?: string;
  pubkey?: string;
  target: 'node' | 'web';
  webgpu: boolean;
}

export const command: CommandModule<object, Args> = {
  command: 'package <model> [bundle]',
  describe: 'package a model as an edge bundle (folder + optional .tar.gz), or `package verify BUNDLE` to check one end to end',
  builder: (y) =>
    y
      .positional('model', { type: 'string', demandOption: true, describe: "the model (path or default:student), or 'verify' to check a bundle" })
      .positional('bundle', { type: 'string', describe: 'with verify: the bundle folder or its .tar.gz' })
      .option('profile', { type: 'string', describe: "the profile the model is tuned for (recorded; runs the sample; default cpu-2t); with verify: the profile to run the sample on (default: the bundle's, or cpu-1t when that cannot run here)" })

      .option('target', { choices: ['node', 'web'] as const, default: 'node' as const, describe: 'node: a bundle for Node.js/devices; web: a static page that segments in the browser with onnxruntime-web, offline' })
      .option('webgpu', { type: 'boolean', default: true, describe: "with --target web: include onnxruntime-web's WebGPU build (--no-webgpu: wasm only, about 27 MB smaller)" })
      .option('out', { type: 'string', describe: 'bundle folder to create (required when packaging)' })
      .option('tar', { type: 'boolean', default: false, describe: 'also write <out>.tar.gz' })
      .option('sample', { type: 'string', describe: 'sample image to bundle with its recorded output (default: the first bundled sample)' })
      .option('name', { type: 'string', describe: "name in the manifest (default: the model's lesionfuse.model_name or file stem)" })
      .option('dice', { type: 'number', describe: 'measured Dice to record in the manifest and card' })
      .option('latency-ms', { type: 'number', describe: 'measured median latency (ms) on the profile, to record' })
      .option('json', { type: 'boolean', default: false, describe: 'print the result as JSON on stdout' })
      .option('sign', { type: 'string', describe: 'sign the bundle with this Ed25519 private key (PEM, from `lesionfuse keygen`)' })
      .option('pubkey', { type: 'string', describe: "with verify: the signer's public key (PEM); unsigned bundles and other signers are refused" })
      .option('force', { type: 'boolean', default: false, describe: 'replace --out even when it holds files that are not a LesionFuse bundle (never the folder of the model or sample)' })
      .example('$0 package default:student --profile cpu-2t --out student-bundle --tar', 'bundle the bundled student, with a tarball')
      .example('$0 package verify student-bundle.tar.gz', 'check checksums, load the model, re-run the sample')
      .example('$0 package default:student --out b --sign clinic.pem', 'a signed bundle (keys from `lesionfuse keygen --out clinic`)')
      .example('$0 package verify b --pubkey clinic.pub.pem', 'refuse the bundle unless clinic.pem signed it and nothing changed since')
      .example('$0 package default:student --target web --out student-web', 'a web page bundle: serve it with `node tools/serve.mjs`, test it with `npm test`'),
  handler: async (a) => {
    if (a.model === 'verify') {
      if (!a.bundle) throw new LesionFuseError('package verify needs a bundle folder or .tar.gz');
      const v = await verifyBundle(a.bundle, { ...(a.profile ? { profile: a.profile } : {}), ...(a.pubkey ? { pubkey: a.pubkey } : {}) });
      if (a.json) process.stdout.write(JSON.stringify(v, null, 2) + '\n');
      else {
        process.stdout.write(`bundle ${v.bundle} (${v.name}): OK\n`);
        for (const c of v.checks) process.stdout.write(`  ok  ${c}\n`);
      }
      return;
    }
    if (a.pubkey) throw new LesionFuseError('--pubkey is for `package verify`; to sign a bundle give --sign PRIVATE_KEY', { subject: '--pubkey' });
    if (a.bundle) throw new LesionFuseError(`unexpected argument '${a.bundle}' (to check a bundle: lesionfuse package verify BUNDLE)`);
    if (!a.out) throw new LesionFuseError('--out DIR is required: the bundle folder to create', { subject: '--out' });
    if (a.target === 'web') {
      for (const [flag, given] of [['--sign', a.sign !== undefined], ['--tar', a.tar], ['--profile', a.profile !== undefined], ['--dice', a.dice !== undefined], ['--latency-ms', a['latency-ms'] !== undefined]] as const) {
        if (given) throw new LesionFuseError(`${flag} is for node bundles; a web bundle records its own browser check (see its README)`, { subject: flag });
      }
      const w = await packageWebBundle({ model: a.model, out: a.out, sample: a.sample, name: a.name, force: a.force, webgpu: a.webgpu });
      if (a.json) process.stdout.write(JSON.stringify({ dir: w.dir, manifest: w.manifest }, null, 2) + '\n');
      else {
        log.info(`web bundle written: ${w.dir} (serve it: node ${w.dir}/tools/serve.mjs; test it: cd ${w.dir} && npm install && npm test)`);
        process.stdout.write(`${w.dir}\n`);
      }
      return;
    }
    const metrics = a.dice !== undefined || a['latency-ms'] !== undefined ? { dice: a.dice, latencyMedianMs: a['latency-ms'] } : undefined;
    const r = await packageBundle({ model: a.model, profile: a.profile ?? 'cpu-2t', out: a.out, tar: a.tar, sample: a.sample, name: a.name, metrics, force: a.force, sign: a.sign });
    if (a.json) process.stdout.write(JSON.stringify({ dir: r.dir, tarball: r.tarball, manifest: r.manifest }, null, 2) + '\n');
    else {
      log.info(`bundle written: ${r.dir}${r.tarball ? ` and ${r.tarball}` : ''}`);
      process.stdout.write(`${r.dir}\n${r.tarball ? r.tarball + '\n' : ''}`);
    }
  },
};
