import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { status, type ServerWritableStream } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  GetNLBStatusRequest,
  GetNLBStatusResponse,
  StreamNLBMetricsResponse,
  UnregisterModuleResponse,
} from '../../proto/gen/marchproxy/nlb.js';
import { HealthStatus, StatusCode } from '../../proto/gen/marchproxy/types.js';
import { exitCodeOf, mpctl, REPO_ROOT } from './support/oclif.js';
import { closedPort, startTestNlb, type TestNlb } from './support/test-nlb.js';

const GET_STATUS = 'marchproxy.NLBService/GetNLBStatus';
const TOKEN = 's3cret-token';

// What the server answers, and the protobuf JSON mpctl must print for it (written out by hand).
const STATUS = GetNLBStatusResponse.fromPartial({
  status: HealthStatus.HEALTH_STATUS_HEALTHY,
  version: '1.4.2',
  startedAt: new Date('2024-05-01T12:00:00Z'),
  registeredModules: 3,
  modulesByType: { ALB: 2, SMTP: 1 },
});
const STATUS_JSON = {
  status: 'HEALTH_STATUS_HEALTHY',
  version: '1.4.2',
  startedAt: '2024-05-01T12:00:00.000Z',
  registeredModules: 3,
  modulesByType: { ALB: 2, SMTP: 1 },
};

let nlb: TestNlb;

beforeAll(async () => {
  nlb = await startTestNlb({
    getNlbStatus: (call, callback) => {
      if (call.metadata.get('authorization')[0] === 'Bearer wrong') {
        callback({ code: status.UNAUTHENTICATED, details: 'invalid bearer token' });
        return;
      }
      callback(null, STATUS);
    },
    streamNlbMetrics: (call: ServerWritableStream<unknown, StreamNLBMetricsResponse>) => {
      let n = 0;
      // Writes until the client cancels; a CLI that never cancels would hang the test.
      const timer = setInterval(() => {
        call.write(StreamNLBMetricsResponse.fromPartial({ metrics: [{ name: 'connections', value: n++ }] }));
      }, 10);
      call.on('cancelled', () => clearInterval(timer));
    },
    unregisterModule: (call, callback) => {
      const notFound = call.request.instanceId === 'alb-9';
      callback(
        null,
        UnregisterModuleResponse.fromPartial({
          success: false,
          message: notFound ? 'no instance alb-9' : 'alb-1 is draining already',
          error: {
            code: notFound ? StatusCode.STATUS_CODE_NOT_FOUND : StatusCode.STATUS_CODE_INVALID_ARGUMENT,
            message: 'x',
          },
        }),
      );
    },
  });
});

afterAll(async () => {
  await nlb.close();
});

afterEach(() => {
  nlb.calls.length = 0;
  delete process.env.MPCTL_NLB;
});

