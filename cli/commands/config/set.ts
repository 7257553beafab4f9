import { Args, Flags } from '@oclif/core';
import { SECTION_NAMES } from '../../../services/nlb/domain/nlb-config.js';
import { usageFailure } from '../../exit-codes.js';
import { fileFlag, parseStructured, readStructuredFile } from '../../file-input.js';
import { withValidationErrors } from '../../nlb-support.js';
import { RpcCommand } from '../../rpc-command.js';

/** UpdateNLBConfigResponse in protobuf JSON. */
interface UpdateConfigJson {
  success?: boolean;
  message?: string;
  validationPassed?: boolean;
  validationErrors?: string[];
  requiresRestart?: boolean;
}

export default class ConfigSet extends RpcCommand {
  static rpc = 'marchproxy.NLBService/UpdateNLBConfig';
  static override summary = 'Change one NLB config section (validated; live where it can be)';
  static override description = `The section body comes from -f (YAML or JSON) or --data (inline JSON or YAML); it replaces the section, and fields left out take their defaults. Sections: ${SECTION_NAMES.join(', ')}. The NLB validates the whole section first: an invalid one changes nothing and exits 6 listing the problems. --dry-run only validates. Sections that cannot change live (server) are saved and apply after a restart.`;

  static override examples = [
    '<%= config.bin %> <%= command.id %> heartbeat -f heartbeat.yaml',
    `<%= config.bin %> <%= command.id %> heartbeat --data '{"intervalSeconds":5}' --dry-run`,
    '<%= config.bin %> <%= command.id %> scaling -f scaling.json',
  ];

  static override args = {
    section: Args.string({ description: 'Config section', required: true, options: [...SECTION_NAMES] }),
  };

  static override flags = {
    file: { ...fileFlag, exclusive: ['data'] },
    data: Flags.string({ char: 'd', description: 'Section body inline, JSON or YAML', exclusive: ['file'] }),
    'dry-run': Flags.boolean({ description: 'Only validate (validate_only); change nothing' }),
    'restart-ok': Flags.boolean({ description: 'Accept that the change applies only after a restart' }),
  };

  public async run(): Promise<UpdateConfigJson> {
    const { args, flags } = await this.parse(ConfigSet);
    let body: unknown;
    if (flags.file) body = await readStructuredFile(flags.file);
    else if (flags.data !== undefined) body = parseStructured(flags.data, '--data');
    else throw usageFailure("give the section body with -f file.yaml or --data '{...}'");
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw usageFailure(
        `${flags.file ? `--file ${flags.file}` : '--data'} must hold a mapping (the section's fields)`,
      );
    }
    const res = await withValidationErrors(() =>
      this.callNlb<UpdateConfigJson>(flags, 'UpdateNLBConfig', {
        config: {
          configId: args.section,
          configType: args.section,
          configData: Buffer.from(JSON.stringify(body)).toString('base64'),
        },
        validateOnly: flags['dry-run'],
        restartRequired: flags['restart-ok'],
      }),
    );
    if (!this.jsonEnabled()) {
      this.out(res.message ?? `section ${args.section} applied`);
      if (res.requiresRestart && !flags['dry-run'])
        this.out('restart the NLB for this change to take effect');
    }
    return res;
  }
}
