/**
 * ink renders only the final frame when it believes it runs in CI (the is-in-ci package reads
 * CI, CONTINUOUS_INTEGRATION and CI_* at import time). A TUI that was given a real terminal
 * must render live all the same, so this runs before ink is first imported.
 */
export function renderLiveInCi(): void {
  if (process.stdout.isTTY) process.env.CI = 'false';
}
