/**
 * The trade-off report as data. Every number comes from an evaluation or a benchmark; the renderers
 * (Markdown, HTML, SVG) only format it, so `report.json` and the pages always agree.
 */

import type { GroupRow } from '../runtime/subgroup-table.js';

/** Accuracy of one candidate on one dataset, at the original image resolution. */
export interface AccuracySummary {
  /** Images scored (failures excluded). */
  nImages: number;
  dice: number;
  /** 95% bootstrap interval of the mean Dice. */
  diceCi95: [number, number];
  iou: number;
  /** ISIC 2018 score: per-image IoU, counted 0 below 0.65. */
  thresholdedJaccard: number;
  /** Mean HD95 in pixels over the images where it is defined; null when none is. */
  hd95: number | null;
  /** What was scored, e.g. 'test split of /work/shared/data (306 images)'. */
  dataset: string;
}

/** Speed and memory of one candidate on one profile. */
export interface SpeedSummary {
  latencyMedianMs: number;
  latencyP90Ms: number;
  /** 10th percentile (interleaved runs): with the p90, the spread the report shows. */
  latencyP10Ms?: number;
  /** 'interleaved': timed in turn with the other candidates in one run (the pipeline's way); 'alone': by itself. */
  latencyMode?: 'interleaved' | 'alone';
  /** Images per second at `throughputBatch`; null when the batch could not run (e.g. fixed batch 1). */
  throughputImagesPerS: number | null;
  throughputBatch: number;
  /** Peak resident memory of the process that ran the model (MB); null when not measured. */
  peakRssMb: number | null;
  warmup: number;
  runs: number;
}

/** What happened to one candidate on one profile. */
export type ProfileOutcome =
  | { status: 'measured'; speed: SpeedSummary }
  | { status: 'skipped'; reason: string }
  | { status: 'failed'; reason: string };

/** One model variant (teacher fp32, teacher INT8, a student, a rewritten variant...). */
export interface CandidateSummary {
  /** Unique, file-name-safe id, e.g. 'teacher-int8'. */
  id: string;
  /** Short name for tables and the plot. */
  label: string;
  /** The model family it comes from, e.g. 'teacher', 'student ultralight'. */
  family: string;
  precision: 'fp32' | 'fp16' | 'int8' | 'mixed';
  /** How it was made, one step per entry (e.g. 'rewrite: fold-batchnorm'). */
  derivation: string[];
  modelPath: string;
  /** null when the model was not made. */
  fileSizeBytes: number | null;
  parameters: number | null;
  multiplyAdds: number | null;
  /** null when the evaluation did not run; `accuracyError` then says why. */
  accuracy: AccuracySummary | null;
  accuracyError?: string;
  /** Overlay PNGs, paths relative to the report folder. */
  overlays: { image: string; file: string }[];
  /** Per-group n, Dice and HD95 (paired against the reference candidate for the others); see runtime/subgroup-table.ts. */
  subgroups?: GroupRow[];
  /** The non-inferiority decision against the reference candidate (runtime/noninferiority.ts). */
  decision?: {
    reference: string;
    verdict: 'non-inferior' | 'not-shown' | 'inferior' | 'too-few-images';
    margin: number;
    minGroupN: number;
    /** Paired images. */
    n: number;
    /** Mean Dice loss (reference - candidate) and its 95% interval. */
    meanLoss: number;
    lossCi95: [number, number];
    worstGroup: { dimension: string; group: string; n: number; meanLoss: number; lossCi95: [number, number] } | null;
    /** Groups too small to decide on: "dimension: group (n)". */
    tooSmall: string[];
    reason: string;
  };
}

/** One target profile and every candidate on it. */
export interface ProfileSection {
  profile: string;
  description?: string;
  /** Set when the whole profile cannot run here (the reason says what was checked). */
  skippedReason?: string;
  outcomes: Record<string, ProfileOutcome>;
  /** Ids of the candidates on the Pareto front (latency median vs Dice), fastest first. */
  pareto: string[];
  /** Plot file name, relative to the report folder; absent for a skipped profile. */
  plot?: string;
}

/** The machine and software the numbers come from. */
export interface Environment {
  cpu: string;
  cores: number;
  platform: string;
  totalMemoryGb: number;
  node: string;
  onnxruntime: string;
  sdk: string;
}

/** The whole report (written as report.json). */
export interface TradeoffReport {
  schema: 'lesionfuse.tradeoff-report/1';
  title: string;
  createdAt: string;
  /** The command line that produced it. */
  command: string;
  environment: Environment;
  candidates: CandidateSummary[];
  profiles: ProfileSection[];
  /** The candidate chosen for packaging, and why. */
  selection?: { rule: string; chosen: string | null; reason: string; profile?: string | null; reference?: string | null; packaged?: string | null };
  /** Steps that failed, with why (the report still shows everything else). */
  failures: { step: string; reason: string }[];
  /** Caveats a reader must see (demo shortcuts, fewer runs than a real benchmark...). */
  notes: string[];
}
