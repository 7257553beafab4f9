import { Args, Command, Flags } from '@oclif/core';
import { loadConfig } from '../../../services/shared/config.js';
import { createLogger } from '../../../services/shared/logger.js';
import { createShutdown } from '../../../services/shared/shutdown.js';
import { MODULE_ENV_MAP, moduleProcessSchema, startModule } from '../../../services/modules/runtime/main.js';
import { serverFailure } from '../../serve-support.js';

export default class ServeModule extends Command {
  static override summary = 'Run a module controller (ALB, DBLB, AILB or RTMP) and its instances';
  static override description = `Serves ModuleService for one module type and version (ALB :50051, DBLB :50052, AILB :50053, RTMP :50054 by default) and keeps --instances instances running. Each instance registers itself with the NLB and heartbeats. Routes, rate limits, config and the desired instance count persist in --data-dir.

Settings come from, lowest first: built-in defaults, --config, environment (${Object.keys(MODULE_ENV_MAP).join(', ')}), then flags.

The data planes are placeholders until their issues land: instances accept and count connections (and enforce rate limits per client address) but do not proxy yet.`;

  static override examples = [
    '<%= config.bin %> <%= command.id %> alb --version 1.0',
    '<%= config.bin %> <%= command.id %> alb --version 2.0 --port 50061 --instances 2',
    '<%= config.bin %> <%= command.id %> dblb --version 1.0 --nlb 127.0.0.1:50050 --provider inprocess',
  ];

  static override args = {
    type: Args.string({
      description: 'Module type',
      required: true,
      options: ['alb', 'dblb', 'ailb', 'rtmp'],
    }),
  };

  static override flags = {
    version: Flags.string({
      description: 'The module version this controller runs (blue/green unit), e.g. 1.0',
      required: true,
    }),
    instances: Flags.integer({
      description: 'Instances at first start (later the stored desired count wins) [default: 1]',
      min: 0,
      max: 1000,
    }),
    port: Flags.integer({
      description: 'ModuleService port; 0 picks a free one [default: by type]',
      min: 0,
      max: 65535,
    }),
    host: Flags.string({ description: 'Address to serve ModuleService on [default: 0.0.0.0]' }),
    nlb: Flags.string({ description: 'NLB gRPC address [default: 127.0.0.1:50050]', env: 'MPCTL_NLB' }),
    provider: Flags.string({
      description: 'How instances run [default: process]',
      options: ['process', 'inprocess', 'kubernetes'],
    }),
    'k8s-deployment': Flags.string({
      description: 'provider kubernetes: the Deployment of instance pods to scale',
    }),
    'k8s-namespace': Flags.string({ description: 'provider kubernetes: its namespace [default: default]' }),
    'k8s-api-server': Flags.string({
      description: 'provider kubernetes: API server URL [default: in-cluster]',
    }),
    'data-dir': Flags.string({ description: 'Directory for durable state [default: .mpctl-data]' }),
    'heartbeat-interval': Flags.string({ description: 'Seconds between heartbeats [default: 10]' }),
    'advertise-address': Flags.string({ description: 'host:port the NLB uses to reach this controller' }),
    config: Flags.file({ description: 'YAML or JSON config file', exists: true }),
    'log-level': Flags.string({
      options: ['trace', 'debug', 'info', 'warn', 'error', 'silent'],
      description: 'Log level [default: info]',
    }),
  };

  public async run(): Promise<void> {
    const { args, flags } = await this.parse(ServeModule);
    const config = serverFailure(this, () =>
      loadConfig(moduleProcessSchema, {
        file: flags.config,
        env: process.env,
        envMap: MODULE_ENV_MAP,
        flags: {
          type: args.type,
          version: flags.version,
          instances: flags.instances,
          'grpc.port': flags.port,
          'grpc.host': flags.host,
          nlb: flags.nlb,
          provider: flags.provider,
          'kubernetes.deployment': flags['k8s-deployment'],
          'kubernetes.namespace': flags['k8s-namespace'],
          'kubernetes.apiServer': flags['k8s-api-server'],
          dataDir: flags['data-dir'],
          heartbeatIntervalSeconds: flags['heartbeat-interval'],
          advertiseAddress: flags['advertise-address'],
          logLevel: flags['log-level'],
        },
      }),
    );
    const logger = createLogger({ level: config.logLevel, name: `${config.type}-controller` });
    const handle = await startModule(config, { logger }).catch((e: unknown) =>
      serverFailure(this, () => {
        throw e;
      }),
    );
    const shutdown = createShutdown({ logger, timeoutMs: 20_000 });
    shutdown.onShutdown('controller', () => handle.stop(true));
    shutdown.installSignalHandlers();
    await handle.done;
    await shutdown.shutdown('Shutdown RPC');
  }
}
