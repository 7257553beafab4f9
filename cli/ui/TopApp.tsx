/**
 * `mpctl top` wired together: the stream hook, the keys and the terminal size feed the pure
 * <Top>. runTop renders it full screen (the alternate screen, restored on exit) and resolves
 * when q or Ctrl-C ends it; unmounting cancels the stream and the timers.
 */
import { useApp } from 'ink';
import type { NlbSource } from './sources.js';
import { Top } from './Top.js';
import { SORTS } from './top-model.js';
import { useNlbStream, type NlbStreamOptions } from './useNlbStream.js';
import { useTerminalSize } from './useTerminalSize.js';
import { useTopKeys } from './useTopKeys.js';
import { runFullScreen } from './full-screen.js';

export interface TopAppProps {
  source: NlbSource;
  /** The NLB address, for the title. */
  target: string;
  options?: NlbStreamOptions;
}

export function TopApp({ source, target, options }: TopAppProps) {
  const data = useNlbStream(source, options);
  const { exit } = useApp();
  const { ui, shown } = useTopKeys(SORTS, data, () => exit());
  const { width, height } = useTerminalSize({ clearOnResize: true });
  return <Top target={target} data={shown} ui={ui} width={width} height={height} />;
}

/** Runs the TUI until the user quits or `signal` aborts. */
export function runTop({ signal, ...props }: TopAppProps & { signal?: AbortSignal }): Promise<void> {
  return runFullScreen(<TopApp {...props} />, { signal });
}
