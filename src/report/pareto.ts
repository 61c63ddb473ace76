/**
 * The Pareto front of the latency/Dice trade-off: the candidates a site should choose between.
 * A candidate is on the front when no other one is at least as fast AND at least as accurate while
 * being strictly better in one of the two. Lower latency is better; higher Dice is better.
 */

/** One candidate as a point of the trade-off. */
export interface TradeoffPoint {
  /** Unique id of the candidate (used to report which points are on the front). */
  id: string;
  /** Latency in milliseconds (lower is better). */
  latencyMs: number;
  /** Mean Dice (higher is better). */
  dice: number;
}

/** True when `a` dominates `b`: no worse in both, strictly better in at least one. */
export function dominates(a: TradeoffPoint, b: TradeoffPoint): boolean {
  const noWorse = a.latencyMs <= b.latencyMs && a.dice >= b.dice;
  const better = a.latencyMs < b.latencyMs || a.dice > b.dice;
  return noWorse && better;
}

/**
 * The non-dominated points, sorted by increasing latency (so they can be joined into the front's line).
 * Points with a non-finite latency or Dice cannot be compared and are never on the front.
 * Exact ties (same latency and same Dice) do not dominate each other, so both stay on the front.
 * O(n log n): sort by latency (Dice descending on equal latency), then keep the points whose Dice
 * beats every faster one's.
 */
export function paretoFront<P extends TradeoffPoint>(points: readonly P[]): P[] {
  const usable = points.filter((p) => Number.isFinite(p.latencyMs) && Number.isFinite(p.dice));
  const sorted = [...usable].sort((a, b) => a.latencyMs - b.latencyMs || b.dice - a.dice || a.id.localeCompare(b.id));
  const front: P[] = [];
  let bestDice = -Infinity;
  let bestLatencyAtBest = Infinity;
  for (const p of sorted) {
    if (p.dice > bestDice) {
      front.push(p);
      bestDice = p.dice;
      bestLatencyAtBest = p.latencyMs;
    } else if (p.dice === bestDice && p.latencyMs === bestLatencyAtBest) {
      // An exact tie with the last front point: neither dominates the other.
      front.push(p);
    }
  }
  return front;
}
