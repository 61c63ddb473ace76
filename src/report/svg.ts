/**
 * The latency-vs-Dice plot as a standalone SVG, written by hand so that it opens in any browser,
 * image viewer or Markdown renderer without a plotting library or plugin.
 * Latency goes on x (log scale when the candidates span more than a decade: a teacher and a tiny
 * student are often 100x apart), Dice on y with its 95% interval as an error bar. Pareto points are
 * filled and joined by a line; dominated points are hollow.
 */
import { paretoFront, type TradeoffPoint } from './pareto.js';

/** A point of the plot. */
export interface PlotPoint extends TradeoffPoint {
  /** Short text drawn next to the point. */
  label: string;
  /** 95% interval of the Dice, drawn as an error bar when given. */
  diceCi95?: [number, number] | null;
}

/** Options of {@link renderTradeoffSvg}. */
export interface PlotOptions {
  /** Title drawn above the plot. Default: 'Latency vs Dice'. */
  title?: string;
  /** Text under the x axis. Default: 'latency per image at batch 1, median (ms)'. */
  xLabel?: string;
  /** Pixel width of the picture. Default 760. */
  width?: number;
  /** Pixel height of the picture. Default 480. */
  height?: number;
  /** 'auto' uses a log scale when max/min latency > 10. Default 'auto'. */
  xScale?: 'auto' | 'linear' | 'log';
}

/** Escape text for XML content and attribute values. */
export function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/** Round "nice" linear ticks (steps of 1, 2 or 5 x 10^k) covering [lo, hi]. */
export function linearTicks(lo: number, hi: number, target = 6): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, target);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw * (1 - 1e-9)) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

/** Ticks for a log axis over [lo, hi] (lo > 0): 1, 2, 5 x 10^k when few decades, powers of ten otherwise. */
export function logTicks(lo: number, hi: number): number[] {
  const k0 = Math.floor(Math.log10(lo));
  const k1 = Math.ceil(Math.log10(hi));
  const mults = k1 - k0 <= 3 ? [1, 2, 5] : [1];
  const ticks: number[] = [];
  for (let k = k0; k <= k1; k++) {
    for (const m of mults) {
      const v = Number((m * Math.pow(10, k)).toPrecision(12));
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) ticks.push(v);
    }
  }
  return ticks;
}

function fmtTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 0.001) return v.toExponential(0);
  return String(Number(v.toPrecision(3)));
}

/**
 * Render the plot. Points with a non-finite latency or Dice are left out of the picture and listed in
 * a note at the bottom (so a failed measurement is visible rather than silently dropped).
 */
