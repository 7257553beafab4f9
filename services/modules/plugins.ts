/** The module types the runtime knows, by name. */
import type { ModuleTypePlugin } from './runtime/plugin.js';
import { albPlugin } from './alb/plugin.js';
import { ailbPlugin } from './ailb/plugin.js';
import { dblbPlugin } from './dblb/plugin.js';
import { rtmpPlugin } from './rtmp/plugin.js';

export const PLUGINS: Readonly<Record<string, ModuleTypePlugin>> = {
  ALB: albPlugin,
  DBLB: dblbPlugin,
  AILB: ailbPlugin,
  RTMP: rtmpPlugin,
};

/** The plugin for a module type name (case-insensitive), or an error naming the valid ones. */
export function pluginFor(name: string): ModuleTypePlugin {
  const p = PLUGINS[name.toUpperCase()];
  if (!p) throw new Error(`unknown module type "${name}": use alb, dblb, ailb or rtmp`);
  return p;
}
