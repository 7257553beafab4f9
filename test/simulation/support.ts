/**
 * Simulation tests: run a shipped scenario with a fixed seed and compare what the seed fixes
 * (outcomes, reasons, counts, the decisions on the timeline) with a golden file. Set
 * UPDATE_GOLDEN=1 to rewrite the golden files after an intended change, and review the diff.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import {
  goldenSummary,
  loadScenarioFile,
  runScenario,
  type RunOptions,
  type SimResult,
} from '../../simulator/index.js';

export const SCENARIOS = fileURLToPath(new URL('../../simulator/scenarios/', import.meta.url));
export const TEST_SCENARIOS = fileURLToPath(new URL('./scenarios/', import.meta.url));
const GOLDEN = fileURLToPath(new URL('./golden/', import.meta.url));

/** Runs a scenario file (a shipped one by name, or a path). */
export function run(nameOrPath: string, o: RunOptions = {}): Promise<SimResult> {
  const file = nameOrPath.includes('/') ? nameOrPath : `${SCENARIOS}${nameOrPath}.yaml`;
  return runScenario(loadScenarioFile(file), o);
}

/** Failed expectations as "name: reason" lines (empty when all passed), for readable failures. */
export const failures = (r: SimResult) =>
  r.expectations.filter((x) => !x.passed).map((x) => `${x.name}: ${x.reason}`);

/** Compares the run's golden summary with `golden/<name>.json` (or writes it under UPDATE_GOLDEN). */
export function expectGolden(name: string, r: SimResult): void {
  const path = `${GOLDEN}${name}.json`;
  const actual = `${JSON.stringify(goldenSummary(r), null, 2)}\n`;
  if (process.env.UPDATE_GOLDEN || !existsSync(path)) {
    mkdirSync(GOLDEN, { recursive: true });
    writeFileSync(path, actual);
    if (!process.env.UPDATE_GOLDEN)
      throw new Error(`wrote missing golden file ${path}; review and commit it`);
    return;
  }
  expect(JSON.parse(actual)).toEqual(JSON.parse(readFileSync(path, 'utf8')));
}
