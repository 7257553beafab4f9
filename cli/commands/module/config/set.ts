import { createHash } from 'node:crypto';
import { Flags } from '@oclif/core';
import { CliFailure } from '../../../exit-codes.js';
import { readStructuredFile } from '../../../file-input.js';
import { ModuleCommand, compact, controllerFlags, instanceFlag } from '../../../module-command.js';

interface UpdateConfigJson {
  success?: boolean;
  message?: string;
  validationPassed?: boolean;
  validationErrors?: string[];
}

export default class ModuleConfigSet extends ModuleCommand {
  static override summary = 'Validate and apply a configuration section from a YAML or JSON file';
  static override description =
    "--type module (the default) replaces the module type's settings; --type limits sets {maxConnectionsPerInstance}. Scaling bounds change with `mpctl module scale`. The controller validates the whole section and applies it to every instance live; --dry-run only validates. A rejected config exits 6 and lists every problem.";

  static rpc = 'marchproxy.ModuleService/UpdateConfig';

  static override examples = [
    '<%= config.bin %> <%= command.id %> --module alb -f alb.yaml --dry-run',
    '<%= config.bin %> <%= command.id %> --module alb -f alb.yaml',
    '<%= config.bin %> <%= command.id %> --module alb --type limits -f limits.json',
  ];

  static override flags = {
    ...controllerFlags,
    instance: instanceFlag,
    file: Flags.string({
      char: 'f',
      description: 'The section as YAML or JSON (- reads stdin)',
      required: true,
    }),
    type: Flags.string({ description: 'Which section', options: ['module', 'limits'], default: 'module' }),
    'dry-run': Flags.boolean({ description: 'Only validate (validate_only); apply nothing' }),
  };

  public async run(): Promise<UpdateConfigJson> {
    const { flags } = await this.parse(ModuleConfigSet);
    const data = Buffer.from(JSON.stringify((await readStructuredFile(flags.file)) ?? {}));
    const address = await this.moduleAddress(flags, flags);
    let res: UpdateConfigJson;
    try {
      res = await this.callModule<UpdateConfigJson>(
        flags,
        address,
        'UpdateConfig',
        compact({
          instanceId: flags.instance,
          config: {
            configType: flags.type,
            configData: data.toString('base64'),
            checksum: createHash('sha256').update(data).digest('hex'),
          },
          validateOnly: flags['dry-run'] || undefined,
        }),
      );
    } catch (e) {
      throw rejected(e, flags.file);
    }
    if (!this.jsonEnabled()) this.out(res.message ?? 'applied');
    return res;
  }
}

/** A success=false answer with validation errors, as one line listing them all. */
function rejected(e: unknown, file: string): unknown {
  if (!(e instanceof CliFailure)) return e;
  const errors = (e.response as UpdateConfigJson | undefined)?.validationErrors ?? [];
  if (errors.length === 0) return e;
  return new CliFailure(
    `${file} was rejected, nothing applied: ${errors.join('; ')}`,
    e.exitCode,
    e.code,
    e.response,
  );
}
