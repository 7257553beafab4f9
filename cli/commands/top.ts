import { durationFlag } from '../base-command.js';
import { usageFailure } from '../exit-codes.js';
import { positiveIntFlag, toSeconds } from '../nlb-support.js';
import { moduleTypeEnum, RpcCommand } from '../rpc-command.js';
import { streamPort, type NlbSource } from '../ui/sources.js';
import {
  ROW_LINE_HEADER,
  rowLine,
  rowsFromSnapshot,
  type DeploymentStateJson,
  type NlbMetricsJson,
  type NlbStatusJson,
} from '../ui/top-model.js';

export default class Top extends RpcCommand {
  static rpc = 'marchproxy.NLBService/StreamNLBMetrics';
  static rpcs = [
    'marchproxy.NLBService/StreamNLBMetrics',
    'marchproxy.NLBService/GetNLBStatus',
    'marchproxy.NLBService/UpdateDeployment',
  ];

  static override summary = 'Watch the NLB live: modules by type and version, deployments, events (a TUI)';
  static override description = `A full-screen view over StreamNLBMetrics: the NLB's status, uptime and totals; one row per module type and version with instances (healthy/total), weight, connections, requests/s, error rate, p99 latency and sparklines of the last minutes; each deployment's version weights as bars with the rollout step; the latest scaling and rollout events.

Keys: q quits, s cycles the sort (name, rps, connections, errors, p99), / filters the rows (Enter keeps the filter, Esc clears it), p pauses the screen. When the NLB goes away the view says "reconnecting…" and resumes when it is back. Columns drop out on a narrow terminal.

When stdout is not a terminal, or with --json, it prints instead: one line per module row per snapshot (NDJSON snapshots with --json), until Ctrl-C or --count.`;

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --nlb 127.0.0.1:50050 --interval 1s',
    '<%= config.bin %> <%= command.id %> --count 3 | cat',
    '<%= config.bin %> <%= command.id %> --json --count 1',
  ];

  static override flags = {
    interval: durationFlag({
      description: 'Time between snapshots, whole seconds (1s to 1h)',
      default: 2000,
      defaultHelp: () => Promise.resolve('2s'),
    }),
    count: positiveIntFlag({ description: 'Line mode: stop after this many snapshots' }),
  };

  public async run(): Promise<undefined> {
    const { flags } = await this.parse(Top);
    if (flags.interval > 3_600_000) throw usageFailure(`--interval: at most 1h, got ${flags.interval}ms`);
    const intervalSeconds = toSeconds(flags.interval);
    const request = { intervalSeconds, includeModules: true };

    if (this.jsonEnabled() || !process.stdout.isTTY) {
      const json = this.jsonEnabled();
      if (!json) this.out(ROW_LINE_HEADER);
      await this.streamNlb(flags, 'StreamNLBMetrics', request, {
        maxMessages: flags.count,
        onMessage: (message) => {
          const snapshot = message as NlbMetricsJson;
          if (json) return this.out(JSON.stringify(snapshot));
          for (const row of rowsFromSnapshot(snapshot)) this.out(rowLine(snapshot.timestamp, row));
        },
      });
      return undefined;
    }

    const source: NlbSource = {
      streamMetrics: streamPort((signal, onMessage) =>
        this.streamNlb(flags, 'StreamNLBMetrics', request, {
          signal,
          onMessage: (m) => onMessage(m as NlbMetricsJson),
        }),
      ),
      status: () => this.callNlb<NlbStatusJson>(flags, 'GetNLBStatus', {}),
      deployment: async (type) =>
        (
          await this.callNlb<{ deployment?: DeploymentStateJson }>(flags, 'UpdateDeployment', {
            moduleType: moduleTypeEnum(type),
            action: 'DEPLOYMENT_ACTION_STATUS',
            requestedBy: 'mpctl top',
          })
        ).deployment,
    };
    // ink and React load only here, not for the line mode or any other command.
    (await import('../ui/interactive.js')).renderLiveInCi();
    const { runTop } = await import('../ui/TopApp.js');
    await this.untilInterrupted((signal) =>
      runTop({
        source,
        target: flags.nlb,
        signal,
        options: {
          // About five minutes of history, and a stream that says nothing for 3 intervals is stale.
          historySize: Math.min(600, Math.max(30, Math.round(300 / intervalSeconds))),
          stallMs: Math.max(10_000, 3 * intervalSeconds * 1000),
        },
      }),
    );
    return undefined;
  }
}
