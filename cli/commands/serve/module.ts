import { Args, Command, Flags } from '@oclif/core';
import { loadConfig } from '../../../services/shared/config.js';
import { createLogger } from '../../../services/shared/logger.js';
import { createShutdown } from '../../../services/shared/shutdown.js';
import { MODULE_ENV_MAP, moduleProcessSchema, startModule } from '../../../services/modules/runtime/main.js';
import { serverFailure } from '../../serve-support.js';
import { readLocalStack } from '../../local-stack-auth.js';

export default class ServeModule extends Command {
  static override summary = 'Run a module controller (ALB, DBLB, AILB or RTMP) and its instances';
  static override description = `Serves ModuleService for one module type and version (ALB :50051, DBLB :50052, AILB :50053, RTMP :50054 by default) and keeps --instances instances running. Each instance registers itself with the NLB and heartbeats. Routes, rate limits, config and the desired instance count persist in --data-dir.

Settings come from, lowest first: built-in defaults, --config, environment (${Object.keys(MODULE_ENV_MAP).join(', ')}), then flags.

Instances run the type's data plane: ALB (HTTP/1.1 and HTTP/2 reverse proxy), DBLB (PostgreSQL and MySQL), AILB (AI inference APIs), RTMP (relay to origins); see docs/alb-ailb.md and docs/dblb-rtmp.md.

TLS: --tls-cert/--tls-key serve ModuleService over TLS (--tls-ca with --require-client-cert for mutual TLS); --nlb-ca (and --nlb-cert/--nlb-key for mutual TLS) make the controller and its instances reach the NLB over TLS. \`mpctl certs init\` makes a local CA and certificates.`;

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
    'tls-cert': Flags.file({
      description: 'PEM server certificate (ModuleService over TLS)',
      exists: true,
      dependsOn: ['tls-key'],
    }),
    'tls-key': Flags.file({ description: 'PEM server key', exists: true, dependsOn: ['tls-cert'] }),
    'tls-ca': Flags.file({ description: 'PEM CA for client certificates (mutual TLS)', exists: true }),
    'require-client-cert': Flags.boolean({
      description: 'Refuse clients without a certificate signed by --tls-ca',
    }),
    'nlb-ca': Flags.file({ description: 'PEM CA of the NLB: reach the NLB over TLS', exists: true }),
    'nlb-cert': Flags.file({
      description: 'PEM client certificate for the NLB (mutual TLS; needs --nlb-ca)',
      exists: true,
      dependsOn: ['nlb-key', 'nlb-ca'],
    }),
    'nlb-key': Flags.file({
      description: 'PEM client key for the NLB',
      exists: true,
      dependsOn: ['nlb-cert'],
    }),
    'local-stack': Flags.boolean({
      description:
        'Join the local stack (`mpctl dev`) whose state is in --data-dir: its NLB address, tokens and, under --tls, certificates',
    }),
  };

  public async run(): Promise<void> {
    const { args, flags } = await this.parse(ServeModule);
    const stack = flags['local-stack']
      ? serverFailure(this, () => readLocalStack(flags['data-dir'] ?? '.mpctl-data'))
      : undefined;
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
          'tls.certFile': flags['tls-cert'],
          'tls.keyFile': flags['tls-key'],
          'tls.caFile': flags['tls-ca'],
          'tls.requireClientCert': flags['require-client-cert'] || undefined,
          'nlbTls.caFile': flags['nlb-ca'],
          'nlbTls.certFile': flags['nlb-cert'],
          'nlbTls.keyFile': flags['nlb-key'],
        },
        // The local stack fills in what the file, the environment and the flags do not say.
        base: stack && {
          nlb: stack.nlb,
          nlbToken: stack.tokens.module,
          'auth.adminToken': stack.tokens.admin,
          'auth.readToken': stack.tokens.read,
          ...(stack.tls && {
            'tls.certFile': stack.tls.serverCert,
            'tls.keyFile': stack.tls.serverKey,
            'tls.caFile': stack.tls.ca,
            'tls.requireClientCert': true,
            'nlbTls.caFile': stack.tls.ca,
            'nlbTls.certFile': stack.tls.clientCert,
            'nlbTls.keyFile': stack.tls.clientKey,
          }),
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