describe('mpctl call, unary', () => {
  it('prints the response of GetNLBStatus as pretty protobuf JSON on stdout', async () => {
    const out = await mpctl(['call', GET_STATUS, '--data', '{}', '--nlb', nlb.address]);
    expect(out.error).toBeUndefined();
    expect(out.stdout).toBe(`${JSON.stringify(STATUS_JSON, null, 2)}\n`);
    expect(out.stderr).toBe('');
    expect(nlb.calls.map((c) => c.method)).toEqual(['/marchproxy.NLBService/GetNLBStatus']);
  });

  it.each([
    ['NLBService/GetNLBStatus'],
    ['NLBService.GetNLBStatus'],
    ['/marchproxy.NLBService/GetNLBStatus'],
  ])('accepts the RPC spelled %s', async (name) => {
    const out = await mpctl(['call', name, '--nlb', nlb.address]);
    expect(exitCodeOf(out)).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual(STATUS_JSON);
  });

  it.each([['{"include_modules":true}'], ['{"includeModules":true}']])(
    'sends %s as include_modules=true',
    async (data) => {
      const out = await mpctl(['call', GET_STATUS, '--data', data, '--nlb', nlb.address]);
      expect(exitCodeOf(out)).toBe(0);
      expect(nlb.calls[0].request).toEqual(GetNLBStatusRequest.fromPartial({ includeModules: true }));
    },
  );

  it('uses MPCTL_NLB when --nlb is absent', async () => {
    process.env.MPCTL_NLB = nlb.address;
    const out = await mpctl(['call', GET_STATUS]);
    expect(exitCodeOf(out)).toBe(0);
    expect(nlb.calls).toHaveLength(1);
  });

  it('returns the response under --json too', async () => {
    const out = await mpctl(['call', GET_STATUS, '--nlb', nlb.address, '--json']);
    expect(exitCodeOf(out)).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual(STATUS_JSON);
    expect(out.result).toEqual(STATUS_JSON);
  });

  it('sends the token as a bearer token', async () => {
    const out = await mpctl(['call', GET_STATUS, '--nlb', nlb.address, '--token', TOKEN]);
    expect(exitCodeOf(out)).toBe(0);
    expect(nlb.calls[0].authorization).toBe(`Bearer ${TOKEN}`);
  });

  it('sends no authorization header without a token', async () => {
    await mpctl(['call', GET_STATUS, '--nlb', nlb.address]);
    expect(nlb.calls[0].authorization).toBeUndefined();
  });

  it('exits 5 with a hint when the token is rejected', async () => {
    const out = await mpctl(['call', GET_STATUS, '--nlb', nlb.address, '--token', 'wrong']);
    expect(exitCodeOf(out)).toBe(5);
    expect(out.stderr).toBe(
      `UNAUTHENTICATED from ${nlb.address}: invalid bearer token; the token was rejected; check --token or MPCTL_TOKEN\n`,
    );
  });

  it('exits 1 naming the RPC and address when the server does not implement it', async () => {
    const out = await mpctl(['call', 'NLBService/ListModules', '--nlb', nlb.address]);
    expect(exitCodeOf(out)).toBe(1);
    expect(out.stderr).toBe(
      `UNIMPLEMENTED from ${nlb.address}: it does not serve marchproxy.NLBService/ListModules; is it the NLB? set --nlb or MPCTL_NLB\n`,
    );
    expect(out.stdout).toBe('');
  });

  it('prints a success=false response and exits 6 with its message', async () => {
    const out = await mpctl([
      'call',
      'NLBService/UnregisterModule',
      '--data',
      '{"instance_id":"alb-1"}',
      '--nlb',
      nlb.address,
    ]);
    expect(exitCodeOf(out)).toBe(6);
    expect(JSON.parse(out.stdout)).toMatchObject({ message: 'alb-1 is draining already' });
    expect(out.stderr).toBe(
      'marchproxy.NLBService/UnregisterModule answered success=false: alb-1 is draining already (STATUS_CODE_INVALID_ARGUMENT)\n',
    );
  });

  it('exits 3 when the envelope says NOT_FOUND', async () => {
    const out = await mpctl([
      'call',
      'NLBService/UnregisterModule',
      '--data',
      '{"instance_id":"alb-9"}',
      '--nlb',
      nlb.address,
    ]);
    expect(exitCodeOf(out)).toBe(3);
  });
});

