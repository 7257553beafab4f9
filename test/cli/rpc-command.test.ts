/**
 * RpcCommand.resolveModuleAddress against a real NLB: --address wins, --instance uses that
 * instance's controller, otherwise the registry is asked by module type and version.
 */
import { captureOutput } from '@oclif/test';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModuleType } from '../../proto/gen/marchproxy/types.js';
import { moduleFlags, RpcCommand } from '../../cli/rpc-command.js';
import { exitCodeOf, sourceConfig } from './support/oclif.js';
import { startRealNlb, type RealNlb } from './support/real-nlb.js';
import { closedPort } from './support/test-nlb.js';

class Resolve extends RpcCommand {
  static rpc = 'marchproxy.NLBService/ListModules';
  static override flags = { ...moduleFlags };

  public async run(): Promise<{ address: string }> {
    const { flags } = await this.parse(Resolve);
    const address = await this.resolveModuleAddress(flags, flags);
    this.out(address);
    return { address };
  }
}

let nlb: RealNlb;

async function resolve(argv: string[]) {
  const config = await sourceConfig();
  return captureOutput(() => Resolve.run([...argv, '--nlb', nlb.address], config));
}

beforeAll(async () => {
  nlb = await startRealNlb();
  await nlb.register('alb-1', '127.0.0.1:50051');
  await nlb.register('alb-2', '127.0.0.1:50051');
  await nlb.register('alb-3', '127.0.0.1:50061', { version: '2.0' });
  await nlb.register('db-1', '127.0.0.1:50052', { moduleType: ModuleType.MODULE_TYPE_DBLB });
});

afterAll(async () => {
  await nlb.close();
});

describe('resolveModuleAddress', () => {
  it('uses --address without asking the NLB', async () => {
    const config = await sourceConfig();
    const port = await closedPort();
    const out = await captureOutput(() =>
      Resolve.run(['--module', 'alb', '--address', '10.0.0.1:50051', '--nlb', `127.0.0.1:${port}`], config),
    );
    expect(exitCodeOf(out)).toBe(0);
    expect(out.stdout).toBe('10.0.0.1:50051\n');
  });

  it('picks the only version of a module type', async () => {
    const out = await resolve(['--module', 'dblb']);
    expect(out.stdout).toBe('127.0.0.1:50052\n');
  });

  it('picks the controller of --version', async () => {
    expect((await resolve(['--module', 'alb', '--version', '1.0'])).stdout).toBe('127.0.0.1:50051\n');
    expect((await resolve(['--module', 'alb', '--version', '2.0'])).stdout).toBe('127.0.0.1:50061\n');
  });

  it("uses --instance's controller", async () => {
    expect((await resolve(['--instance', 'alb-3'])).stdout).toBe('127.0.0.1:50061\n');
  });

  it('is a usage error listing the versions when several run and --version is missing', async () => {
    const out = await resolve(['--module', 'alb']);
    expect(exitCodeOf(out)).toBe(2);
    expect(out.stderr).toContain(
      'ALB runs several versions (1.0 at 127.0.0.1:50051; 2.0 at 127.0.0.1:50061); pass --version or --address',
    );
  });

  it('is a usage error when nothing says which module', async () => {
    const out = await resolve([]);
    expect(exitCodeOf(out)).toBe(2);
    expect(out.stderr).toContain('say which module: --module alb|dblb|ailb|rtmp');
  });

  it('exits 3 when no instance of the type, version or id is registered', async () => {
    const none = await resolve(['--module', 'rtmp']);
    expect(exitCodeOf(none)).toBe(3);
    expect(none.stderr).toBe(
      `no RTMP instance is registered with the NLB at ${nlb.address}; start one with \`mpctl serve module rtmp --version 1.0\`\n`,
    );
    const version = await resolve(['--module', 'alb', '--version', '9.9']);
    expect(exitCodeOf(version)).toBe(3);
    expect(version.stderr).toContain('no ALB instance of version 9.9 is registered');
    const instance = await resolve(['--instance', 'ghost-1']);
    expect(exitCodeOf(instance)).toBe(3);
  });

  it('exits 4 naming the NLB when it is unreachable', async () => {
    const config = await sourceConfig();
    const port = await closedPort();
    const out = await captureOutput(() =>
      Resolve.run(['--module', 'alb', '--nlb', `127.0.0.1:${port}`], config),
    );
    expect(exitCodeOf(out)).toBe(4);
    expect(out.stderr).toContain(`cannot reach the NLB at 127.0.0.1:${port} (connection refused)`);
  });
});
