import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startModuleStack, type ModuleStack } from './support/module-stack.js';
import { exitCodeOf } from './support/oclif.js';

// Under vitest stdout is not a terminal, so `mpctl top` prints lines instead of the TUI.
describe('mpctl top (line mode)', () => {
  let stack: ModuleStack;

  beforeAll(async () => {
    stack = await startModuleStack();
    await stack.startModule('alb', '1.0');
  });
  afterAll(() => stack?.close());

  it('prints a header and a line per module row per snapshot, until --count', async () => {
    const out = await stack.run(['top', '--interval', '1s', '--count', '2']);
    expect(exitCodeOf(out)).toBe(0);
    const lines = out.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('TIME     MODULE          INST  WT%    CONN    REQ/S   ERR%   P99MS  CPU%');
    expect(lines).toHaveLength(3);
    for (const line of lines.slice(1))
      expect(line).toMatch(/^\d\d:\d\d:\d\d ALB@1\.0 +1\/1 +100 +0 +0 +0\.0 +0 +\d+$/);
  });

  it('prints each snapshot as a JSON line with --json', async () => {
    const out = await stack.run(['top', '--interval', '1s', '--count', '1', '--json']);
    expect(exitCodeOf(out)).toBe(0);
    const lines = out.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0])).toMatchObject({
      moduleMetrics: { 'ALB@1.0': { moduleType: 'MODULE_TYPE_ALB' } },
    });
  });

  it('refuses an interval over an hour as a usage error', async () => {
    const out = await stack.run(['top', '--interval', '2h', '--count', '1']);
    expect(exitCodeOf(out)).toBe(2);
    expect(out.stderr).toContain('--interval: at most 1h');
  });
});
