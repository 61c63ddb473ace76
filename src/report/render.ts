/**
 * Turn a {@link TradeoffReport} into files: report.json (for machines), report.md, one SVG plot per
 * profile, and index.html that puts tables, plots and overlays on one page.
 */
import { cpus, totalmem, platform, release, arch } from 'node:os';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic.js';
import { VERSION } from '../version.js';
import { paretoFront } from './pareto.js';
import { renderTradeoffSvg, xmlEscape, type PlotPoint } from './svg.js';
import type { CandidateSummary, Environment, ProfileSection, TradeoffReport } from './types.js';
import { plainSummary } from './plain.js';
import { subgroupBlocks } from '../runtime/subgroup-table.js';

const sgn = (x: number): string => (x >= 0 ? '+' : '') + x.toFixed(4);

/** The decision rows: candidate, verdict, Dice loss [CI], worst group, groups too small. */
export function decisionRows(report: TradeoffReport): string[][] {
  return report.candidates.filter((c) => c.decision).map((c) => {
    const d = c.decision!;
    const w = d.worstGroup;
    return [c.label, d.verdict, `${sgn(d.meanLoss)} [${sgn(d.lossCi95[0])}, ${sgn(d.lossCi95[1])}] (n=${d.n})`,
      w ? `${w.dimension}: ${w.group} (n=${w.n}) ${sgn(w.meanLoss)} [${sgn(w.lossCi95[0])}, ${sgn(w.lossCi95[1])}]` : 'none with enough images',
      d.tooSmall.length ? d.tooSmall.join('; ') : 'none'];
  });
}
const DECISION_HEADER = ['candidate', 'verdict', 'Dice loss vs reference [95% CI]', 'worst group with enough images', 'groups too small to check'];

/** The machine and versions, for the report header (docs/benchmarks.md: numbers without them mean little). */
export function currentEnvironment(): Environment {
  let ort = 'unknown';
  try {
    const require = createRequire(import.meta.url);
    const pkgPath = require.resolve('onnxruntime-node/package.json');
    ort = (JSON.parse(readFileSync(pkgPath, 'utf8')) as { version: string }).version;
  } catch {
    // Left as 'unknown': the report still renders.
  }
  const c = cpus();
  return {
    cpu: c[0]?.model.trim() ?? 'unknown',
    cores: c.length,
    platform: `${platform()} ${release()} ${arch()}`,
    totalMemoryGb: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    onnxruntime: ort,
    sdk: VERSION,
  };
}

/** The ids on the Pareto front of one profile: measured candidates with a Dice, fastest first. */
export function paretoIds(candidates: readonly CandidateSummary[], outcomes: ProfileSection['outcomes']): string[] {
  return paretoFront(plotPoints(candidates, outcomes)).map((p) => p.id);
}

function plotPoints(candidates: readonly CandidateSummary[], outcomes: ProfileSection['outcomes']): PlotPoint[] {
  const pts: PlotPoint[] = [];
  for (const c of candidates) {
    const o = outcomes[c.id];
    if (!o || o.status !== 'measured' || !c.accuracy) continue;
    pts.push({ id: c.id, label: c.label, latencyMs: o.speed.latencyMedianMs, dice: c.accuracy.dice, diceCi95: c.accuracy.diceCi95 });
  }
  return pts;
}

/** The SVG plot of one profile. */
export function renderProfilePlot(report: TradeoffReport, section: ProfileSection): string {
  return renderTradeoffSvg(plotPoints(report.candidates, section.outcomes), { title: `Latency vs Dice: profile ${section.profile}` });
}

const fmt = {
  num(v: number | null | undefined, digits = 3): string {
    return v === null || v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(digits);
  },
  ms(v: number | null | undefined): string {
    if (v === null || v === undefined || !Number.isFinite(v)) return 'n/a';
    return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  },
  mb(bytes: number | null): string {
    return bytes === null || !Number.isFinite(bytes) ? 'n/a' : (bytes / 2 ** 20).toFixed(2);
  },
  count(v: number | null): string {
    if (v === null || !Number.isFinite(v)) return 'n/a';
    if (v >= 1e9) return (v / 1e9).toFixed(2) + 'G';
    if (v >= 1e6) return (v / 1e6).toFixed(2) + 'M';
    if (v >= 1e3) return (v / 1e3).toFixed(1) + 'K';
    return String(v);
  },
};

