/**
 * Running a full-screen ink view: on the terminal's alternate screen, like top and less (the
 * shell's scrollback is left as it was), until the view exits (q, Ctrl-C) or `signal` aborts
 * (SIGTERM). Unmounting runs the view's cleanups: streams are cancelled, timers cleared.
 */
import { render } from 'ink';
import type { ReactElement } from 'react';

const ENTER = '\u001b[?1049h\u001b[H';
const LEAVE = '\u001b[?1049l';

/** Renders `view` full screen on `stdout` and resolves when it is gone. */
export async function runFullScreen(
  view: ReactElement,
  { stdout = process.stdout, signal }: { stdout?: NodeJS.WriteStream; signal?: AbortSignal } = {},
): Promise<void> {
  const tty = stdout.isTTY === true;
  if (tty) stdout.write(ENTER);
  const app = render(view, { stdout, exitOnCtrlC: true });
  const stop = () => app.unmount();
  signal?.addEventListener('abort', stop, { once: true });
  if (signal?.aborted) stop();
  try {
    await app.waitUntilExit();
  } finally {
    signal?.removeEventListener('abort', stop);
    if (tty) stdout.write(LEAVE);
  }
}
