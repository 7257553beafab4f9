import { Flags } from '@oclif/core';
import { Protocol } from '../../../proto/gen/marchproxy/types.js';
import { asObject, fileFlag, readStructuredFile } from '../../file-input.js';
import { parseKeyValue } from '../../flag-parsers.js';
import { ModuleCommand, compact, controllerFlags, protocolEnum } from '../../module-command.js';
import { formatMap, renderKeyValues } from '../../output.js';

interface CanHandleJson {
  canHandle?: boolean;
  priority?: number;
  reason?: string;
  metadata?: Record<string, string>;
}

const keyValueFlag = Flags.custom<{ key: string; value: string }>({
  parse: (input) => Promise.resolve(parseKeyValue(input)),
  multiple: true,
});

const PROTOCOLS = Object.keys(Protocol)
  .filter((k) => k.startsWith('PROTOCOL_') && k !== 'PROTOCOL_UNSPECIFIED')
  .map((k) => k.slice('PROTOCOL_'.length).toLowerCase());

export default class ModuleCanHandle extends ModuleCommand {
  static override summary = 'Ask a module how well it would handle a route';
  static override description =
    "Runs the module type's scorer for the described route (and --context facts such as database, model or stream): whether it can handle it, with what priority, and why. Describe the route with flags or give a whole Route in YAML or JSON with -f.";

  static rpc = 'marchproxy.ModuleService/CanHandle';

  static override examples = [
    '<%= config.bin %> <%= command.id %> --module alb --protocol http --destination shop.example.com --path /cart',
    '<%= config.bin %> <%= command.id %> --module dblb --protocol postgres --port 5432 --context database=orders',
    '<%= config.bin %> <%= command.id %> --module alb -f route.yaml --json',
  ];

  static override flags = {
    ...controllerFlags,
    protocol: Flags.string({ description: 'Route protocol', options: PROTOCOLS }),
    destination: Flags.string({ description: 'Destination pattern (host), e.g. shop.example.com' }),
    path: Flags.string({ description: 'Path pattern, e.g. /api/*' }),
    source: Flags.string({ description: 'Source pattern (client address or CIDR)' }),
    port: Flags.integer({ description: 'Destination port', min: 1, max: 65535 }),
    header: keyValueFlag({ description: 'Request header as name=value (repeatable)' }),
    context: keyValueFlag({ description: 'Extra fact as key=value, e.g. database=orders (repeatable)' }),
    file: {
      ...fileFlag,
      description: 'The Route as YAML or JSON (flags override its fields; - reads stdin)',
    },
  };

  public async run(): Promise<CanHandleJson> {
    const { flags } = await this.parse(ModuleCanHandle);
    const fromFile = flags.file ? asObject(await readStructuredFile(flags.file), `--file ${flags.file}`) : {};
    const headers = Object.fromEntries((flags.header ?? []).map(({ key, value }) => [key, value]));
    const route = {
      ...fromFile,
      ...compact({
        protocol: flags.protocol,
        destinationPattern: flags.destination,
        pathPattern: flags.path,
        sourcePattern: flags.source,
        destinationPort: flags.port,
        headers: flags.header ? headers : undefined,
      }),
    };
    if (typeof route.protocol === 'string') route.protocol = protocolEnum(route.protocol);
    const context = Object.fromEntries((flags.context ?? []).map(({ key, value }) => [key, value]));
    const address = await this.moduleAddress(flags, flags);
    const res = await this.callModule<CanHandleJson>(
      flags,
      address,
      'CanHandle',
      { route, context },
      flags.file ? `--file ${flags.file}` : 'the route',
    );
    if (!this.jsonEnabled()) {
      this.out(
        renderKeyValues([
          ['Can handle', res.canHandle ? 'yes' : 'no'],
          ['Priority', res.priority ?? 0],
          ['Reason', res.reason ?? ''],
          ['Metadata', formatMap(res.metadata)],
        ]),
      );
    }
    return res;
  }
}
