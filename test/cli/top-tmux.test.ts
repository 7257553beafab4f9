/**
 * `mpctl top` in a real terminal: a real NLB and ALB controller run in this process, mpctl runs
 * from source in a detached tmux session (80 × 24) on its own tmux server, and the test reads
 * the screen, presses keys one at a time (keys sent together arrive as one chunk) and quits.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nlbProcessSchema, startNlb, type NlbHandle } from '../../services/nlb/main.js';
import { startModuleStack, type ModuleStack } from './support/module-stack.js';
import { REPO_ROOT } from './support/oclif.js';

const hasTmux = spawnSync('tmux', ['-V']).status === 0;
const SERVER = `mpctl-test-${process.pid}`;
const SESSION = 'top';

const tmux = (...args: string[]) => execFileSync('tmux', ['-L', SERVER, ...args], { encoding: 'utf8' });
const screen = () => tmux('capture-pane', '-p', '-t', SESSION);

/** Polls the screen until `test` passes; fails with the last screen after `timeoutMs`. */
async function waitForScreen(
  what: string,
  test: (s: string) => boolean,
  timeoutMs = 15_000,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last: string;
  for (;;) {
    try {
      last = screen();
    } catch {
      last = '(no tmux session)';
    }
    if (test(last)) return last;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; screen:\n${last}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.skipIf(!hasTmux)(
  'mpctl top in tmux (skipped when tmux is not installed: apt-get install tmux)',
  () => {
    let stack: ModuleStack;
    let second: NlbHandle | undefined;

    beforeAll(async () => {
      stack = await startModuleStack();
      await stack.startModule('alb', '1.0');
    });

    afterAll(async () => {
      spawnSync('tmux', ['-L', SERVER, 'kill-server']);
      await second?.stop();
      await stack?.close();
    });

    it('shows the ALB row, reacts to s and p, survives the NLB going away, and exits on q', async () => {
      try {
        tmux(
          'new-session',
          '-d',
          '-s',
          SESSION,
          '-x',
          '80',
          '-y',
          '24',
          '-c',
          REPO_ROOT,
          `node bin/dev.js top --nlb ${stack.nlb} --interval 1 2>/dev/null; echo EXIT=$?; sleep 60`,
        );
        const first = await waitForScreen(
          'the ALB row and the NLB status',
          (s) => /ALB@1\.0\s+1\/1\s+100/.test(s) && s.includes('HEALTHY'),
          45_000,
        );
        expect(first).toContain(`NLB ${stack.nlb}  HEALTHY`);
        expect(first).toContain('● live');
        expect(first).toContain('q quit  s sort: name  / filter  p pause');
        await waitForScreen('the deployment bar', (s) => /1\.0\s+█+\s+100 %/.test(s));

        tmux('send-keys', '-t', SESSION, 's');
        const sorted = await waitForScreen('the sort to change', (s) => s.includes('s sort: rps'));
        expect(sorted).not.toEqual(first);

        tmux('send-keys', '-t', SESSION, 'p');
        const paused = await waitForScreen(
          'the pause',
          (s) => s.includes('‖ paused') && s.includes('p resume'),
        );
        expect(paused).toContain('ALB@1.0');

        tmux('send-keys', '-t', SESSION, 'p');
        await waitForScreen('the resume', (s) => s.includes('● live') && s.includes('p pause'));

        // The NLB goes away: the view says so and keeps the last rows; a new NLB on the same port brings it back.
        const port = stack.nlbHandle.grpcPort;
        await stack.nlbHandle.stop();
        const away = await waitForScreen('reconnecting', (s) => s.includes('cannot reach the NLB'));
        expect(away).toMatch(/reconnecting… \(attempt \d+\)/);
        expect(away).toContain('ALB@1.0');
        second = await startNlb(
          nlbProcessSchema.parse({
            grpc: { host: '127.0.0.1', port },
            admin: { host: '127.0.0.1', port: 0 },
            dataDir: '',
            logLevel: 'silent',
            heartbeatIntervalSeconds: 1,
          }),
        );
        await waitForScreen('the stream to resume', (s) => s.includes('● live'), 30_000);

        tmux('send-keys', '-t', SESSION, 'q');
        const after = await waitForScreen('mpctl to exit', (s) => s.includes('EXIT='), 15_000);
        expect(after).toContain('EXIT=0');
        // The alternate screen is gone: the TUI left nothing behind.
        expect(after).not.toContain('ALB@1.0');
      } finally {
        spawnSync('tmux', ['-L', SERVER, 'kill-session', '-t', SESSION]);
      }
    }, 90_000);
  },
);
