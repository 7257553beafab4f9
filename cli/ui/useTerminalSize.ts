/** The terminal's width and height, updated when it is resized. */
import { useStdout } from 'ink';
import { useEffect, useState } from 'react';

export interface TerminalSize {
  width: number;
  height: number;
}

/**
 * Columns and rows of ink's stdout (80 × 24 when it does not say, e.g. in tests). A terminal
 * re-wraps what is on screen when it shrinks, which leaves pieces of the last frame that ink
 * cannot erase; full-screen views pass `clearOnResize` to start the next frame on a clean screen.
 */
export function useTerminalSize({ clearOnResize = false } = {}): TerminalSize {
  const { stdout } = useStdout();
  const read = (): TerminalSize => ({ width: stdout.columns || 80, height: stdout.rows || 24 });
  const [size, setSize] = useState(read);
  useEffect(() => {
    const onResize = () => {
      if (clearOnResize && stdout.isTTY) stdout.write('\u001b[2J\u001b[H');
      setSize({ width: stdout.columns || 80, height: stdout.rows || 24 });
    };
    stdout.on('resize', onResize);
    return () => {
      stdout.off('resize', onResize);
    };
  }, [stdout, clearOnResize]);
  return size;
}
