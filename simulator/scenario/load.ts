/**
 * Reads and validates a scenario file: YAML syntax, the schema (unknown fields and values get
 * "did you mean"), then the rules that span fields (a fault names a deployed module, times fall
 * inside the run, CSV traces parse). Every problem names the file and line.
 */
import { readFileSync } from 'node:fs';
import { basename, dirname, extname, resolve } from 'node:path';
import { parseDuration } from '../../services/shared/config.js';
import { clockText as fmt } from '../time-text.js';
import { scenarioSchema, type Scenario, type ScenarioInput } from './schema.js';
import { describeIssues, dotted, locate, parseYaml, type Path, type YamlSource } from './yaml-problems.js';

/** A scenario that cannot run; `problems` are `file:line:col: path: message` lines. */
export class ScenarioError extends Error {
  override readonly name = 'ScenarioError';

  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(
      problems.length === 1
        ? `invalid scenario: ${problems[0]}`
        : `invalid scenario ${file}: ${problems.length} problems\n${problems.map((p) => `  ${p}`).join('\n')}`,
    );
  }
}

/** Reads a scenario file. */
export function loadScenarioFile(path: string): Scenario {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ScenarioError(path, [
      `${path}: ${code === 'ENOENT' ? 'not found' : `cannot be read (${code ?? String(e)})`}`,
    ]);
  }
  return parseScenario(text, path);
}

/** Validates scenario text; `file` names it in messages and anchors relative CSV paths. */
export function parseScenario(text: string, file: string): Scenario {
  const { source, problems } = parseYaml(text, file, ['version']);
  if (!source) throw new ScenarioError(file, problems);
  const parsed = scenarioSchema.safeParse(source.value ?? {});
  if (!parsed.success)
    throw new ScenarioError(file, byPosition(describeIssues(scenarioSchema, source, parsed.error.issues)));
  const s = parsed.data;
  const out: string[] = [];
  checkRules(s, source, out);
  const traces = readTraces(s, source, out);
  if (out.length) throw new ScenarioError(file, byPosition(out));
  return {
    ...s,
    name: s.name ?? basename(file, extname(file)),
    file,
    traces,
  };
}

/** Problems in file order (line, then column); CSV problems after the scenario's own. */
function byPosition(problems: string[]): string[] {
  const key = (p: string) => {
    const m = /^(.*?):(\d+)(?::(\d+))?: /.exec(p);
    return m ? ([m[1], Number(m[2]), Number(m[3] ?? 0)] as const) : ([p, 0, 0] as const);
  };
  return [...problems].sort((a, b) => {
    const [fa, la, ca] = key(a);
    const [fb, lb, cb] = key(b);
    return fa === fb ? la - lb || ca - cb : 0;
  });
}

