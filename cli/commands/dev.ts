import { Command, Flags } from '@oclif/core';
import { createLogger } from '../../services/shared/logger.js';
import { createShutdown } from '../../services/shared/shutdown.js';
import { nlbProcessSchema, startNlb } from '../../services/nlb/main.js';
import { moduleProcessSchema, startModule, type ModuleHandle } from '../../services/modules/runtime/main.js';
import { serverFailure } from '../serve-support.js';
import { compactLogStream } from '../compact-log.js';
import { configureDemoModules, demoLines, startDemoBackends } from '../dev-demo.js';

/** DESIGN.md §8: the local stack's client listeners (until a `listeners` section is set). */
const LOCAL_LISTENERS = [
  { name: 'auto', address: '127.0.0.1', port: 7000, mode: 'sniff', defaultProtocol: 'mysql' },
  { name: 'http', address: '127.0.0.1', port: 8080, mode: 'http' },
  { name: 'mysql', address: '127.0.0.1', port: 13306, mode: 'mysql' },
  { name: 'postgres', address: '127.0.0.1', port: 15432, mode: 'postgres' },
  { name: 'rtmp', address: '127.0.0.1', port: 11935, mode: 'rtmp' },
];

export default class Dev extends Command {
  static override summary = 'Run the local stack on loopback with embedded defaults (what `npm start` runs)';
  static override description = `Starts the NLB control plane (gRPC NLBService on 127.0.0.1:50050, admin endpoint with /healthz, /readyz and /metrics on 127.0.0.1:8082) and one v1.0 controller of each module type — ALB :50051, DBLB :50052, AILB :50053, RTMP :50054 — each with one instance that registers with the NLB. State lives in .mpctl-data/.

Demo backends run beside them on 127.0.0.1 (--no-demo leaves them out): an HTTP echo service in two versions (v1 :18181 is the ALB 1.0 backend; v2 :18182 is for an ALB 2.0 controller you start by hand) and an OpenAI-compatible backend (:18183, the AILB backend). It also says whether PostgreSQL, MariaDB and nginx-rtmp are installed (for the DBLB and RTMP) and how to add the missing ones; it does not start them.

The modules' data planes are placeholders for now (instances accept and count connections). Authentication is off in the local stack, and it listens on loopback only. Stops cleanly on Ctrl-C or SIGTERM, leaving no process behind.`;

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --grpc-port 60050 --admin-port 9082',
  ];

  static override flags = {
    'grpc-port': Flags.integer({ description: 'NLB gRPC port', default: 50050, min: 0, max: 65535 }),
    'admin-port': Flags.integer({ description: 'NLB HTTP admin port', default: 8082, min: 0, max: 65535 }),
    'data-dir': Flags.string({ description: 'Where the stack keeps state', default: '.mpctl-data' }),
    modules: Flags.string({
      description: 'Module types to start, comma-separated (none: "")',
      default: 'alb,dblb,ailb,rtmp',
    }),
    'module-port-base': Flags.integer({
      description: 'ALB controller port; DBLB, AILB, RTMP take the next ones',
      default: 50051,
      min: 0,
      max: 65000,
    }),
    demo: Flags.boolean({
      description: 'Start the demo backends (echo v1/v2, OpenAI demo) and point the ALB and AILB at them',
      default: true,
      allowNo: true,
    }),
    'demo-port-base': Flags.integer({
      description: 'Echo v1 port; echo v2 and the OpenAI demo take the next ones (0: free ports)',
      default: 18181,
      min: 0,
      max: 65000,
    }),
    'log-level': Flags.string({
      options: ['debug', 'info', 'warn', 'error'],
      default: 'info',
      description: 'Log level of the services (logs go to stderr, one compact line each)',
    }),
  };

  public async run(): Promise<void> {
    const { flags } = await this.parse(Dev);
    const logger = createLogger({
      level: flags['log-level'] as 'info',
      name: 'dev',
      destination: compactLogStream(process.stderr),
    });
    const config = nlbProcessSchema.parse({
      grpc: { host: '127.0.0.1', port: flags['grpc-port'] },
      admin: { host: '127.0.0.1', port: flags['admin-port'] },
      dataDir: `${flags['data-dir']}/nlb`,
      logLevel: flags['log-level'],
      listeners: LOCAL_LISTENERS,
    });
    const nlb = await startNlb(config, { logger: logger.child({ service: 'nlb' }) }).catch((e: unknown) =>
      serverFailure(this, () => {
        throw e;
      }),
    );
    const shutdown = createShutdown({ logger, timeoutMs: 20_000 });
    shutdown.onShutdown('nlb', () => nlb.stop());
    shutdown.installSignalHandlers();
    const g = `127.0.0.1:${nlb.grpcPort}`;
    const demo = flags.demo
      ? await startDemoBackends({
          portBase: flags['demo-port-base'],
          dataDir: flags['data-dir'],
          pathVar: process.env.PATH ?? '',
        }).catch((e: unknown) =>
          serverFailure(this, () => {
            throw e;
          }),
        )
      : undefined;
    // Registered before the controllers' hooks, so it runs after them: backends stop last.
    if (demo) shutdown.onShutdown('demo backends', () => demo.stop());
    const types = flags.modules
      .split(',')
      .map((t) => t.trim().toLowerCase())
      .filter(Boolean);
    const modules: Array<{ type: string; handle: ModuleHandle }> = [];
    for (const [i, type] of types.entries()) {
      const config = serverFailure(this, () =>
        moduleProcessSchema.parse({
          type,
          version: '1.0',
          instances: 1,
          grpc: { host: '127.0.0.1', port: flags['module-port-base'] ? flags['module-port-base'] + i : 0 },
          nlb: g,
          dataDir: flags['data-dir'],
          // Instance processes log raw JSON to the shared stderr: keep their routine lines out.
          logLevel: flags['log-level'] === 'info' ? 'warn' : flags['log-level'],
        }),
      );
      const handle = await startModule(config, { logger: logger.child({ service: type }) }).catch(
        (e: unknown) =>
          serverFailure(this, () => {
            throw e;
          }),
      );
      modules.push({ type, handle });
      // Registered after the NLB's hook, so it runs first: modules leave before the NLB stops.
      shutdown.onShutdown(`${type} controller`, () => handle.stop(true));
    }
    const demoProblems = demo ? await configureDemoModules(demo, modules) : [];
    const demoText = demo && demoLines(demo, g);
    const moduleLines = modules
      .map(
        (m) =>
          `  ${m.type.toUpperCase().padEnd(13)} ${m.handle.address}   (ModuleService; ${m.handle.controller.liveInstances().length} instance)`,
      )
      .join('\n');
    const notRunning = Object.keys(nlb.dataplane.failed());
    const listenerLine =
      nlb.dataplane
        .addresses()
        .map((l) => `${l.name} :${l.port}`)
        .join(', ') + (notRunning.length ? `   (not running: ${notRunning.join(', ')})` : '');
    this.log(`MarchProxy local stack is up.

  NLB gRPC      ${g}   (NLBService, grpc.health.v1, reflection)
  NLB admin     http://127.0.0.1:${nlb.adminPort}/healthz  /readyz  /metrics
  Listeners     ${listenerLine}
${moduleLines}
${demoText ? `${demoText.endpoints}\n` : ''}  State         ${flags['data-dir']}/
${demoText ? `\nThird-party backends:\n${demoText.system}\n` : ''}${demoProblems.map((p) => `\n  ! ${p}`).join('')}
Try, in another terminal:
  ./bin/run.js call marchproxy.NLBService/ListModules --nlb ${g}
  ./bin/run.js call marchproxy.NLBService/GetNLBStatus --nlb ${g}
  ./bin/run.js call marchproxy.NLBService/CheckHealth --data '{"deepCheck": true}' --nlb ${g}
  curl -s http://127.0.0.1:${nlb.adminPort}/metrics | grep mp_nlb_

  ./bin/run.js call marchproxy.ModuleService/GetInstances --address ${modules[0]?.handle.address ?? '127.0.0.1:50051'}
${demoText ? `\n${demoText.tryLines}\n` : ''}
Press Ctrl-C to stop.`);
    await new Promise<never>(() => {});
  }
}
