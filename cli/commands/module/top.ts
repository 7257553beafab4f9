import { Flags } from '@oclif/core';
import { durationFlag } from '../../base-command.js';
import { parsePositiveInt } from '../../flag-parsers.js';
import { ModuleCommand, compact, controllerFlags, instanceFlag } from '../../module-command.js';

interface SampleJson {
  metrics?: { metrics?: Array<{ name?: string; value?: number }> };
  timestamp?: string;
}

/** The columns of one line, with their widths. */
const COLUMNS: ReadonlyArray<readonly [header: string, width: number]> = [
  ['TIME', 8],
  ['REQ/S', 9],
  ['REQUESTS', 10],
  ['FAILED', 8],
  ['ACTIVE', 7],
  ['P50 MS', 8],
  ['P99 MS', 8],
  ['CPU %', 7],
  ['MEM MB', 8],
];

const fixed = (v: number) => (Number.isInteger(v) ? String(v) : v.toFixed(1));

/** Formats samples as lines: requests per second come from the change since the previous sample. */
export class TopFormatter {
  private previous: { atMs: number; requests: number } | undefined;

  header(): string {
    return this.row(COLUMNS.map(([header]) => header));
  }

  line(sample: SampleJson): string {
    const values = new Map((sample.metrics?.metrics ?? []).map((m) => [m.name ?? '', m.value ?? 0]));
    const get = (name: string) => values.get(name) ?? 0;
    const atMs = sample.timestamp ? Date.parse(sample.timestamp) : Date.now();
    const requests = get('totalRequests');
    const rate =
      this.previous && atMs > this.previous.atMs && requests >= this.previous.requests
        ? fixed((requests - this.previous.requests) / ((atMs - this.previous.atMs) / 1000))
        : '-';
    this.previous = { atMs, requests };
    return this.row([
      new Date(atMs).toISOString().slice(11, 19),
      rate,
      fixed(requests),
      fixed(get('failedRequests')),
      fixed(get('activeConnections')),
      fixed(get('p50LatencyMs')),
      fixed(get('p99LatencyMs')),
      fixed(get('cpuUsagePercent')),
      fixed(get('memoryUsageMb')),
    ]);
  }

  private row(cells: string[]): string {
    return cells
      .map((cell, i) => (i === 0 ? cell.padEnd(COLUMNS[i][1]) : cell.padStart(COLUMNS[i][1])))
      .join(' ')
      .trimEnd();
  }
}

export default class ModuleTop extends ModuleCommand {
  static override summary = "Follow a module's live numbers, one line per interval";
  static override description =
    'Streams StreamMetrics: every --interval a line with requests per second, totals, failures, active connections, latency, CPU and memory, summed over the instances (or one with --instance), until Ctrl-C, --count or --duration. With --json each sample is printed as one JSON object per line (NDJSON). This is the compact view; a full-screen view comes later.';

  static rpc = 'marchproxy.ModuleService/StreamMetrics';

  static override examples = [
    '<%= config.bin %> <%= command.id %> --module alb',
    '<%= config.bin %> <%= command.id %> --module alb --instance alb-1 --interval 1s --count 10',
    '<%= config.bin %> <%= command.id %> --module alb --json --duration 1m > samples.ndjson',
  ];

  static override flags = {
    ...controllerFlags,
    instance: instanceFlag,
    interval: durationFlag({
      description: 'Time between samples, whole seconds (1s to 1h)',
      default: 5000,
      defaultHelp: () => Promise.resolve('5s'),
    }),
    count: Flags.custom<number>({ parse: (input) => Promise.resolve(parsePositiveInt(input)) })({
      description: 'Stop after this many samples',
    }),
    duration: durationFlag({ description: 'Stop after this long, e.g. 1m' }),
  };

  public async run(): Promise<void> {
    const { flags } = await this.parse(ModuleTop);
    const address = await this.moduleAddress(flags, flags);
    const json = this.jsonEnabled();
    const format = new TopFormatter();
    if (!json) this.out(format.header());
    await this.streamModule(
      flags,
      address,
      'StreamMetrics',
      compact({
        instanceId: flags.instance,
        intervalSeconds: Math.max(1, Math.round(flags.interval / 1000)),
      }),
      {
        maxMessages: flags.count,
        durationMs: flags.duration,
        onMessage: (message) => this.out(json ? JSON.stringify(message) : format.line(message as SampleJson)),
      },
    );
  }
}