function checkRules(s: ScenarioInput, src: YamlSource, out: string[]): void {
  const problem = (path: Path, message: string) =>
    out.push(`${locate(src, path)}: ${dotted(path)}: ${message}`);
  const deployed = new Map<string, number>(); // "TYPE@version" → when it exists (ms)
  s.modules.forEach((m, i) => {
    const key = `${m.type}@${m.version}`;
    if (deployed.has(key)) problem(['modules', i], `${key} is listed twice`);
    deployed.set(key, 0);
    const lo = m.scaling?.minInstances;
    const hi = m.scaling?.maxInstances;
    if (lo !== undefined && hi !== undefined && lo > hi)
      problem(['modules', i, 'scaling'], `minInstances ${lo} exceeds maxInstances ${hi}`);
  });
  s.actions.forEach((a, i) => {
    if (a.kind !== 'deploy') return;
    const key = `${a.type}@${a.version}`;
    if (deployed.has(key)) problem(['actions', i, 'version'], `${key} is already deployed`);
    else deployed.set(key, a.at);
  });
  const types = new Set([...deployed.keys()].map((k) => k.split('@')[0]));
  const list = (xs: Iterable<string>) => [...xs].join(', ') || 'none';
  const checkScope = (path: Path, type: string | undefined, version: string | undefined, atMs?: number) => {
    if (type === undefined) return;
    if (!types.has(type)) {
      problem([...path, 'type'], `no ${type} module in this scenario (modules: ${list(types)})`);
      return;
    }
    if (version === undefined) return;
    const since = deployed.get(`${type}@${version}`);
    const versions = [...deployed.keys()].filter((k) => k.startsWith(`${type}@`)).map((k) => k.split('@')[1]);
    if (since === undefined)
      problem([...path, 'version'], `${type} has no version "${version}" (versions: ${list(versions)})`);
    else if (atMs !== undefined && atMs < since)
      problem([...path, 'at'], `${type} ${version} is deployed only at ${fmt(since)}`);
  };
  const inRun = (path: Path, ms: number) => {
    if (ms > s.duration) problem(path, `${fmt(ms)} is after the end of the run (${fmt(s.duration)})`);
  };
  s.load.forEach((l, i) => {
    checkScope(['load', i], l.type, undefined);
    l.spikes.forEach((sp, j) => {
      if ((sp.rps === undefined) === (sp.factor === undefined))
        problem(['load', i, 'spikes', j], 'give exactly one of rps (added) or factor (multiplied)');
      inRun(['load', i, 'spikes', j, 'at'], sp.at);
    });
    l.phases.forEach((p, j) => {
      if (p.shape === 'ramp' && p.from === undefined && j === 0)
        problem(['load', i, 'phases', j], 'the first phase must say where a ramp starts (from)');
      if ((p.shape === 'constant' || p.shape === 'sine') && p.for === undefined && j < l.phases.length - 1)
        problem(
          ['load', i, 'phases', j],
          'only the last phase may leave out `for` (the phases after it would never run)',
        );
    });
  });
  s.faults.forEach((f, i) => {
    inRun(['faults', i, 'at'], f.at);
    if (f.kind === 'restartNlb') return;
    checkScope(['faults', i], f.type, f.version, f.at);
    if ('count' in f && f.count !== undefined && f.fraction !== undefined)
      problem(['faults', i], 'give count or fraction, not both');
    if (f.kind === 'latency' && f.addMs === undefined && f.factor === undefined)
      problem(['faults', i], 'give addMs, factor or both');
  });
  s.actions.forEach((a, i) => {
    inRun(['actions', i, 'at'], a.at);
    if (a.kind === 'deploy' || a.kind === 'setConfig') return;
    checkScope(['actions', i], a.type, 'version' in a ? a.version : undefined, a.at);
    if (a.kind === 'rollback' && a.to !== undefined) checkScope(['actions', i], a.type, a.to);
  });
  s.expect.forEach((e, i) => {
    const path = ['expect', i];
    if ('type' in e) checkScope(path, e.type, 'version' in e ? e.version : undefined);
    if (e.kind === 'instances' && e.min === undefined && e.max === undefined)
      problem(path, 'give min, max or both');
    if (e.kind === 'metric' && e.min === undefined && e.max === undefined)
      problem(path, 'give min, max or both');
    if (e.kind === 'instances' || e.kind === 'metric') {
      inRun([...path, 'from'], e.from);
      if (e.to !== undefined && e.to < e.from) problem([...path, 'to'], 'ends before it starts (from)');
    }
    if (e.kind === 'scaleUp' || e.kind === 'scaleDown') inRun([...path, 'after'], e.after);
    if (e.kind === 'rolloutCompletes') inRun([...path, 'by'], e.by);
  });
}

/** Loads each CSV trace named by a `csv` phase: `time,rps` rows, time in seconds or a duration. */
function readTraces(
  s: ScenarioInput,
  src: YamlSource,
  out: string[],
): Record<string, Array<[number, number]>> {
  const traces: Record<string, Array<[number, number]>> = {};
  s.load.forEach((l, i) =>
    l.phases.forEach((p, j) => {
      if (p.shape !== 'csv' || p.file in traces) return;
      const path = resolve(dirname(src.file), p.file);
      let text: string;
      try {
        text = readFileSync(path, 'utf8');
      } catch {
        out.push(
          `${locate(src, ['load', i, 'phases', j, 'file'])}: load[${i}].phases[${j}].file: ${path} not found`,
        );
        return;
      }
      const points: Array<[number, number]> = [];
      text.split(/\r?\n/).forEach((row, n) => {
        const cells = row.split(',').map((c) => c.trim());
        if (row.trim() === '' || row.startsWith('#') || (n === 0 && /[a-z]/i.test(cells[1] ?? ''))) return;
        const [t, rps] = cells;
        let ms: number;
        try {
          ms = /^\d+(\.\d+)?$/.test(t ?? '') ? Number(t) * 1000 : parseDuration(t ?? '');
        } catch (e) {
          out.push(`${path}:${n + 1}: ${(e as Error).message}`);
          return;
        }
        const value = Number(rps);
        if (rps === undefined || rps === '' || !Number.isFinite(value) || value < 0) {
          out.push(`${path}:${n + 1}: rps "${rps ?? ''}" is not a non-negative number`);
          return;
        }
        if (points.length && ms <= points[points.length - 1][0]) {
          out.push(`${path}:${n + 1}: times must increase`);
          return;
        }
        points.push([ms, value]);
      });
      if (points.length === 0) out.push(`${path}: no (time, rps) rows`);
      traces[p.file] = points;
    }),
  );
  return traces;
}
