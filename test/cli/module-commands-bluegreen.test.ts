/**
 * The blue/green verbs (`mpctl traffic set`, `promote`, `rollout status|pause|resume`,
 * `rollback`) against a real NLB with real ALB 1.0 and 2.0 controllers: each verb finds an ALB
 * controller (inferring --module from --version), which forwards to the NLB's deployment. The
 * tests run in order: the deployment they leave is the next one's starting point.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SetTrafficWeightRequest } from '../../proto/gen/marchproxy/module.js';
import type { ModuleHandle } from '../../services/modules/runtime/main.js';
import { createClientConnection, createModuleClient, unaryCall } from '../../services/shared/grpc/client.js';
import { exitCodeOf } from './support/oclif.js';
import { startModuleStack, type ModuleStack } from './support/module-stack.js';

let stack: ModuleStack;
let alb1: ModuleHandle;
let alb2: ModuleHandle;

const run = (...argv: string[]) => stack.run(argv);

/** The deployment block of the human output, without the lines that change every time. */
function deploymentView(stdout: string): string {
  return stdout
    .split('\n')
    .filter((line) => !/^(Updated|Revision):/.test(line))
    .join('\n');
}

beforeAll(async () => {
  stack = await startModuleStack();
  // 1.0 registers first, so it is the stable version with 100 %.
  alb1 = await stack.startModule('alb', '1.0');
  alb2 = await stack.startModule('alb', '2.0');
});

afterAll(async () => {
  await stack?.close();
});

describe('mpctl rollout status', () => {
  it('shows the versions with weight bars, the phase and the stable version', async () => {
    const out = await run('rollout', 'status');
    expect(exitCodeOf(out)).toBe(0);
    expect(out.stderr).toBe('');
    expect(deploymentView(out.stdout)).toBe(
      [
        'Module:   ALB',
        'Phase:    STABLE',
        'Stable:   1.0',
        'Target:   -',
        'Reason:   version 2.0 registered with weight 0',
        '',
        'VERSION  WEIGHT                  %  ROLE',
        '1.0      ████████████████████  100  stable',
        '2.0      ░░░░░░░░░░░░░░░░░░░░    0  -',
        '',
      ].join('\n'),
    );
  });

  it('returns GetActiveVersion with --json', async () => {
    const out = await run('rollout', 'status', '--module', 'alb', '--json');
    expect(exitCodeOf(out)).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual(out.result);
    expect(out.result).toMatchObject({
      activeVersion: '1.0',
      versionWeights: { '1.0': 100 },
      deployment: { moduleType: 'MODULE_TYPE_ALB', phase: 'ROLLOUT_PHASE_STABLE', stableVersion: '1.0' },
    });
  });

  it('exits 3 for a module type with no controller', async () => {
    const out = await run('rollout', 'status', '--module', 'dblb');
    expect(exitCodeOf(out)).toBe(3);
    expect(out.stderr).toBe(
      `no DBLB controller is registered with the NLB at ${stack.nlb}; start one with \`mpctl serve module dblb --version 1.0\`\n`,
    );
  });
});

describe('mpctl traffic set', () => {
  it("sets a version's weight and shows the deployment", async () => {
    const out = await run('traffic', 'set', '--version', '2.0', '--weight', '5');
    expect(exitCodeOf(out)).toBe(0);
    const [message, blank, ...view] = out.stdout.split('\n');
    expect(message).toBe(`ALB 2.0 weight set to 5 by alb-controller 2.0 ${alb2.address}`);
    expect(blank).toBe('');
    expect(deploymentView(view.join('\n'))).toBe(
      [
        'Module:   ALB',
        'Phase:    STABLE',
        'Stable:   1.0',
        'Target:   2.0',
        'Reason:   weight of 2.0 set to 5',
        '',
        'VERSION  WEIGHT                 %  ROLE',
        '1.0      ███████████████████░  95  stable',
        '2.0      █░░░░░░░░░░░░░░░░░░░   5  target',
        '',
      ].join('\n'),
    );
  });

  it('returns SetTrafficWeight with --json', async () => {
    const out = await run(
      'traffic',
      'set',
      '--module',
      'alb',
      '--version',
      '2.0',
      '--weight',
      '10',
      '--json',
    );
    expect(exitCodeOf(out)).toBe(0);
    expect(out.result).toMatchObject({
      success: true,
      deployment: { versionWeights: { '1.0': 90, '2.0': 10 }, targetVersion: '2.0' },
    });
  });

  it('exits 6 with the server message for --weight 101', async () => {
    const out = await run('traffic', 'set', '--version', '2.0', '--weight', '101');
    expect(exitCodeOf(out)).toBe(6);
    expect(out.stderr).toBe(
      'marchproxy.ModuleService/SetTrafficWeight answered success=false: invalid traffic weight: weight 101 is out of range: use 0 to 100 (STATUS_CODE_INVALID_ARGUMENT)\n',
    );
  });

  it('exits 2 for a weight that is not a number, sending nothing', async () => {
    const out = await run('traffic', 'set', '--version', '2.0', '--weight', 'lots');
    expect(exitCodeOf(out)).toBe(2);
    expect(out.stderr).toBe(
      '--weight: expected a whole number of at least 0, got "lots"; see `mpctl traffic set --help`\n',
    );
  });

  it('exits 3 for a version no module runs', async () => {
    const out = await run('traffic', 'set', '--version', '3.0', '--weight', '5');
    expect(exitCodeOf(out)).toBe(3);
    expect(out.stderr).toBe(
      `no module of version 3.0 is registered with the NLB at ${stack.nlb}; registered: alb 1.0, 2.0\n`,
    );
  });

  it('exits 2 without --weight', async () => {
    const out = await run('traffic', 'set', '--version', '2.0');
    expect(exitCodeOf(out)).toBe(2);
    expect(out.stderr).toMatch(/Missing required flag weight/);
  });
});

