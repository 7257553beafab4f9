/**
 * `mpctl module top` wired together: the module stream hook, the keys and the terminal size
 * feed the pure <ModuleTop>. runModuleTop renders it full screen until q, Ctrl-C or `signal`.
 */
import { useApp } from 'ink';
import { INSTANCE_SORTS } from './module-model.js';
import { ModuleTop } from './ModuleTop.js';
import type { ModuleSource } from './sources.js';
import { useModuleStream, type ModuleStreamOptions } from './useModuleStream.js';
import { useTerminalSize } from './useTerminalSize.js';
import { useTopKeys } from './useTopKeys.js';
import { runFullScreen } from './full-screen.js';

export interface ModuleTopAppProps {
  source: ModuleSource;
  /** The controller address, for the title. */
  target: string;
  options?: ModuleStreamOptions;
}

export function ModuleTopApp({ source, target, options }: ModuleTopAppProps) {
  const data = useModuleStream(source, options);
  const { exit } = useApp();
  const { ui, shown } = useTopKeys(INSTANCE_SORTS, data, () => exit());
  const { width, height } = useTerminalSize({ clearOnResize: true });
  return <ModuleTop target={target} data={shown} ui={ui} width={width} height={height} />;
}

/** Runs the TUI until the user quits or `signal` aborts. */
export function runModuleTop({
  signal,
  ...props
}: ModuleTopAppProps & { signal?: AbortSignal }): Promise<void> {
  return runFullScreen(<ModuleTopApp {...props} />, { signal });
}
