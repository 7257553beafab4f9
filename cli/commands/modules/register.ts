import { Flags } from '@oclif/core';
import { addressFlag } from '../../base-command.js';
import { usageFailure } from '../../exit-codes.js';
import { asObject, fileFlag, readStructuredFile } from '../../file-input.js';
import {
  expandEnums,
  keyValueFlag,
  nonNegativeIntFlag,
  PROTOCOLS,
  protocolEnum,
  toMap,
  typeFlag,
} from '../../nlb-support.js';
import { renderKeyValues } from '../../output.js';
import { moduleTypeEnum, RpcCommand } from '../../rpc-command.js';

/** RegisterModuleResponse in protobuf JSON. */
interface RegisterJson {
  success?: boolean;
  message?: string;
  registrationId?: string;
  registeredAt?: string;
}

export default class ModulesRegister extends RpcCommand {
  static rpc = 'marchproxy.NLBService/RegisterModule';
  static override summary = 'Register a module instance with the NLB (by hand, as a module would)';
  static override description =
    'Module controllers register their instances themselves; this is for tests, external instances and repairs. Registering the same instance id again with the same controller, type and version is idempotent. Pass the instance with flags, or a whole RegisterModuleRequest with -f (YAML or JSON; enum values may be short: module_type: alb, protocol: http); flags override the file. Prints the registration id that heartbeat and unregister take.';

  static override examples = [
    '<%= config.bin %> <%= command.id %> --type alb --instance alb-1 --version 1.0 --address 127.0.0.1:50051 --traffic-address 127.0.0.1:8080',
    '<%= config.bin %> <%= command.id %> -f instance.yaml',
  ];

  static override flags = {
    file: fileFlag,
    type: typeFlag({ description: 'Module type' }),
    instance: Flags.string({ description: 'Instance id: 1-128 characters of [A-Za-z0-9._:-]' }),
    version: Flags.string({ description: 'Module version the instance runs, e.g. 1.0' }),
    address: addressFlag({ description: 'host:port of the controller (ModuleService) of the instance' }),
    'traffic-address': addressFlag({ description: 'host:port where the instance accepts client traffic' }),
    'max-connections': nonNegativeIntFlag({ description: 'Connection limit; 0 means none' }),
    status: Flags.string({
      description: 'Initial health [default: healthy]',
      options: ['healthy', 'starting', 'degraded'],
    }),
    protocol: Flags.string({
      description: 'Protocol the traffic listener speaks (repeatable)',
      options: [...PROTOCOLS],
      multiple: true,
    }),
    metadata: keyValueFlag({ description: 'Instance metadata, key=value (repeatable)' }),
    capability: keyValueFlag({ description: 'Capability for CanHandle scoring, key=value (repeatable)' }),
  };

  public async run(): Promise<RegisterJson> {
    const { flags } = await this.parse(ModulesRegister);
    const source = flags.file ? `--file ${flags.file}` : 'the request';
    const base = flags.file ? asObject(expandEnums(await readStructuredFile(flags.file)), source) : {};
    const instance: Record<string, unknown> = { ...asObject(base.instance ?? {}, `${source}: instance`) };
    if (flags.type) instance.moduleType = moduleTypeEnum(flags.type);
    if (flags.instance) instance.instanceId = flags.instance;
    if (flags.version) instance.version = flags.version;
    if (flags.address) instance.address = flags.address;
    if (flags['traffic-address']) instance.trafficAddress = flags['traffic-address'];
    if (flags['max-connections'] !== undefined) instance.maxConnections = flags['max-connections'];
    if (flags.status) instance.healthStatus = `HEALTH_STATUS_${flags.status.toUpperCase()}`;
    if (flags.protocol?.length) instance.protocols = flags.protocol.map(protocolEnum);
    if (flags.metadata?.length)
      instance.metadata = { ...(instance.metadata as object), ...toMap(flags.metadata) };
    const missing = [
      ['instanceId', 'instance_id', '--instance'],
      ['moduleType', 'module_type', '--type'],
      ['version', 'version', '--version'],
      ['address', 'address', '--address'],
    ]
      .filter(([camel, snake]) => instance[camel] === undefined && instance[snake] === undefined)
      .map(([, , flag]) => flag);
    if (missing.length) throw usageFailure(`missing ${missing.join(', ')} (or give them in -f)`);
    const request: Record<string, unknown> = { ...base, instance };
    if (flags.capability?.length) {
      request.capabilities = { ...(base.capabilities as object), ...toMap(flags.capability) };
    }
    const res = await this.callNlb<RegisterJson>(flags, 'RegisterModule', request, source);
    if (!this.jsonEnabled()) {
      this.out(
        renderKeyValues([
          ['registered', res.message],
          ['registration id', res.registrationId],
          ['registered at', res.registeredAt],
        ]),
      );
    }
    return res;
  }
}
