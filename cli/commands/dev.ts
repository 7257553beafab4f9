import { Command, Flags } from '@oclif/core';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createLogger } from '../../services/shared/logger.js';
import { createShutdown } from '../../services/shared/shutdown.js';
import { nlbProcessSchema, startNlb } from '../../services/nlb/main.js';
import { moduleProcessSchema, startModule, type ModuleHandle } from '../../services/modules/runtime/main.js';
import { serverFailure } from '../serve-support.js';
import { compactLogStream } from '../compact-log.js';
import { configureDemoModules, demoLines, startDemoBackends, type DemoBackends } from '../dev-demo.js';
import {
  configureSystemModules,
  displayPath,
  startSystemBackends,
  systemTryLines,
  type SystemBackends,
} from '../dev-system.js';
import { ensureLocalTokens, writeLocalConfig } from '../local-stack-auth.js';
import { DEFAULT_CERT_HOSTS, hasLocalPki, pkiPaths, writeLocalPki } from '../local-pki.js';
import { LOCAL_CONFIG_FILE } from '../mpctl-config.js';

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
  static override description = `Starts the NLB control plane (gRPC NLBService on 127.0.0.1:50050, admin endpoint with /healthz, /readyz and /metrics on 127.0.0.1:8082, client listeners auto :7000, http :8080, mysql :13306, postgres :15432, rtmp :11935) and one v1.0 controller of each module type — ALB :50051, DBLB :50052, AILB :50053, RTMP :50054 — each with one instance that registers with the NLB and runs the type's data plane. State lives in .mpctl-data/.

Demo backends run beside them on 127.0.0.1 (--no-demo leaves them out): an HTTP echo service in two versions (v1 :18181 is the ALB 1.0 backend; v2 :18182 is for an ALB 2.0 controller you start by hand) and an OpenAI-compatible backend (:18183, the AILB backend).

Third-party backends, when installed (--no-system-backends leaves them out): a private PostgreSQL (:18184) and MariaDB (:18185), initialised on first run in .mpctl-data/postgres and .mpctl-data/mariadb with a demo database and user, behind the DBLB (psql and mysql reach them through the NLB's postgres and mysql listeners); nginx-rtmp (:18186, application "live") behind the RTMP module. Missing ones are named with the package that adds them, and the stack runs without them.

Authentication is on: an admin, a module and a read token are generated on first run into .mpctl-data/auth/ (0600; never printed). The modules register with the module token. The stack writes .mpctl-data/mpctl.json, the CLI's config file (NLB address, admin token file, TLS files), so that mpctl commands run from this directory need no flags. With --tls, the NLB, the module controllers and every client between them (and the CLI) use mutual TLS with the certificates in .mpctl-data/certs/ (made by \`mpctl certs init\` when missing).

Listens on loopback only. Stops cleanly on Ctrl-C or SIGTERM, leaving no process behind.`;

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --tls',
    '<%= config.bin %> <%= command.id %> --grpc-port 60050 --admin-port 9082',
    '<%= config.bin %> <%= command.id %> --free-ports --data-dir /tmp/stack2 --no-system-backends',
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
    'system-backends': Flags.boolean({
      description:
        'Start PostgreSQL, MariaDB and nginx-rtmp when installed and point the DBLB and RTMP at them',
      default: true,
      allowNo: true,
    }),
    'demo-port-base': Flags.integer({
      description:
        'Echo v1 port; echo v2, the OpenAI demo, PostgreSQL, MariaDB and nginx-rtmp take the next ones (0: free ports)',
      default: 18181,
      min: 0,
      max: 65000,
    }),
    'free-ports': Flags.boolean({
      description:
        'Let the system pick every port (NLB, admin, listeners, modules, backends): for a second stack beside the first, or tests; the banner and the config file say which',
    }),
    tls: Flags.boolean({
      description: 'Mutual TLS everywhere, with the certificates in <data-dir>/certs (created when missing)',
    }),
    'log-level': Flags.string({
      options: ['debug', 'info', 'warn', 'error'],
      default: 'info',
      description: 'Log level of the services (logs go to stderr, one compact line each)',
    }),
  };

  public async run(): Promise<void> {
    const { flags } = await this.parse(Dev);
    const free = flags['free-ports'];
    const dataDir = flags['data-dir'];
    const rel = displayPath;
    const logger = createLogger({
      level: flags['log-level'] as 'info',
      name: 'dev',
      destination: compactLogStream(process.stderr),
    });
    const {
      tokens,
      files: tokenFiles,
      created,
    } = serverFailure(this, () => {
      // Created here with the usual mode: the private directories inside must not make it 0700,
      // or the postgres user (when we are root) could not reach its own directory.
      mkdirSync(dataDir, { recursive: true });
      return ensureLocalTokens(dataDir);
    });
    const certsDir = join(dataDir, 'certs');
    let certsCreated = false;
    const pki = flags.tls
      ? serverFailure(this, () => {
          if (hasLocalPki(certsDir)) return pkiPaths(certsDir);
          certsCreated = true;
          return writeLocalPki(certsDir, DEFAULT_CERT_HOSTS, true);
        })
      : undefined;
    const config = nlbProcessSchema.parse({
      grpc: { host: '127.0.0.1', port: free ? 0 : flags['grpc-port'] },
      admin: { host: '127.0.0.1', port: free ? 0 : flags['admin-port'] },
      dataDir: `${dataDir}/nlb`,
      logLevel: flags['log-level'],
      listeners: LOCAL_LISTENERS.map((l) => (free ? { ...l, port: 0 } : l)),
      auth: { adminToken: tokens.admin, moduleToken: tokens.module, readToken: tokens.read },
      ...(pki
        ? {
            tls: {
              certFile: pki.serverCert,
              keyFile: pki.serverKey,
              caFile: pki.caCert,
              requireClientCert: true,
            },
            // The NLB calls the controllers (CanHandle, HealthCheck, Scale) with the admin token.
            modules: { tls: true, caFile: pki.caCert, certFile: pki.clientCert, keyFile: pki.clientKey },
          }
        : {}),
    });
    const nlb = await startNlb(config, { logger: logger.child({ service: 'nlb' }) }).catch((e: unknown) =>
      serverFailure(this, () => {
        throw e;
      }),
    );
    const shutdown = createShutdown({ logger, timeoutMs: 30_000 });
    shutdown.onShutdown('nlb', () => nlb.stop());
    shutdown.installSignalHandlers();
    const g = `127.0.0.1:${nlb.grpcPort}`;
    const configFile = serverFailure(this, () =>
      writeLocalConfig(dataDir, {
        nlb: g,
        tokenFile: tokenFiles.admin,
        tls: pki && { ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey },
      }),
    );
    const base = free ? 0 : flags['demo-port-base'];
    // The third-party servers start in the background while the rest comes up (initdb takes seconds).
    const systemStarting: Promise<SystemBackends | undefined> = flags['system-backends']
      ? startSystemBackends({
          dataDir,
          pathVar: process.env.PATH ?? '',
          ports: { postgres: base && base + 3, mariadb: base && base + 4, rtmp: base && base + 5 },
        })
      : Promise.resolve(undefined);
    // Filled in below; the shutdown hook reads it whenever it runs.
    const running: { demo?: DemoBackends } = {};
    // Registered before the controllers' hooks, so it runs after them: backends stop last. It
    // waits for servers still starting, so that Ctrl-C during startup leaves none behind.
    shutdown.onShutdown('backends', async () => {
      const system = await systemStarting.catch(() => undefined);
      await Promise.all([system?.stop(), running.demo?.stop()]);
    });
    const demo = flags.demo
      ? await startDemoBackends({ portBase: base, dataDir }).catch((e: unknown) =>
          serverFailure(this, () => {
            throw e;
          }),
        )
      : undefined;
    running.demo = demo;
    const types = flags.modules
      .split(',')
      .map((t) => t.trim().toLowerCase())
      .filter(Boolean);
    const modules: Array<{ type: string; handle: ModuleHandle }> = [];
    for (const [i, type] of types.entries()) {
      const portBase = free ? 0 : flags['module-port-base'];
      const config = serverFailure(this, () =>
        moduleProcessSchema.parse({
          type,
          version: '1.0',
          instances: 1,
          grpc: { host: '127.0.0.1', port: portBase ? portBase + i : 0 },
          nlb: g,
          dataDir,
          // Instance processes log raw JSON to the shared stderr: keep their routine lines out.
          logLevel: flags['log-level'] === 'info' ? 'warn' : flags['log-level'],
          nlbToken: tokens.module,
          auth: { adminToken: tokens.admin, readToken: tokens.read },
          ...(pki
            ? {
                tls: {
                  certFile: pki.serverCert,
                  keyFile: pki.serverKey,
                  caFile: pki.caCert,
                  requireClientCert: true,
                },
                nlbTls: { caFile: pki.caCert, certFile: pki.clientCert, keyFile: pki.clientKey },
              }
            : {}),
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
    const listeners = nlb.dataplane.addresses();
    const system = await systemStarting;
    const problems = [
      ...(demo ? await configureDemoModules(demo, modules) : []),
      ...(system ? await configureSystemModules(system, modules, listeners) : []),
    ];

    // How the banner writes commands: without flags when the CLI finds the config file here.
    const found = resolve(LOCAL_CONFIG_FILE) === configFile;
    const cli = (args: string) => `./bin/run.js ${args}${found ? '' : ` --config ${rel(configFile)}`}`;
    const tokenDir = rel(join(dataDir, 'auth'));
    const serveAlbV2 = `./bin/run.js serve module alb --version 2.0 --port ${free ? 0 : 50061} --local-stack${
      resolve(dataDir) === resolve('.mpctl-data') ? '' : ` --data-dir ${rel(dataDir)}`
    }`;
    const demoText = demo && demoLines(demo, { cli, serveAlbV2 });
    const moduleLines = modules
      .map(
        (m) =>
          `  ${m.type.toUpperCase().padEnd(13)} ${m.handle.address}   (ModuleService; ${m.handle.controller.liveInstances().length} instance)`,
      )
      .join('\n');
    const notRunning = Object.keys(nlb.dataplane.failed());
    const listenerLine =
      listeners.map((l) => `${l.name} :${l.port}`).join(', ') +
      (notRunning.length ? `   (not running: ${notRunning.join(', ')})` : '');
    const security = pki ? 'auth on, mutual TLS' : 'auth on';
    const systemTry = system ? systemTryLines(system, listeners) : [];
    this.log(`MarchProxy local stack is up.

  NLB gRPC      ${g}   (NLBService, grpc.health.v1, reflection; ${security})
  NLB admin     http://127.0.0.1:${nlb.adminPort}/healthz  /readyz  /metrics
  Listeners     ${listenerLine}
${moduleLines}
${demoText ? `${demoText.endpoints}\n` : ''}  State         ${rel(dataDir)}/
${system ? `\nThird-party backends:\n${system.lines.join('\n')}\n` : ''}
Security:
  Tokens        ${tokenDir}/admin.token, module.token, read.token (0600${created ? '; new' : ''}; the modules use module, the CLI admin)
${pki ? `  TLS           ${rel(certsDir)}/ ca.crt, server.crt, client.crt (mutual TLS${certsCreated ? '; new' : ''})\n` : ''}  CLI config    ${rel(configFile)} (NLB address, admin token${pki ? ', TLS files' : ''})${
      found ? ': mpctl run from this directory uses it' : ''
    }
${problems.map((p) => `\n  ! ${p}`).join('')}
Try, in another terminal:
  ${cli('modules list')}
  ${cli('status')}
  ${cli(`call marchproxy.NLBService/CheckHealth --data '{"deepCheck": true}'`)}
  curl -s http://127.0.0.1:${nlb.adminPort}/metrics | grep mp_nlb_
  ${cli(`module instances --module ${modules[0]?.type ?? 'alb'}`)}
${demoText ? `${demoText.tryLines}\n` : ''}${systemTry.length ? `${systemTry.join('\n')}\n` : ''}
Press Ctrl-C to stop.`);
    await new Promise<never>(() => {});
  }
}
