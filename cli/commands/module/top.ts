import { Flags } from '@oclif/core';
import { durationFlag } from '../../base-command.js';
import { parsePositiveInt } from '../../flag-parsers.js';
import { ModuleCommand, compact, controllerFlags, instanceFlag } from '../../module-command.js';
import { moduleTypeEnum } from '../../rpc-command.js';
import {
  streamPort,
  type ModuleInstanceJson,
  type ModuleSampleJson,
  type ModuleSource,
} from '../../ui/sources.js';

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
  static override summary =
    'Watch one module controller live: its numbers with sparklines and its instances (a TUI)';
  static override description = `A full-screen view over StreamMetrics: requests per second, error rate, connections, p99 and p50 latency, CPU and memory, summed over the controller's instances (or one with --instance), each with a sparkline of the last minutes; below them the instances (GetInstances) with health, version, connections and traffic address.

Keys: q quits, s cycles the instance sort (name, connections, status), / filters the instances (Enter keeps the filter, Esc clears it), p pauses the screen. When the controller goes away the view says "reconnecting…" and resumes when it is back.

When stdout is not a terminal, or with --json, it prints one line per sample instead (NDJSON with --json): requests per second, totals, failures, active connections, latency, CPU and memory, until Ctrl-C, --count or --duration.`;

  static rpc = 'marchproxy.ModuleService/StreamMetrics';

  static override examples = [
    '<%= config.bin %> <%= command.id %> --module alb',
    '<%= config.bin %> <%= command.id %> --module alb --version 2.0 --interval 1s',
    '<%= config.bin %> <%= command.id %> --module alb --instance alb-1 --interval 1s --count 10 | cat',
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
      description: 'Line mode: stop after this many samples',
    }),
    duration: durationFlag({ description: 'Line mode: stop after this long, e.g. 1m' }),
  };

  public async run(): Promise<void> {
    const { flags } = await this.parse(ModuleTop);
    const address = await this.moduleAddress(flags, flags);
    const json = this.jsonEnabled();
    const intervalSeconds = Math.max(1, Math.round(flags.interval / 1000));
    const request = compact({ instanceId: flags.instance, intervalSeconds });
    if (!json && process.stdout.isTTY) {
      const source: ModuleSource = {
        streamMetrics: streamPort((signal, onMessage) =>
          this.streamModule(flags, address, 'StreamMetrics', request, {
            signal,
            onMessage: (m) => onMessage(m as ModuleSampleJson),
          }),
        ),
        instances: async () =>
          (
            await this.callModule<{ instances?: ModuleInstanceJson[] }>(
              flags,
              address,
              'GetInstances',
              compact({ moduleType: flags.module ? moduleTypeEnum(flags.module) : undefined }),
            )
          ).instances ?? [],
      };
      // ink and React load only here.
      (await import('../../ui/interactive.js')).renderLiveInCi();
      const { runModuleTop } = await import('../../ui/ModuleTopApp.js');
      await this.untilInterrupted((signal) =>
        runModuleTop({
          source,
          target: address,
          signal,
          options: {
            historySize: Math.min(600, Math.max(30, Math.round(300 / intervalSeconds))),
            stallMs: Math.max(10_000, 3 * intervalSeconds * 1000),
          },
        }),
      );
      return;
    }
    const format = new TopFormatter();
    if (!json) this.out(format.header());
    await this.streamModule(flags, address, 'StreamMetrics', request, {
      maxMessages: flags.count,
      durationMs: flags.duration,
      onMessage: (message) => this.out(json ? JSON.stringify(message) : format.line(message as SampleJson)),
    });
  }
}