export function renderTradeoffSvg(points: readonly PlotPoint[], opts: PlotOptions = {}): string {
  const W = opts.width ?? 760;
  const H = opts.height ?? 480;
  const m = { left: 72, right: 150, top: 48, bottom: 70 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const title = opts.title ?? 'Latency vs Dice';
  const xLabel = opts.xLabel ?? 'latency per image at batch 1, median (ms)';
  const usable = points.filter((p) => Number.isFinite(p.latencyMs) && p.latencyMs > 0 && Number.isFinite(p.dice));
  const left = points.filter((p) => !usable.includes(p));
  const out: string[] = [];
  out.push('<?xml version="1.0" encoding="UTF-8"?>');
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<title>${xmlEscape(title)}</title>`);
  out.push('<style>.axis{stroke:#333;stroke-width:1}.grid{stroke:#ddd;stroke-width:1}.err{stroke:#555;stroke-width:1.2}' +
    '.point{stroke:#1f4e99;stroke-width:1.6;fill:#fff}.point.pareto{fill:#d9480f;stroke:#d9480f}' +
    '.pareto-front{fill:none;stroke:#d9480f;stroke-width:1.6;stroke-dasharray:5 3}.lbl{fill:#222}.note{fill:#666;font-size:11px}</style>');
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${xmlEscape(title)}</text>`);
  if (usable.length === 0) {
    out.push(`<text x="${W / 2}" y="${H / 2}" text-anchor="middle" class="note">no candidate has both a latency and a Dice on this profile</text>`);
    out.push('</svg>');
    return out.join('\n') + '\n';
  }
  const lats = usable.map((p) => p.latencyMs);
  let xmin = Math.min(...lats);
  let xmax = Math.max(...lats);
  const useLog = opts.xScale === 'log' || (opts.xScale !== 'linear' && xmax / xmin > 10);
  let xTicks: number[];
  let xs: (v: number) => number;
  if (useLog) {
    const lo = Math.pow(10, Math.floor(Math.log10(xmin) * 4) / 4);
    const hi = Math.pow(10, Math.ceil(Math.log10(xmax) * 4) / 4);
    xmin = lo === xmin ? xmin / 1.3 : lo;
    xmax = hi === xmax ? xmax * 1.3 : hi;
    xTicks = logTicks(xmin, xmax);
    const a = Math.log10(xmin);
    const b = Math.log10(xmax);
    xs = (v) => m.left + ((Math.log10(v) - a) / (b - a)) * pw;
  } else {
    const span = xmax - xmin || Math.max(xmax, 1) * 0.2;
    const lo = Math.max(0, xmin - span * 0.15);
    const hi = xmax + span * 0.15;
    xTicks = linearTicks(lo, hi);
    xmin = Math.min(lo, xTicks[0]!);
    xmax = Math.max(hi, xTicks[xTicks.length - 1]!);
    xs = (v) => m.left + ((v - xmin) / (xmax - xmin)) * pw;
  }
  const yVals = usable.flatMap((p) => [p.dice, ...(p.diceCi95 ? p.diceCi95.filter(Number.isFinite) : [])]);
  let ymin = Math.min(...yVals);
  let ymax = Math.max(...yVals);
  const ySpan = ymax - ymin || 0.05;
  ymin = Math.max(0, ymin - ySpan * 0.15);
  ymax = Math.min(1, ymax + ySpan * 0.15);
  if (ymax <= ymin) ymax = Math.min(1, ymin + 0.05);
  const yTicks = linearTicks(ymin, ymax, 6).filter((v) => v >= ymin - 1e-9 && v <= ymax + 1e-9);
  const ys = (v: number) => m.top + ph - ((v - ymin) / (ymax - ymin)) * ph;

  // Grid and axes.
  out.push('<g class="axes">');
  for (const t of xTicks) {
    const x = xs(t).toFixed(1);
    out.push(`<line class="grid" x1="${x}" y1="${m.top}" x2="${x}" y2="${m.top + ph}"/>`);
    out.push(`<line class="axis" x1="${x}" y1="${m.top + ph}" x2="${x}" y2="${m.top + ph + 5}"/>`);
    out.push(`<text class="tick x" x="${x}" y="${m.top + ph + 18}" text-anchor="middle">${fmtTick(t)}</text>`);
  }
  for (const t of yTicks) {
    const y = ys(t).toFixed(1);
    out.push(`<line class="grid" x1="${m.left}" y1="${y}" x2="${m.left + pw}" y2="${y}"/>`);
    out.push(`<line class="axis" x1="${m.left - 5}" y1="${y}" x2="${m.left}" y2="${y}"/>`);
    out.push(`<text class="tick y" x="${m.left - 8}" y="${(Number(y) + 4).toFixed(1)}" text-anchor="end">${fmtTick(t)}</text>`);
  }
  out.push(`<line class="axis" x1="${m.left}" y1="${m.top + ph}" x2="${m.left + pw}" y2="${m.top + ph}"/>`);
  out.push(`<line class="axis" x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${m.top + ph}"/>`);
  out.push(`<text x="${m.left + pw / 2}" y="${m.top + ph + 40}" text-anchor="middle">${xmlEscape(xLabel + (useLog ? ', log scale' : ''))}</text>`);
  out.push(`<text transform="translate(18 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">Dice (mean, 95% interval)</text>`);
  out.push('</g>');

  // The front, under the points.
  const front = paretoFront(usable);
  const frontIds = new Set(front.map((p) => p.id));
  if (front.length > 1) {
    const pts = front.map((p) => `${xs(p.latencyMs).toFixed(1)},${ys(p.dice).toFixed(1)}`).join(' ');
    out.push(`<polyline class="pareto-front" points="${pts}"/>`);
  }
  // Error bars, points, labels. Labels are placed greedily (fastest point first) at the first of a few
  // positions around the point whose box overlaps no label or point already drawn: close points (e.g. a
  // model and its rewritten twin) stay readable.
  const order = [...usable].sort((a, b) => a.latencyMs - b.latencyMs);
  type Box = { x0: number; y0: number; x1: number; y1: number };
  const boxes: Box[] = order.map((p) => ({ x0: xs(p.latencyMs) - 6, y0: ys(p.dice) - 6, x1: xs(p.latencyMs) + 6, y1: ys(p.dice) + 6 }));
  const overlaps = (a: Box, b: Box) => a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;
  order.forEach((p) => {
    const x = xs(p.latencyMs);
    const y = ys(p.dice);
    const onFront = frontIds.has(p.id);
    out.push(`<g class="candidate${onFront ? ' pareto' : ''}" data-id="${xmlEscape(p.id)}">`);
    if (p.diceCi95 && p.diceCi95.every(Number.isFinite)) {
      const y0 = ys(Math.max(ymin, p.diceCi95[0])).toFixed(1);
      const y1 = ys(Math.min(ymax, p.diceCi95[1])).toFixed(1);
      out.push(`<line class="err" x1="${x.toFixed(1)}" y1="${y0}" x2="${x.toFixed(1)}" y2="${y1}"/>`);
      out.push(`<line class="err" x1="${(x - 4).toFixed(1)}" y1="${y0}" x2="${(x + 4).toFixed(1)}" y2="${y0}"/>`);
      out.push(`<line class="err" x1="${(x - 4).toFixed(1)}" y1="${y1}" x2="${(x + 4).toFixed(1)}" y2="${y1}"/>`);
    }
    out.push(`<circle class="point${onFront ? ' pareto' : ''}" cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="5">` +
      `<title>${xmlEscape(`${p.label}: ${p.latencyMs.toPrecision(3)} ms, Dice ${p.dice.toFixed(3)}${onFront ? ' (Pareto front)' : ''}`)}</title></circle>`);
    const w = p.label.length * 6.6;
    const spots: { dx: number; dy: number; anchor: 'start' | 'end' }[] = [];
    for (const dy of [-9, 17, -23, 31, -37, 45]) spots.push({ dx: 8, dy, anchor: 'start' }, { dx: -8, dy, anchor: 'end' });
    const boxOf = (s: (typeof spots)[number]): Box => {
      const bx0 = s.anchor === 'start' ? x + s.dx : x + s.dx - w;
      return { x0: bx0, y0: y + s.dy - 11, x1: bx0 + w, y1: y + s.dy + 3 };
    };
    const inside = (b: Box) => b.x0 >= m.left && b.x1 <= W - 4 && b.y0 >= m.top - 4 && b.y1 <= m.top + ph;
    const spot = spots.find((s) => inside(boxOf(s)) && !boxes.some((b) => overlaps(b, boxOf(s)))) ?? spots.find((s) => inside(boxOf(s))) ?? spots[0]!;
    boxes.push(boxOf(spot));
    out.push(`<text class="lbl" x="${(x + spot.dx).toFixed(1)}" y="${(y + spot.dy).toFixed(1)}"${spot.anchor === 'end' ? ' text-anchor="end"' : ''}>${xmlEscape(p.label)}</text>`);
    out.push('</g>');
  });

  // Legend, right of the plot.
  const lx = m.left + pw + 16;
  out.push('<g class="legend">');
  out.push(`<circle class="point pareto" cx="${lx}" cy="${m.top + 8}" r="5"/><text x="${lx + 10}" y="${m.top + 12}">Pareto front</text>`);
  out.push(`<circle class="point" cx="${lx}" cy="${m.top + 28}" r="5"/><text x="${lx + 10}" y="${m.top + 32}">dominated</text>`);
  out.push(`<text class="note" x="${lx - 6}" y="${m.top + 54}">lower latency and</text>`);
  out.push(`<text class="note" x="${lx - 6}" y="${m.top + 68}">higher Dice are better</text>`);
  out.push('</g>');
  if (left.length > 0) {
    out.push(`<text class="note" x="${m.left}" y="${H - 8}">not plotted (no latency or Dice): ${xmlEscape(left.map((p) => p.label).join(', '))}</text>`);
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}