const HEADER = ['candidate', 'precision', 'Dice [95% CI]', 'IoU', 'thr. Jaccard', 'HD95 (px)', 'latency p50 (ms)', 'p10-p90 (ms)',
  'throughput (img/s)', 'peak RSS (MB)', 'size (MB)', 'params', 'Pareto'];

/** The table rows of one profile as plain strings (shared by Markdown and HTML). */
export function profileRows(report: TradeoffReport, section: ProfileSection): string[][] {
  const front = new Set(section.pareto);
  return report.candidates.map((c) => {
    const a = c.accuracy;
    const o = section.outcomes[c.id];
    // Long reasons live in the 'Failed steps' list; the table keeps the gist (text before the first colon).
    const gist = (why: string) => why.split(':')[0]!.trim();
    const dice = a ? `${fmt.num(a.dice)} [${fmt.num(a.diceCi95[0])}, ${fmt.num(a.diceCi95[1])}]` : `n/a (${gist(c.accuracyError ?? 'not evaluated')})`;
    let speed: string[];
    if (!o) speed = ['not run', '', '', '', ''];
    else if (o.status === 'measured') {
      const s = o.speed;
      speed = [fmt.ms(s.latencyMedianMs), s.latencyP10Ms !== undefined ? `${fmt.ms(s.latencyP10Ms)}-${fmt.ms(s.latencyP90Ms)}` : fmt.ms(s.latencyP90Ms),
        s.throughputImagesPerS === null ? 'n/a' : `${fmt.num(s.throughputImagesPerS, 1)} (batch ${s.throughputBatch})`,
        s.peakRssMb === null ? 'n/a' : fmt.num(s.peakRssMb, 0)];
    } else speed = [o.status === 'skipped' ? `skipped: ${o.reason}` : `failed (${gist(o.reason)})`, '', '', ''];
    return [c.label, c.precision, dice, a ? fmt.num(a.iou) : 'n/a', a ? fmt.num(a.thresholdedJaccard) : 'n/a',
      a ? fmt.num(a.hd95, 1) : 'n/a', ...speed.slice(0, 4), fmt.mb(c.fileSizeBytes), fmt.count(c.parameters), front.has(c.id) ? 'yes' : ''];
  });
}

function mdCell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** report.md */
export function renderMarkdown(report: TradeoffReport): string {
  const L: string[] = [];
  const e = report.environment;
  L.push(`# ${report.title}`, '');
  const plain = plainSummary(report);
  if (plain) {
    L.push('## What to deploy', '', `**${plain.headline}**`, '');
    for (const d of plain.details) L.push(d, '');
    L.push('Words used here:', '');
    for (const [t, d] of plain.glossary) L.push(`- **${t}**: ${d}`);
    L.push('', '## Engineering details', '');
  }
  L.push(`Made ${report.createdAt} by \`${report.command}\`.`, '');
  L.push(`Machine: ${e.cpu}, ${e.cores} cores, ${e.totalMemoryGb} GB, ${e.platform}. Node.js ${e.node}, onnxruntime-node ${e.onnxruntime}, LesionFuse ${e.sdk}.`, '');
  if (report.notes.length) {
    L.push('Read this first:', '');
    for (const n of report.notes) L.push(`- ${n}`);
    L.push('');
  }
  const datasets = [...new Set(report.candidates.map((c) => c.accuracy?.dataset).filter((d): d is string => Boolean(d)))];
  if (datasets.length) L.push(`Accuracy: ${datasets.join('; ')}; per image at the original resolution, then averaged; Dice interval: 95% bootstrap.`, '');
  L.push('## Candidates', '');
  L.push('| id | family | how it was made | file |', '|---|---|---|---|');
  for (const c of report.candidates) L.push(`| ${mdCell(c.id)} | ${mdCell(c.family)} | ${mdCell(c.derivation.join(' -> ') || 'as given')} | ${mdCell(c.modelPath)} |`);
  L.push('');
  for (const s of report.profiles) {
    L.push(`## Profile ${s.profile}`, '');
    if (s.description) L.push(s.description, '');
    if (s.skippedReason) {
      L.push(`Skipped: ${s.skippedReason}`, '');
      continue;
    }
    L.push(`| ${HEADER.join(' | ')} |`, `|${HEADER.map(() => '---').join('|')}|`);
    for (const r of profileRows(report, s)) L.push(`| ${r.map(mdCell).join(' | ')} |`);
    L.push('');
    if (s.plot) L.push(`![latency vs Dice on ${s.profile}](${s.plot})`, '');
    L.push(`Pareto front (fastest first): ${s.pareto.length ? s.pareto.join(', ') : 'none (no candidate has both a latency and a Dice)'}.`, '');
  }
  if (report.selection) {
    L.push('## Chosen for packaging', '');
    L.push(`Rule: ${report.selection.rule}. Chosen: ${report.selection.chosen ?? 'none'}${report.selection.packaged && report.selection.packaged !== report.selection.chosen ? ` (packaged instead: ${report.selection.packaged}, the reference)` : ''}. ${report.selection.reason}`, '');
  }
  const dec = decisionRows(report);
  if (dec.length) {
    L.push(`## Decisions against ${report.selection?.reference ?? 'the reference'}`, '');
    L.push(`| ${DECISION_HEADER.join(' | ')} |`, `|${DECISION_HEADER.map(() => '---').join('|')}|`);
    for (const r of dec) L.push(`| ${r.map(mdCell).join(' | ')} |`);
    L.push('');
  }
  const withGroups = report.candidates.filter((c) => c.subgroups?.length);
  if (withGroups.length) {
    L.push('## Subgroups', '', 'Per group of test images (groups from each image and its truth mask; too-small groups show no numbers). Differences are paired, image by image, against the reference.', '');
    for (const c of withGroups) {
      L.push(`### ${c.label}`, '');
      for (const b of subgroupBlocks(c.subgroups!, { minN: c.decision?.minGroupN, referenceName: report.selection?.reference ?? 'reference' })) {
        L.push(`**${b.dimension}**`, '', `| ${b.header.join(' | ')} |`, `|${b.header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`);
        for (const r of b.rows) L.push(`| ${r.map(mdCell).join(' | ')} |`);
        L.push('');
      }
    }
  }
  if (report.failures.length) {
    L.push('## Failed steps', '');
    for (const f of report.failures) L.push(`- ${mdCell(f.step)}: ${mdCell(f.reason)}`);
    L.push('');
  }
  return L.join('\n');
}