describe('mpctl promote, rollout pause|resume', () => {
  it('starts a stepped rollout of --version', async () => {
    // Back to 1.0 only, so the rollout starts from the stable version.
    expect(exitCodeOf(await run('traffic', 'set', '--version', '1.0', '--weight', '100'))).toBe(0);
    const out = await run('promote', '--version', '2.0', '--rate', '25');
    expect(exitCodeOf(out)).toBe(0);
    const [message, , ...view] = out.stdout.split('\n');
    expect(message).toBe(`ALB 2.0: rollout of 2.0 started at 25 % by alb-controller 2.0 ${alb2.address}`);
    expect(deploymentView(view.join('\n'))).toBe(
      [
        'Module:   ALB',
        'Phase:    PROGRESSING',
        'Step:     1/4 (25 %; steps 25, 50, 75, 100)',
        'Stable:   1.0',
        'Target:   2.0',
        'Reason:   rollout of 2.0 started at 25 %',
        '',
        'VERSION  WEIGHT                 %  ROLE',
        '1.0      ███████████████░░░░░  75  stable',
        '2.0      █████░░░░░░░░░░░░░░░  25  target',
        '',
      ].join('\n'),
    );
  });

  it('refuses to promote again while it rolls out (exit 6, server message)', async () => {
    const out = await run('promote', '--version', '2.0', '--json');
    expect(exitCodeOf(out)).toBe(6);
    expect(JSON.parse(out.stdout)).toMatchObject({
      error: {
        message: expect.stringContaining('ALB is already rolling out 2.0 (at 25 %, progressing)'),
        exitCode: 6,
      },
    });
  });

  it('rejects --rate 0 and --rate with --immediate (exit 2)', async () => {
    const zero = await run('promote', '--version', '2.0', '--rate', '0');
    expect(exitCodeOf(zero)).toBe(2);
    expect(zero.stderr.trim().split('\n')).toHaveLength(1);
    const both = await run('promote', '--version', '2.0', '--rate', '10', '--immediate');
    expect(exitCodeOf(both)).toBe(2);
    expect(both.stderr).toContain('--immediate');
  });

  it('pauses the rollout', async () => {
    const out = await run('rollout', 'pause', '--reason', 'checking');
    expect(exitCodeOf(out)).toBe(0);
    expect(out.stdout).toMatch(/^ALB rollout of 2\.0 paused at 25 %\n\nModule: {3}ALB\nPhase: {4}PAUSED\n/);
    expect(out.stdout).toContain('\nReason:   checking\n');
  });

  it('exits 6 pausing a paused rollout', async () => {
    const out = await run('rollout', 'pause', '--module', 'alb');
    expect(exitCodeOf(out)).toBe(6);
    expect(out.stderr).toBe(
      'marchproxy.ModuleService/PauseRollout answered success=false: ALB has no progressing rollout to pause (phase PAUSED) (STATUS_CODE_INVALID_ARGUMENT)\n',
    );
  });

  it('resumes it (--json)', async () => {
    const out = await run('rollout', 'resume', '--version', '2.0', '--json');
    expect(exitCodeOf(out)).toBe(0);
    expect(out.result).toMatchObject({
      success: true,
      deployment: { phase: 'ROLLOUT_PHASE_PROGRESSING', targetVersion: '2.0', steps: [25, 50, 75, 100] },
    });
  });

  it('pauses with --json; a version that is not rolling out exits 6', async () => {
    const wrong = await run('rollout', 'pause', '--module', 'alb', '--version', '1.0');
    expect(exitCodeOf(wrong)).toBe(6);
    expect(wrong.stderr).toContain('ALB is rolling out 2.0, not 1.0');
    const out = await run('rollout', 'pause', '--version', '2.0', '--json');
    expect(out.result).toMatchObject({ success: true, deployment: { phase: 'ROLLOUT_PHASE_PAUSED' } });
    const resumed = await run('rollout', 'resume');
    expect(exitCodeOf(resumed)).toBe(0);
    expect(resumed.stdout).toMatch(/^ALB rollout of 2\.0 resumed at 25 %\n/);
  });
});

