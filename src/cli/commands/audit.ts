import type { CommandModule } from 'yargs';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, resolve } from 'node:path';
import { LesionFuseError } from '../../util/errors.js';
import { writeJsonAtomic } from '../../util/atomic.js';
import { log } from '../../util/log.js';
import { resolveModelPath } from '../../models.js';
import { IMAGE_EXTENSIONS } from '../../runtime/image.js';
import { openDataset, walk, type Split } from '../../runtime/dataset.js';
import { auditMarkdown, compareProfiles, profileImages, readProfile, writeAudit } from '../../runtime/audit.js';

interface Args {
  model: string;
  images?: string[];
  data?: string;
  split?: string;
  sources?: string;
  'reference-profile'?: string;
  'write-profile'?: string;
  description?: string;
  out?: string;
  profile: string;
  threads?: number;
  json: boolean;
}

/** A model path, or the model inside a bundle folder (manifest.json names it). */
export function auditModelPath(spec: string): { model: string; dir: string } {
  if (existsSync(spec) && statSync(spec).isDirectory()) {
    const mf = join(spec, 'manifest.json');
    if (!existsSync(mf)) throw new LesionFuseError('a folder given as the model must be a bundle (with manifest.json)', { subject: spec });
    let file: string | undefined;
    try {
      file = (JSON.parse(readFileSync(mf, 'utf8')) as { model?: { file?: string } }).model?.file;
    } catch {
      throw new LesionFuseError('manifest.json is not valid JSON', { subject: mf });
    }
    if (!file) throw new LesionFuseError('manifest.json names no model file', { subject: mf });
    return { model: join(spec, file), dir: resolve(spec) };
  }
  const model = resolveModelPath(spec);
  return { model, dir: dirname(model) };
}

async function imageList(a: Args): Promise<{ paths: string[]; description: string }> {
  if (a.data) {
    const ds = await openDataset(a.data, { split: a.split as Split | undefined, sources: a.sources ? a.sources.split(',').map((s) => s.trim()).filter(Boolean) : undefined });
    const srcs = [...new Set(ds.items.map((i) => i.source))].join(' + ');
    return { paths: ds.items.map((i) => i.imagePath), description: `${srcs} ${a.split ?? 'test'} split, ${ds.items.length} images` };
  }
  const paths: string[] = [];
  for (const d of a.images ?? []) {
    if (!existsSync(d)) throw new LesionFuseError('no such folder', { subject: d });
    if (!statSync(d).isDirectory()) {
      paths.push(d);
      continue;
    }
    paths.push(...(await walk(d, 6)).filter((p) => (IMAGE_EXTENSIONS as readonly string[]).includes(extname(p).toLowerCase()) && !/(_segmentation|_mask|_lesion)\.[^.]+$/i.test(p)));
  }
  return { paths, description: `${(a.images ?? []).join(' + ')}, ${paths.length} images` };
}

/** `lesionfuse audit MODEL --images DIR`: compare a site's unlabelled images with the model's validation data. */
export const command: CommandModule<object, Args> = {
  command: 'audit <model>',
  describe: "check whether a site's own images look like the data the model was validated on (no masks needed)",
  builder: (y) =>
    y
      .positional('model', { type: 'string', demandOption: true, describe: 'an ONNX file, default:student / default:teacher, or a bundle folder' })
      .option('images', { type: 'string', array: true, describe: 'folder(s) of images (searched 6 levels deep; mask-like names skipped)' })
      .option('data', { type: 'string', describe: 'or a dataset folder (its images only; masks are not used)' })
      .option('split', { type: 'string', choices: ['train', 'val', 'test', 'all'], describe: 'with --data' })
      .option('sources', { type: 'string', describe: 'with --data: comma-separated sources to keep' })
      .option('reference-profile', { type: 'string', describe: "the validation profile (default: data_profile.json beside the model or in the bundle)" })
      .option('write-profile', { type: 'string', describe: 'write the profile of these images to this file (e.g. data_profile.json) instead of comparing' })
      .option('description', { type: 'string', describe: 'what the images are, in words, for the profile' })
      .option('out', { type: 'string', describe: 'folder for audit.json, audit.md and audit_images.csv' })
      .option('profile', { type: 'string', default: 'cpu-1t', describe: 'runtime profile name or .json path' })
      .option('threads', { type: 'number', describe: "intra-op threads (overrides the profile's)" })
      .option('json', { type: 'boolean', default: false, describe: 'print the findings as JSON' })
      .example('$0 audit default:student --images clinic_photos/ --out audit/', "compare a clinic's images with the validation data")
      .example('$0 audit default:student --data ../shared/data --split val --sources isic2018 --write-profile models/student/data_profile.json', 'make a data profile'),
  handler: async (a) => {
    if (!a.images?.length && !a.data) throw new LesionFuseError('give the images with --images DIR (or a dataset with --data DIR)', { subject: '--images' });
    const { model, dir } = auditModelPath(a.model);
    const { paths, description } = await imageList(a);
    if (!paths.length) throw new LesionFuseError('no image files found', { subject: (a.images ?? [a.data!]).join(', ') });
    const refPath = a['reference-profile'] ?? join(dir, 'data_profile.json');
    if (!a['write-profile'] && !existsSync(refPath)) {
      throw new LesionFuseError(`no data profile to compare with (looked for ${refPath}); give one with --reference-profile, or make one with --write-profile`, { subject: a.model });
    }
    const { profile, images, failures } = await profileImages(model, paths, { profile: a.profile, threads: a.threads, description: a.description ?? description });
    for (const f of failures) log.error(`${f.path}: ${f.reason}`);
    if (a['write-profile']) {
      await writeJsonAtomic(a['write-profile'], JSON.parse(JSON.stringify(profile, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v))));
      log.info(`wrote ${a['write-profile']} (${profile.n_images} images)`);
      if (failures.length) process.exitCode = 3;
      return;
    }
    const ref = await readProfile(refPath);
    const findings = compareProfiles(profile, ref);
    if (a.out) {
      await writeAudit(a.out, profile, ref, findings, images, failures);
      log.info(`wrote ${a.out}/audit.json, audit.md and audit_images.csv`);
    }
    if (a.json) process.stdout.write(JSON.stringify({ site: profile, findings }, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2) + '\n');
    else process.stdout.write(auditMarkdown(profile, ref, findings));
    for (const f of findings.filter((x) => x.warn)) log.warn(f.message);
    if (failures.length) process.exitCode = 3;
  },
};