function htmlEscape(s: string): string {
  return xmlEscape(s);
}

/** index.html: tables, the inline plots and the overlays on one self-contained page (images are relative files). */
export function renderHtml(report: TradeoffReport, plots: Record<string, string>): string {
  const e = report.environment;
  const H: string[] = [];
  H.push('<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">', `<title>${htmlEscape(report.title)}</title>`);
  H.push('<style>body{font-family:Helvetica,Arial,sans-serif;margin:24px;max-width:1200px;color:#222}' +
    'table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}' +
    'th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}tr.pareto td{background:#fff4e6}' +
    '.note{color:#8a3b00}.overlays img{height:140px;margin:4px;border:1px solid #ccc}code{background:#f5f5f5;padding:1px 4px}</style>');
  H.push('</head><body>');
  H.push(`<h1>${htmlEscape(report.title)}</h1>`);
  const plain = plainSummary(report);
  if (plain) {
    H.push('<h2>What to deploy</h2>', `<p><b>${htmlEscape(plain.headline)}</b></p>`);
    for (const d of plain.details) H.push(`<p>${htmlEscape(d)}</p>`);
    H.push('<details open><summary>Words used here</summary><dl>' + plain.glossary.map(([t, d]) => `<dt><b>${htmlEscape(t)}</b></dt><dd>${htmlEscape(d)}</dd>`).join('') + '</dl></details>');
    H.push('<h2>Engineering details</h2>');
  }
  H.push(`<p>Made ${htmlEscape(report.createdAt)} by <code>${htmlEscape(report.command)}</code>.<br>` +
    `Machine: ${htmlEscape(`${e.cpu}, ${e.cores} cores, ${e.totalMemoryGb} GB, ${e.platform}`)}; Node.js ${htmlEscape(e.node)}, ` +
    `onnxruntime-node ${htmlEscape(e.onnxruntime)}, LesionFuse ${htmlEscape(e.sdk)}. Machine-readable: <a href="report.json">report.json</a>, ` +
    `<a href="report.md">report.md</a>.</p>`);
  if (report.notes.length) H.push(`<ul>${report.notes.map((n) => `<li class="note">${htmlEscape(n)}</li>`).join('')}</ul>`);
  for (const s of report.profiles) {
    H.push(`<h2>Profile ${htmlEscape(s.profile)}</h2>`);
    if (s.description) H.push(`<p>${htmlEscape(s.description)}</p>`);
    if (s.skippedReason) {
      H.push(`<p class="note">Skipped: ${htmlEscape(s.skippedReason)}</p>`);
      continue;
    }
    const front = new Set(s.pareto);
    H.push('<table><thead><tr>' + HEADER.map((h) => `<th>${htmlEscape(h)}</th>`).join('') + '</tr></thead><tbody>');
    profileRows(report, s).forEach((r, i) => {
      const id = report.candidates[i]!.id;
      H.push(`<tr${front.has(id) ? ' class="pareto"' : ''}>` + r.map((c) => `<td>${htmlEscape(c)}</td>`).join('') + '</tr>');
    });
    H.push('</tbody></table>');
    const svg = plots[s.profile];
    if (svg) H.push(`<figure>${svg.replace(/^<\?xml[^>]*>\s*/, '')}</figure>`);
  }
  const withOverlays = report.candidates.filter((c) => c.overlays.length > 0);
  if (withOverlays.length) {
    H.push('<h2>Overlays</h2><p>Predicted lesion outline over a few images, per candidate.</p>');
    for (const c of withOverlays) {
      H.push(`<h3>${htmlEscape(c.label)}</h3><div class="overlays">` +
        c.overlays.map((o) => `<img src="${htmlEscape(o.file)}" alt="${htmlEscape(`${c.label} on ${o.image}`)}" title="${htmlEscape(o.image)}">`).join('') + '</div>');
    }
  }
  if (report.selection) {
    H.push(`<h2>Chosen for packaging</h2><p>Rule: ${htmlEscape(report.selection.rule)}. Chosen: <b>${htmlEscape(report.selection.chosen ?? 'none')}</b>. ${htmlEscape(report.selection.reason)}</p>`);
  }
  const table = (header: string[], rows: string[][]): string =>
    '<table><thead><tr>' + header.map((h) => `<th>${htmlEscape(h)}</th>`).join('') + '</tr></thead><tbody>' +
    rows.map((r) => '<tr>' + r.map((c) => `<td>${htmlEscape(c)}</td>`).join('') + '</tr>').join('') + '</tbody></table>';
  const dec = decisionRows(report);
  if (dec.length) H.push(`<h2>Decisions against ${htmlEscape(report.selection?.reference ?? 'the reference')}</h2>`, table(DECISION_HEADER, dec));
  const withGroups = report.candidates.filter((c) => c.subgroups?.length);
  if (withGroups.length) {
    H.push('<h2>Subgroups</h2><p>Per group of test images (groups from each image and its truth mask; too-small groups show no numbers). Differences are paired, image by image, against the reference.</p>');
    for (const c of withGroups) {
      H.push(`<h3>${htmlEscape(c.label)}</h3>`);
      for (const b of subgroupBlocks(c.subgroups!, { minN: c.decision?.minGroupN, referenceName: report.selection?.reference ?? 'reference' })) H.push(`<h4>${htmlEscape(b.dimension)}</h4>`, table(b.header, b.rows));
    }
  }
  if (report.failures.length) {
    H.push('<h2>Failed steps</h2><ul>' + report.failures.map((f) => `<li>${htmlEscape(f.step)}: ${htmlEscape(f.reason)}</li>`).join('') + '</ul>');
  }
  H.push('</body></html>');
  return H.join('\n') + '\n';
}