describe('mpctl call, usage errors (exit 2, nothing sent)', () => {
  it('reports bad JSON with its line and column', async () => {
    const out = await mpctl(['call', GET_STATUS, '--data', '{"include_modules":}', '--nlb', nlb.address]);
    expect(exitCodeOf(out)).toBe(2);
    expect(out.stderr).toBe(
      '--data is not valid JSON: expected a JSON value but found "}" at line 1, column 20; see `mpctl call --help`\n',
    );
    expect(nlb.calls).toEqual([]);
  });

  it('rejects an unknown request field and suggests the close one', async () => {
    const out = await mpctl(['call', GET_STATUS, '--data', '{"include_module":true}', '--nlb', nlb.address]);
    expect(exitCodeOf(out)).toBe(2);
    expect(out.stderr).toBe(
      '--data: unknown field "include_module" in marchproxy.GetNLBStatusRequest; did you mean "include_modules"?; see `mpctl call --help`\n',
    );
    expect(nlb.calls).toEqual([]);
  });

  it('rejects an unknown RPC and suggests close names', async () => {
    const out = await mpctl(['call', 'NLBService/GetNLBStatu', '--nlb', nlb.address]);
    expect(exitCodeOf(out)).toBe(2);
    expect(out.stderr).toContain(
      'unknown RPC "NLBService/GetNLBStatu"; did you mean "marchproxy.NLBService/GetNLBStatus"',
    );
    expect(out.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('rejects an --nlb that is not host:port', async () => {
    const out = await mpctl(['call', GET_STATUS, '--nlb', 'localhost']);
    expect(exitCodeOf(out)).toBe(2);
    expect(out.stderr).toBe(
      '--nlb: expected host:port (e.g. 127.0.0.1:50050 or [::1]:50050), got "localhost"; see `mpctl call --help`\n',
    );
  });

  it('reports a usage error as {"error": …} under --json', async () => {
    const out = await mpctl(['call', 'Nope/Nope', '--json']);
    expect(exitCodeOf(out)).toBe(2);
    expect(JSON.parse(out.stdout)).toEqual({
      error: { message: expect.stringContaining('unknown RPC "Nope/Nope"'), code: 'USAGE', exitCode: 2 },
    });
    expect(out.stderr).toBe('');
  });
});

describe('mpctl call, unreachable server', () => {
  it('exits 4 with one line naming the address it tried', async () => {
    const address = `127.0.0.1:${await closedPort()}`;
    const out = await mpctl(['call', GET_STATUS, '--data', '{}', '--nlb', address]);
    expect(exitCodeOf(out)).toBe(4);
    expect(out.stdout).toBe('');
    expect(out.stderr).toBe(
      `cannot reach the NLB at ${address} (connection refused): is \`mpctl serve nlb\` running? set --nlb or MPCTL_NLB\n`,
    );
  });

  it('prints the failure as {"error": …} on stdout under --json', async () => {
    const address = `127.0.0.1:${await closedPort()}`;
    const out = await mpctl(['call', GET_STATUS, '--nlb', address, '--json']);
    expect(exitCodeOf(out)).toBe(4);
    expect(out.stderr).toBe('');
    expect(JSON.parse(out.stdout)).toEqual({
      error: {
        message: `cannot reach the NLB at ${address} (connection refused): is \`mpctl serve nlb\` running? set --nlb or MPCTL_NLB`,
        code: 'UNAVAILABLE',
        exitCode: 4,
      },
    });
  });

  it('sends ModuleService calls to --address, naming it on failure', async () => {
    const address = `127.0.0.1:${await closedPort()}`;
    const out = await mpctl(['call', 'marchproxy.ModuleService/GetStatus', '--address', address]);
    expect(exitCodeOf(out)).toBe(4);
    expect(out.stderr).toBe(
      `cannot reach the module at ${address} (connection refused): is the module listening there? set --address\n`,
    );
  });
});

describe('mpctl call, server streaming', () => {
  it('prints --max-messages messages as NDJSON, then cancels the stream', async () => {
    const out = await mpctl([
      'call',
      'NLBService/StreamNLBMetrics',
      '--nlb',
      nlb.address,
      '--max-messages',
      '3',
    ]);
    expect(exitCodeOf(out)).toBe(0);
    expect(out.stdout.split('\n')).toEqual([
      JSON.stringify({ metrics: [{ name: 'connections' }] }), // value 0 is the default: omitted
      JSON.stringify({ metrics: [{ name: 'connections', value: 1 }] }),
      JSON.stringify({ metrics: [{ name: 'connections', value: 2 }] }),
      '',
    ]);
    expect(out.stderr).toBe('');
    await expect.poll(() => nlb.cancelledStreams, { timeout: 5000 }).toBeGreaterThan(0);
  });

  it('stops after --duration', async () => {
    const started = Date.now();
    const out = await mpctl([
      'call',
      'NLBService/StreamNLBMetrics',
      '--nlb',
      nlb.address,
      '--duration',
      '300ms',
    ]);
    expect(exitCodeOf(out)).toBe(0);
    expect(Date.now() - started).toBeLessThan(5000);
    const lines = out.stdout.trim().split('\n');
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(JSON.parse(line)).toHaveProperty('metrics');
  });
});

describe('mpctl call --list', () => {
  it('lists all 46 RPCs, marking the streaming ones', async () => {
    const out = await mpctl(['call', '--list']);
    const lines = out.stdout.trim().split('\n');
    expect(lines).toHaveLength(46);
    expect(lines).toContain('marchproxy.NLBService/StreamNLBMetrics (server-streaming)');
    expect(lines).toContain('marchproxy.ModuleService/Drain');
  });
});

/** Runs bin/dev.js as a real process, bounded, and always reaps it. */
async function runDevBin(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_ENV: 'development' };
  delete env.MPCTL_NLB;
  delete env.MPCTL_TOKEN;
  // `--import tsx` is what the bin's shebang does.
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'bin/dev.js'), ...args], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  try {
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    return { code, stdout, stderr };
  } finally {
    clearTimeout(timer);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

describe('bin/dev.js as a real process', () => {
  it('prints the GetNLBStatus response and exits 0', async () => {
    const run = await runDevBin(['call', GET_STATUS, '--data', '{}', '--nlb', nlb.address]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual(STATUS_JSON);
  });

  it('against nothing, exits 4 with exactly one stderr line naming the address', async () => {
    const address = `127.0.0.1:${await closedPort()}`;
    const run = await runDevBin(['call', GET_STATUS, '--data', '{}', '--nlb', address]);
    expect(run.code).toBe(4);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe(
      `cannot reach the NLB at ${address} (connection refused): is \`mpctl serve nlb\` running? set --nlb or MPCTL_NLB\n`,
    );
  });
});
