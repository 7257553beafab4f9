import { Args, Command, Errors, Flags, ux, type Interfaces } from '@oclif/core';
import { parseDurationMs } from '../../flag-parsers.js';
import type { SimProgress, SimResult } from '../../../simulator/index.js';

/** Exit codes (cli/exit-codes.ts): 1 = an expectation failed (or the run broke), 2 = invalid scenario. */
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

export default class SimRun extends Command {
  static override summary = 'Run a scenario against the real NLB and module controllers with fake instances';
  static override description = `Starts the NLB and the scenario's module controllers in this process (instance provider \`inprocess\`). Their instances are fakes: real runtimes that register and heartbeat over gRPC with stats from the scenario's load model. Load, faults and operator actions follow the scenario's script; expectations are checked as it runs and at the end.

--speed max (the default) runs on virtual time: an hour of simulated time takes seconds. --speed realtime runs on the wall clock, so that \`mpctl top\` can watch (the NLB listens on --grpc-port, 50050 by default then).

Prints a summary (or the whole result with --json) and writes a self-contained HTML report with --report. Exits 0 when every expectation held, 1 when one failed, 2 when the scenario file is invalid (each problem with file:line and a suggestion). See docs/simulator.md.`;

  static override examples = [
    '<%= config.bin %> <%= command.id %> simulator/scenarios/flash-crowd.yaml',
    '<%= config.bin %> <%= command.id %> simulator/scenarios/canary-failure.yaml --seed 7 --report canary.html',
    '<%= config.bin %> <%= command.id %> simulator/scenarios/nlb-restart.yaml --speed realtime',
  ];

  static override enableJsonFlag = true;

  static override args = {
    scenario: Args.string({ description: 'Scenario file (YAML)', required: true }),
  };

  static override flags = {
    seed: Flags.string({ description: "Random seed (default: the scenario's)" }),
    speed: Flags.string({
      description: 'Virtual time or the wall clock',
      options: ['max', 'realtime'],
      default: 'max',
    }),
    report: Flags.string({
      description: 'Write an HTML report (charts, expectations, timeline) to this file',
    }),
    duration: Flags.custom<number>({ parse: (s) => Promise.resolve(parseDurationMs(s)) })({
      description: "Simulated time to run (default: the scenario's), e.g. 10m",
    }),
    'grpc-port': Flags.integer({
      description: 'NLB gRPC port (default: any free port; 50050 with --speed realtime)',
      min: 0,
      max: 65535,
    }),
  };

  public async run(): Promise<SimResult> {
    const { args, flags } = await this.parse(SimRun);
    const { simulate, formatSummary } = await import('../../../simulator/index.js');
    const realtime = flags.speed === 'realtime';
    const result = await simulate({
      file: args.scenario,
      seed: flags.seed,
      speed: realtime ? 'realtime' : 'max',
      durationMs: flags.duration,
      reportFile: flags.report,
      grpcPort: flags['grpc-port'] ?? (realtime ? 50050 : 0),
      onProgress: (p) => this.progress(p, realtime),
    });
    if (!this.jsonEnabled()) ux.stdout('%s', formatSummary(result));
    if (flags.report) ux.stderr('%s', `report written to ${flags.report}`);
    if (!result.passed) {
      if (this.jsonEnabled()) this.logJson(result);
      this.exit(EXIT_FAILED);
    }
    return result;
  }

  private lastTenth = 0;

  /** Progress on stderr: where the NLB listens, every tenth of the run, and (realtime) events. */
  private progress(p: SimProgress, realtime: boolean): void {
    if (p.kind === 'listening')
      ux.stderr(
        '%s',
        `sim: NLB listening on ${p.nlb}${realtime ? ' (watch with: mpctl top --nlb ' + p.nlb + ')' : ''}`,
      );
    else if (p.kind === 'sample') {
      const tenth = Math.floor((10 * p.simulatedMs) / Math.max(1, p.durationMs));
      if (tenth > this.lastTenth && tenth < 10)
        ux.stderr(
          '%s',
          `sim: ${tenth * 10} % (${Math.round(p.simulatedMs / 1000)} s of ${Math.round(p.durationMs / 1000)} s)`,
        );
      this.lastTenth = Math.max(this.lastTenth, tenth);
    } else if (realtime && p.event.kind !== 'instance') {
      ux.stderr(
        '%s',
        `sim: ${Math.round(p.event.atMs / 1000)} s ${p.event.kind} ${[p.event.type, p.event.version].filter(Boolean).join(' ')}: ${p.event.message}`,
      );
    }
  }

  /** An invalid scenario is a usage error (exit 2) listing every problem; anything else exits 1. */
  protected override catch(err: Interfaces.CommandError): Promise<never> {
    if (err instanceof Errors.ExitError) throw err;
    const problems = (err as { problems?: unknown }).problems;
    const invalid = err.name === 'ScenarioError' && Array.isArray(problems);
    const code = invalid ? EXIT_USAGE : EXIT_FAILED;
    if (this.jsonEnabled())
      this.logJson({
        error: {
          message: err.message,
          code: invalid ? 'INVALID_SCENARIO' : 'SIMULATION_FAILED',
          exitCode: code,
          ...(invalid ? { problems } : {}),
        },
      });
    else ux.stderr('%s', invalid ? (problems as string[]).join('\n') : `simulation failed: ${err.message}`);
    return this.exit(code);
  }
}