/** Paths of the files {@link writeReport} wrote. */
export interface WrittenReport {
  dir: string;
  json: string;
  markdown: string;
  html: string;
  plots: Record<string, string>;
}

/**
 * Fill in each profile's Pareto front and plot name, then write report.json, report.md, the plots
 * (plot-<profile>.svg) and index.html into `dir`, each atomically.
 */
export async function writeReport(report: TradeoffReport, dir: string): Promise<WrittenReport> {
  const plots: Record<string, string> = {};
  const plotPaths: Record<string, string> = {};
  for (const s of report.profiles) {
    if (s.skippedReason) {
      s.pareto = [];
      delete s.plot;
      continue;
    }
    s.pareto = paretoIds(report.candidates, s.outcomes);
    s.plot = `plot-${s.profile.replace(/[^A-Za-z0-9._-]/g, '_')}.svg`;
    plots[s.profile] = renderProfilePlot(report, s);
    plotPaths[s.profile] = join(dir, s.plot);
    await writeFileAtomic(plotPaths[s.profile]!, plots[s.profile]!);
  }
  const json = join(dir, 'report.json');
  const markdown = join(dir, 'report.md');
  const html = join(dir, 'index.html');
  await writeJsonAtomic(json, report);
  await writeFileAtomic(markdown, renderMarkdown(report));
  await writeFileAtomic(html, renderHtml(report, plots));
  return { dir, json, markdown, html, plots: plotPaths };
}
