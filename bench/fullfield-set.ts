/**
 * Builds the full-field PROXY evaluation set of issue 11 (never train on it): images that look more like
 * what a clinic takes than the 512 x 512 centre crops the bundled models were trained on.
 *
 *   - `ham10000`, `ph2`: the val and test images of ../shared/data at their native size and aspect ratio,
 *     copied byte for byte with their masks;
 *   - `isic2018-zoomout`: every ISIC 2018 test image shrunk so that its lesion covers a share drawn
 *     uniformly in [2%, 10%] of a 1024 x 768 (4:3) frame, the rest of the frame filled with skin mirrored
 *     from a band along the image's own border (src/distill/robust.ts zoomOut); a seeded share of them
 *     (default half) carry synthetic artefacts: calibration-sticker discs, ruler ticks, dark vignette corners,
 *     hair strokes (addArtefacts), with the artefact map saved so sticker and ruler false positives can be
 *     counted.
 *
 * It is a proxy: the fill is mirrored skin, the artefacts are drawn, and the lesions are the ISIC 2018
 * collection's; a real full-field collection (another ISIC archive, whole field of view) can still differ.
 *
 * Output (default /work/lesionfuse-runs/fullfield, outside the repo):
 *   MANIFEST.csv       id, source, split (test), image, mask, transform, width, height, lesion_share, scale,
 *                      artefacts (kinds), artefact_map, sha256_image, sha256_mask; `lesionfuse eval --data`
 *                      reads it as the lesionfuse-manifest layout
 *   artefacts.json     per image: the artefact records (kind, bounding box, pixels, sticker colour)
 *   <source>/images/, <source>/masks/, artefact-maps/<id>.png (codes: 1 sticker, 2 ruler, 3 vignette, 4 hair)
 * Every random choice comes from a PRNG seeded by (seed, image id), so the same seed gives the same bytes.
 *
 * Usage (after `npx tsc -p .`):
 *   node dist/bench/fullfield-set.js [--data /work/shared/data] [--out /work/lesionfuse-runs/fullfield]
 *     [--seed 11] [--artefact-share 0.5] [--thumbs reports/robustness/thumbs] [--overwrite]
 */
import { promises as fs } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { addArtefacts, lesionShare, zoomOut, type ArtefactRecord } from '../src/distill/robust.js';
import { mulberry32 } from '../src/runtime/metrics.js';
import { decodeImage, readMask, writeMaskPng } from '../src/runtime/image.js';
import { openDataset, type DatasetItem } from '../src/runtime/dataset.js';
import { writeFileAtomic, writeJsonAtomic } from '../src/util/atomic.js';
import { sha256, sha256File } from '../src/util/hash.js';
import { LesionFuseError } from '../src/util/errors.js';

export interface FullFieldOptions {
  data: string;
  out: string;
  seed?: number;
  /** Share of zoom-out images that get artefacts (default 0.5). */
  artefactShare?: number;
  frameWidth?: number;
  frameHeight?: number;
  /** Lesion share range of the zoom-out images (default [0.02, 0.10]). */
  shareRange?: [number, number];
  /** Write up to 6 small thumbnails (image with the lesion outline in green, artefacts in magenta) here. */
  thumbs?: string;
  /** Replace an existing output folder's files (refused otherwise). */
  overwrite?: boolean;
  log?: (s: string) => void;
}

export interface FullFieldRow {
  id: string;
  source: string;
  transform: string;
  image: string;
  mask: string;
  width: number;
  height: number;
  lesion_share: number;
  scale: number;
  artefacts: string;
  artefact_map: string;
}

