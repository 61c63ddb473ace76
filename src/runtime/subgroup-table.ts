/**
 * Subgroup tables: per group of images (source, skin tone, lesion size, resolution, contrast, user
 * columns), n, Dice and HD95 with 95% bootstrap intervals, and the paired difference from a reference
 * model scored on the same images. A group with fewer than {@link MIN_GROUP_N} images says so instead of
 * showing numbers: a mean over a handful of images would read as a finding when it is noise.
 */
import { bootstrapCI, meanOf, pairedDifference, type PairedDifference } from './metrics.js';

/** Fewest images a group needs before its numbers are shown (and before it counts in decisions). */
export const MIN_GROUP_N = 10;

/** Grouping dimensions in table order; user columns from groups.csv follow. */
export const DIMENSIONS = ['source', 'skin tone (ITA)', 'lesion size', 'resolution', 'contrast'] as const;

export interface ScoredImage {
  id: string;
  dice: number;
  hd95: number;
  /** dimension -> group label, e.g. { 'skin tone (ITA)': 'light', 'lesion size': '<5%' }. */
  groups: Record<string, string>;
}

export interface MeanCi {
  mean: number;
  ci95: [number, number];
  /** Images whose value was finite. */
  n: number;
}

export interface GroupRow {
  dimension: string;
  group: string;
  n: number;
  /** false when n < minN: no numbers are given. */
  enough: boolean;
  dice?: MeanCi;
  hd95?: MeanCi;
  /** Paired candidate - reference over the images of this group the reference also scored. */
  vs_reference?: { dice: PairedDifference; hd95: PairedDifference };
}

function meanCi(values: number[]): MeanCi {
  const m = meanOf(values);
  return { mean: m.mean, ci95: bootstrapCI(values, { iterations: 2000, seed: 0 }), n: m.n };
}

/** Group labels in a stable order: the known bin orders first, then alphabetical, 'unknown' last. */
function orderGroups(labels: string[], order?: readonly string[]): string[] {
  const rank = (l: string): number => {
    if (l === 'unknown') return 1e9;
    const i = order ? order.findIndex((o) => l === o || l.startsWith(o)) : -1;
    return i < 0 ? 1e6 : i;
  };
  return [...new Set(labels)].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

const ORDERS: Record<string, readonly string[]> = {
  'skin tone (ITA)': ['very light', 'light', 'intermediate', 'tan', 'brown', 'dark'],
  'lesion size': ['<5%', '5-10%', '10-20%', '20-40%', '>40%'],
  resolution: ['<500 px', '500-999 px', '1000-1999 px', '>=2000 px'],
  contrast: ['low', 'mid', 'high'],
};

/**
 * The subgroup table of scored images. `reference` (image id -> its Dice and HD95 under the reference
 * model) adds paired differences; `dimensions` defaults to every dimension any image has.
 */
export function subgroupTable(
  images: readonly ScoredImage[],
  opts: { reference?: ReadonlyMap<string, { dice: number; hd95: number }>; minN?: number; dimensions?: readonly string[] } = {},
): GroupRow[] {
  const minN = opts.minN ?? MIN_GROUP_N;
  const dims = opts.dimensions ?? [...new Set(['all', ...DIMENSIONS.filter((d) => images.some((i) => d in i.groups)), ...images.flatMap((i) => Object.keys(i.groups))])];
  const rows: GroupRow[] = [];
  for (const dim of dims) {
    const labels = dim === 'all' ? ['all images'] : orderGroups(images.filter((i) => dim in i.groups).map((i) => i.groups[dim]!), ORDERS[dim]);
    for (const g of labels) {
      const members = dim === 'all' ? [...images] : images.filter((i) => i.groups[dim] === g);
      const row: GroupRow = { dimension: dim, group: g, n: members.length, enough: members.length >= minN };
      if (row.enough) {
        row.dice = meanCi(members.map((m) => m.dice));
        row.hd95 = meanCi(members.map((m) => m.hd95));
        if (opts.reference) {
          const paired = members.filter((m) => opts.reference!.has(m.id));
          if (paired.length >= minN) {
            const ref = paired.map((m) => opts.reference!.get(m.id)!);
            row.vs_reference = {
              dice: pairedDifference(paired.map((m) => m.dice), ref.map((r) => r.dice), { seed: 0 }),
              hd95: pairedDifference(paired.map((m) => m.hd95), ref.map((r) => r.hd95), { seed: 0, lowerIsBetter: true }),
            };
          }
        }
      }
      rows.push(row);
    }
  }
  return rows;
}

const f3 = (x: number): string => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');
const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const signed = (x: number, d = 3): string => (Number.isFinite(x) ? (x >= 0 ? '+' : '') + x.toFixed(d) : 'n/a');

/** The table as plain cells, one block per dimension: shared by the markdown and HTML renderers. */
export function subgroupBlocks(rows: readonly GroupRow[], opts: { minN?: number; referenceName?: string } = {}): { dimension: string; header: string[]; rows: string[][] }[] {
  const minN = opts.minN ?? MIN_GROUP_N;
  const withRef = rows.some((r) => r.vs_reference);
  const head = ['group', 'n', 'Dice [95% CI]', 'HD95 px [95% CI]'];
  if (withRef) head.push(`Dice minus ${opts.referenceName ?? 'reference'} [95% CI]`, `HD95 minus ${opts.referenceName ?? 'reference'} px [95% CI]`);
  const blocks: { dimension: string; header: string[]; rows: string[][] }[] = [];
  for (const dim of [...new Set(rows.map((r) => r.dimension))]) {
    const out: string[][] = [];
    for (const r of rows.filter((x) => x.dimension === dim)) {
      if (!r.enough) {
        out.push([r.group, String(r.n), `too few images (n < ${minN}) to say`, ...Array(head.length - 3).fill('')]);
        continue;
      }
      const cells = [r.group, String(r.n), `${f3(r.dice!.mean)} [${f3(r.dice!.ci95[0])}, ${f3(r.dice!.ci95[1])}]`, `${f1(r.hd95!.mean)} [${f1(r.hd95!.ci95[0])}, ${f1(r.hd95!.ci95[1])}]${r.hd95!.n < r.n ? ` (n=${r.hd95!.n})` : ''}`];
      if (withRef) {
        const v = r.vs_reference;
        cells.push(
          v ? `${signed(v.dice.mean)} [${signed(v.dice.ci95[0])}, ${signed(v.dice.ci95[1])}]` : 'not paired',
          v ? `${signed(v.hd95.mean, 1)} [${signed(v.hd95.ci95[0], 1)}, ${signed(v.hd95.ci95[1], 1)}]` : 'not paired',
        );
      }
      out.push(cells);
    }
    blocks.push({ dimension: dim === 'all' ? 'All images' : dim, header: head, rows: out });
  }
  return blocks;
}

/** The table as markdown, one section per dimension. */
export function subgroupMarkdown(rows: readonly GroupRow[], opts: { minN?: number; referenceName?: string } = {}): string {
  const out: string[] = [];
  for (const b of subgroupBlocks(rows, opts)) {
    out.push(`**${b.dimension}**`, '', `| ${b.header.join(' | ')} |`, `|${b.header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`);
    for (const r of b.rows) out.push(`| ${r.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`);
    out.push('');
  }
  return out.join('\n');
}
