/** The trade-off report: data types, the Pareto front, the SVG plot and the Markdown/HTML/JSON writers. */
export type { AccuracySummary, CandidateSummary, Environment, ProfileOutcome, ProfileSection, SpeedSummary, TradeoffReport } from './types.js';
export { paretoFront, dominates, type TradeoffPoint } from './pareto.js';
export { renderTradeoffSvg, linearTicks, logTicks, type PlotPoint, type PlotOptions } from './svg.js';
export { writeReport, renderMarkdown, renderHtml, renderProfilePlot, profileRows, paretoIds, currentEnvironment, type WrittenReport } from './render.js';