/** FNV-1a of a string mixed with the seed: each image's own PRNG stream. */
function streamSeed(seed: number, id: string): number {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

function csvField(v: string | number): string {
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

async function jpegBytes(data: Uint8Array, width: number, height: number, quality = 95): Promise<Buffer> {
  return sharp(Buffer.from(data.buffer, data.byteOffset, data.byteLength), { raw: { width, height, channels: 3 } })
    .jpeg({ quality, chromaSubsampling: '4:4:4', mozjpeg: false })
    .toBuffer();
}

async function grayPng(data: Uint8Array, width: number, height: number): Promise<Buffer> {
  return sharp(Buffer.from(data.buffer, data.byteOffset, data.byteLength), { raw: { width, height, channels: 1 } })
    .toColourspace('b-w')
    .png({ compressionLevel: 9 })
    .toBuffer();
}

/** A 256-px-wide thumbnail: the image, the lesion's outline in green and the artefacts' in magenta. */
async function thumbnail(img: Uint8Array, mask: Uint8Array, art: Uint8Array | null, W: number, H: number): Promise<Buffer> {
  const d = new Uint8Array(img);
  const edge = (m: Uint8Array, i: number, x: number, y: number): boolean =>
    !!m[i] && (x === 0 || y === 0 || x === W - 1 || y === H - 1 || !m[i - 1] || !m[i + 1] || !m[i - W] || !m[i + W]);
  const t = Math.max(1, Math.round(W / 256));
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const i = y * W + x;
      let c: number[] | null = null;
      if (edge(mask, i, x, y)) c = [0, 255, 0];
      else if (art) {
        const a = art[i]! === 1 || art[i]! === 2 ? 1 : 0;
        const onEdge = a && (x === 0 || y === 0 || x === W - 1 || y === H - 1 || !(art[i - 1] === 1 || art[i - 1] === 2) || !(art[i + 1] === 1 || art[i + 1] === 2) || !(art[i - W] === 1 || art[i - W] === 2) || !(art[i + W] === 1 || art[i + W] === 2));
        if (onEdge) c = [255, 0, 255];
      }
      if (!c) continue;
      for (let dy = 0; dy < t; dy++) for (let dx = 0; dx < t; dx++) {
        const yy = Math.min(H - 1, y + dy);
        const xx = Math.min(W - 1, x + dx);
        d.set(c, (yy * W + xx) * 3);
      }
    }
  }
  return sharp(Buffer.from(d.buffer), { raw: { width: W, height: H, channels: 3 } })
    .resize({ width: 256, kernel: 'lanczos3' })
    .jpeg({ quality: 80, mozjpeg: false })
    .toBuffer();
}

