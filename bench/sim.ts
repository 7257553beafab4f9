/**
 * Simulator benchmark (`npm run bench:sim -- [--minutes 30] [--scenario FILE] [--seed N]`): runs
 * the 1,000-instance scenario (real NLB, real controllers, 1,000 fake instances heartbeating over
 * real gRPC) for 30 simulated minutes on virtual time and prints wall time, simulated time,
 * speed-up, CPU time, heartbeats handled and peak RSS, beside the target (well under a minute
 * of wall time).
 *
 * A benchmark, not a test: `npm test` does not run it, and a missed target does not fail it
 * (exit 1 only when the run broke or the scenario's expectations failed). `npm run bench:sim`
 * runs Node with `--max-semi-space-size=64`: the gRPC traffic makes mostly short-lived garbage,
 * and a larger young generation halves the collector's share (docs/simulator.md, Benchmark).
 */
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadScenarioFile, runScenario } from '../simulator/index.js';

const TARGET_WALL_S = 60;

const USAGE = `usage: npm run bench:sim -- [options]

  --minutes M      simulated minutes (default 30)
  --scenario FILE  scenario to run (default simulator/scenarios/scale-1000.yaml)
  --seed N         seed (default the scenario's)
  --heartbeat S    heartbeat interval in seconds (default the scenario's, 10): the fakes'
                   heartbeats are most of the work
  --thread         run the fakes' gRPC client on the main thread instead of a worker
  --json           print the figures as JSON`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      minutes: { type: 'string', default: '30' },
      scenario: {
        type: 'string',
        default: fileURLToPath(new URL('../simulator/scenarios/scale-1000.yaml', import.meta.url)),
      },
      seed: { type: 'string' },
      heartbeat: { type: 'string' },
      thread: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const minutes = Number(values.minutes);
  if (!Number.isFinite(minutes) || minutes <= 0)
    throw new Error(`--minutes must be a positive number, got ${values.minutes}`);
  const loaded = loadScenarioFile(values.scenario);
  const heartbeatS =
    values.heartbeat === undefined ? loaded.nlb.heartbeatInterval / 1000 : Number(values.heartbeat);
  if (!Number.isFinite(heartbeatS) || heartbeatS <= 0)
    throw new Error(`--heartbeat must be a positive number of seconds, got ${values.heartbeat}`);
  const scenario = { ...loaded, nlb: { ...loaded.nlb, heartbeatInterval: heartbeatS * 1000 } };
  const instances = scenario.modules.reduce((a, m) => a + m.instances, 0);
  const load = loadavg()[0];
  const cpu0 = process.cpuUsage();
  process.stderr.write(
    `bench:sim: ${scenario.name}, ${instances} instances, ${minutes} simulated minutes …\n`,
  );
  const r = await runScenario(scenario, {
    durationMs: minutes * 60_000,
    seed: values.seed,
    workerThread: !values.thread,
    onProgress: (p) => {
      if (p.kind === 'sample' && p.simulatedMs % 300_000 === 0)
        process.stderr.write(`  ${p.simulatedMs / 60_000} min simulated\n`);
    },
  });
  const cpu = process.cpuUsage(cpu0);
  const figures = {
    scenario: r.scenario.name,
    instances,
    heartbeatIntervalS: heartbeatS,
    peakInstances: Object.values(r.types).reduce((a, t) => a + t.peakInstances, 0),
    simulatedS: r.durationMs / 1000,
    wallS: +(r.wallMs / 1000).toFixed(2),
    speedUp: Math.round(r.speedUp),
    cpuS: +((cpu.user + cpu.system) / 1e6).toFixed(2),
    heartbeats: r.heartbeats,
    heartbeatsPerWallS: Math.round(r.heartbeats / (r.wallMs / 1000)),
    peakRssMb: r.peakRssMb,
    passed: r.passed,
    machine: { cores: availableParallelism(), loadAverage1m: +load.toFixed(2) },
  };
  if (values.json) console.log(JSON.stringify(figures, null, 2));
  else {
    const row = (k: string, v: string) => console.log(`  ${k.padEnd(22)} ${v}`);
    console.log(`simulation benchmark: ${figures.scenario}`);
    row('instances', `${figures.instances} at the start, ${figures.peakInstances} at the peak`);
    row('simulated time', `${figures.simulatedS} s (${minutes} min)`);
    row('wall time', `${figures.wallS} s  (target: well under ${TARGET_WALL_S} s)`);
    row('speed-up', `${figures.speedUp}×`);
    row(
      'CPU time',
      `${figures.cpuS} s (${figures.machine.cores} cores, load average ${figures.machine.loadAverage1m} at the start)`,
    );
    row(
      'heartbeats handled',
      `${figures.heartbeats} (${figures.heartbeatsPerWallS}/s of wall time, real gRPC)`,
    );
    row('peak RSS', `${figures.peakRssMb} MB`);
    row(
      'expectations',
      r.passed
        ? 'all passed'
        : r.expectations
            .filter((x) => !x.passed)
            .map((x) => `✗ ${x.name}: ${x.reason}`)
            .join('\n'.padEnd(26)),
    );
  }
  return r.passed ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`bench:sim failed: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
