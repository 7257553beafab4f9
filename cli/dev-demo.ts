/**
 * The demo backends of `mpctl dev`: an HTTP echo service in two versions (v1 behind ALB 1.0;
 * v2 for an ALB 2.0 controller started by hand, whose config is written to a file), and an
 * OpenAI-compatible backend behind the AILB. The third-party servers (PostgreSQL, MariaDB,
 * nginx-rtmp) are in dev-system.ts.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startEchoHttp, type EchoHttpServer } from '../services/demo/echo-http.js';
import { startOpenAiDemo, type OpenAiDemoServer } from '../services/demo/openai-demo.js';
import type { ModuleHandle } from '../services/modules/runtime/main.js';
import { routeProtocols } from './dev-system.js';

/** The running demo backends. */
export interface DemoBackends {
  echoV1: EchoHttpServer;
  echoV2: EchoHttpServer;
  openai: OpenAiDemoServer;
  /** The ALB config for a v2.0 controller (echo v2), for `mpctl module config set`. */
  albV2ConfigFile: string;
  stop(): Promise<void>;
}

/** Options of startDemoBackends. */
export interface DemoOptions {
  /** Echo v1 listens here, echo v2 on the next port, the OpenAI demo on the one after; 0: free ports. */
  portBase: number;
  /** Where the ALB v2.0 config file goes. */
  dataDir: string;
}

const at = (base: number, offset: number) => (base ? base + offset : 0);

/** Starts the demo backends on 127.0.0.1; a port in use fails with the port named. */
export async function startDemoBackends(options: DemoOptions): Promise<DemoBackends> {
  const started: Array<{ close(): Promise<void> }> = [];
  const start = async <T extends { close(): Promise<void> }>(
    what: string,
    port: number,
    f: () => Promise<T>,
  ) => {
    try {
      const server = await f();
      started.push(server);
      return server;
    } catch (e) {
      await Promise.all(started.map((s) => s.close()));
      throw new Error(
        `demo ${what} cannot listen on 127.0.0.1:${port}: ${(e as Error).message} (use --demo-port-base or --no-demo)`,
        { cause: e },
      );
    }
  };
  const echoV1 = await start('echo v1', at(options.portBase, 0), () =>
    startEchoHttp({ version: 'v1', port: at(options.portBase, 0) }),
  );
  const echoV2 = await start('echo v2', at(options.portBase, 1), () =>
    startEchoHttp({ version: 'v2', port: at(options.portBase, 1) }),
  );
  const openai = await start('OpenAI backend', at(options.portBase, 2), () =>
    startOpenAiDemo({ name: 'openai-demo', port: at(options.portBase, 2) }),
  );
  const demoDir = join(options.dataDir, 'demo');
  mkdirSync(demoDir, { recursive: true });
  const albV2ConfigFile = join(demoDir, 'alb-2.0.json');
  writeFileSync(albV2ConfigFile, `${JSON.stringify(albConfig(echoV2), null, 2)}\n`);
  return {
    echoV1,
    echoV2,
    openai,
    albV2ConfigFile,
    stop: async () => {
      await Promise.all(started.map((s) => s.close()));
    },
  };
}

/** The ALB module config that sends its traffic to `echo`. */
export function albConfig(echo: EchoHttpServer) {
  return { backends: [{ name: `echo-${echo.version}`, address: echo.address, weight: 1 }] };
}

/** The AILB module config that serves the demo models from `openai`. */
export function ailbConfig(openai: OpenAiDemoServer) {
  return { backends: [{ name: 'openai-demo', address: openai.address, models: openai.models }] };
}

/**
 * Points the ALB (echo v1) and AILB (the OpenAI demo) controllers at the demo backends, keeping
 * the rest of their stored config. Returns what went wrong, per module (empty when all is well).
 */
export async function configureDemoModules(
  demo: DemoBackends,
  modules: ReadonlyArray<{ type: string; handle: ModuleHandle }>,
): Promise<string[]> {
  const problems: string[] = [];
  const wanted: Record<string, object> = { alb: albConfig(demo.echoV1), ailb: ailbConfig(demo.openai) };
  for (const { type, handle } of modules) {
    const patch = wanted[type];
    if (!patch) continue;
    const current = handle.controller.config;
    const merged = { ...(typeof current === 'object' && current !== null ? current : {}), ...patch };
    const checked = handle.controller.validateConfig(merged);
    if (!checked.ok) {
      problems.push(`${type.toUpperCase()}: demo backends not set: ${checked.problems.join('; ')}`);
      continue;
    }
    const failures = await handle.controller.updateConfig(checked.config);
    if (failures.length) problems.push(`${type.toUpperCase()}: ${failures.join('; ')}`);
    // The NLB's http listener sends HTTP to the ALB (the AILB is reached directly).
    if (type === 'alb') {
      const routeFailures = await routeProtocols(handle, ['HTTP']);
      if (routeFailures.length) problems.push(`ALB routes: ${routeFailures.join('; ')}`);
    }
  }
  return problems;
}

/** How the banner writes commands: `cli("modules list")`, and the line that starts an ALB 2.0. */
export interface CommandStyle {
  cli(args: string): string;
  serveAlbV2: string;
}

/** The lines `mpctl dev` prints about the demo backends. */
export function demoLines(demo: DemoBackends, style: CommandStyle): { endpoints: string; tryLines: string } {
  const endpoints = [
    `  Echo v1       http://${demo.echoV1.address}/   (ALB 1.0 backend)`,
    `  Echo v2       http://${demo.echoV2.address}/   (for an ALB 2.0 controller: ${demo.albV2ConfigFile})`,
    `  OpenAI demo   http://${demo.openai.address}/v1   (AILB backend; models ${demo.openai.models.join(', ')})`,
  ].join('\n');
  const tryLines = [
    `  curl -s http://${demo.echoV1.address}/hello`,
    `  curl -s http://${demo.openai.address}/v1/chat/completions -H 'content-type: application/json' \\`,
    `       -d '{"model": "demo-chat", "messages": [{"role": "user", "content": "hi"}]}'`,
    `  ${style.serveAlbV2}      # an ALB v2.0 controller, then:`,
    `  ${style.cli(`module config set --module alb --version 2.0 -f ${demo.albV2ConfigFile}`)}`,
    `  ${style.cli('promote --version 2.0 --module alb')}`,
  ].join('\n');
  return { endpoints, tryLines };
}