/** Build the set; returns the rows and the manifest's SHA-256. */
export async function buildFullFieldSet(o: FullFieldOptions): Promise<{ rows: FullFieldRow[]; manifestSha256: string }> {
  const log = o.log ?? (() => {});
  const seed = o.seed ?? 11;
  const FW = o.frameWidth ?? 1024;
  const FH = o.frameHeight ?? 768;
  const [s0, s1] = o.shareRange ?? [0.02, 0.1];
  const artShare = o.artefactShare ?? 0.5;
  const out = resolve(o.out);
  try {
    const entries = await fs.readdir(out);
    if (entries.length > 0 && !o.overwrite) {
      throw new LesionFuseError('output folder is not empty; choose another or pass --overwrite', { subject: out });
    }
  } catch (e) {
    if (e instanceof LesionFuseError) throw e;
  }
  const pick = async (split: 'val' | 'test'): Promise<DatasetItem[]> => (await openDataset(o.data, { split })).items;
  const all = [...(await pick('val')), ...(await pick('test'))];
  const native = all.filter((i) => i.source === 'ham10000' || i.source === 'ph2').sort((a, b) => (a.source + a.id).localeCompare(b.source + b.id));
  const isicTest = (await pick('test')).filter((i) => i.source === 'isic2018').sort((a, b) => a.id.localeCompare(b.id));
  for (const d of ['ham10000', 'ph2', 'isic2018-zoomout']) {
    await fs.mkdir(join(out, d, 'images'), { recursive: true });
    await fs.mkdir(join(out, d, 'masks'), { recursive: true });
  }
  await fs.mkdir(join(out, 'artefact-maps'), { recursive: true });
  if (o.thumbs) await fs.mkdir(o.thumbs, { recursive: true });
  const rows: FullFieldRow[] = [];
  const shas: string[][] = [];
  const artefactRecords: Record<string, ArtefactRecord[]> = {};
  let thumbs = 0;

  for (const it of native) {
    const ext = it.imagePath.slice(it.imagePath.lastIndexOf('.'));
    const image = `${it.source}/images/${it.id}${ext}`;
    const mask = `${it.source}/masks/${it.id}_segmentation.png`;
    const m = await readMask(it.maskPath);
    await writeFileAtomic(join(out, image), await fs.readFile(it.imagePath));
    await writeMaskPng(join(out, mask), m);
    rows.push({ id: it.id, source: it.source, transform: 'native', image, mask, width: m.width, height: m.height, lesion_share: lesionShare(m.data), scale: 1, artefacts: '', artefact_map: '' });
  }
  log(`native: ${native.length} images`);

  for (const it of isicTest) {
    const rand = mulberry32(streamSeed(seed, it.id));
    const img = await decodeImage(it.imagePath);
    const m = await readMask(it.maskPath, { expectSize: { width: img.width, height: img.height } });
    const target = s0 + (s1 - s0) * rand();
    const z = zoomOut({ image: img, mask: m.data }, { frameWidth: FW, frameHeight: FH, targetShare: target, rand });
    let data = z.image.data;
    let kinds = '';
    let artMap: Uint8Array | null = null;
    const withArt = rand() < artShare;
    // (a lesion cut by the source's centre crop touches the border and is mirrored into the fill with its
    // mask, like a lesion that goes on beyond the crop: such images end above the target share, and the
    // manifest's lesion_share is the share actually reached)
    let transform = 'zoomout';
    if (withArt) {
      const a = addArtefacts(z, { rand, sticker: 0.75, ruler: 0.5, vignette: 0.4, hair: 0.4 });
      data = a.image.data;
      artMap = a.artefactMap;
      kinds = [...new Set(a.artefacts.map((r) => r.kind))].join(';');
      if (kinds) {
        artefactRecords[it.id] = a.artefacts;
        transform = 'zoomout+artefacts';
      } else artMap = null; // drawn with artefacts, but none found room or was chosen
    }
    const image = `isic2018-zoomout/images/${it.id}.jpg`;
    const mask = `isic2018-zoomout/masks/${it.id}_segmentation.png`;
    await writeFileAtomic(join(out, image), await jpegBytes(data, FW, FH));
    await writeMaskPng(join(out, mask), { width: FW, height: FH, data: z.mask });
    let artefactMap = '';
    if (artMap) {
      artefactMap = `artefact-maps/${it.id}.png`;
      await writeFileAtomic(join(out, artefactMap), await grayPng(artMap, FW, FH));
    }
    rows.push({ id: it.id, source: 'isic2018-zoomout', transform, image, mask, width: FW, height: FH, lesion_share: z.share, scale: z.scale, artefacts: kinds, artefact_map: artefactMap });
    if (o.thumbs && artMap && thumbs < 6 && /sticker/.test(kinds)) {
      await writeFileAtomic(join(o.thumbs, `${it.id}.jpg`), await thumbnail(data, z.mask, artMap, FW, FH));
      thumbs++;
    }
  }
  log(`zoom-out: ${isicTest.length} images, ${Object.keys(artefactRecords).length} with artefacts`);

  const header = ['id', 'source', 'split', 'image', 'mask', 'transform', 'width', 'height', 'lesion_share', 'scale', 'artefacts', 'artefact_map', 'sha256_image', 'sha256_mask'];
  const lines = [header.join(',')];
  for (const r of rows) {
    const si = await sha256File(join(out, r.image));
    const sm = await sha256File(join(out, r.mask));
    shas.push([si, sm]);
    lines.push(
      [r.id, r.source, 'test', r.image, r.mask, r.transform, r.width, r.height, r.lesion_share.toFixed(6), r.scale.toFixed(6), r.artefacts, r.artefact_map, si, sm]
        .map(csvField)
        .join(','),
    );
  }
  const manifest = lines.join('\n') + '\n';
  await writeFileAtomic(join(out, 'MANIFEST.csv'), manifest);
  await writeJsonAtomic(join(out, 'artefacts.json'), { seed, frame: [FW, FH], share_range: [s0, s1], artefact_share: artShare, artefacts: artefactRecords });
  return { rows, manifestSha256: sha256(manifest) };
}

function arg(name: string, argv: string[]): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  const opts: FullFieldOptions = {
    data: arg('data', argv) ?? '/work/shared/data',
    out: arg('out', argv) ?? '/work/lesionfuse-runs/fullfield',
    seed: Number(arg('seed', argv) ?? 11),
    artefactShare: Number(arg('artefact-share', argv) ?? 0.5),
    thumbs: arg('thumbs', argv),
    overwrite: argv.includes('--overwrite'),
    log: (s) => process.stderr.write(`${s}\n`),
  };
  buildFullFieldSet(opts)
    .then(({ rows, manifestSha256 }) => {
      const bins = [0, 0.05, 0.1, 0.2, 0.4, 1.01];
      const counts = bins.slice(1).map((hi, k) => rows.filter((r) => r.lesion_share >= bins[k]! && r.lesion_share < hi).length);
      process.stdout.write(
        `${JSON.stringify({ out: resolve(opts.out), seed: opts.seed, images: rows.length, per_source: Object.fromEntries([...new Set(rows.map((r) => r.source))].map((s) => [s, rows.filter((r) => r.source === s).length])), with_artefacts: rows.filter((r) => r.artefacts).length, lesion_share_bins: { '<5%': counts[0], '5-10%': counts[1], '10-20%': counts[2], '20-40%': counts[3], '>40%': counts[4] }, manifest_sha256: manifestSha256 }, null, 2)}\n`,
      );
    })
    .catch((e: unknown) => {
      process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    });
}