describe('mpctl rollout status -w', () => {
  const pauseSoon = (ms: number) =>
    new Promise<void>((resolve, reject) => {
      setTimeout(() => {
        const client = createModuleClient(createClientConnection({ target: alb1.address }));
        unaryCall(
          client,
          'setTrafficWeight',
          SetTrafficWeightRequest.fromPartial({ version: '2.0', weight: 40 }),
        )
          .then(() => resolve(), reject)
          .finally(() => client.close());
      }, ms);
    });

  it('re-renders when the deployment changes, until --duration', async () => {
    const changed = pauseSoon(700);
    const out = await run('rollout', 'status', '-w', '--interval', '200ms', '--duration', '2s');
    await changed;
    expect(exitCodeOf(out)).toBe(0);
    const views = out.stdout.trimEnd().split('\n\nModule:');
    expect(views).toHaveLength(2);
    expect(views[0]).toMatch(/^Module: {3}ALB\nPhase: {4}PROGRESSING\n/);
    expect(views[0]).toContain('2.0      █████░░░░░░░░░░░░░░░  25  target');
    expect(views[1]).toMatch(/^ {3}ALB\nPhase: {4}PAUSED\n/);
    expect(views[1]).toContain('2.0      ████████░░░░░░░░░░░░  40  target');
  });

  it('prints each change as a JSON line with --json', async () => {
    const changed = new Promise<void>((resolve, reject) => {
      setTimeout(() => {
        const client = createModuleClient(createClientConnection({ target: alb2.address }));
        unaryCall(
          client,
          'setTrafficWeight',
          SetTrafficWeightRequest.fromPartial({ version: '2.0', weight: 50 }),
        )
          .then(() => resolve(), reject)
          .finally(() => client.close());
      }, 700);
    });
    const out = await run(
      'rollout',
      'status',
      '--watch',
      '--interval',
      '200ms',
      '--duration',
      '2s',
      '--json',
    );
    await changed;
    expect(exitCodeOf(out)).toBe(0);
    const lines = out.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.versionWeights)).toEqual([
      { '1.0': 60, '2.0': 40 },
      { '1.0': 50, '2.0': 50 },
    ]);
  });
});

describe('mpctl rollback', () => {
  it('returns all traffic to the stable version', async () => {
    const out = await run('rollback');
    expect(exitCodeOf(out)).toBe(0);
    expect(out.stdout).toBe(
      [
        `Message:  ALB rolled back from 2.0 to 1.0 by alb-controller 1.0 ${alb1.address}`,
        'Previous: 2.0',
        'Current:  1.0',
        '',
      ].join('\n'),
    );
    const status = await run('rollout', 'status', '--json');
    expect(status.result).toMatchObject({
      versionWeights: { '1.0': 100, '2.0': 0 },
      deployment: { phase: 'ROLLOUT_PHASE_ROLLED_BACK' },
    });
  });

  it('rolls back to --to (--json); an unknown --to exits 3', async () => {
    const unknown = await run('rollback', '--module', 'alb', '--to', '7.0');
    expect(exitCodeOf(unknown)).toBe(3);
    expect(unknown.stderr).toContain('ALB version 7.0 does not exist');
    const out = await run('rollback', '--to', '1.0', '--json');
    expect(exitCodeOf(out)).toBe(0);
    expect(out.result).toMatchObject({ success: true, currentVersion: '1.0' });
  });
});

describe('mpctl promote --immediate', () => {
  it('moves all traffic at once (--json)', async () => {
    const out = await run('promote', '--version', '2.0', '--immediate', '--json');
    expect(exitCodeOf(out)).toBe(0);
    expect(out.result).toMatchObject({
      success: true,
      promotedVersion: '2.0',
      deployment: { phase: 'ROLLOUT_PHASE_PROMOTED', stableVersion: '2.0', versionWeights: { '2.0': 100 } },
    });
  });
});
