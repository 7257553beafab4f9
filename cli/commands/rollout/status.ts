import { setTimeout as sleep } from 'node:timers/promises';
import { Flags } from '@oclif/core';
import { durationFlag, type ConnectionFlags } from '../../base-command.js';
import {
  ModuleCommand,
  compact,
  controllerFlags,
  viaInstanceFlag,
  renderDeployment,
  type DeploymentJson,
} from '../../module-command.js';

interface GetActiveVersionJson {
  activeVersion?: string;
  versionWeights?: Record<string, number>;
  deployment?: DeploymentJson;
}

/** Clears a terminal and moves the cursor home, so each render replaces the last. */
const CLEAR_SCREEN = '\u001b[2J\u001b[H';

export default class RolloutStatus extends ModuleCommand {
  static override summary = "Show a module type's deployment: versions with their weights, phase and step";
  static override description =
    'Each version with its share of traffic as a bar, the stable and target versions, the rollout phase (STABLE, PROGRESSING, PAUSED, PROMOTED, ROLLED_BACK, ABORTED), the current step and why the deployment last changed. -w/--watch asks again every --interval and re-renders when the deployment changes (clearing the screen on a terminal), until Ctrl-C or --duration; with --json each change is printed as one JSON object per line. When --module is omitted the only module type registered is used.';

  static rpc = 'marchproxy.ModuleService/GetActiveVersion';

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --module alb -w',
    '<%= config.bin %> <%= command.id %> --module alb --json',
  ];

  static override flags = {
    module: controllerFlags.module,
    address: controllerFlags.address,
    instance: viaInstanceFlag,
    watch: Flags.boolean({ char: 'w', description: 'Keep watching and re-render on every change' }),
    interval: durationFlag({
      description: 'With --watch: how often to ask',
      default: 2000,
      defaultHelp: () => Promise.resolve('2s'),
    }),
    duration: durationFlag({ description: 'With --watch: stop after this long' }),
  };

  public async run(): Promise<GetActiveVersionJson | undefined> {
    const { flags } = await this.parse(RolloutStatus);
    const address = await this.deploymentAddress(flags, flags, undefined);
    const ask = () =>
      this.callModule<GetActiveVersionJson>(
        flags,
        address,
        'GetActiveVersion',
        compact({ instanceId: flags.instance }),
      );
    if (!flags.watch) {
      const res = await ask();
      if (!this.jsonEnabled()) this.out(renderDeployment(res.deployment, { color: this.color(flags) }));
      return res;
    }
    await this.watch(flags, ask);
    return undefined;
  }

  /** Polls until interrupted or --duration; prints the deployment whenever it changed. */
  private async watch(
    flags: ConnectionFlags & { interval: number; duration?: number; color?: boolean },
    ask: () => Promise<GetActiveVersionJson>,
  ): Promise<void> {
    const json = this.jsonEnabled();
    const tty = process.stdout.isTTY === true;
    const color = this.color(flags);
    const until = flags.duration === undefined ? Infinity : Date.now() + flags.duration;
    let last: string | undefined;
    await this.untilInterrupted(async (signal) => {
      while (!signal.aborted) {
        const res = await ask();
        const key = JSON.stringify(res);
        if (key !== last) {
          if (json) this.out(JSON.stringify(res));
          else {
            const view = renderDeployment(res.deployment, { color });
            const stamp = `Every ${flags.interval / 1000}s: rollout status   ${new Date().toISOString()}`;
            this.out(tty ? `${CLEAR_SCREEN}${stamp}\n\n${view}` : `${last === undefined ? '' : '\n'}${view}`);
          }
          last = key;
        }
        const left = until - Date.now();
        if (left <= 0) return;
        try {
          await sleep(Math.min(flags.interval, left), undefined, { signal });
        } catch {
          return; // interrupted
        }
      }
    });
  }
}
