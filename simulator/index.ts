/**
 * The simulator's entry points: read a scenario, run it against the real NLB and controllers
 * with fake instances, and render the result (docs/simulator.md).
 */
import { writeFileSync } from 'node:fs';
import { runScenario, type Progress, type RunOptions, type SimResult, type Speed } from './engine/run.js';
import { renderHtml } from './report/html.js';
import { loadScenarioFile } from './scenario/load.js';

export { runScenario, type Progress, type RunOptions, type SimResult, type Speed } from './engine/run.js';
export { formatSummary, goldenSummary } from './report/summary.js';
export { renderHtml } from './report/html.js';
export { loadScenarioFile, parseScenario, ScenarioError } from './scenario/load.js';
export type { Scenario } from './scenario/schema.js';

export interface SimulateOptions {
  /** The scenario file. */
  file: string;
  seed?: string;
  speed?: Speed;
  /** Overrides the scenario's duration (ms). */
  durationMs?: number;
  /** Where to write the HTML report. */
  reportFile?: string;
  grpcPort?: number;
  onProgress?: RunOptions['onProgress'];
}

/** Loads, validates and runs a scenario file; writes the HTML report when asked. */
export async function simulate(o: SimulateOptions): Promise<SimResult> {
  const scenario = loadScenarioFile(o.file);
  const result = await runScenario(scenario, {
    seed: o.seed,
    speed: o.speed,
    durationMs: o.durationMs,
    grpcPort: o.grpcPort,
    onProgress: o.onProgress,
  });
  if (o.reportFile) writeFileSync(o.reportFile, renderHtml(result));
  return result;
}

export type { Progress as SimProgress };
